"""What the webcam page sends beyond gaze, over real HTTP: a drift check that re-fitted the gaze
model, the model fit each trial was predicted with, and per-trial expression scores (numbers
only) in the trials and markers exports; and the schema upgrade that adds their columns."""

from __future__ import annotations

import csv
import io
import json

import sqlalchemy as sa

from conftest import HTTP, http_client
from gazetune.study import db as T
from gazetune.study.runner import StudyServer

EXPR = {"n_frames": 42, "eye_open": 0.31, "brow_raise": 0.27, "brow_gap": 0.25, "mouth_open": 0.05,
        "mouth_width": 0.52, "smile": 0.012}


def export(srv: StudyServer, name: str) -> list[dict]:
    r = HTTP.get(srv.url + f"/api/admin/export/{name}.csv", headers=srv.admin_headers())
    assert r.status_code == 200, r.text
    return list(csv.DictReader(io.StringIO(r.text)))


def test_refit_and_expression_reach_the_exports(tmp_path):
    with StudyServer(tmp_path, gaze_mode="webcam", trials_per_participant=2, synthetic_pool=4) as srv:
        c = http_client(base_url=srv.url, timeout=30)
        r = c.post("/api/participants", json={"consent": True})
        c.headers["X-Participant-Token"] = r.json()["token"]
        pts = [{"target": [640.0, 400.0], "x": [650.0, 652.0], "y": [400.0, 401.0]}]
        assert c.post("/api/me/validation", json={"kind": "validation", "points": pts, "gaze_model": 1}).status_code == 200
        assert c.post("/api/me/validation", json={"kind": "drift", "before_trial": 1, "points": pts, "refit": True,
                                                   "gaze_model": 2}).status_code == 200
        # a score outside the accepted range, or a field the page never sends, is refused
        assert c.post("/api/me/validation", json={"kind": "drift", "points": pts, "refit": "yes"}).status_code == 422
        for k in range(2):
            n = c.get("/api/me/next").json()
            tid = n["trial_id"]
            assert c.post(f"/api/trials/{tid}/start", json={"image_rect": [0.0, 0.0, 300.0, 300.0],
                                                            "client_onset_ms": 1.0}).status_code == 200
            bad = c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 800.0,
                                                            "expression": {**EXPR, "smile": 1e9}})
            assert bad.status_code == 422 and "smile" in bad.text
            bad = c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 800.0,
                                                            "expression": {**EXPR, "frame_png": 1.0}})
            assert bad.status_code == 422
            body = {"answer": 1, "rt_ms": 800.0, "gaze_model": k + 1}
            if k == 1:
                body["expression"] = {**EXPR, "mouth_open": None}  # a score without frames: null
            else:
                body["expression"] = EXPR
            assert c.post(f"/api/trials/{tid}/answer", json=body).status_code == 200

        trials = export(srv, "trials")
        cols = list(trials[0])
        i = cols.index("lsl_offset")
        assert cols[i + 1:i + 8] == ["expr_n_frames", "expr_eye_open", "expr_brow_raise", "expr_brow_gap",
                                     "expr_mouth_open", "expr_mouth_width", "expr_smile"]
        assert [t["gaze_model"] for t in trials] == ["1", "2"]
        assert float(trials[0]["expr_smile"]) == EXPR["smile"] and trials[0]["expr_n_frames"] == "42"
        assert trials[1]["expr_mouth_open"] == ""

        markers = [m for m in export(srv, "markers") if m["stream"] == "gazetune-expression"]
        assert [int(m["trial_id"]) for m in markers] == [int(t["trial_id"]) for t in trials]
        assert json.loads(markers[0]["value"]) == EXPR
        assert markers[0]["t_lsl"] == ""  # no LSL in this server

        vals = export(srv, "validations")
        assert [(v["kind"], v["refit"], v["gaze_model"]) for v in vals] == [("validation", "", "1"),
                                                                             ("drift", "true", "2")]


def test_upgrade_adds_the_webcam_columns(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    d = T.Database(url)
    d.dispose()
    eng = sa.create_engine(url)
    with eng.begin() as conn:  # make it look like a version-2 database
        for columns in (T._COLUMNS_3, T._COLUMNS_4):  # and of every later migration
            for table, names in columns.items():
                for name in names:
                    conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {name}")
        conn.execute(T.schema_version.delete().where(T.schema_version.c.version >= 3))
    eng.dispose()
    d = T.Database(url)
    assert d.version == T.SCHEMA_VERSION
    insp = sa.inspect(d.engine)
    assert {"gaze_model", "expression"} <= {c["name"] for c in insp.get_columns("trials")}
    assert {"refit", "gaze_model"} <= {c["name"] for c in insp.get_columns("calibrations")}
    d.dispose()
