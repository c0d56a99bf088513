"""Trial designs and quality controls over real HTTP: catch trials and exclusion rules (exports,
trainer API, dashboard numbers), the completion link, 2AFC and the HYPE-time staircase."""

from __future__ import annotations

import csv
import io

import httpx
import pytest

from conftest import HTTP, http_client
from gazetune.study.runner import StudyServer
from gazetune.study.store import hype_exposure
from gazetune.study.config import StudyConfig

RECT = [100.0, 50.0, 320.0, 320.0]
RECT2 = [500.0, 50.0, 320.0, 320.0]


def participant(srv: StudyServer, pid: str = "p") -> httpx.Client:
    c = http_client(base_url=srv.url, timeout=30)
    r = c.post("/api/participants", json={"consent": True, "external_id": pid})
    assert r.status_code == 201, r.text
    c.headers["X-Participant-Token"] = r.json()["token"]
    return c


def trials_export(srv: StudyServer) -> list[dict]:
    text = HTTP.get(srv.url + "/api/admin/export/trials.csv", headers=srv.admin_headers()).text
    return list(csv.DictReader(io.StringIO(text)))


def gaze(seq: int, x0: float, y0: float, n: int = 40) -> dict:
    t = [1000.0 + seq * 1000 + 16.7 * k for k in range(n)]
    return {"seq": seq, "source": "mouse", "t_ms": t, "x": [x0 + (k % 3) for k in range(n)], "y": [y0] * n}


def run_participant(srv: StudyServer, pid: str, answer_for) -> httpx.Client:  # noqa: ANN001
    """Answer every trial with ``answer_for(export row)``; returns the client."""
    c = participant(srv, pid)
    while True:
        n = c.get("/api/me/next").json()
        if n["done"]:
            return c
        tid = n["trial_id"]
        body = {"image_rect": RECT, "client_onset_ms": 1.0, "viewport": {"width": 1280.0, "height": 800.0}}
        if "image_url2" in n:
            body["image_rect2"] = RECT2
        assert c.post(f"/api/trials/{tid}/start", json=body).status_code == 200
        assert c.post(f"/api/trials/{tid}/gaze", json=gaze(0, 260.0, 210.0)).status_code == 200
        if "image_url2" in n:
            assert c.post(f"/api/trials/{tid}/gaze", json=gaze(1, 660.0, 210.0)).status_code == 200
        row = next(r for r in trials_export(srv) if int(r["trial_id"]) == tid)
        r = c.post(f"/api/trials/{tid}/answer", json={"answer": answer_for(row), "rt_ms": 900.0})
        assert r.status_code == 200, r.text


def right_answer(row: dict) -> int:
    if row["real_side"]:
        return int(row["real_side"])
    return 1 if row["kind"] in ("real", "catch_real") else 0


def test_catch_trials_exclude_and_hold_back_from_the_trainer(tmp_path):
    with StudyServer(tmp_path, trials_per_participant=4, catch_trials=2, synthetic_pool=4,
                     exclude_catch_accuracy_below=0.5, exclude_fast_rt_ms=200, completion_platform="prolific") as srv:
        h = srv.admin_headers()
        good = run_participant(srv, "good", right_answer)
        # the careless participant gets every catch trial wrong and the rest right
        bad = run_participant(srv, "bad", lambda r: 1 - right_answer(r) if r["catch"] == "true" else right_answer(r))
        # before completion nothing reaches the trainer (the rules judge at completion)
        assert HTTP.get(srv.url + "/api/trainer/responses", headers=h).json()["responses"] == []
        done = good.post("/api/me/complete").json()
        assert done["redirect_url"] == f"https://app.prolific.com/submissions/complete?cc={done['completion_code']}"
        bad.post("/api/me/complete")
        rows = trials_export(srv)
        assert sum(r["catch"] == "true" for r in rows) == 4  # 2 per participant, blinded in the page
        catch_kinds = {r["kind"] for r in rows if r["catch"] == "true"}
        assert catch_kinds == {"catch_fake"}
        by = {r["external_id"]: r for r in rows}
        assert by["good"]["excluded"] == "false" and by["bad"]["excluded"] == "true"
        assert "catch trials: 0 of 2 right" in by["bad"]["exclusion_reasons"]
        resp = HTTP.get(srv.url + "/api/trainer/responses", headers=h).json()["responses"]
        assert len(resp) == 4 and {r["external_id"] for r in resp} == {"good"}  # no catch, no excluded
        assert {r["kind"] for r in resp} <= {"real", "synthetic"}
        summ = HTTP.get(srv.url + "/api/admin/summary", headers=h).json()
        assert [e["external_id"] for e in summ["exclusions"]["excluded"]] == ["bad"]
        assert summ["exclusions"]["excluded"][0]["final"]
        assert sum(r["n"] for r in summ["fool_rate"]) == 4  # only the kept participant's real/synthetic trials
        fx = list(csv.DictReader(io.StringIO(HTTP.get(srv.url + "/api/admin/export/fixations.csv", headers=h).text)))
        assert fx and not [f for f in fx if f["image"].startswith("catch")]
        bad_id = str(next(p["id"] for p in summ["participants"]["list"] if p["external_id"] == "bad"))
        assert bad_id not in {f["subject"] for f in fx}


