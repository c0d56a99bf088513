"""The OpenAPI description: served to the admin only, the same as docs/openapi.json, and listing
every API route the server has (FastAPI's and the plain-ASGI trial endpoints)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.routing import APIRoute

from conftest import HTTP
from gazetune.study.app import _TRIAL_PATH, create_app
from gazetune.study.config import StudyConfig
from gazetune.study.openapi import study_openapi
from gazetune.study.runner import StudyServer

DOCS = Path(__file__).resolve().parents[1] / "docs" / "openapi.json"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("openapi")
    application = create_app(StudyConfig(database=f"sqlite:///{tmp}/study.db", data_dir=str(tmp), synthetic_pool=1,
                                         admin_token="x"))
    yield application
    application.state.store.db.dispose()


def _refs(node, out: set) -> set:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref":
                out.add(v)
            else:
                _refs(v, out)
    elif isinstance(node, list):
        for v in node:
            _refs(v, out)
    return out


def test_document_lists_every_route(app):
    doc = study_openapi(app)
    assert doc["openapi"].startswith("3.1")
    listed = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    served = {(m, r.path) for r in app.routes if isinstance(r, APIRoute) and r.include_in_schema
              for m in r.methods - {"HEAD"}}
    assert served <= listed, f"routes missing from the description: {sorted(served - listed)}"
    assert all(p.startswith("/api/") for _, p in served)
    plain = {(m, p) for m, p in listed - served}
    assert plain == {("GET", "/api/me/next"), ("POST", "/api/trials/{trial_id}/start"),
                     ("POST", "/api/trials/{trial_id}/gaze"), ("POST", "/api/trials/{trial_id}/answer")}
    for _, p in plain:  # each is really served by the plain-ASGI router
        assert _TRIAL_PATH.match(p.replace("{trial_id}", "12"))
    # the request bodies of the plain-ASGI endpoints are the models that parse them
    start = doc["paths"]["/api/trials/{trial_id}/start"]["post"]["requestBody"]["content"]["application/json"]
    assert start["schema"] == {"$ref": "#/components/schemas/TrialStart"}
    vp = doc["components"]["schemas"]["Viewport"]["properties"]["width"]
    assert vp["minimum"] == 100 and vp["maximum"] == 32768
    for ref in _refs(doc, set()):  # every reference resolves
        name = ref.rsplit("/", 1)[-1]
        assert ref.startswith("#/components/schemas/") and name in doc["components"]["schemas"], ref
    for ops in doc["paths"].values():
        for op in ops.values():
            assert op["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


def test_docs_copy_is_current(app):
    """docs/openapi.json is what the server serves (rewrite it with
    ``python -m gazetune.study.openapi docs/openapi.json``)."""
    assert json.loads(DOCS.read_text()) == json.loads(json.dumps(study_openapi(app)))


def test_served_to_the_admin_only(tmp_path):
    with StudyServer(tmp_path, trials_per_participant=2, synthetic_pool=2) as srv:
        r = HTTP.get(srv.url + "/api/admin/openapi.json")
        assert r.status_code == 401 and "admin token" in r.json()["detail"]
        participant = HTTP.post(srv.url + "/api/participants", json={"consent": True}).json()["token"]
        r = HTTP.get(srv.url + "/api/admin/openapi.json", headers={"Authorization": f"Bearer {participant}"})
        assert r.status_code == 403
        r = HTTP.get(srv.url + "/api/admin/openapi.json", headers=srv.admin_headers())
        assert r.status_code == 200
        assert r.json() == json.loads(DOCS.read_text())
        for url in ("/openapi.json", "/docs", "/redoc"):  # nothing public
            assert HTTP.get(srv.url + url).status_code == 404
