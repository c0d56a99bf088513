"""The study server over real HTTP (uvicorn child process on 127.0.0.1), on SQLite and PostgreSQL.

PostgreSQL runs when ``GAZETUNE_TEST_POSTGRES_URL`` points at a server where the user may
create databases (each test gets a fresh one).
"""

from __future__ import annotations

import csv
import io
import json
import os
import secrets
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from conftest import HTTP, http_client
from gazetune.study.runner import StudyServer

RECT = [100.0, 50.0, 320.0, 320.0]  # on-screen image rectangle used throughout (CSS px)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request, tmp_path_factory):
    """A fresh database URL per module and backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'study.db'}"
        return
    base = os.environ.get("GAZETUNE_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("GAZETUNE_TEST_POSTGRES_URL is not set (PostgreSQL storage tests)")
    url = sa.engine.make_url(base)
    name = f"gazetune_test_{secrets.token_hex(4)}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield url.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def server(database, tmp_path_factory):
    with StudyServer(tmp_path_factory.mktemp("server"), database=database, trials_per_participant=6,
                     synthetic_pool=12) as srv:
        yield srv


def participant(srv: StudyServer) -> httpx.Client:
    """A client for a new participant (token header set)."""
    c = http_client(base_url=srv.url, timeout=30)
    r = c.post("/api/participants", json={"consent": True, "external_id": "t"})
    assert r.status_code == 201, r.text
    c.headers["X-Participant-Token"] = r.json()["token"]
    return c


def start_next(c: httpx.Client) -> int:
    n = c.get("/api/me/next").json()
    assert not n["done"]
    r = c.post(f"/api/trials/{n['trial_id']}/start", json={"image_rect": RECT, "client_onset_ms": 1000.0})
    assert r.status_code == 200, r.text
    return n["trial_id"]


def batch(seq: int, n: int = 60, t0: float = 0.0) -> dict:
    t = t0 + np.arange(n) * 1000 / 60
    return {"seq": seq, "source": "mouse", "t_ms": t.tolist(),
            "x": (RECT[0] + 160 + np.sin(t / 100) * 50).tolist(), "y": (RECT[1] + 160 + np.cos(t / 100) * 50).tolist()}


def snapshot(srv: StudyServer) -> tuple:
    """Everything a refused request must leave unchanged."""
    h = srv.admin_headers()
    trials = HTTP.get(srv.url + "/api/admin/export/trials.csv", headers=h).text
    samples = HTTP.get(srv.url + "/api/admin/export/samples.csv", headers=h).text
    vals = HTTP.get(srv.url + "/api/admin/export/validations.csv", headers=h).text
    return trials, samples, vals


def test_idempotent_batches(server):
    c = participant(server)
    tid = start_next(c)
    b0, b1 = batch(0), batch(1, t0=1000)
    first = c.post(f"/api/trials/{tid}/gaze", json=b0).json()
    assert first == {"stored": True, "duplicate": False, "seq": 0, "n": 60}
    assert c.post(f"/api/trials/{tid}/gaze", json=b1).json()["stored"]
    # retries of the same batch, also concurrent ones, are acknowledged and stored once
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        HTTP.post(server.url + f"/api/trials/{tid}/gaze", json=b0, headers=c.headers).json())) for _ in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert all(r["duplicate"] and not r["stored"] for r in results), results
    before = snapshot(server)
    changed = dict(b0, x=[v + 1 for v in b0["x"]])
    r = c.post(f"/api/trials/{tid}/gaze", json=changed)
    assert r.status_code == 409 and "seq 0" in r.json()["detail"]
    assert snapshot(server) == before
    assert c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 1234.5}).json()["stored"]
    resp = HTTP.get(server.url + "/api/trainer/responses", headers=server.admin_headers()).json()["responses"]
    mine = [r for r in resp if r["trial_id"] == tid][0]
    assert len(mine["samples"]["t_ms"]) == 120
    assert mine["rt_ms"] == 1234.5 and mine["answer"] == 1
    # screen (260, 210) is the image centre: (32, 32) in 64 x 64 image pixels
    x0 = (b0["x"][0] - RECT[0]) * 64 / RECT[2]
    assert mine["samples"]["x"][0] == pytest.approx(x0, abs=1e-3)
    assert mine["image_size"] == [64, 64] and mine["image_rect"] == RECT


def _raw(c: httpx.Client, path: str, text: str) -> httpx.Response:
    return c.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


def test_invalid_input_is_refused_and_changes_nothing(server):
    c, other = participant(server), participant(server)
    tid = start_next(c)
    other_tid = start_next(other)
    assert c.post(f"/api/trials/{tid}/gaze", json=batch(0)).status_code == 200
    good = batch(1, n=3, t0=2000)
    huge = batch(2, n=2001, t0=3000)
    cases = [
        ("wrong type seq", lambda: c.post(f"/api/trials/{tid}/gaze", json=dict(good, seq="abc")), 422, "seq"),
        ("string in t_ms", lambda: c.post(f"/api/trials/{tid}/gaze",
                                          json=dict(good, t_ms=[2000.0, "x", 2040.0])), 422, "t_ms.1"),
        ("NaN time", lambda: _raw(c, f"/api/trials/{tid}/gaze", json.dumps(dict(good, t_ms=[2000.0, float("nan"), 2040.0]))),
         422, "t_ms.1: Input should be a finite number"),
        ("Infinity x", lambda: _raw(c, f"/api/trials/{tid}/gaze", json.dumps(dict(good, x=[float("inf"), 1.0, 2.0]))),
         422, "x.0"),
        ("lengths", lambda: c.post(f"/api/trials/{tid}/gaze", json=dict(good, x=[1.0, 2.0])), 422,
         "x has 2 values but t_ms has 3"),
        ("time order", lambda: c.post(f"/api/trials/{tid}/gaze", json=dict(good, t_ms=[3.0, 2.0, 4.0])), 422,
         "t_ms must increase strictly"),
        ("huge batch", lambda: c.post(f"/api/trials/{tid}/gaze", json=huge), 422, "at most 2000"),
        ("huge body", lambda: _raw(c, f"/api/trials/{tid}/gaze", " " * (3 * 1024 * 1024)), 413, "limit"),
        ("unknown source", lambda: c.post(f"/api/trials/{tid}/gaze", json=dict(good, source="eeg")), 422, "source"),
        ("extra field", lambda: c.post(f"/api/trials/{tid}/gaze", json=dict(good, pupil=[1, 2, 3])), 422, "pupil"),
        ("bad json", lambda: _raw(c, f"/api/trials/{tid}/gaze", "{seq: 1"), 422, "JSON"),
        ("unknown trial", lambda: c.post("/api/trials/999999/gaze", json=good), 404, "trial_id 999999"),
        ("other's trial", lambda: c.post(f"/api/trials/{other_tid}/gaze", json=good), 403, "another participant"),
        ("other's answer", lambda: c.post(f"/api/trials/{other_tid}/answer", json={"answer": 1, "rt_ms": 5.0}), 403,
         "another participant"),
        ("other's image", lambda: c.get(f"/api/trials/{other_tid}/image"), 403, "another participant"),
        ("no token", lambda: HTTP.post(server.url + f"/api/trials/{tid}/gaze", json=good), 401, "X-Participant-Token"),
        ("bad token", lambda: HTTP.post(server.url + f"/api/trials/{tid}/gaze", json=good,
                                        headers={"X-Participant-Token": "nope"}), 401, "X-Participant-Token"),
        ("answer range", lambda: c.post(f"/api/trials/{tid}/answer", json={"answer": 7, "rt_ms": 5.0}), 422, "answer = 7"),
        ("answer type", lambda: c.post(f"/api/trials/{tid}/answer", json={"answer": "real", "rt_ms": 5.0}), 422, "answer"),
        ("rt NaN", lambda: _raw(c, f"/api/trials/{tid}/answer", '{"answer": 1, "rt_ms": NaN}'), 422, "rt_ms"),
        ("rt negative", lambda: c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": -3.0}), 422, "rt_ms"),
        ("rect", lambda: c.post(f"/api/trials/{tid}/start", json={"image_rect": [0, 0, 0, 10], "client_onset_ms": 1.0}),
         422, "image_rect"),
        ("validation NaN", lambda: _raw(c, "/api/me/validation", '{"kind": "validation", "points": '
                                        '[{"target": [1, NaN], "x": [], "y": []}]}'), 422, "points.0.target.1"),
        ("no consent", lambda: HTTP.post(server.url + "/api/participants", json={"consent": False}), 422, "consent"),
        ("no admin token", lambda: HTTP.get(server.url + "/api/admin/summary"), 401, "admin token"),
        ("wrong admin token", lambda: HTTP.get(server.url + "/api/trainer/responses",
                                               headers={"Authorization": "Bearer nope"}), 403, "admin token"),
        ("participant as admin", lambda: HTTP.get(server.url + "/api/admin/export/samples.csv",
                                                  headers={"Authorization": "Bearer " + c.headers["X-Participant-Token"]}),
         403, "admin token"),
        ("cursor", lambda: HTTP.get(server.url + "/api/trainer/responses?cursor=-1", headers=server.admin_headers()),
         422, "cursor"),
    ]
    before = snapshot(server)
    n_parts = HTTP.get(server.url + "/api/admin/summary", headers=server.admin_headers()).json()["participants"]["n"]
    for name, call, status, needle in cases:
        r = call()
        assert r.status_code == status, f"{name}: {r.status_code} {r.text[:300]}"
        assert needle in r.json()["detail"], f"{name}: {r.json()['detail']!r} does not name {needle!r}"
    assert snapshot(server) == before
    summ = HTTP.get(server.url + "/api/admin/summary", headers=server.admin_headers()).json()
    assert summ["participants"]["n"] == n_parts
    # one answer per trial: the same again is acknowledged, a different one refused
    assert c.post(f"/api/trials/{tid}/answer", json={"answer": 0, "rt_ms": 900.0}).json()["stored"]
    assert c.post(f"/api/trials/{tid}/answer", json={"answer": 0, "rt_ms": 900.0}).json()["duplicate"]
    before = snapshot(server)
    r = c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 900.0})
    assert r.status_code == 409 and "already answered" in r.json()["detail"]
    r = c.post(f"/api/trials/{tid}/gaze", json=good)
    assert r.status_code == 409 and "already answered" in r.json()["detail"]
    assert snapshot(server) == before


def test_blinded_trial_api(server):
    """Nothing a participant receives tells real from synthetic."""
    c = participant(server)
    seen = set()
    for _ in range(6):
        n = c.get("/api/me/next").json()
        assert set(n) == {"done", "trial_id", "index", "n_trials", "image_url", "width", "height", "drift_check"}
        img = c.get(n["image_url"])
        assert img.headers["content-type"] == "image/png"
        assert img.content[:8] == b"\x89PNG\r\n\x1a\n" and b"tEXt" not in img.content
        seen.add(n["trial_id"])
        c.post(f"/api/trials/{n['trial_id']}/start", json={"image_rect": RECT, "client_onset_ms": 1.0})
        assert c.post(f"/api/trials/{n['trial_id']}/answer", json={"answer": 1, "rt_ms": 10.0}).status_code == 200
    assert c.get("/api/me/next").json()["done"]
    code = c.post("/api/me/complete").json()["completion_code"]
    assert code == c.post("/api/me/complete").json()["completion_code"]
    trials = list(csv.DictReader(io.StringIO(HTTP.get(server.url + "/api/admin/export/trials.csv",
                                                      headers=server.admin_headers()).text)))
    kinds = [t["kind"] for t in trials if int(t["trial_id"]) in seen]
    assert kinds.count("real") == 3 and kinds.count("synthetic") == 3  # real_fraction 0.5 of 6


def test_trainer_cursor_and_exports(server):
    h = server.admin_headers()
    start = HTTP.get(server.url + "/api/trainer/responses", params={"cursor": 0, "limit": 1000}, headers=h).json()
    cursor = start["next_cursor"]
    c = participant(server)
    assert c.post("/api/me/screen", json={"px_per_mm": 4.2, "viewing_distance_mm": 575.0}).status_code == 200
    for k in range(3):
        n = c.get("/api/me/next").json()
        tid = n["trial_id"]
        assert c.post(f"/api/trials/{tid}/start", json={"image_rect": RECT, "client_onset_ms": 1000.0,
                                                        "viewport": {"width": 1500.0, "height": 900.0}}).status_code == 200
        c.post(f"/api/trials/{tid}/gaze", json=batch(0, t0=k * 5000))
        c.post(f"/api/trials/{tid}/answer", json={"answer": k % 2, "rt_ms": 700.0 + k})
    page1 = HTTP.get(server.url + "/api/trainer/responses", params={"cursor": cursor, "limit": 2}, headers=h).json()
    page2 = HTTP.get(server.url + "/api/trainer/responses", params={"cursor": page1["next_cursor"], "limit": 2},
                     headers=h).json()
    page3 = HTTP.get(server.url + "/api/trainer/responses", params={"cursor": page2["next_cursor"]}, headers=h).json()
    assert [len(page1["responses"]), len(page2["responses"]), len(page3["responses"])] == [2, 1, 0]
    assert page3["next_cursor"] == page2["next_cursor"]
    got = page1["responses"] + page2["responses"]
    assert [r["rt_ms"] for r in got] == [700.0, 701.0, 702.0]
    # each response carries its participant's measured viewing geometry for the trainer
    assert all(r["screen"] == {"viewport": {"width": 1500.0, "height": 900.0}, "px_per_mm": 4.2,
                               "viewing_distance_mm": 575.0} for r in got)
    for r in got:
        assert (r["kind"] == "real") == (r["generator_version"] is None)
        if r["kind"] == "synthetic":
            assert r["image"] == f"v{r['generator_version']}_s{r['seed']}.png"
        png = HTTP.get(server.url + f"/api/trainer/stimuli/{r['stimulus_id']}", headers=h)
        assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    # exports: CSV and Parquet agree; fixation table in the OSIE columns
    import pyarrow.parquet as pq

    for table in ("trials", "samples", "fixations", "validations"):
        text = HTTP.get(server.url + f"/api/admin/export/{table}.csv", headers=h).text
        par = pq.read_table(io.BytesIO(HTTP.get(server.url + f"/api/admin/export/{table}.parquet", headers=h).content))
        assert len(list(csv.DictReader(io.StringIO(text)))) == par.num_rows
    fx = HTTP.get(server.url + "/api/admin/export/fixations.csv", params={"token": server.admin_token}).text
    assert fx.splitlines()[0].replace('"', "") == "image,subject,index,x,y,duration_ms"
    r = HTTP.get(server.url + "/api/admin/export/nope.csv", headers=h)
    assert r.status_code == 404 and "nope" in r.json()["detail"]


def _traced_generator(path, z_dim=8, size=16):
    import torch

    from gazetune.nets.generator import DCGANGenerator

    torch.manual_seed(0)
    g = DCGANGenerator(z_dim=z_dim, size=size, channels=1, width=8).eval()
    traced = torch.jit.trace(g, torch.zeros(1, z_dim))
    torch.jit.save(traced, str(path), _extra_files={"z_dim": str(z_dim)})
    return g


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_publish_generator_version(server, tmp_path):
    import torch
    from PIL import Image

    from gazetune.nets.latent import latent_from_seed

    h = server.admin_headers()
    versions = HTTP.get(server.url + "/api/trainer/generators", headers=h).json()["versions"]
    folder = Path(server.config.data_dir) / "generators"
    files_before = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    # bad uploads change nothing: no version, no file (not even a temporary one) left behind
    r = HTTP.post(server.url + "/api/trainer/generators", content=b"not a checkpoint", headers=h, timeout=60)
    assert r.status_code == 422 and "cannot be used" in r.json()["detail"]
    r = HTTP.post(server.url + "/api/trainer/generators", content=b"", headers=h)
    assert r.status_code == 400 and "empty" in r.json()["detail"]
    r = HTTP.post(server.url + "/api/trainer/generators", content=b"x", headers={"Authorization": "Bearer no"})
    assert r.status_code == 403
    assert HTTP.get(server.url + "/api/trainer/generators", headers=h).json()["versions"] == versions
    assert (sorted(p.name for p in folder.iterdir()) if folder.exists() else []) == files_before

    g = _traced_generator(tmp_path / "G.pt")
    r = HTTP.post(server.url + "/api/trainer/generators", content=(tmp_path / "G.pt").read_bytes(), headers=h,
                  params={"note": "tuned", "trained_on": json.dumps({"cursor": 3})}, timeout=120)
    assert r.status_code == 201, r.text
    new = r.json()["version"]
    assert sorted(p.name for p in folder.iterdir()) == sorted(files_before + [f"G_v{new}.pt"])
    assert new == versions[-1]["version"] + 1
    listed = HTTP.get(server.url + "/api/trainer/generators", headers=h).json()["versions"]
    assert listed[-1]["trained_on"] == {"cursor": 3} and listed[-1]["note"] == "tuned"
    # the next participant sees the new version, and each image is G(latent_from_seed(seed))
    c = participant(server)
    for _ in range(6):
        tid = start_next(c)
        c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 10.0})
    resp = HTTP.get(server.url + "/api/trainer/responses", params={"cursor": 0, "limit": 1000}, headers=h).json()
    syn = [r for r in resp["responses"] if r["participant_id"] == resp["responses"][-1]["participant_id"]
           and r["kind"] == "synthetic"]
    assert syn and all(r["generator_version"] == new for r in syn)
    r0 = syn[0]
    png = HTTP.get(server.url + f"/api/trainer/stimuli/{r0['stimulus_id']}", headers=h).content
    shown = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    with torch.no_grad():
        img = g(latent_from_seed(r0["seed"], 8)[None])[0, 0].numpy()  # 16 x 16, the server shows 64 x 64
    small = np.asarray(Image.fromarray(shown).resize((16, 16), Image.BOX))
    expected = (img + 1) * 127.5
    assert np.corrcoef(small.ravel(), expected.ravel())[0, 1] > 0.9


def test_sigkill_under_load_loses_no_acknowledged_batch(database, tmp_path):
    work = tmp_path / "kill"
    srv = StudyServer(work, database=database, trials_per_participant=2, synthetic_pool=4).start()
    acked: dict[tuple[int, int], int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    clients = [participant(srv) for _ in range(8)]
    trials = [start_next(c) for c in clients]

    def load(c: httpx.Client, tid: int) -> None:
        seq = 0
        while not stop.is_set():
            try:
                r = c.post(f"/api/trials/{tid}/gaze", json=batch(seq, n=60, t0=seq * 1000.0), timeout=5)
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code == 200:
                with lock:
                    acked[(tid, seq)] = r.json()["n"]
            seq += 1

    threads = [threading.Thread(target=load, args=(c, t)) for c, t in zip(clients, trials)]
    [t.start() for t in threads]
    time.sleep(3.0)
    srv.kill()
    stop.set()
    [t.join(10) for t in threads]
    assert len(acked) > 20, f"too little load before the kill: {len(acked)} batches"

    again = StudyServer(work, database=database, admin_token=srv.admin_token, trials_per_participant=2,
                        synthetic_pool=4).start()
    try:
        text = HTTP.get(again.url + "/api/admin/export/samples.csv", headers=again.admin_headers(), timeout=60).text
        stored: dict[tuple[int, int], int] = {}
        for row in csv.DictReader(io.StringIO(text)):
            key = (int(row["trial_id"]), int(row["seq"]))
            stored[key] = stored.get(key, 0) + 1
        lost = [k for k in acked if stored.get(k) != acked[k]]
        assert not lost, f"{len(lost)} acknowledged batches lost or changed, e.g. {lost[:5]}"
    finally:
        again.stop()


def test_two_workers_store_each_batch_once(tmp_path):
    """``--workers 2`` (SQLite, BEGIN IMMEDIATE): retried batches landing on either process are
    stored once, a changed retry is refused, answers are one per trial."""
    with StudyServer(tmp_path, workers=2, trials_per_participant=2, synthetic_pool=4) as srv:
        clients = [participant(srv) for _ in range(4)]
        trials = [start_next(c) for c in clients]

        def send(c: httpx.Client, tid: int) -> None:
            for seq in range(4):
                for _ in range(3):  # each batch three times, on fresh connections (either worker)
                    r = HTTP.post(srv.url + f"/api/trials/{tid}/gaze", json=batch(seq, t0=seq * 1000.0),
                                  headers=c.headers, timeout=30)
                    assert r.status_code == 200, r.text

        threads = [threading.Thread(target=send, args=(c, t)) for c, t in zip(clients, trials)]
        [t.start() for t in threads]
        [t.join(60) for t in threads]
        changed = dict(batch(0), x=[v + 1 for v in batch(0)["x"]])
        for c, tid in zip(clients, trials):
            r = HTTP.post(srv.url + f"/api/trials/{tid}/gaze", json=changed, headers=c.headers)
            assert r.status_code == 409
            assert c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 5.0}).json()["stored"]
        text = HTTP.get(srv.url + "/api/admin/export/samples.csv", headers=srv.admin_headers()).text
    rows = list(csv.DictReader(io.StringIO(text)))
    per = {}
    for r in rows:
        per[(int(r["trial_id"]), int(r["seq"]))] = per.get((int(r["trial_id"]), int(r["seq"])), 0) + 1
    assert sorted(per) == sorted((t, s) for t in trials for s in range(4))
    assert set(per.values()) == {60}
