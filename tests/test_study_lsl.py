"""Lab tracker over Lab Streaming Layer: real pylsl streams on loopback against a real server.

A pylsl outlet streams synthetic gaze (x, y, pupil in tracker screen pixels, 120 Hz) and an extra
"heart rate" stream (10 Hz) while a participant runs two trials over HTTP; the server publishes
trial markers on its own outlet.  The stored samples of each trial must lie inside that trial's
LSL window, cover it, and be converted to image pixels with that trial's rectangle and device
pixel ratio.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import threading
import time

import numpy as np
import pytest

from conftest import HTTP, http_client
from gazetune.study.runner import StudyServer

pylsl = pytest.importorskip("pylsl", reason="pylsl (liblsl) is not installed")

RATE_HZ = 120.0
HR_HZ = 10.0
TRIAL_S = 1.2


def fx(t: np.ndarray | float) -> np.ndarray | float:
    """Tracker screen x (physical px) at LSL time t (s)."""
    return 700.0 + 300.0 * np.sin(2.0 * t)


def fy(t: np.ndarray | float) -> np.ndarray | float:
    return 500.0 + 200.0 * np.cos(3.0 * t)


def pupil(t: np.ndarray | float) -> np.ndarray | float:
    return 3.0 + 0.5 * np.sin(t)


@pytest.fixture(scope="module")
def loopback() -> str:
    """A unique tag, after checking that liblsl resolves a stream on this machine."""
    tag = secrets.token_hex(4)
    try:
        probe = pylsl.StreamOutlet(pylsl.StreamInfo(f"gt-probe-{tag}", "Probe", 1, 0, pylsl.cf_float32, tag))
        found = pylsl.resolve_byprop("name", f"gt-probe-{tag}", 1, 5.0)
        del probe
    except Exception as e:  # liblsl missing or no network interface it can use
        pytest.skip(f"liblsl cannot open a stream on loopback here: {type(e).__name__}: {e}")
    if not found:
        pytest.skip("liblsl cannot resolve its own stream on loopback within 5 s (multicast blocked?)")
    return tag


def _rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def test_tracker_gaze_and_extra_stream_are_stored_with_the_right_trials(loopback, tmp_path):
    tag = loopback
    gaze_name, hr_name, mk_name = f"gt-gaze-{tag}", f"gt-hr-{tag}", f"gt-markers-{tag}"
    gaze_out = pylsl.StreamOutlet(pylsl.StreamInfo(gaze_name, "Gaze", 3, RATE_HZ, pylsl.cf_float32, f"g-{tag}"))
    hr_out = pylsl.StreamOutlet(pylsl.StreamInfo(hr_name, "HeartRate", 1, HR_HZ, pylsl.cf_float32, f"h-{tag}"))
    stop = threading.Event()
    pushed: list[float] = []
    pushed_hr: list[float] = []

    def stream() -> None:
        k = 0
        while not stop.is_set():
            t = pylsl.local_clock()
            pushed.append(t)
            gaze_out.push_sample([fx(t), fy(t), pupil(t)], t)
            if k % int(RATE_HZ / HR_HZ) == 0:
                hr_out.push_sample([60.0 + k % 7], t)
                pushed_hr.append(t)
            k += 1
            time.sleep(1.0 / RATE_HZ)

    streamer = threading.Thread(target=stream, daemon=True)
    streamer.start()
    srv = StudyServer(tmp_path, trials_per_participant=2, synthetic_pool=4, gaze_mode="tracker",
                      lsl_gaze_stream=gaze_name, lsl_channels=[0, 1, 2], lsl_marker_streams=[hr_name],
                      lsl_marker_outlet=mk_name, lsl_late_s=2.0)
    try:
        srv.start()
        deadline = time.monotonic() + 30
        while True:
            lsl = HTTP.get(srv.url + "/api/health").json()["lsl"]
            if all(lsl["connected"].values()):
                break
            assert time.monotonic() < deadline, f"server did not connect to the LSL streams: {lsl}"
            time.sleep(0.2)
        found = pylsl.resolve_byprop("name", mk_name, 1, 10.0)
        assert found, f"the server's marker outlet {mk_name!r} was not found"
        markers_in = pylsl.StreamInlet(found[0])
        markers_in.open_stream(5.0)

        c = http_client(base_url=srv.url, timeout=30)
        c.headers["X-Participant-Token"] = c.post("/api/participants", json={"consent": True}).json()["token"]
        rects = {}
        for rect, dpr in (([100.0, 50.0, 400.0, 400.0], 1.0), ([300.0, 120.0, 256.0, 200.0], 2.0)):
            tid = c.get("/api/me/next").json()["trial_id"]
            r = c.post(f"/api/trials/{tid}/start", json={"image_rect": rect, "client_onset_ms": 0.0,
                                                         "viewport": {"width": 1280, "height": 800, "dpr": dpr}})
            assert r.status_code == 200, r.text
            rects[tid] = (rect, dpr)
            # the page sends the pointer as well (source mouse); the trial's gaze is the tracker's
            r = c.post(f"/api/trials/{tid}/gaze", json={"seq": 0, "source": "mouse", "t_ms": [1.0, 2.0],
                                                        "x": [rect[0], rect[0]], "y": [rect[1], rect[1]]})
            assert r.status_code == 200, r.text
            time.sleep(TRIAL_S)
            assert c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 1200.0}).status_code == 200
            time.sleep(0.4)  # gaze between the trials belongs to neither
        deadline = time.monotonic() + 20
        while HTTP.get(srv.url + "/api/health").json()["lsl"]["open_trials"]:
            assert time.monotonic() < deadline, "the last trial window was never stored"
            time.sleep(0.2)

        h = srv.admin_headers()
        trials = {int(t["trial_id"]): t for t in _rows(HTTP.get(srv.url + "/api/admin/export/trials.csv", headers=h).text)}
        samples = _rows(HTTP.get(srv.url + "/api/admin/export/samples.csv", headers=h).text)
        marks = _rows(HTTP.get(srv.url + "/api/admin/export/markers.csv", headers=h).text)
        responses = {r["trial_id"]: r for r in HTTP.get(srv.url + "/api/trainer/responses", headers=h).json()["responses"]}
        got_markers = []
        while True:
            m, t = markers_in.pull_sample(timeout=1.0)
            if m is None:
                break
            got_markers.append((m[0], t))
    finally:
        stop.set()
        srv.stop()
    streamer.join(5)

    # markers on the server's outlet carry the trial ids and the stored onsets/offsets
    ids = list(rects)
    assert [m for m, _ in got_markers] == [f"start {ids[0]}", f"end {ids[0]}", f"start {ids[1]}", f"end {ids[1]}"]
    for (name, t), (tid, col) in zip(got_markers, [(ids[0], "lsl_onset"), (ids[0], "lsl_offset"),
                                                   (ids[1], "lsl_onset"), (ids[1], "lsl_offset")]):
        assert abs(t - float(trials[tid][col])) < 1e-3, (name, t, trials[tid][col])

    for tid, (rect, dpr) in rects.items():
        t0, t1 = float(trials[tid]["lsl_onset"]), float(trials[tid]["lsl_offset"])
        assert {s["source"] for s in samples if int(s["trial_id"]) == tid} == {"tracker", "mouse"}
        mine = [s for s in samples if int(s["trial_id"]) == tid and s["source"] == "tracker"]
        assert len(responses[tid]["samples"]["t_ms"]) == len(mine)  # the trainer gets the tracker's
        ts = np.array([float(s["t_ms"]) for s in mine]) / 1000.0
        assert np.all((ts >= t0) & (ts < t1)), f"trial {tid}: samples outside its window [{t0}, {t1})"
        assert np.all(np.diff(ts) > 0) and len({int(s['seq']) for s in mine}) >= 1
        # every sample pushed inside the window is stored once (a loaded machine may push fewer
        # than RATE_HZ; clock synchronisation over loopback shifts time stamps by microseconds)
        sent = np.array([t for t in pushed if t0 + 1e-3 <= t < t1 - 1e-3])
        assert len(sent) > 0.3 * (t1 - t0) * RATE_HZ
        nearest = np.abs(ts[None, :] - sent[:, None]).min(axis=1)
        assert np.all(nearest < 5e-4), f"trial {tid}: {int((nearest >= 5e-4).sum())} pushed samples not stored"
        assert abs(len(mine) - len(sent)) <= 2, (len(mine), len(sent))
        assert ts[0] - t0 < 0.1 and t1 - ts[-1] < 0.1, "the window is not covered to its edges"
        left, top, w, hgt = rect
        x = np.array([float(s["x"]) for s in mine])
        y = np.array([float(s["y"]) for s in mine])
        np.testing.assert_allclose([float(s["screen_x"]) for s in mine], fx(ts) / dpr, atol=0.05)
        np.testing.assert_allclose(x, (fx(ts) / dpr - left) * 64 / w, atol=0.05)
        np.testing.assert_allclose(y, (fy(ts) / dpr - top) * 64 / hgt, atol=0.05)
        np.testing.assert_allclose([float(s["pupil"]) for s in mine], pupil(ts), atol=1e-3)
        hr = [m for m in marks if m["trial_id"] and int(m["trial_id"]) == tid]
        assert {m["stream"] for m in hr} == {hr_name}
        t_hr = np.array([float(m["t_lsl"]) for m in hr])
        assert np.all((t_hr >= t0) & (t_hr < t1))
        sent_hr = [t for t in pushed_hr if t0 + 1e-3 <= t < t1 - 1e-3]
        assert len(sent_hr) >= 3 and abs(len(hr) - len(sent_hr)) <= 2, (len(hr), len(sent_hr))
        assert all(60.0 <= v <= 66.0 for m in hr for v in json.loads(m["value"]))
