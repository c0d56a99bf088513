"""The participant flow in a real headless Debian Chromium against a real study server.

Screenshots of every step go to ``test-artifacts/study/<flow>/`` (git-ignored).
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from conftest import HTTP
from gazetune.study.runner import StudyServer

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "study"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]
# the screens that follow the targets: after calibration and validation, after a drift check
INSTRUCTIONS, TRIAL = "#screen-instructions.active", "#trial-stage.showing"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian chromium not installed at {CHROMIUM}"),
]


class Flow:
    """A Chromium page on the study with request logging and numbered screenshots."""

    def __init__(self, pw, server: StudyServer, name: str, extra_args: list[str] | None = None) -> None:
        self.server = server
        self.dir = ARTIFACTS / name
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=CHROMIUM_ARGS + (extra_args or []))
        self.context = self.browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.console: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"))
        self.n = 0

    def shot(self, step: str) -> None:
        self.n += 1
        self.page.screenshot(path=str(self.dir / f"{self.n:02d}_{step}.png"))

    def foreign_requests(self) -> list[str]:
        origin = urlparse(self.server.url)
        bad = []
        for u in self.requests:
            p = urlparse(u)
            if p.scheme in ("blob", "data"):
                continue
            if (p.scheme, p.hostname, p.port) != (origin.scheme, origin.hostname, origin.port):
                bad.append(u)
        return bad

    def close(self) -> None:
        self.context.close()
        self.browser.close()

    def click_targets(self, until: str, hold_s: float = 0.9, wait_ms: int = 30000) -> int:
        """Click every calibration/validation target as it appears, until the selector ``until``
        (the screen that follows the targets) shows; returns how many.  Waiting for either means
        no wait for a target that never comes; ``wait_ms`` bounds the wait for one of the two."""
        n = 0
        while n < 60:
            where = self.page.wait_for_function(_NEXT_TARGET, arg=until, timeout=wait_ms).json_value()
            if where == "done":
                return n
            self.page.mouse.click(*where)  # moves there, then clicks
            n += 1
            time.sleep(hold_s)
        return n


# "done" once the selector shows, else the centre of the target while it waits for its click, else
# null (none yet): one round trip to a page that face tracking may keep busy
_NEXT_TARGET = """(until) => {
  const done = document.querySelector(until);
  if (done && done.getClientRects().length) return "done";
  const t = document.getElementById("target");
  if (!t || t.hidden || t.classList.contains("shrink")) return null;
  const r = t.getBoundingClientRect();
  return r.width > 0 ? [r.left + r.width / 2, r.top + r.height / 2] : null;
}"""


def _mouse_path(page, rect: dict, n: int, phase: float) -> None:
    """Move the pointer over the image along a small loop (n steps)."""
    import math

    for k in range(n):
        a = phase + 2 * math.pi * k / n
        x = rect["x"] + rect["width"] * (0.5 + 0.3 * math.cos(a))
        y = rect["y"] + rect["height"] * (0.45 + 0.25 * math.sin(a))
        page.mouse.move(x, y, steps=2)
        time.sleep(0.03)


@pytest.fixture(scope="module")
def playwright_sync():
    pw_mod = pytest.importorskip("playwright.sync_api")
    with pw_mod.sync_playwright() as pw:
        yield pw


def test_mouse_flow_end_to_end(tmp_path, playwright_sync):
    n_trials = 4
    with StudyServer(tmp_path, trials_per_participant=n_trials, fixation_ms=200, max_display_ms=0,
                     drift_check_every=2, synthetic_pool=8) as srv:
        f = Flow(playwright_sync, srv, "mouse")
        page = f.page
        try:
            page.goto(srv.url + "/?pid=worker-42")
            page.wait_for_selector("#screen-consent.active")
            assert page.input_value("#consent-pid") == "worker-42"
            f.shot("consent")
            page.click("#consent-agree")

            page.wait_for_selector("#screen-card.active")
            page.eval_on_selector("#card-slider", "(el) => { el.value = '340'; el.dispatchEvent(new Event('input')); }")
            f.shot("card_size")
            page.click("#card-done")

            page.wait_for_selector("#screen-blindspot.active")
            f.shot("blind_spot")
            page.click("#bs-start")
            for _ in range(3):  # 1.6 s at 60 mm/s and 340/85.6 px/mm -> about 400 mm
                time.sleep(1.6)
                page.keyboard.press("Space")
                time.sleep(0.5)

            page.wait_for_selector("#screen-calib.active")
            f.shot("calibration")
            page.click("#calib-start")
            time.sleep(0.3)
            f.shot("validation_target")
            assert f.click_targets(INSTRUCTIONS) == 5
            page.wait_for_selector("#screen-instructions.active")
            f.shot("instructions")
            page.click("#instr-start")

            answers, drift = [], 0
            t_end = time.monotonic() + 90
            while len(answers) < n_trials and time.monotonic() < t_end:
                page.wait_for_selector("#trial-stage.showing, #target:not([hidden])", timeout=15000)
                if page.is_visible("#target"):
                    drift += f.click_targets(TRIAL, hold_s=0.7)
                    continue
                rect = page.locator("#trial-stage").bounding_box()
                _mouse_path(page, rect, 18, phase=len(answers))
                if not answers:
                    f.shot("trial_mouse_contingent")
                key = "j" if len(answers) % 2 == 0 else "f"
                page.keyboard.press(key)
                answers.append(1 if key == "j" else 0)
                page.wait_for_function("(n) => window.__study.trialsDone >= n", arg=len(answers), timeout=15000)
            page.wait_for_selector("#screen-done.active", timeout=15000)
            f.shot("done")
            code = page.text_content("#done-code").strip()
            assert code and len(code) >= 4
            assert drift >= 1, "a drift check was expected before trial 3"
            assert not f.foreign_requests(), f"requests to other origins: {f.foreign_requests()}"
            assert not [c for c in f.console if c.startswith("pageerror")], f.console
            page.goto(srv.url + f"/admin?token={srv.admin_token}")
            page.wait_for_function("document.getElementById('n-completed').textContent === '1'", timeout=15000)
            assert page.locator("#fool tbody tr").count() >= 1
            f.shot("dashboard")
        finally:
            f.close()

        h = srv.admin_headers()
        summ = HTTP.get(srv.url + "/api/admin/summary", headers=h).json()
        p = summ["participants"]["list"][0]
        assert p["external_id"] == "worker-42" and p["completed"]
        assert p["px_per_mm"] == pytest.approx(340 / 85.6, rel=1e-6)
        assert 250 < p["viewing_distance_mm"] < 700
        assert p["validation_passed"] and p["validation_accuracy_deg"] < 0.5
        resp = HTTP.get(srv.url + "/api/trainer/responses", headers=h).json()["responses"]
        assert [r["answer"] for r in sorted(resp, key=lambda r: r["trial_id"])] == answers
        for r in resp:
            assert 300 < r["rt_ms"] < 20000, r["rt_ms"]
            xs = [v for v in r["samples"]["x"] if v is not None]
            ys = [v for v in r["samples"]["y"] if v is not None]
            assert len(xs) >= 10, f"too few gaze samples on trial {r['trial_id']}: {len(xs)}"
            # the pointer circled inside the image: its samples lie in image pixels 0..64
            inside = [(x, y) for x, y in zip(xs, ys) if 0 <= x <= 64 and 0 <= y <= 64]
            assert len(inside) >= 0.8 * len(xs)
            t = r["samples"]["t_ms"]
            assert all(b > a for a, b in zip(t, t[1:]))
        vals = list(csv.DictReader(io.StringIO(
            HTTP.get(srv.url + "/api/admin/export/validations.csv", headers=h).text)))
        assert sum(1 for v in vals if v["kind"] == "drift") == drift


def _fake_camera(path: Path, with_face: bool, n_frames: int = 20) -> Path:
    """An MJPEG file for Chromium's fake camera: scikit-image's public-domain ``astronaut`` photo
    (a face) or its ``grass`` texture (no face), 640 x 480, with a little jitter between frames."""
    from PIL import Image
    from skimage import data

    src = data.astronaut() if with_face else data.grass()
    im = Image.fromarray(src).convert("RGB").resize((480, 480))
    with open(path, "wb") as fh:
        for k in range(n_frames):
            frame = Image.new("RGB", (640, 480), (120, 120, 120))
            frame.paste(im, (80 + (k % 3), 0))
            buf = io.BytesIO()
            frame.save(buf, format="JPEG", quality=90)
            fh.write(buf.getvalue())
    return path


def _face_mesh_or_skip() -> None:
    from gazetune.study.app import _vendor_dir

    if _vendor_dir() is None:
        pytest.skip("@mediapipe/face_mesh is not installed: run `npm ci --prefix web`")


def webcam_flow(pw, srv: StudyServer, name: str, cam: Path) -> Flow:  # noqa: ANN001
    """A Flow whose Chromium camera is the fake one playing ``cam`` (see :func:`_fake_camera`)."""
    return Flow(pw, srv, name, ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                                f"--use-file-for-fake-video-capture={cam}"])


def _start_webcam_flow(f: Flow) -> None:
    page = f.page
    page.goto(f.server.url + "/?pid=cam-1")
    page.wait_for_selector("#screen-consent.active")
    assert page.is_visible("#consent-gaze-webcam") and "never leave" in page.text_content("#consent-gaze-webcam")
    f.shot("consent_webcam")
    page.click("#consent-agree")
    page.wait_for_selector("#screen-card.active")
    page.click("#card-done")
    page.wait_for_selector("#screen-blindspot.active")
    page.click("#bs-skip")


# The webcam flow with a face (calibration, validation, trials with webcam gaze, the done screen)
# is tested once, with a drift check in it: test_study_webcam_browser.py.


def test_webcam_without_face_says_so(tmp_path, playwright_sync):
    _face_mesh_or_skip()
    cam = _fake_camera(tmp_path / "grass.mjpeg", with_face=False)
    with StudyServer(tmp_path / "srv", gaze_mode="webcam", trials_per_participant=2, synthetic_pool=4) as srv:
        f = webcam_flow(playwright_sync, srv, "webcam_no_face", cam)
        try:
            _start_webcam_flow(f)
            f.page.wait_for_selector("#screen-error.active", timeout=120000)
            f.shot("no_face_message")
            assert "No face was found" in f.page.text_content("#error-text")
            # the camera and the tracker are stopped on this path
            assert f.page.evaluate("window.GazeWebcam.lastStream.getTracks().every((t) => t.readyState === 'ended')")
            assert f.page.evaluate("document.getElementById('webcam-video').srcObject === null")
        finally:
            f.close()
