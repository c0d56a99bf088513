"""OpenAPI 3.1 description of the whole study API, for trainer clients in other languages.

FastAPI describes the routes it serves; the four trial endpoints that run as plain ASGI (see
:class:`gazetune.study.app._TrialRoutes`) are added from :data:`TRIAL_ENDPOINTS` with the same
pydantic models that parse their bodies, so the description cannot drift from what is accepted.
Every operation lists the error body (``{"detail": ...}``) of its refusals.

The server serves it at ``GET /api/admin/openapi.json`` (admin token); ``docs/openapi.json`` is
the same document, written by ``python -m gazetune.study.openapi docs/openapi.json``.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gazetune.atomic import atomic_write_text

REF = "#/components/schemas/{model}"

ERROR_SCHEMA = {
    "title": "Error", "type": "object", "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "what was refused, naming the field and value"},
        "errors": {"type": "array", "description": "422 only: the first 20 validation errors",
                   "items": {"type": "object", "properties": {
                       "loc": {"type": "array", "items": {"type": "string"}},
                       "msg": {"type": "string"}, "type": {"type": "string"}}}},
    },
}
ERRORS = {
    "400": "malformed request", "401": "token missing or unknown", "403": "token is not allowed here",
    "404": "no such trial, table or stimulus", "409": "conflicts with what is stored (already answered, "
    "not started, a batch number reused with other samples)", "413": "body over the size limit",
    "422": "a field is invalid (named in detail)",
}


def _trial_endpoints() -> list[dict]:
    from gazetune.study.app import Answer, GazeBatch, TrialStart

    trial_id = {"name": "trial_id", "in": "path", "required": True,
                "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
                "description": "from GET /api/me/next; ids outside this range do not exist (404)"}
    return [
        {"method": "get", "path": "/api/me/next", "body": None, "params": [],
         "summary": "Next trial", "description": "The participant's next unanswered trial, blinded (never says "
         "whether the image is real), or `{done: true}`.",
         "ok": {"type": "object", "properties": {
             "done": {"type": "boolean"}, "trial_id": {"type": "integer"}, "index": {"type": "integer"},
             "n_trials": {"type": "integer"}, "image_url": {"type": "string"}, "width": {"type": "integer"},
             "height": {"type": "integer"}, "drift_check": {"type": "boolean"}}, "required": ["done"]}},
        {"method": "post", "path": "/api/trials/{trial_id}/start", "body": TrialStart, "params": [trial_id],
         "summary": "Start a trial", "description": "Records the image's on-screen rectangle (viewport CSS px), "
         "the browser viewport and the client's onset time. Repeating it before the answer replaces them.",
         "ok": {"type": "object", "properties": {"trial_id": {"type": "integer"}, "status": {"const": "shown"}}}},
        {"method": "post", "path": "/api/trials/{trial_id}/gaze", "body": GazeBatch, "params": [trial_id],
         "summary": "Upload a gaze batch", "description": "One numbered batch of samples (viewport CSS px, null = "
         "lost). The same seq again with the same samples is acknowledged as a duplicate and stores nothing; "
         "with other samples it is refused (409). Answered after the commit that holds it.",
         "ok": {"type": "object", "properties": {"stored": {"type": "boolean"}, "duplicate": {"type": "boolean"},
                                                 "seq": {"type": "integer"}, "n": {"type": "integer"}}}},
        {"method": "post", "path": "/api/trials/{trial_id}/answer", "body": Answer, "params": [trial_id],
         "summary": "Answer a trial", "description": "The answer (binary 0 = generated, 1 = real; or rating 1-5) "
         "and the response time from image onset. One answer per trial: the same again is acknowledged.",
         "ok": {"type": "object", "properties": {"stored": {"type": "boolean"},
                                                 "duplicate": {"type": "boolean"}}}},
    ]


def _model_schemas(models: list[type[BaseModel]]) -> tuple[dict[type, dict], dict[str, Any]]:
    refs, top = models_json_schema([(m, "validation") for m in models], ref_template=REF)
    return {m: refs[(m, "validation")] for m in models}, top.get("$defs", {})


def study_openapi(app) -> dict:  # noqa: ANN001
    """The OpenAPI document of ``app`` (a :func:`gazetune.study.app.create_app` application)."""
    from fastapi.openapi.utils import get_openapi

    from gazetune import __version__

    doc = get_openapi(title="gazetune study server", version=__version__, openapi_version="3.1.0",
                      description=(__doc__ or "").split("\n\n")[0].replace("\n", " "), routes=app.routes)
    doc = copy.deepcopy(doc)
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    endpoints = _trial_endpoints()
    refs, defs = _model_schemas([e["body"] for e in endpoints if e["body"] is not None])
    schemas.update(defs)
    schemas["Error"] = ERROR_SCHEMA
    token = {"name": "X-Participant-Token", "in": "header", "required": True, "schema": {"type": "string"},
             "description": "the token from POST /api/participants"}
    for e in endpoints:
        op: dict[str, Any] = {"summary": e["summary"], "description": e["description"],
                              "operationId": e["summary"].lower().replace(" ", "_"),
                              "tags": ["trials (plain ASGI)"], "parameters": e["params"] + [token],
                              "responses": {"200": {"description": "done",
                                                    "content": {"application/json": {"schema": e["ok"]}}}}}
        if e["body"] is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {"schema": refs[e["body"]]}}}
        doc["paths"].setdefault(e["path"], {})[e["method"]] = op
    error = {"content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}}
    for path, ops in doc["paths"].items():
        for op in ops.values():
            for code, why in ERRORS.items():
                op["responses"].setdefault(code, {"description": why, **error})
            # FastAPI's own 422 schema (HTTPValidationError) is not what this server sends
            op["responses"]["422"] = {"description": ERRORS["422"], **error}
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components["securitySchemes"] = {
        "participant": {"type": "apiKey", "in": "header", "name": "X-Participant-Token"},
        "admin": {"type": "http", "scheme": "bearer", "description": "the admin token printed at start; "
                  "links may pass it as ?token= instead"},
    }
    doc["paths"] = dict(sorted(doc["paths"].items()))
    return doc


def write_openapi(path: str | Path) -> dict:
    """Build a throw-away study (SQLite in a temporary folder) and write its OpenAPI document."""
    from gazetune.study.app import create_app
    from gazetune.study.config import StudyConfig

    with tempfile.TemporaryDirectory() as tmp:
        cfg = StudyConfig(database=f"sqlite:///{tmp}/study.db", data_dir=tmp, synthetic_pool=1, admin_token="x")
        app = create_app(cfg)
        try:
            doc = study_openapi(app)
        finally:
            app.state.store.db.dispose()
    atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=False) + "\n")
    return doc


if __name__ == "__main__":
    write_openapi(sys.argv[1] if len(sys.argv) > 1 else "openapi.json")
