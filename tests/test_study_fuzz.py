"""Property-based fuzzing of every endpoint of a real study server over HTTP (hypothesis).

The operations come from the published description (docs/openapi.json), so a new endpoint is
fuzzed as soon as it is described.  Inputs are built from each operation's own schemas -- values
near and past every bound, wrong types, NaN and Infinity, NUL and lone surrogates, deep nesting,
extra and missing fields, ids of other participants or of nobody, missing and wrong tokens -- so
that both the accepting and the refusing paths run.  For every reply:

* no 5xx;
* no traceback, no source file and no server folder in the body;
* when the request was refused (4xx), the row count of every table is unchanged.

Examples are the same on every run; ``GAZETUNE_FUZZ_RANDOM=1`` draws new ones.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import HTTP, http_client
from gazetune.study.runner import StudyServer

DOC = json.loads((Path(__file__).resolve().parents[1] / "docs" / "openapi.json").read_text())
SCHEMAS = DOC["components"]["schemas"]
OPERATIONS = sorted((m, p) for p, ops in DOC["paths"].items() for m in ops)
EXAMPLES = {("post", "/api/trainer/generators"): 12}  # each one tries to load a checkpoint
DEFAULT_EXAMPLES = 30
RECT = [100.0, 50.0, 320.0, 320.0]

# ------------------------------------------------------------------------- values

hostile_numbers = st.sampled_from([0, -1, 1, 2**31 - 1, 2**31, 2**63, -(2**63) - 1, 10**400, 0.4, -100.0, 1e308,
                                   -1e308, 5e-324, float("nan"), float("inf"), float("-inf")])
hostile_text = st.sampled_from(["", " ", "\x00", "\ud800", "a\x00b", "é" * 300, "[" * 3000, "9" * 5000,
                                "../../etc/passwd", "<script>", "NaN", "null", "{}"])
scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | hostile_numbers | hostile_text
any_json = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=6), inner, max_size=4), max_leaves=12)


def _resolve(schema: dict) -> dict:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def near(schema: dict, depth: int = 0) -> st.SearchStrategy:
    """Values shaped by ``schema`` -- inside, on and just past its bounds -- or, now and then,
    anything at all."""
    schema = _resolve(schema)
    if "anyOf" in schema:
        base = st.one_of([near(s, depth + 1) for s in schema["anyOf"]])
    elif "const" in schema:
        base = st.just(schema["const"])
    elif "enum" in schema:
        base = st.sampled_from(schema["enum"])
    else:
        t = schema.get("type")
        lo, hi = schema.get("minimum", schema.get("exclusiveMinimum")), schema.get("maximum", schema.get("exclusiveMaximum"))
        if t == "integer":
            lo, hi = (-(10**6) if lo is None else lo), (10**6 if hi is None else hi)
            base = st.integers(lo, hi) | st.sampled_from([lo - 1, hi + 1])
        elif t == "number":
            lo, hi = (-1e6 if lo is None else lo), (1e6 if hi is None else hi)
            base = st.floats(lo, hi) | st.sampled_from([lo, hi, lo - 1e-9 * abs(lo or 1), hi * 1.000001 + 1])
        elif t == "string":
            base = st.text(max_size=schema.get("maxLength", 30) + 2) if schema.get("maxLength", 30) < 200 \
                else st.text(max_size=40)
        elif t == "boolean":
            base = st.booleans()
        elif t == "array":
            lo_n, hi_n = schema.get("minItems", 0), min(schema.get("maxItems", 8), 8)
            item = near(schema.get("items", {}), depth + 1) if depth < 4 else any_json
            base = st.lists(item, min_size=lo_n, max_size=hi_n) | st.lists(item, max_size=hi_n + 1)
        elif t == "object" or "properties" in schema:
            props = schema.get("properties", {})
            required = set(schema.get("required", []))
            base = st.fixed_dictionaries(
                {k: near(v, depth + 1) for k, v in props.items() if k in required},
                optional={k: near(v, depth + 1) for k, v in props.items() if k not in required}
                | {"unexpected": any_json})
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                base = base | st.dictionaries(st.text(max_size=8), near(extra, depth + 1), max_size=4)
        else:
            base = any_json
    return st.one_of(base, base, base, any_json)


printable = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


def valid(schema: dict) -> st.SearchStrategy:
    """Values that satisfy ``schema`` (as far as its keywords say)."""
    schema = _resolve(schema)
    if "anyOf" in schema:
        return st.one_of([valid(s) for s in schema["anyOf"]])
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    t = schema.get("type")
    if t == "integer":
        return st.integers(schema.get("minimum", -(10**6)), schema.get("maximum", 10**6))
    if t == "number":
        lo = schema.get("minimum", schema.get("exclusiveMinimum", -1e6))
        hi = schema.get("maximum", schema.get("exclusiveMaximum", 1e6))
        return st.floats(lo, hi, exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema,
                         allow_nan=False, allow_infinity=False)
    if t == "string":
        return st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=min(schema.get("maxLength", 30), 30))
    if t == "boolean":
        return st.booleans()
    if t == "null":
        return st.none()
    if t == "array":
        return st.lists(valid(schema.get("items", {})), min_size=schema.get("minItems", 0),
                        max_size=min(schema.get("maxItems", 6), 6))
    if t == "object" or "properties" in schema:
        props, required = schema.get("properties", {}), set(schema.get("required", []))
        extra = schema.get("additionalProperties")
        if not props and isinstance(extra, dict):
            return st.dictionaries(printable, valid(extra), max_size=3)
        return st.fixed_dictionaries({k: valid(v) for k, v in props.items() if k in required},
                                     optional={k: valid(v) for k, v in props.items() if k not in required})
    return st.none()


@st.composite
def plausible_gaze(draw) -> dict:
    """A batch the page could send: increasing times, matching lengths."""
    n = draw(st.integers(0, 12))
    t0 = draw(st.floats(0, 1e7))
    t = [t0 + 16.0 * k for k in range(n)]
    coord = st.none() | st.floats(-2000, 4000)
    return {"seq": draw(st.integers(0, 20)), "source": draw(st.sampled_from(["mouse", "webcam", "simulated"])),
            "t_ms": t, "x": draw(st.lists(coord, min_size=n, max_size=n)),
            "y": draw(st.lists(coord, min_size=n, max_size=n))}


PLAUSIBLE = {
    "/api/trials/{trial_id}/gaze": plausible_gaze(),
    "/api/trials/{trial_id}/start": st.fixed_dictionaries(
        {"image_rect": st.tuples(st.floats(-500, 2000), st.floats(-500, 2000), st.floats(1, 2000), st.floats(1, 2000))
         .map(list), "client_onset_ms": st.floats(0, 1e7)},
        optional={"viewport": st.fixed_dictionaries({"width": st.floats(100, 5000), "height": st.floats(100, 5000)},
                                                    optional={"dpr": st.floats(0.5, 4)})}),
    "/api/trials/{trial_id}/answer": st.fixed_dictionaries(
        {"answer": st.integers(0, 1) | st.integers(0, 1) | st.integers(-1, 6), "rt_ms": st.floats(0, 10000)}, optional={"timed_out": st.booleans()}),
}


def _body_schema(op: dict) -> dict | None:
    content = op.get("requestBody", {}).get("content", {})
    return content.get("application/json", {}).get("schema")


# ------------------------------------------------------------------------- the server


class Fuzzed:
    def __init__(self, srv: StudyServer) -> None:
        self.srv = srv
        self.db = srv.config.database.split("///", 1)[1]
        self.own = self.participant()
        self.other = self.participant()
        self.other_trial = self._trials(self.other)[0]
        stim = HTTP.get(srv.url + "/api/trainer/responses", headers=srv.admin_headers()).json()
        self.stimulus_ids = [r["stimulus_id"] for r in stim["responses"]] or ["0"]
        self.forbidden = [str(srv.workdir.resolve()), str(Path(__file__).resolve().parents[1]), "site-packages",
                          "Traceback", 'File "', sys.prefix]

    def participant(self) -> dict:
        me = HTTP.post(self.srv.url + "/api/participants", json={"consent": True}).json()
        return {"X-Participant-Token": me["token"]}

    def _trials(self, headers: dict) -> list[int]:
        c = http_client(base_url=self.srv.url, headers=headers)
        n = c.get("/api/me/next").json()
        c.post(f"/api/trials/{n['trial_id']}/start", json={"image_rect": RECT, "client_onset_ms": 1.0})
        return [n["trial_id"]]

    def counts(self) -> dict[str, int]:
        conn = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
        finally:
            conn.close()


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    with StudyServer(tmp_path_factory.mktemp("fuzz"), trials_per_participant=3, synthetic_pool=3,
                     max_display_ms=0) as srv:
        # one answered trial, so the trainer API and the exports have rows to work on
        me = HTTP.post(srv.url + "/api/participants", json={"consent": True}).json()
        c = http_client(base_url=srv.url, headers={"X-Participant-Token": me["token"]})
        tid = c.get("/api/me/next").json()["trial_id"]
        c.post(f"/api/trials/{tid}/start", json={"image_rect": RECT, "client_onset_ms": 1.0,
                                                "viewport": {"width": 1280.0, "height": 800.0}})
        c.post(f"/api/trials/{tid}/gaze", json={"seq": 0, "source": "mouse", "t_ms": [float(k * 16) for k in range(12)],
                                               "x": [260.0] * 12, "y": [210.0] * 12})
        c.post(f"/api/trials/{tid}/answer", json={"answer": 1, "rt_ms": 800.0})
        yield Fuzzed(srv)


@st.composite
def requests(draw, fz: Fuzzed, method: str, path: str):
    op = DOC["paths"][path][method]
    srv = fz.srv
    headers: dict[str, str] = {}
    # who is asking
    if any(p["name"].lower() == "x-participant-token" for p in op.get("parameters", [])):
        who = draw(st.sampled_from(["fresh"] * 3 + ["own"] * 3 + ["none", "wrong"]))
        if who == "fresh":
            headers.update(fz.participant())  # before the snapshot: creating it is not the fuzzed request
        elif who == "own":
            headers.update(fz.own)
        elif who == "wrong":
            headers["X-Participant-Token"] = draw(st.sampled_from(["nope", "0" * 32, "' OR 1=1 --", "x" * 70]))
    if path.startswith(("/api/admin", "/api/trainer")):
        who = draw(st.sampled_from(["admin", "admin", "admin", "none", "wrong", "query"]))
        if who == "admin":
            headers.update(srv.admin_headers())
        elif who == "wrong":
            headers["Authorization"] = "Bearer " + draw(st.sampled_from(["nope", "0" * 16, fz.own["X-Participant-Token"]]))
    # the path
    url = path
    if "{trial_id}" in path:
        own_ids = []
        token = headers.get("X-Participant-Token")
        if token:
            n = HTTP.get(srv.url + "/api/me/next", headers={"X-Participant-Token": token}).json()
            own_ids = [n["trial_id"]] if isinstance(n, dict) and n.get("trial_id") else []
        # the draws never depend on server state (hypothesis replays them); the state only
        # decides which drawn value is used
        use_own, prestart = draw(st.integers(0, 7)), draw(st.integers(0, 7))
        hostile = draw(st.just(fz.other_trial)
                       | st.sampled_from([str(2**63), "9" * 5000, "-1", "0", "1e3", "0x10", "%00", "%D9%A3"])
                       | st.integers(0, 10**12).map(str) | st.text(min_size=1, max_size=12).map(lambda s: quote(s, safe="")))
        # the simplest draw (0, where hypothesis starts) is the participant's own trial
        tid = own_ids[0] if own_ids and use_own < 6 else hostile
        url = url.replace("{trial_id}", str(tid))
        if own_ids and use_own < 6 and prestart < 7 and not path.endswith("/start"):
            # set-up, before the snapshot: the trial has started
            HTTP.post(srv.url + f"/api/trials/{tid}/start", headers={"X-Participant-Token": token},
                      json={"image_rect": RECT, "client_onset_ms": 1.0})
    if "{stimulus_id}" in path:
        sid = draw(st.sampled_from(fz.stimulus_ids) | st.text(min_size=1, max_size=40).map(lambda s: quote(s, safe="")))
        url = url.replace("{stimulus_id}", sid)
    if "{name}" in path:
        name = draw(st.sampled_from([f"{t}.{f}" for t in ("trials", "samples", "fixations", "validations", "markers")
                                     for f in ("csv", "parquet")]) | st.text(min_size=1, max_size=20)
                    .map(lambda s: quote(s, safe="")))
        url = url.replace("{name}", name)
    # query parameters
    params = {}
    for p in op.get("parameters", []):
        if p["in"] == "query" and draw(st.booleans()):
            v = draw(near(p.get("schema", {})))
            params[p["name"]] = v if isinstance(v, str) else json.dumps(v)
    if headers.get("Authorization") is None and path.startswith(("/api/admin", "/api/trainer")) and draw(st.booleans()):
        params["token"] = srv.admin_token
    # the body
    content = None
    schema = _body_schema(op)
    if method == "post":
        kind = draw(st.sampled_from(["schema"] * 5 + ["json", "bytes", "none"]))
        if kind == "schema" and schema is not None:
            good = PLAUSIBLE.get(path, valid(schema))
            content = json.dumps(draw(near(schema) if draw(st.integers(0, 3)) == 3 else good)).encode()
        elif kind == "json" or (kind == "schema" and schema is None):
            content = json.dumps(draw(any_json)).encode()
        elif kind == "bytes":
            content = draw(st.binary(max_size=200))
        headers["Content-Type"] = draw(st.sampled_from(["application/json"] * 6 + ["text/plain", "application/octet-stream"]))
    return method.upper(), url, params, headers, content


seen: dict[int, int] = {}


@pytest.mark.parametrize("method, path", OPERATIONS, ids=[f"{m.upper()} {p}" for m, p in OPERATIONS])
def test_fuzz_endpoint(fuzzed, method, path):
    n = EXAMPLES.get((method, path), DEFAULT_EXAMPLES)
    client = http_client(base_url=fuzzed.srv.url, timeout=60)

    # the same examples on every run (a stable suite); GAZETUNE_FUZZ_RANDOM=1 explores new ones
    @settings(max_examples=n, deadline=None, database=None, derandomize=not os.environ.get("GAZETUNE_FUZZ_RANDOM"),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
    @given(data=st.data())
    def run(data):
        verb, url, params, headers, content = data.draw(requests(fuzzed, method, path))
        before = fuzzed.counts()
        r = client.request(verb, url, params=params, headers=headers, content=content)
        shown = f"{verb} {url[:200]} {str(params)[:200]} -> {r.status_code} {r.text[:300]}"
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        assert r.status_code < 500, shown
        text = r.content.decode("utf-8", "replace") if "image/png" not in r.headers.get("content-type", "") else ""
        for bad in fuzzed.forbidden:
            assert bad not in text, f"{bad!r} in the reply: {shown}"
        if r.status_code >= 400:
            assert fuzzed.counts() == before, f"a refused request stored something: {shown}"
            if "json" in r.headers.get("content-type", ""):
                assert re.search(r"\S", r.json().get("detail", "")), shown

    seen.clear()
    run()
    print(f"{method.upper()} {path}: {dict(sorted(seen.items()))}")
    # the fuzzing reached past the front door: where a request has content, some were refused for
    # it (not only for a missing token); every endpoint except the publish of random bytes accepted some
    op = DOC["paths"][path][method]
    if "requestBody" in op or any(p["in"] == "path" or (p["in"] == "query" and p["name"] != "token")
                                  for p in op.get("parameters", [])):
        assert any(code in seen for code in (400, 404, 409, 413, 422)), seen
    if (method, path) not in (("post", "/api/trainer/generators"), ("post", "/api/me/complete")):
        assert any(200 <= code < 300 for code in seen), seen
