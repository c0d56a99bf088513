"""Requests a hostile participant (or a broken client) could send, over real HTTP: each defect
found by hand gets its own regression test.  Every refusal is a 4xx naming the field, and leaves
the database as it was."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest
import sqlalchemy as sa

from conftest import HTTP, http_client
from gazetune.study.runner import StudyServer

RECT = [100.0, 50.0, 320.0, 320.0]
HUGE = str(2**63)  # 9223372036854775808: one past SQLite's (and PostgreSQL's BIGINT) range


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with StudyServer(tmp_path_factory.mktemp("hostile"), trials_per_participant=4, synthetic_pool=4) as srv:
        yield srv


def participant(srv: StudyServer) -> httpx.Client:
    c = http_client(base_url=srv.url, timeout=30)
    r = c.post("/api/participants", json={"consent": True})
    assert r.status_code == 201, r.text
    c.headers["X-Participant-Token"] = r.json()["token"]
    return c


def counts(srv: StudyServer) -> dict[str, int]:
    """Rows per table, read from the database file itself."""
    engine = sa.create_engine(srv.config.database)
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            return {n: conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar() for n in names}
    finally:
        engine.dispose()


def refused(r: httpx.Response, status: int, needle: str) -> None:
    assert r.status_code == status, f"{r.request.method} {r.request.url}: {r.status_code} {r.text[:300]}"
    detail = r.json()["detail"]
    assert needle in detail, f"{detail!r} does not name {needle!r}"
    assert "Traceback" not in r.text and "/work/" not in r.text and "site-packages" not in r.text


def test_trial_id_past_64_bits_is_not_found(server):
    c = participant(server)
    before = counts(server)
    refused(c.get(f"/api/trials/{HUGE}/image"), 404, f"trial_id '{HUGE}' does not exist")
    refused(c.post(f"/api/trials/{HUGE}/start", json={"image_rect": RECT, "client_onset_ms": 1.0}), 404, HUGE)
    refused(c.post(f"/api/trials/{HUGE}/gaze", json={"seq": 0, "source": "mouse", "t_ms": [1.0], "x": [1.0],
                                                     "y": [1.0]}), 404, HUGE)
    refused(c.post(f"/api/trials/{HUGE}/answer", json={"answer": 1, "rt_ms": 5.0}), 404, HUGE)
    # just past PostgreSQL's INTEGER, the type of the id columns
    refused(c.post(f"/api/trials/{2**31}/answer", json={"answer": 1, "rt_ms": 5.0}), 404, str(2**31))
    refused(c.get("/api/trials/-1/image"), 404, "trial_id '-1'")
    assert counts(server) == before


def test_trial_id_of_5000_digits_is_not_found(server):
    c = participant(server)
    before = counts(server)
    long_id = "7" * 5000
    for r in (c.get(f"/api/trials/{long_id}/image"),
              c.post(f"/api/trials/{long_id}/gaze", json={"seq": 0, "source": "mouse", "t_ms": [], "x": [], "y": []}),
              c.post(f"/api/trials/{long_id}/start", json={"image_rect": RECT, "client_onset_ms": 1.0})):
        refused(r, 404, "does not exist")
        assert len(r.json()["detail"]) < 200  # the id is not echoed back whole
    assert counts(server) == before


def test_before_trial_of_2_pow_63_is_refused(server):
    c = participant(server)
    before = counts(server)
    body = {"kind": "drift", "attempt": 1, "before_trial": 2**63,
            "points": [{"target": [640.0, 450.0], "x": [641.0, 642.0], "y": [450.0, 451.0]}]}
    refused(c.post("/api/me/validation", json=body), 422, "before_trial")
    assert counts(server) == before
    ok = c.post("/api/me/validation", json=dict(body, before_trial=2))
    assert ok.status_code == 200 and counts(server)["calibrations"] == before["calibrations"] + 1


def test_cursor_past_the_id_range_is_refused(server):
    r = HTTP.get(server.url + "/api/trainer/responses", params={"cursor": HUGE}, headers=server.admin_headers())
    refused(r, 422, "cursor")
    r = HTTP.get(server.url + "/api/trainer/responses", params={"cursor": "9" * 5000}, headers=server.admin_headers())
    refused(r, 422, "cursor")


@pytest.mark.parametrize("trained_on, needle", [
    ("[" * 3000, "nested 3000 levels"),
    ("{\"a\": " * 40 + "1" + "}" * 40, "nested 40 levels"),
    ("NaN", "NaN is not allowed"),
    ("{\"x\": Infinity}", "Infinity is not allowed"),
    ("9" * 5000, "not valid JSON"),
    ("{\"cursor\": ", "not valid JSON"),
])
def test_trained_on_that_is_not_plain_json_is_refused(server, trained_on, needle):
    h = server.admin_headers()
    versions = HTTP.get(server.url + "/api/trainer/generators", headers=h).json()["versions"]
    r = HTTP.post(server.url + "/api/trainer/generators", params={"trained_on": trained_on}, content=b"x", headers=h)
    refused(r, 422, needle)
    assert HTTP.get(server.url + "/api/trainer/generators", headers=h).json()["versions"] == versions


@pytest.mark.parametrize("width", [-100.0, 0.4, 1e308])
def test_bad_viewport_is_refused_at_start(server, width):
    c = participant(server)
    tid = c.get("/api/me/next").json()["trial_id"]
    before = counts(server)
    r = c.post(f"/api/trials/{tid}/start", json={"image_rect": RECT, "client_onset_ms": 1.0,
                                                 "viewport": {"width": width, "height": 800.0}})
    refused(r, 422, "viewport.width")
    assert counts(server) == before
    # the trial has not started, so gaze for it is refused too
    r = c.post(f"/api/trials/{tid}/gaze", json={"seq": 0, "source": "mouse", "t_ms": [1.0], "x": [1.0], "y": [1.0]})
    refused(r, 409, "has not started")


def _answered_trial(c: httpx.Client, viewport: dict) -> int:
    tid = c.get("/api/me/next").json()["trial_id"]
    assert c.post(f"/api/trials/{tid}/start", json={"image_rect": RECT, "client_onset_ms": 1.0,
                                                    "viewport": viewport}).status_code == 200
    t = [1000.0 + 16.7 * k for k in range(10)]
    gaze = {"seq": 0, "source": "mouse", "t_ms": t, "x": [260.0 + k % 2 for k in range(10)], "y": [210.0] * 10}
    assert c.post(f"/api/trials/{tid}/gaze", json=gaze).status_code == 200
    assert c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 900.0}).status_code == 200
    return tid


def test_fixation_export_survives_bad_viewports_already_stored(server):
    """Rows stored before the viewport check (width -100, 0.4, 1e308) must not break the csv or
    parquet fixation export, nor the trainer API, for anyone."""
    c = participant(server)
    tids = [_answered_trial(c, {"width": 1280.0, "height": 800.0}) for _ in range(4)]
    engine = sa.create_engine(server.config.database)
    with engine.begin() as conn:  # as an older server would have stored them
        for tid, width in zip(tids[1:], (-100.0, 0.4, 1e308)):
            conn.execute(sa.text("UPDATE trials SET viewport = :v WHERE id = :t"),
                         {"v": json.dumps({"width": width, "height": 800.0}), "t": tid})
    engine.dispose()
    h = server.admin_headers()
    r = HTTP.get(server.url + "/api/admin/export/fixations.csv", headers=h)
    assert r.status_code == 200, r.text[:300]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    subjects = {row["subject"] for row in rows}
    assert subjects, "the good trials still have fixations"
    import pyarrow.parquet as pq

    r = HTTP.get(server.url + "/api/admin/export/fixations.parquet", headers=h)
    assert r.status_code == 200 and pq.read_table(io.BytesIO(r.content)).num_rows == len(rows)
    resp = HTTP.get(server.url + "/api/trainer/responses", params={"limit": 1000}, headers=h).json()["responses"]
    vps = {x["trial_id"]: x["screen"]["viewport"] for x in resp if x["trial_id"] in tids}
    assert vps[tids[0]] == {"width": 1280.0, "height": 800.0}
    assert [vps[t] for t in tids[1:]] == [None, None, None]  # not measured, rather than impossible


def _chunks(total: int, size: int = 64 * 1024):
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b" " * n


@pytest.mark.parametrize("path", ["/api/participants", "/api/me/screen", "/api/me/validation"])
def test_chunked_body_over_2_mb_is_refused(server, path):
    c = participant(server)
    before = counts(server)
    r = c.post(path, content=_chunks(int(2.1 * 1024 * 1024)), headers={"Content-Type": "application/json"})
    assert "content-length" not in {k.lower() for k in r.request.headers}  # really sent chunked
    refused(r, 413, "limit")
    assert counts(server) == before


def test_small_chunked_body_still_works(server):
    c = http_client(base_url=server.url, timeout=30)
    body = json.dumps({"consent": True, "external_id": "chunked"}).encode()
    r = c.post("/api/participants", content=iter([body[:10], body[10:]]), headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("external_id, needle", [("a\u0000b", "NUL"), ("\ud800", "surrogate")])
def test_text_the_database_cannot_hold_is_refused(server, external_id, needle):
    before = counts(server)
    raw = json.dumps({"consent": True, "external_id": external_id}).encode()  # \u escapes survive
    r = HTTP.post(server.url + "/api/participants", content=raw, headers={"Content-Type": "application/json"})
    refused(r, 422, needle)
    assert counts(server) == before


def test_failed_checkpoint_message_shows_no_server_path(server):
    h = server.admin_headers()
    r = HTTP.post(server.url + "/api/trainer/generators", content=b"PK\x03\x04 not a zip", headers=h, timeout=60)
    refused(r, 422, "cannot be used")
    assert str(server.workdir) not in r.text
    for v in HTTP.get(server.url + "/api/trainer/generators", headers=h).json()["versions"]:
        assert not str(v["source"]).startswith("/"), v
