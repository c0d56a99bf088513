"""The study server: FastAPI routes over :class:`~gazetune.study.store.StudyStore`.

Participant API (header ``X-Participant-Token`` after creation)::

    GET  /api/study                         public study settings (no secrets, no image kinds)
    POST /api/participants                  {consent: true, external_id?, user_agent?, screen?}
    POST /api/me/screen                     {px_per_mm?, viewing_distance_mm?, screen?}
    POST /api/me/validation                 {kind, attempt, before_trial?, points: [...]}
    GET  /api/me/next                       next trial (blinded) or {done: true}
    GET  /api/trials/{id}/image             PNG of the trial's image
    POST /api/trials/{id}/start             {image_rect: [l, t, w, h], viewport?, client_onset_ms}
    POST /api/trials/{id}/gaze              {seq, source, t_ms: [...], x: [...], y: [...]}
    POST /api/trials/{id}/answer            {answer, rt_ms, timed_out, gaze_batches, gaze_model, expression}
    POST /api/me/complete                   completion code

Researcher and trainer API (``Authorization: Bearer <admin token>``, or ``?token=`` for links)::

    GET  /admin                             live dashboard page
    GET  /api/admin/summary                 participants, trials, validation quality, fool rate
    GET  /api/admin/export/{table}.{fmt}    trials | samples | fixations | validations; csv | parquet
    GET  /api/trainer/responses?cursor=&limit=
    GET  /api/trainer/stimuli/{id}          PNG of any stimulus
    GET  /api/trainer/generators            versions and what each was trained on
    POST /api/trainer/generators?note=&trained_on=   body: checkpoint bytes -> new version

Every refused request gets a 4xx JSON ``{"detail": "..."}`` that names the field and value.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import numpy as np
from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.concurrency import run_in_threadpool

from gazetune.study.config import StudyConfig
from gazetune.study.store import VIEWPORT_RANGE_PX, ParticipantRef, PendingBatch, StudyError, StudyStore

MAX_BATCH_SAMPLES = 2000
"""Most samples in one gaze batch (33 s at 60 Hz; clients send one batch a second)."""
MAX_BODY_BYTES = 2 * 1024 * 1024
"""Largest accepted request body except generator checkpoints, bytes."""
MAX_CHECKPOINT_BYTES = 512 * 1024 * 1024
STATIC_DIR = Path(__file__).parent / "static"
_log = logging.getLogger("gazetune.study")

MAX_DB_INT = 2**31 - 1
"""Largest id the database holds (``INTEGER`` of PostgreSQL); a larger trial id or cursor names
nothing that exists."""
MAX_TRAINED_ON_CHARS = 100_000
"""Longest ``trained_on`` JSON accepted when a generator version is published, characters."""
MAX_JSON_DEPTH = 32
"""Deepest nesting of lists and objects accepted in ``trained_on``."""

Finite = Annotated[float, Field(allow_inf_nan=False)]
Coord = Annotated[float, Field(allow_inf_nan=False, ge=-1e6, le=1e6)]
TimeMs = Annotated[float, Field(allow_inf_nan=False, ge=-1e13, le=1e13)]
"""A time stamp in ms (``performance.now()``, LSL clock in ms): bounded so differences stay finite."""


def _clean_text(v: str) -> str:
    """Strings are stored as UTF-8 text: refuse NUL (PostgreSQL text cannot hold it) and lone
    surrogates (not encodable)."""
    if "\x00" in v:
        raise ValueError(f"must not contain the NUL character (at position {v.index(chr(0))})")
    try:
        v.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"is not valid Unicode text (lone surrogate at position {e.start})") from None
    return v


Text = Annotated[str, AfterValidator(_clean_text)]
Key = Annotated[str, AfterValidator(_clean_text), Field(max_length=100)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NewParticipant(_Strict):
    consent: Literal[True]
    external_id: Optional[Text] = Field(None, max_length=200)
    user_agent: Optional[Text] = Field(None, max_length=500)
    screen: Optional[dict[Key, Finite]] = Field(None, max_length=20)


class ScreenInfo(_Strict):
    px_per_mm: Optional[Annotated[float, Field(allow_inf_nan=False, gt=0.5, lt=50)]] = None
    viewing_distance_mm: Optional[Annotated[float, Field(allow_inf_nan=False, gt=100, lt=3000)]] = None
    screen: Optional[dict[Key, Finite]] = Field(None, max_length=20)


class ValidationPoint(_Strict):
    target: list[Coord] = Field(min_length=2, max_length=2)
    x: list[Optional[Coord]] = Field(max_length=MAX_BATCH_SAMPLES)
    y: list[Optional[Coord]] = Field(max_length=MAX_BATCH_SAMPLES)

    @model_validator(mode="after")
    def _same_length(self) -> "ValidationPoint":
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} values but y has {len(self.y)}")
        return self


GazeModel = Annotated[int, Field(ge=0, le=10**6, description=(
    "webcam: which fit of the page's gaze model (1 = the calibration, +1 per re-fit or recalibration)"))]


class Validation(_Strict):
    kind: Literal["validation", "drift"]
    attempt: int = Field(1, ge=1, le=100)
    before_trial: Optional[int] = Field(None, ge=0, le=MAX_DB_INT)
    points: list[ValidationPoint] = Field(min_length=1, max_length=25)
    refit: Optional[bool] = Field(None, description=(
        "webcam drift check: after measuring, the page re-fitted its gaze model with this check's samples"))
    gaze_model: Optional[GazeModel] = None


Score = Optional[Annotated[float, Field(allow_inf_nan=False, ge=-100, le=100)]]


class Expression(_Strict):
    """Mean facial-expression scores over a trial's camera frames (webcam mode), from face
    landmark geometry; numbers only (docs/study.md, section 4c)."""

    n_frames: int = Field(ge=0, le=10**7)
    eye_open: Score = None
    brow_raise: Score = None
    brow_gap: Score = None
    mouth_open: Score = None
    mouth_width: Score = None
    smile: Score = None


VIEWPORT_PX = VIEWPORT_RANGE_PX
"""Accepted browser viewport width and height, CSS px (a window the study's image fits in; the
largest canvas browsers allow)."""


class Viewport(_Strict):
    """The browser window in CSS px and its device pixel ratio: the screen of the participant's
    viewing geometry (degrees of visual angle, fixation detection)."""

    width: Annotated[float, Field(allow_inf_nan=False, ge=VIEWPORT_PX[0], le=VIEWPORT_PX[1])]
    height: Annotated[float, Field(allow_inf_nan=False, ge=VIEWPORT_PX[0], le=VIEWPORT_PX[1])]
    dpr: Optional[Annotated[float, Field(allow_inf_nan=False, gt=0, le=16)]] = None


class TrialStart(_Strict):
    image_rect: list[Coord] = Field(min_length=4, max_length=4)
    image_rect2: Optional[list[Coord]] = Field(None, min_length=4, max_length=4,
                                               description="2AFC only: the right-hand image's rectangle")
    viewport: Optional[Viewport] = None
    client_onset_ms: TimeMs

    @model_validator(mode="after")
    def _positive(self) -> "TrialStart":
        for name in ("image_rect", "image_rect2"):
            rect = getattr(self, name)
            if rect is not None and not (1 <= rect[2] <= VIEWPORT_PX[1] and 1 <= rect[3] <= VIEWPORT_PX[1]):
                raise ValueError(f"{name} width and height must be 1 .. {VIEWPORT_PX[1]:g} CSS px; got {rect[2:]}")
        return self


class GazeBatch(_Strict):
    """One batch of gaze samples; ``x``, ``y`` are viewport CSS pixels (``null`` = lost)."""

    seq: int = Field(ge=0, le=10**9)
    # "simulated": gaze of gazetune.observers sent by gazetune.loop's simulated participants, so
    # test data is never mistaken for people's
    source: Literal["mouse", "webcam", "simulated"]
    t_ms: list[TimeMs] = Field(max_length=MAX_BATCH_SAMPLES)
    x: list[Optional[Coord]] = Field(max_length=MAX_BATCH_SAMPLES)
    y: list[Optional[Coord]] = Field(max_length=MAX_BATCH_SAMPLES)
    confidence: Optional[list[Optional[Finite]]] = Field(None, max_length=MAX_BATCH_SAMPLES)

    @model_validator(mode="after")
    def _consistent(self) -> "GazeBatch":
        n = len(self.t_ms)
        for name in ("x", "y", "confidence"):
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"{name} has {len(v)} values but t_ms has {n}")
        t = np.asarray(self.t_ms)
        if n > 1 and not np.all(np.diff(t) > 0):
            i = int(np.argmin(np.diff(t) > 0)) + 1
            raise ValueError(f"t_ms must increase strictly; t_ms[{i}] = {t[i]} follows {t[i - 1]}")
        return self


class Answer(_Strict):
    answer: int
    rt_ms: Annotated[float, Field(allow_inf_nan=False, ge=0, le=3_600_000)]
    timed_out: bool = False
    gaze_batches: Optional[int] = Field(None, ge=0, le=10**6, description=(
        "gaze batches the page made for this trial (seq 0 .. n-1); the trial is flagged when fewer are stored"))
    gaze_model: Optional[GazeModel] = None
    expression: Optional[Expression] = None


def parse_trained_on(text: str) -> Any:
    """The ``trained_on`` query value: JSON (no NaN or Infinity, at most :data:`MAX_JSON_DEPTH`
    levels deep), or 422 naming what is wrong."""
    def no_constant(name: str) -> None:
        raise ValueError(f"{name} is not allowed")

    depth = level = 0
    in_string = escaped = False
    for ch in text:  # nesting depth before parsing: json.loads recurses once per level
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            level += 1
            depth = max(depth, level)
        elif ch in "]}":
            level -= 1
    if depth > MAX_JSON_DEPTH:
        raise StudyError(422, f"trained_on is nested {depth} levels deep; at most {MAX_JSON_DEPTH} are allowed")
    try:
        return json.loads(text, parse_constant=no_constant)
    except (ValueError, RecursionError) as e:
        raise StudyError(422, f"trained_on = {_short(text)} is not valid JSON: {str(e)[:100]}") from None


def _nan(v: list[Optional[float]] | None) -> np.ndarray | None:
    return None if v is None else np.array([np.nan if a is None else a for a in v], dtype=np.float64)


def _format_errors(errors: list[dict]) -> str:
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        val = e.get("input")
        shown = "" if isinstance(val, (dict, list)) or val is None else f" (got {_short(val)})"
        parts.append(f"{loc or 'body'}: {e.get('msg')}{shown}")
    return "; ".join(parts)


def _short(value: Any, limit: int = 80) -> str:
    """``repr`` of a refused value, cut to ``limit`` characters (a 5,000-digit id is not echoed)."""
    if isinstance(value, int) and abs(value) >= 10**limit:
        return f"an integer of more than {limit} digits"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " ...'"


def parse_id(text: str, name: str = "trial_id") -> int:
    """A database id from a URL segment: an id that is not a number, or too large for the
    database, names nothing that exists (404)."""
    if not (text.isascii() and text.isdigit()) or len(text) > 10 or int(text) > MAX_DB_INT:
        raise StudyError(404, f"{name} {_short(text, 40)} does not exist")
    return int(text)


def _invalid_payload(errs: list[dict]) -> dict:
    """422 body: ``detail`` naming the fields, and the first 20 errors."""
    slim = [{"loc": [str(x) for x in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in errs[:20]]
    return {"detail": _format_errors(errs), "errors": slim}


async def _db_call(store: StudyStore, fn, *args):  # noqa: ANN001, ANN202
    """SQLite: run the short database call on the event loop (writes are serialised anyway; a
    thread per request only adds GIL hand-offs and lock convoys under load).  PostgreSQL: in the
    thread pool, so calls overlap."""
    if store.db.is_sqlite:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


_TRIAL_PATH = re.compile(r"^/api/(?:trials/([^/]+)/(gaze|start|answer)|me/(next))$")


class _TrialRoutes:
    """The endpoints a participant calls during the trials, as plain ASGI::

        GET  /api/me/next                 POST /api/trials/{id}/start
        POST /api/trials/{id}/gaze        POST /api/trials/{id}/answer

    Together they are nearly every request of a running study (gaze: one per participant
    second).  FastAPI's routing and dependency machinery cost more CPU than the work itself, so
    these skip it: the participant token is resolved from the cache, pydantic parses the JSON
    bytes straight into the strict models (no ``json.loads`` + dict walk), and gaze batches join
    the next group commit.  Refusals are the same 4xx JSON as everywhere else.
    """

    def __init__(self, app, store: StudyStore, writer: "GroupCommit", state) -> None:  # noqa: ANN001
        self.app, self.store, self.writer, self.state = app, store, writer, state

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        m = _TRIAL_PATH.match(scope["path"]) if scope["type"] == "http" else None
        if m is None or scope["method"] != ("GET" if m.group(3) else "POST"):
            await self.app(scope, receive, send)
            return
        try:
            status, payload = 200, await self._handle(m, scope, receive)
        except StudyError as e:
            status, payload = e.status, {"detail": e.message}
        except ValidationError as e:
            status, payload = 422, _invalid_payload(e.errors())
        except Exception:  # a bug, not the participant's fault: logged here, never shown
            _log.exception("%s %s failed", scope["method"], scope["path"][:200])
            status, payload = 500, {"detail": "internal error (logged on the server)"}
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    async def _handle(self, m: re.Match, scope, receive) -> dict:  # noqa: ANN001
        store = self.store
        token = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-participant-token"), None)
        p = store.participant(token)
        if m.group(3):
            return await _db_call(store, store.next_trial, p)
        trial_id, what = parse_id(m.group(1)), m.group(2)
        chunks, size = [], 0
        while True:
            msg = await receive()
            chunks.append(msg.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_BODY_BYTES:
                raise StudyError(413, f"request body is over the limit of {MAX_BODY_BYTES} bytes")
            if not msg.get("more_body"):
                break
        raw = b"".join(chunks)
        lsl = self.state.lsl
        if what == "gaze":
            b = GazeBatch.model_validate_json(raw)
            cols = {"t_ms": np.asarray(b.t_ms, dtype=np.float64), "screen_x": _nan(b.x), "screen_y": _nan(b.y),
                    "confidence": _nan(b.confidence)}
            return await self.writer.submit(store.prepare_gaze(p, trial_id, b.seq, b.source, cols))
        if what == "start":
            st = TrialStart.model_validate_json(raw)
            onset = lsl.now() if lsl is not None else None
            out = await _db_call(store, store.start_trial, p, trial_id, list(st.image_rect),
                                 st.viewport.model_dump(exclude_none=True) if st.viewport else None,
                                 st.client_onset_ms, onset, list(st.image_rect2) if st.image_rect2 else None)
            if lsl is not None:
                lsl.trial_start(trial_id, onset)
            return out
        a = Answer.model_validate_json(raw)
        offset = lsl.now() if lsl is not None else None
        out = await _db_call(store, store.answer, p, trial_id, a.answer, a.rt_ms, a.timed_out, offset, a.gaze_batches,
                             a.gaze_model, a.expression.model_dump() if a.expression else None)
        if lsl is not None and out["stored"]:
            lsl.trial_end(trial_id, offset)
        return out


_CSP = (b"default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob: mediastream:; "
        b"script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; "
        b"connect-src 'self' blob: data:; worker-src 'self' blob:")


class _LimitsAndHeaders:
    """Pure ASGI middleware: refuses bodies over the size limit (413) and adds a
    Content-Security-Policy that lets pages contact this server only (``blob:`` for images,
    WebAssembly for the face mesh).

    A body announced by ``Content-Length`` is checked before it is read.  A chunked body (no
    ``Content-Length``) is read here, up to the limit, before the application sees any of it, so
    an oversized one is refused whole and nothing of it is stored.
    """

    def __init__(self, app) -> None:  # noqa: ANN001
        self.app = app

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        limit = MAX_CHECKPOINT_BYTES if scope["path"] == "/api/trainer/generators" else MAX_BODY_BYTES
        problem = None
        if length is not None:
            if not length.isdigit():
                problem = (400, f"Content-Length {length.decode(errors='replace')[:40]!r} is not a number")
            elif len(length) > 15 or int(length) > limit:
                problem = (413, f"request body is {_short(int(length), 20)} bytes; the limit is {limit} bytes")
        elif b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            receive, size = await _buffer_body(receive, limit)
            if size > limit:
                problem = (413, f"request body is over {limit} bytes (chunked); the limit is {limit} bytes")
        if problem:
            await JSONResponse({"detail": problem[1]}, status_code=problem[0])(scope, receive, send)
            return

        async def send_with_headers(message) -> None:  # noqa: ANN001
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + [
                    (b"content-security-policy", _CSP), (b"referrer-policy", b"no-referrer")]
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _buffer_body(receive, limit: int):  # noqa: ANN001, ANN202
    """Read a request body of unknown length, stopping once it passes ``limit`` bytes.  Returns
    a ``receive`` that replays what was read, then the original, and the number of bytes read."""
    chunks, size = [], 0
    while size <= limit:
        msg = await receive()
        if msg["type"] != "http.request":  # the client went away: the app sees the disconnect
            async def gone() -> dict:
                return msg
            return gone, size
        chunks.append(msg.get("body", b""))
        size += len(chunks[-1])
        if not msg.get("more_body"):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay, size


async def _participant(request: Request,
                       x_participant_token: Annotated[Optional[str], Header()] = None) -> ParticipantRef:
    """Resolve the participant token; async (no thread hop) since tokens are cached in memory."""
    return request.app.state.store.participant(x_participant_token)


def _admin(request: Request, authorization: Annotated[Optional[str], Header()] = None,
           token: Annotated[Optional[str], Query()] = None) -> None:
    """Accept ``Authorization: Bearer <admin token>`` or ``?token=`` (401 missing, 403 wrong)."""
    given = token
    if authorization and authorization.lower().startswith("bearer "):
        given = authorization[7:].strip()
    if not given:
        raise StudyError(401, "admin token missing: send 'Authorization: Bearer <token>' or ?token=")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), request.app.state.admin_token.encode()):
        raise StudyError(403, "admin token is wrong")


Part = Annotated[ParticipantRef, Depends(_participant)]
admin = _admin


def create_app(cfg: StudyConfig, store: StudyStore | None = None) -> FastAPI:
    """The study's FastAPI application (opens the database and prepares stimuli if needed)."""
    store = store or StudyStore(cfg)
    store.db.checkpoint_in_background()
    admin_token = cfg.ensure_admin_token()
    app = FastAPI(title="gazetune study", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.admin_token = admin_token
    app.state.lsl = None

    @app.exception_handler(StudyError)
    async def _study_error(_req: Request, exc: StudyError) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def _bug(req: Request, exc: Exception) -> JSONResponse:  # logged here, never shown
        _log.error("%s %s failed", req.method, req.url.path[:200], exc_info=exc)
        return JSONResponse({"detail": "internal error (logged on the server)"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(_invalid_payload(exc.errors()), status_code=422)

    writer = GroupCommit(store)
    app.state.writer = writer
    app.add_middleware(_TrialRoutes, store=store, writer=writer, state=app.state)  # inside the limits
    app.add_middleware(_LimitsAndHeaders)

    # ------------------------------------------------------------------ pages
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    @app.get("/admin", include_in_schema=False)
    def admin_page() -> FileResponse:
        return FileResponse(STATIC_DIR / "admin.html", headers={"Cache-Control": "no-store"})

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    vendor = _vendor_dir()
    if vendor is not None:
        app.mount("/vendor/face_mesh", StaticFiles(directory=vendor), name="face_mesh")

    @app.get("/api/health")
    def health() -> dict:
        """Liveness, schema version and LSL streams (tracker mode)."""
        lsl = app.state.lsl
        return {"ok": True, "schema_version": store.db.version, "lsl": lsl.status() if lsl is not None else None}

    @app.get("/api/study")
    def study_info() -> dict:
        """Public study settings for the page: no secrets, nothing about image kinds."""
        return {
            "title": cfg.title, "answer_scale": cfg.answer_scale, "gaze_mode": cfg.gaze_mode,
            "n_trials": cfg.trials_per_participant, "max_display_ms": cfg.max_display_ms,
            "fixation_ms": cfg.fixation_ms, "display_px": cfg.display_px,
            "drift_check_every": cfg.drift_check_every, "validation_max_deg": cfg.validation_max_deg,
            "max_calibration_attempts": cfg.max_calibration_attempts,
            "face_mesh_available": vendor is not None, "design": cfg.design,
            "n_trials_total": cfg.trials_per_participant + cfg.catch_trials,
        }

    # ------------------------------------------------------------------ participant API
    @app.post("/api/participants", status_code=201)
    async def new_participant(body: NewParticipant) -> dict:
        """Consent given: a participant with a blinded trial plan and its token."""
        return await _db_call(store, store.create_participant, body.external_id, body.user_agent, body.screen)

    @app.post("/api/me/screen")
    def screen(body: ScreenInfo, p: Part) -> dict:
        """Viewing geometry: CSS px per mm (card scaling), viewing distance (blind-spot test)."""
        store.set_screen(p, body.px_per_mm, body.viewing_distance_mm, body.screen)
        return {"ok": True}

    @app.post("/api/me/validation")
    def validation(body: Validation, p: Part) -> dict:
        """Gaze on validation or drift-check targets: accuracy and precision (px, degrees) are stored."""
        return store.add_validation(p, body.kind, body.attempt, body.before_trial,
                                    [pt.model_dump() for pt in body.points], body.refit, body.gaze_model)

    @app.post("/api/me/complete")
    def complete(p: Part) -> dict:
        """The completion code, once every trial is answered (409 before)."""
        return store.complete(p)

    @app.get("/api/trials/{trial_id}/image")
    def trial_image(trial_id: str, p: Part, which: Annotated[int, Query(ge=1, le=2)] = 1) -> Response:
        """PNG of the trial's image (the participant's own trials only); `which=2`: the right-hand
        image of a 2AFC pair."""
        return Response(store.trial_image(p, parse_id(trial_id), which), media_type="image/png",
                        headers={"Cache-Control": "no-store"})

    # ------------------------------------------------------------------ researcher API
    from gazetune.study import export as ex

    @app.get("/api/admin/summary", dependencies=[Depends(admin)])
    def summary() -> dict:
        """Dashboard numbers: participants, trials, validation quality, rates per generator version."""
        return ex.summary(store)

    @app.get("/api/admin/export/{name}", dependencies=[Depends(admin)])
    def export(name: str) -> Response:
        """`{trials,samples,fixations,validations,markers}.{csv,parquet}`."""
        table, _, fmt = name.partition(".")
        if table not in ex.TABLES:
            raise StudyError(404, f"export table {table!r} is unknown; known: {', '.join(ex.TABLES)}")
        if fmt not in ("csv", "parquet"):
            raise StudyError(404, f"export format {fmt!r} is unknown; use .csv or .parquet")
        data = ex.export_bytes(store, table, fmt)
        media = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
        return Response(data, media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="{table}.{fmt}"'})

    # ------------------------------------------------------------------ trainer API
    @app.get("/api/trainer/responses", dependencies=[Depends(admin)])
    def responses(cursor: Annotated[int, Query(ge=0, le=MAX_DB_INT)] = 0,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> dict:
        """Answered trials after `cursor`, oldest first, with gaze in image px and viewing geometry."""
        return store.responses_since(cursor, limit)

    @app.get("/api/trainer/stimuli/{stimulus_id}", dependencies=[Depends(admin)])
    def stimulus(stimulus_id: str) -> Response:
        """PNG of any stimulus, as shown."""
        return Response(store.stimulus_png(stimulus_id), media_type="image/png")

    @app.get("/api/trainer/generators", dependencies=[Depends(admin)])
    def generators() -> dict:
        """Generator versions and what each was trained on."""
        return {"versions": store.generator_versions()}

    @app.post("/api/trainer/generators", status_code=201, dependencies=[Depends(admin)], openapi_extra={
        "requestBody": {"required": True, "description": f"checkpoint bytes, at most {MAX_CHECKPOINT_BYTES} bytes",
                        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def publish(request: Request, note: Annotated[Optional[Text], Query(max_length=2000)] = None,
                      trained_on: Annotated[Optional[str], Query(max_length=MAX_TRAINED_ON_CHARS)] = None) -> dict:
        """New generator version from checkpoint bytes (safetensors or TorchScript; the body). A
        checkpoint that does not load changes nothing (422)."""
        meta = parse_trained_on(trained_on) if trained_on else None
        body = await request.body()
        return await run_in_threadpool(store.publish_generator, body, note, meta)

    @app.get("/api/admin/openapi.json", dependencies=[Depends(admin)])
    def openapi_document() -> dict:
        """This description of the whole API (OpenAPI 3.1), plain-ASGI trial endpoints included."""
        if getattr(app.state, "openapi", None) is None:
            from gazetune.study.openapi import study_openapi

            app.state.openapi = study_openapi(app)
        return app.state.openapi

    @app.get("/api/admin", include_in_schema=False)
    def admin_redirect() -> RedirectResponse:
        return RedirectResponse("/admin")

    return app


class GroupCommit:
    """Group commit of gaze batches: requests that arrive while a write is running are written
    together in the next transaction (one commit for many batches), off the event loop.  Each
    request is answered after the commit that holds its batch, so an acknowledged batch is
    durable.

    Parameters
    ----------
    store : StudyStore
    max_group : int
        Most batches in one transaction.
    """

    def __init__(self, store: StudyStore, max_group: int = 400) -> None:
        self.store = store
        self.max_group = max_group
        self._queue: list[tuple[PendingBatch, asyncio.Future]] = []
        self._running = False
        self.groups = 0

    async def submit(self, item: PendingBatch) -> dict:
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if not self._running:
            self._running = True
            asyncio.get_running_loop().create_task(self._drain())
        res = await fut
        if isinstance(res, StudyError):
            raise res
        return res

    async def _drain(self) -> None:
        try:
            while self._queue:
                if self.store.db.is_sqlite:
                    # let the requests already received join this group first, then write on the
                    # event loop: no thread hand-off, one commit for the whole group
                    await asyncio.sleep(0)
                group, self._queue = self._queue[: self.max_group], self._queue[self.max_group:]
                try:
                    if self.store.db.is_sqlite:
                        results = self.store.write_batches([i for i, _ in group])
                    else:
                        results = await run_in_threadpool(self.store.write_batches, [i for i, _ in group])
                except Exception as e:  # the database failed: every waiting request gets the error
                    results = [e] * len(group)
                self.groups += 1
                for (_, fut), res in zip(group, results):
                    if fut.done():
                        continue
                    if isinstance(res, Exception) and not isinstance(res, StudyError):
                        fut.set_exception(res)
                    else:
                        fut.set_result(res)
        finally:
            self._running = False


CONFIG_ENV = "GAZETUNE_STUDY_CONFIG"
"""Environment variable naming the resolved study config of a multi-worker server."""


def app_from_env() -> FastAPI:
    """App factory for ``uvicorn --workers N``: the config file named by :data:`CONFIG_ENV`
    (written by ``gazetune study serve``, with the database already prepared)."""
    from gazetune.config import load_config

    return create_app(load_config(StudyConfig, os.environ[CONFIG_ENV]))


def _vendor_dir() -> Path | None:
    """Folder with the ``@mediapipe/face_mesh`` files (``$GAZETUNE_FACE_MESH_DIR``, else
    ``web/node_modules/@mediapipe/face_mesh`` of the source checkout); ``None`` when absent."""
    env = os.environ.get("GAZETUNE_FACE_MESH_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[3] / "web" / "node_modules" / "@mediapipe" / "face_mesh")
    for c in candidates:
        if (c / "face_mesh.js").is_file():
            return c
    return None

