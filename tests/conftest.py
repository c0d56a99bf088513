"""Shared pytest fixtures.

Unit tests never need ``../shared``; tests that check against the real data in
``../shared/data`` (or ``$GAZETUNE_SHARED_DATA``) skip with a clear reason when it is missing.
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

# The tests' HTTP to their study servers (plain HTTP on 127.0.0.1).  httpx builds an SSL context,
# reading the whole CA bundle, for every client and every module-level httpx.get/post: 40-60 ms
# each on a busy machine, some 850 times a run.  These share one context.
_SSL: ssl.SSLContext | None = None


def http_client(**kw) -> httpx.Client:
    """``httpx.Client(**kw)`` with the tests' shared SSL context."""
    global _SSL
    if _SSL is None:
        _SSL = ssl.create_default_context()
    return httpx.Client(verify=_SSL, **kw)


# Stands in for module-level httpx.get/post: same default timeout, and no keep-alive, so every
# request still opens its own connection (a server that was killed or has two worker processes
# sees what it saw before).
HTTP = http_client(limits=httpx.Limits(max_keepalive_connections=0))


# One thread: on 2 shared cores, torch's intra-op threads fight each other and the tests slow
# down many times over for these tiny models.
torch.set_num_threads(1)


def _shared_data_dir() -> Path:
    env = os.environ.get("GAZETUNE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


# --- pytest-xdist (``make test`` runs ``-n 2``) -------------------------------------------------
# Each test file goes to one worker, so its module-scoped servers and trained models are built
# once; the files that use the session's faces GAN (below) go to the same one, so it is trained
# once.  (A scheduler of our own: xdist's loadgroup marks do not reach its scheduler under pytest 9.)
FACES_GAN_FILES = ("tests/test_observers_judge.py", "tests/test_tune_health.py")


@pytest.hookimpl(optionalhook=True)  # an xdist hook: nothing without xdist
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByFile(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            return "faces_gan" if path in FACES_GAN_FILES else path

    config.option.loadscopereorder = False  # files in the order the workers collected them
    return ByFile(config, log)


def pytest_collection_modifyitems(config, items) -> None:
    """In an xdist worker: the files with browser or slow tests first, so that no worker is left
    alone with a long file at the end (the order within a file stays)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return
    heavy = {i.path for i in items if i.get_closest_marker("browser") or i.get_closest_marker("slow")}
    items.sort(key=lambda i: i.path not in heavy)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real data (OSIE, faces64); skips the test when it is not on this machine."""
    path = _shared_data_dir()
    if not (path / "osie" / "fixations.csv").exists():
        pytest.skip(f"real data not found at {path} (set GAZETUNE_SHARED_DATA)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# The two-node loop demo (gazetune.loop.demo) at the smallest settings that still publish two
# versions and judge all three: test_loop.py tests the loop with them, and the demo test runs its
# stage 8 with them rather than repeating the loop at larger settings.
MINIMAL_LOOP = dict(size=16, pretrain_steps=6, tune_steps=2, batch=8, g_width=8, participants=2, trials=6,
                    synthetic_pool=6, display_ms=1000, saliency_epochs=1, min_observed=4)


# A short pretraining on the built-in faces shared by the training-health and judge tests.
FACES_GAN = dict(size=25, channels=1, z_dim=32, g_width=8, d_width=8, batch=16, log_every=1, sample_every=0,
                 n_samples=4, ema_half_life=100.0)


@pytest.fixture(scope="session")
def faces_split():
    """The 100 built-in faces (25 x 25 grey) split 60 / 20 / 20: train, calibration, test."""
    from gazetune.images import load_image_set

    x = load_image_set("builtin:faces", channels=1).images
    order = np.random.default_rng(0).permutation(len(x))
    return x[order[:60]], x[order[60:80]], x[order[80:]]


@pytest.fixture(scope="session")
def faces_gan(faces_split, tmp_path_factory):
    """150 steps of the default recipe on the 60 training faces, with generator snapshots kept at
    steps 40 and 80.  Returns ``(run_dir, cfg, {step: snapshot_file})``."""
    import shutil

    from gazetune.tune.train import TrainConfig, pretrain

    root = tmp_path_factory.mktemp("faces_gan")
    out = root / "run"
    cfg = TrainConfig(**FACES_GAN, steps=150, checkpoint_every=40, health_window=40)
    snaps: dict[int, Path] = {}

    def keep(step: int, _stats: dict) -> None:
        if step in (40, 80):
            snaps[step] = root / f"snapshot_{step}.safetensors"
            shutil.copyfile(out / "checkpoint.safetensors", snaps[step])

    pretrain(cfg, faces_split[0], out, progress=False, hooks=[keep])
    return out, cfg, snaps