def test_too_fast_answers_exclude(tmp_path):
    with StudyServer(tmp_path, trials_per_participant=3, synthetic_pool=3, exclude_fast_rt_ms=1000,
                     exclude_fast_share_above=0.5) as srv:
        c = run_participant(srv, "fast", right_answer)  # every RT is 900 ms: under 1000
        c.post("/api/me/complete")
        summ = HTTP.get(srv.url + "/api/admin/summary", headers=srv.admin_headers()).json()
        (e,) = summ["exclusions"]["excluded"]
        assert "too fast: 3 of 3 answers under 1000 ms" in e["reasons"][0]


def test_2afc_pairs_a_map_per_image_and_accuracy(tmp_path):
    with StudyServer(tmp_path, design="2afc", trials_per_participant=4, synthetic_pool=4) as srv:
        h = srv.admin_headers()
        c = participant(srv)
        n = c.get("/api/me/next").json()
        assert n["image_url2"].endswith("which=2") and "kind" not in str(n)
        a, b = c.get(n["image_url"]), c.get(n["image_url2"])
        assert a.content[:4] == b.content[:4] == b"\x89PNG" and a.content != b.content
        r = c.post(f"/api/trials/{n['trial_id']}/start", json={"image_rect": RECT, "client_onset_ms": 1.0})
        assert r.status_code == 422 and "image_rect2 is missing" in r.json()["detail"]
        run_participant(srv, "a", right_answer)
        run_participant(srv, "b", lambda r: 0)  # always "left": right about half the time
        rows = [r for r in trials_export(srv) if r["external_id"] in ("a", "b")]
        assert all({r["kind"], r["kind2"]} == {"real", "synthetic"} for r in rows)
        assert {r["real_side"] for r in rows} <= {"0", "1"}
        summ = HTTP.get(srv.url + "/api/admin/summary", headers=h).json()
        (v1,) = summ["fool_rate"]
        assert v1["group"] == "v1" and v1["n"] == 8
        n_right = 4 + sum(1 for r in rows if r["external_id"] == "b" and r["real_side"] == "0")
        assert v1["correct"] == n_right and v1["accuracy"] == pytest.approx(n_right / 8)
        assert 0 <= v1["ci95"][0] <= v1["accuracy"] <= v1["ci95"][1] <= 1
        # gaze on both images: each gets its own fixations, in its own pixels
        fx = list(csv.DictReader(io.StringIO(HTTP.get(srv.url + "/api/admin/export/fixations.csv", headers=h).text)))
        for r in rows:
            mine = {f["image"] for f in fx if f["subject"] == r["participant_id"]}
            assert {r["image"], r["image2"]} <= mine
        assert all(0 <= float(f["x"]) < 64 for f in fx)
        resp = HTTP.get(srv.url + "/api/trainer/responses", headers=h).json()["responses"]
        first = resp[0]
        assert first["design"] == "2afc" and first["real_side"] in (0, 1)
        assert first["image2"]["image_rect"] == RECT2
        x2 = [v for v in first["image2"]["samples"]["x"] if v is not None]
        assert any(0 <= v < 64 for v in x2)


