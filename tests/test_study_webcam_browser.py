"""Webcam mode in a real headless Debian Chromium with the fake camera (a still photo of a face):
the whole flow (face found, 9 calibration and 5 validation targets, trials with finite webcam gaze,
the face mesh served locally, nothing sent elsewhere); the drift check re-fits the gaze model and
says so in the records, and each trial's expression scores (numbers only) reach the trials and
markers exports.  It does not check accuracy: the photo never moves its eyes or head."""

from __future__ import annotations

import csv
import io
import json
import math
import time

from conftest import HTTP
from gazetune.study.runner import StudyServer
from test_study_browser import INSTRUCTIONS, TRIAL, _face_mesh_or_skip, _fake_camera, _start_webcam_flow, webcam_flow
from test_study_browser import playwright_sync, pytestmark  # noqa: F401  (the fixture, browser marks)


def _export(srv: StudyServer, name: str) -> list[dict]:
    text = HTTP.get(srv.url + f"/api/admin/export/{name}.csv", headers=srv.admin_headers()).text
    return list(csv.DictReader(io.StringIO(text)))


def test_drift_check_refits_and_expression_reaches_the_exports(tmp_path, playwright_sync):
    _face_mesh_or_skip()
    cam = _fake_camera(tmp_path / "face.mjpeg", with_face=True)
    with StudyServer(tmp_path / "srv", gaze_mode="webcam", trials_per_participant=2, fixation_ms=200,
                     max_display_ms=1500, drift_check_every=1, synthetic_pool=4, validation_max_deg=60.0,
                     max_calibration_attempts=1) as srv:
        f = webcam_flow(playwright_sync, srv, "webcam_refit", cam)
        page, bodies = f.page, []
        page.on("request", lambda r: bodies.append((r.url, r.post_data)) if r.method == "POST" else None)
        try:
            _start_webcam_flow(f)
            page.wait_for_selector("#calib-result:has-text('Face found')", timeout=120000)
            f.shot("face_found")
            page.click("#calib-start")
            assert f.click_targets(INSTRUCTIONS, hold_s=0.3) == 9 + 5  # calibration targets, then validation
            page.wait_for_selector("#screen-instructions.active", timeout=30000)
            f.shot("webcam_calibrated")
            assert "°" in page.text_content("#calib-result")  # the error in degrees, told to the participant
            page.click("#instr-start")
            for k in range(2):
                if k == 1:  # the drift check before the second trial
                    assert f.click_targets(TRIAL, hold_s=0.3) == 1
                page.wait_for_selector("#trial-stage.showing", timeout=30000)
                time.sleep(0.8)
                if k == 0:
                    f.shot("trial_webcam")
                page.keyboard.press("j")
                page.wait_for_function("(n) => window.__study.trialsDone >= n", arg=k + 1, timeout=30000)
            page.wait_for_selector("#screen-done.active", timeout=30000)
            f.shot("done_webcam")
            refit = page.evaluate("window.__study.lastRefit")
            assert refit["ok"] and refit["model"] == 2 and refit["n_drift_targets"] == 1
            assert not f.foreign_requests(), f"requests to other origins: {f.foreign_requests()}"
            assert any("/vendor/face_mesh/" in u for u in f.requests)
            assert not [c for c in f.console if c.startswith("pageerror")], f.console
        finally:
            f.close()

        h = srv.admin_headers()
        summ = HTTP.get(srv.url + "/api/admin/summary", headers=h).json()
        assert summ["participants"]["list"][0]["validation_accuracy_deg"] is not None  # predictions existed
        resp = HTTP.get(srv.url + "/api/trainer/responses", headers=h).json()["responses"]
        assert len(resp) == 2
        for r in resp:  # webcam gaze with the first model (trial 1) and the re-fitted one (trial 2)
            xs = [v for v in r["samples"]["screen_x"] if v is not None]
            assert len(xs) >= 5, "too few finite webcam gaze samples"
            assert all(math.isfinite(v) for v in xs)

        # numbers only leave the page: the answers carry scores, nothing carries an image
        answers = [json.loads(b) for u, b in bodies if u.endswith("/answer")]
        assert len(answers) == 2
        for a in answers:
            assert set(a["expression"]) == {"n_frames", "eye_open", "brow_raise", "brow_gap", "mouth_open",
                                            "mouth_width", "smile"}
            assert all(isinstance(v, (int, float)) for v in a["expression"].values())
        assert not any(b and ("data:image" in b or "base64" in b) for _, b in bodies)

        vals = _export(srv, "validations")
        assert [(v["kind"], v["refit"], v["gaze_model"]) for v in vals] == [("validation", "", "1"), ("drift", "true", "2")]
        trials = _export(srv, "trials")
        assert [t["gaze_model"] for t in trials] == ["1", "2"]  # the second trial used the re-fitted model
        for t in trials:
            assert int(t["expr_n_frames"]) >= 1
            assert 0.05 < float(t["expr_eye_open"]) < 1.0 and 0.1 < float(t["expr_mouth_width"]) < 1.5
            assert all(math.isfinite(float(t[f"expr_{k}"])) for k in ("brow_raise", "brow_gap", "mouth_open", "smile"))
        markers = [m for m in _export(srv, "markers") if m["stream"] == "gazetune-expression"]
        assert len(markers) == 2 and json.loads(markers[0]["value"])["n_frames"] == int(trials[0]["expr_n_frames"])