def test_hype_time_staircase_moves(tmp_path):
    with StudyServer(tmp_path, design="hype_time", trials_per_participant=6, synthetic_pool=6, hype_start_ms=500,
                     hype_step_ms=100) as srv:
        c = participant(srv)
        seen = []
        while True:
            n = c.get("/api/me/next").json()
            if n["done"]:
                break
            seen.append(n["exposure_ms"])
            assert n["mask_ms"] == 300
            tid = n["trial_id"]
            c.post(f"/api/trials/{tid}/start", json={"image_rect": RECT, "client_onset_ms": 1.0})
            row = next(r for r in trials_export(srv) if int(r["trial_id"]) == tid)
            # wrong on the first three, right on the last three: up, up, up, then down
            ans = right_answer(row) if len(seen) > 3 else 1 - right_answer(row)
            c.post(f"/api/trials/{tid}/answer", json={"answer": ans, "rt_ms": 700.0})
        assert seen == [500, 600, 700, 800, 700, 600]
        rows = sorted(trials_export(srv), key=lambda r: int(r["idx"]))
        assert [float(r["exposure_ms"]) for r in rows] == seen
        summ = HTTP.get(srv.url + "/api/admin/summary", headers=srv.admin_headers()).json()
        v1 = next(r for r in summ["fool_rate"] if r["group"] == "v1")
        assert v1["hype_time"]["n_participants"] == 1
        assert 500 <= v1["hype_time"]["threshold_ms"] <= 800
        assert v1["hype_infinity"]["error_rate"] == pytest.approx(0.5)


def test_staircase_stays_in_range():
    cfg = StudyConfig(design="hype_time", hype_min_ms=100, hype_max_ms=300, hype_start_ms=200, hype_step_ms=100)
    wrong = [{"kind": "real", "answer": 0, "real_side": None}] * 5
    right = [{"kind": "real", "answer": 1, "real_side": None}] * 5
    assert hype_exposure(cfg, wrong) == 300 and hype_exposure(cfg, right) == 100
    assert hype_exposure(cfg, []) == 200


@pytest.mark.parametrize("key, value, needle", [
    ("design", "3afc", "must be one of"), ("catch_trials", -1, ">= 0"),
    ("exclude_catch_accuracy_below", 0.8, "needs catch_trials"), ("completion_platform", "mturk", "prolific"),
    ("completion_redirect", "ftp://x", "http"), ("hype_start_ms", 5000, "hype_start_ms"),
])
def test_config_names_bad_design_keys(key, value, needle):
    with pytest.raises(ValueError, match=key) as e:
        StudyConfig(**{key: value})
    assert needle in str(e.value)


def test_trial_with_missing_gaze_is_flagged(tmp_path):
    with StudyServer(tmp_path, trials_per_participant=2, synthetic_pool=2) as srv:
        c = participant(srv)
        flags = []
        for k in range(2):
            tid = c.get("/api/me/next").json()["trial_id"]
            c.post(f"/api/trials/{tid}/start", json={"image_rect": RECT, "client_onset_ms": 1.0})
            c.post(f"/api/trials/{tid}/gaze", json=gaze(0, 260.0, 210.0))
            if k == 0:  # the page made 3 batches: 1 and 2 never arrived
                r = c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 800.0, "gaze_batches": 3})
            else:
                c.post(f"/api/trials/{tid}/gaze", json=gaze(1, 260.0, 210.0))
                r = c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 800.0, "gaze_batches": 2})
            flags.append(r.json()["gaze_complete"])
        assert flags == [False, True]
        rows = sorted(trials_export(srv), key=lambda r: int(r["idx"]))
        assert [(r["gaze_batches_sent"], r["n_batches"], r["gaze_complete"]) for r in rows] == [
            ("3", "1", "false"), ("2", "2", "true")]
        resp = HTTP.get(srv.url + "/api/trainer/responses", headers=srv.admin_headers()).json()["responses"]
        assert [r["gaze_complete"] for r in sorted(resp, key=lambda r: r["trial_id"])] == [False, True]
        summ = HTTP.get(srv.url + "/api/admin/summary", headers=srv.admin_headers()).json()
        assert summ["participants"]["list"][0]["gaze_incomplete"] == 1
