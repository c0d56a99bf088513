"""The study's operations on its database, independent of HTTP.

:class:`StudyStore` owns the rules: blinded trial plans, idempotent gaze batches, one answer per
trial, the trainer's cursor, generator versions.  Violations raise :class:`StudyError` with an
HTTP status and a message naming the field and value; :mod:`gazetune.study.app` only translates.
"""

from __future__ import annotations

import json
import math
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import sqlalchemy as sa

from gazetune.atomic import atomic_path
from gazetune.study import db as T
from gazetune.study.calibration import validation_quality
from gazetune.study.config import StudyConfig
from gazetune.study.db import Database, pack_samples, unpack_samples
from gazetune.study.stimuli import (CATCH_KINDS, Stimulus, blend_stimuli, catch_stimuli, folder_stimuli,
                                    generator_stimuli, real_stimuli)


class StudyError(Exception):
    """A request the study refuses: ``status`` (HTTP code) and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class ParticipantRef:
    """What a participant token resolves to (immutable, so it is cached)."""

    id: int
    gaze_mode: str


@dataclass
class TrialInfo:
    """What the gaze endpoint needs about a trial (cached once the trial has started)."""

    participant_id: int
    status: str
    rect: Optional[tuple[float, float, float, float]]
    width: int
    height: int


class StudyStore:
    """Study state on top of a :class:`~gazetune.study.db.Database`.

    Parameters
    ----------
    cfg : StudyConfig
    database : Database, optional
        Opened from ``cfg.database`` when not given.
    """

    def __init__(self, cfg: StudyConfig, database: Database | None = None) -> None:
        self.cfg = cfg
        self.db = database or Database(cfg.database, cfg.sqlite_synchronous)
        self._tokens: dict[str, ParticipantRef] = {}
        self._trials: dict[int, TrialInfo] = {}
        self._publish_lock = threading.Lock()
        self._pools: dict = {}  # generator version -> (real ids, synthetic families); "catch" -> ids by kind
        self._guide_model = None  # the optimised saliency model of guided variants, loaded on first use
        self.last_guidance: dict | None = None  # summary of the last guided variants made (guided.guided_stimuli)
        self._ensure_stimuli()

    # ------------------------------------------------------------------ stimuli and versions
    def _insert_stimuli(self, conn: sa.Connection, items: list[Stimulus]) -> None:
        if items:
            conn.execute(T.stimuli.insert(), [
                dict(id=s.id, kind=s.kind, name=s.name, generator_version=s.generator_version,
                     seed=s.seed, width=s.width, height=s.height, png=s.png, condition=s.condition,
                     source_stimulus_id=s.source_stimulus_id) for s in items])

    def _ensure_stimuli(self) -> None:
        """First start: store the real images and generator version 1 (checkpoint, folder or
        demo blend)."""
        cfg = self.cfg
        with self.db.read() as conn:
            n_real = conn.execute(sa.select(sa.func.count()).select_from(T.stimuli)
                                  .where(T.stimuli.c.kind == "real")).scalar()
            n_ver = conn.execute(sa.select(sa.func.count()).select_from(T.generator_versions)).scalar()
            n_catch = conn.execute(sa.select(sa.func.count()).select_from(T.stimuli)
                                   .where(T.stimuli.c.kind.in_(list(CATCH_KINDS)))).scalar()
        need_catch = bool(cfg.catch_trials) and not n_catch
        if n_real and n_ver and not need_catch:
            return
        real, real_images = real_stimuli(cfg.real_images, cfg.image_size, cfg.channels)
        if need_catch:
            with self.db.write() as conn:
                self._insert_stimuli(conn, catch_stimuli(real_images, 12, cfg.catch_real_images,
                                                         cfg.image_size, cfg.channels))
        if n_real and n_ver:
            return
        seeds = range(cfg.synthetic_pool)
        if cfg.generator:
            kind, source = "checkpoint", cfg.generator
            syn = generator_stimuli(cfg.generator, seeds, 1, cfg.image_size, cfg.channels)
        elif cfg.synthetic_dir:
            kind, source = "folder", cfg.synthetic_dir
            syn = folder_stimuli(cfg.synthetic_dir, cfg.image_size, cfg.channels, 1)
        else:
            kind, source = "demo-blend", cfg.real_images
            syn = blend_stimuli(real_images, seeds, 1)
        if not n_ver:
            syn += self._guided_variants(syn, 1)
        with self.db.write() as conn:
            if not n_real:
                self._insert_stimuli(conn, real)
            if not n_ver:
                conn.execute(T.generator_versions.insert().values(
                    version=1, kind=kind, source=source, note="initial", trained_on=None,
                    created_at=time.time()))
                self._insert_stimuli(conn, syn)

    def _guided_variants(self, plain: list[Stimulus], version: int) -> list[Stimulus]:
        """Guided variants of a version's synthetic pool when ``guide_model`` is set (see
        :mod:`gazetune.study.guided`); nothing (and no import) otherwise."""
        if not self.cfg.guided:
            return []
        from gazetune.study.guided import guided_stimuli, load_guide_model

        if self._guide_model is None:
            self._guide_model = load_guide_model(self.cfg.guide_model)  # type: ignore[arg-type]
        variants, self.last_guidance = guided_stimuli(plain, self.cfg, version, self._guide_model)
        return variants

    def current_version(self, conn: sa.Connection | None = None) -> int:
        if conn is not None:
            return int(conn.execute(_Q_VERSION).scalar() or 0)
        with self.db.read() as c:
            return int(c.execute(_Q_VERSION).scalar() or 0)

    def publish_generator(self, checkpoint: bytes, note: str | None, trained_on: Any) -> dict:
        """Store a new generator version from checkpoint bytes and render its synthetic pool.

        The checkpoint is loaded and rendered *before* anything is written, so a bad file
        changes nothing (``StudyError`` 422).  New participants see the new version.
        """
        if not checkpoint:
            raise StudyError(400, "request body is empty: expected the generator checkpoint bytes")
        with self._publish_lock:
            version = self.current_version() + 1
            folder = Path(self.cfg.data_dir) / "generators"
            folder.mkdir(parents=True, exist_ok=True)
            # TorchScript files are zip archives; anything else is taken as a safetensors checkpoint
            path = folder / (f"G_v{version}.pt" if checkpoint[:2] == b"PK" else f"G_v{version}.safetensors")
            # written beside its final name and renamed only once it loads and renders (gazetune.atomic):
            # a bad file, a failure while rendering or a crash leaves no file and no row behind
            with atomic_path(path, suffix=".upload") as tmp:
                tmp.write_bytes(checkpoint)
                try:
                    syn = generator_stimuli(tmp, range(self.cfg.synthetic_pool), version,
                                            self.cfg.image_size, self.cfg.channels)
                except Exception as e:  # any failure to load or run is the checkpoint's problem
                    why = _without_paths(str(e), tmp, folder)
                    raise StudyError(422, f"generator checkpoint ({len(checkpoint)} bytes) cannot be used: {why}") from None
                # not the checkpoint's fault if this fails: nothing is kept, the error is the server's
                syn += self._guided_variants(syn, version)
            with self.db.write() as conn:
                conn.execute(T.generator_versions.insert().values(
                    version=version, kind="checkpoint", source=str(path), note=note,
                    trained_on=json.dumps(trained_on) if trained_on is not None else None,
                    created_at=time.time()))
                self._insert_stimuli(conn, syn)
        return {"version": version, "n_images": len(syn), "checkpoint": self._shown_path(str(path))}

    def _shown_path(self, source: str | None) -> str | None:
        """A stored file name as replies show it: relative to ``data_dir`` (``generators/G_v2.pt``),
        else its last part, so no reply reveals the server's folders."""
        if not source or source.startswith("builtin:"):
            return source
        try:
            return Path(source).resolve().relative_to(Path(self.cfg.data_dir).resolve()).as_posix()
        except ValueError:
            return Path(source).name

    def generator_versions(self) -> list[dict]:
        with self.db.read() as conn:
            rows = conn.execute(sa.select(T.generator_versions).order_by(T.generator_versions.c.version)).mappings()
            return [{**dict(r), "source": self._shown_path(r["source"]),
                     "trained_on": _loads_or_none(r["trained_on"])} for r in rows]

    # ------------------------------------------------------------------ participants
    def create_participant(self, external_id: str | None, user_agent: str | None,
                           screen: dict | None) -> dict:
        """A participant with a blinded, shuffled trial plan.

        ``round(trials_per_participant * real_fraction)`` trials show real images, the rest
        synthetic images of the current generator version; images are drawn without
        replacement while the pools last.
        """
        cfg = self.cfg
        n = cfg.trials_per_participant
        n_real = int(round(n * cfg.real_fraction))
        token = secrets.token_hex(16)
        code = cfg.completion_code or secrets.token_hex(4).upper()
        now = time.time()
        with self.db.write() as conn:
            version = self.current_version(conn)
            pools = self._pools.get(version)
            if pools is None:  # stimuli of a version never change: read them once
                pools = self._pools[version] = (
                    conn.execute(sa.select(T.stimuli.c.id).where(T.stimuli.c.kind == "real")
                                 .order_by(T.stimuli.c.id)).scalars().all(),
                    _families(conn.execute(sa.select(T.stimuli.c.id, T.stimuli.c.source_stimulus_id).where(
                        (T.stimuli.c.kind == "synthetic") & (T.stimuli.c.generator_version == version))
                        .order_by(T.stimuli.c.id)).all()))
            real_ids, syn_families = pools
            catch = self._catch_pool(conn)
            pid = conn.execute(T.participants.insert().values(
                external_id=external_id, token=token, gaze_mode=cfg.gaze_mode, created_at=now,
                consent_at=now, user_agent=user_agent, screen=json.dumps(screen) if screen else None,
                completion_code=code)).inserted_primary_key[0]
            rng = np.random.default_rng([cfg.seed, int(pid)])
            plan = _plan(rng, cfg, real_ids, syn_families, catch)
            order = rng.permutation(len(plan))
            conn.execute(T.trials.insert(), [
                dict(participant_id=pid, idx=i, status="pending", **plan[k]) for i, k in enumerate(order)])
        self._tokens[token] = ParticipantRef(int(pid), cfg.gaze_mode)
        return {"participant_id": int(pid), "token": token, "n_trials": len(plan), "gaze_mode": cfg.gaze_mode}

    def _catch_pool(self, conn: sa.Connection) -> dict[str, list[str]]:
        if not self.cfg.catch_trials:
            return {}
        if "catch" not in self._pools:
            rows = conn.execute(sa.select(T.stimuli.c.id, T.stimuli.c.kind).where(
                T.stimuli.c.kind.in_(list(CATCH_KINDS))).order_by(T.stimuli.c.id)).all()
            self._pools["catch"] = {k: [r.id for r in rows if r.kind == k] for k in CATCH_KINDS}  # type: ignore[index]
        return self._pools["catch"]  # type: ignore[return-value]

    def participant(self, token: str | None) -> ParticipantRef:
        """Resolve a participant token (401 when missing or unknown)."""
        if not token:
            raise StudyError(401, "header X-Participant-Token is missing")
        ref = self._tokens.get(token)
        if ref is None:
            with self.db.read() as conn:
                row = conn.execute(sa.select(T.participants.c.id, T.participants.c.gaze_mode)
                                   .where(T.participants.c.token == token)).first()
            if row is None:
                raise StudyError(401, "X-Participant-Token is not a known participant token")
            ref = self._tokens[token] = ParticipantRef(int(row.id), row.gaze_mode)
        return ref

    def set_screen(self, p: ParticipantRef, px_per_mm: float | None, distance_mm: float | None,
                   screen: dict | None) -> None:
        values: dict[str, Any] = {}
        if px_per_mm is not None:
            values["px_per_mm"] = px_per_mm
        if distance_mm is not None:
            values["viewing_distance_mm"] = distance_mm
        if screen is not None:
            values["screen"] = json.dumps(screen)
        if values:
            with self.db.write() as conn:
                conn.execute(T.participants.update().where(T.participants.c.id == p.id).values(**values))

    def add_validation(self, p: ParticipantRef, kind: str, attempt: int, before_trial: int | None,
                       points: list[dict], refit: bool | None = None, gaze_model: int | None = None) -> dict:
        """Compute and store validation quality (see :func:`validation_quality`).  ``refit``: the
        page re-fitted its webcam gaze model with this check's samples (after measuring them),
        ``gaze_model``: the fit in use after the check."""
        with self.db.read() as conn:
            row = conn.execute(sa.select(T.participants.c.px_per_mm, T.participants.c.viewing_distance_mm)
                               .where(T.participants.c.id == p.id)).first()
        q = validation_quality(points, row.px_per_mm, row.viewing_distance_mm)
        passed = q.passed(self.cfg.validation_max_deg)

        def fin(v: float) -> float | None:
            return v if math.isfinite(v) else None

        rec = dict(participant_id=p.id, kind=kind, attempt=attempt, before_trial=before_trial,
                   accuracy_px=fin(q.accuracy_px), precision_px=fin(q.precision_px),
                   accuracy_deg=fin(q.accuracy_deg), precision_deg=fin(q.precision_deg),
                   passed=passed, points=json.dumps(q.points), refit=refit, gaze_model=gaze_model,
                   created_at=time.time())
        with self.db.write() as conn:
            cid = conn.execute(T.calibrations.insert().values(**rec)).inserted_primary_key[0]
        out = {k: rec[k] for k in ("kind", "attempt", "accuracy_px", "precision_px", "accuracy_deg",
                                   "precision_deg", "passed")}
        retry = not passed and attempt < self.cfg.max_calibration_attempts
        return {**out, "id": int(cid), "recalibrate": retry, "max_deg": self.cfg.validation_max_deg}

    # ------------------------------------------------------------------ trials
    def next_trial(self, p: ParticipantRef) -> dict:
        """The participant's next unanswered trial, or ``{"done": True}``.  The reply never says
        whether the image is real or synthetic."""
        with self.db.read() as conn:
            row = conn.execute(_Q_NEXT, {"pid": p.id}).first()
        cfg = self.cfg
        n = cfg.trials_per_participant + cfg.catch_trials
        if row is None:
            return {"done": True, "n_trials": n}
        every = cfg.drift_check_every
        out = {"done": False, "trial_id": int(row.id), "index": int(row.idx), "n_trials": n,
               "image_url": f"/api/trials/{int(row.id)}/image", "width": int(row.width),
               "height": int(row.height), "drift_check": bool(every and row.idx > 0 and row.idx % every == 0)}
        if cfg.design == "2afc":
            out["image_url2"] = f"/api/trials/{int(row.id)}/image?which=2"
        elif cfg.design == "hype_time":
            out["exposure_ms"] = self._exposure(p)
            out["mask_ms"] = cfg.mask_ms
        return out

    def _history(self, conn: sa.Connection, pid: int) -> list[dict]:
        """A participant's answered trials in order: kind, answer, RT, 2AFC side, catch, guided."""
        second = T.stimuli.alias("second")
        q = (sa.select(T.trials.c.id, T.trials.c.answer, T.trials.c.rt_ms, T.trials.c.real_side, T.stimuli.c.kind,
                       second.c.kind.label("kind2"), T.stimuli.c.condition, second.c.condition.label("condition2"))
             .join(T.stimuli, T.stimuli.c.id == T.trials.c.stimulus_id)
             .outerjoin(second, second.c.id == T.trials.c.stimulus2_id)
             .where((T.trials.c.participant_id == pid) & (T.trials.c.status == "answered"))
             .order_by(T.trials.c.idx))
        return [dict(r, catch=r["kind"] in CATCH_KINDS or r["kind2"] in CATCH_KINDS,
                     guided=bool(r["condition"] or r["condition2"])) for r in conn.execute(q).mappings()]

    def _exposure(self, p: ParticipantRef, conn: sa.Connection | None = None) -> float:
        if conn is None:
            with self.db.read() as c:
                return self._exposure(p, c)
        history = [t for t in self._history(conn, p.id) if not t["catch"]]
        return hype_exposure(self.cfg, history)

    def _trial(self, conn: sa.Connection, p: ParticipantRef, trial_id: int) -> sa.Row:
        row = conn.execute(_Q_TRIAL, {"tid": trial_id}).first()
        if row is None:
            raise StudyError(404, f"trial_id {trial_id} does not exist")
        if row.participant_id != p.id:
            raise StudyError(403, f"trial_id {trial_id} belongs to another participant")
        return row

    def trial_image(self, p: ParticipantRef, trial_id: int, which: int = 1) -> bytes:
        """PNG of the trial's image (``which = 2``: the right-hand image of a 2AFC pair)."""
        with self.db.read() as conn:
            row = self._trial(conn, p, trial_id)
            sid = row.stimulus_id if which == 1 else row.stimulus2_id
            if sid is None:
                raise StudyError(404, f"trial_id {trial_id} has no image {which} (only 2AFC trials have two)")
            return conn.execute(sa.select(T.stimuli.c.png).where(T.stimuli.c.id == sid)).scalar_one()

    def start_trial(self, p: ParticipantRef, trial_id: int, rect: list[float], viewport: dict | None,
                    client_onset_ms: float, lsl_onset: float | None = None,
                    rect2: list[float] | None = None) -> dict:
        """Record the image's on-screen rectangle and onset (2AFC: ``rect2`` of the right-hand
        image too, required there and refused elsewhere).  Repeating it (a reload) before the
        answer replaces them; after the answer it is refused (409)."""
        with self.db.write() as conn:
            row = self._trial(conn, p, trial_id)
            if row.status == "answered":
                raise StudyError(409, f"trial_id {trial_id} is already answered")
            if (row.stimulus2_id is not None) != (rect2 is not None):
                raise StudyError(422, f"image_rect2 is {'missing' if rect2 is None else 'given'}: trial_id {trial_id} "
                                      f"shows {'two images' if row.stimulus2_id else 'one image'}")
            conn.execute(_U_TRIAL, dict(
                tid=trial_id, status="shown", image_rect=json.dumps(rect),
                image_rect2=json.dumps(rect2) if rect2 else None,
                viewport=json.dumps(viewport) if viewport else None, shown_at=time.time(),
                client_onset_ms=client_onset_ms, lsl_onset=lsl_onset))
        self._trials[trial_id] = TrialInfo(p.id, "shown", tuple(rect), int(row.width), int(row.height))
        return {"trial_id": trial_id, "status": "shown"}

    def _trial_info(self, conn: sa.Connection, p: ParticipantRef, trial_id: int) -> TrialInfo:
        info = self._trials.get(trial_id)
        if info is None:
            row = self._trial(conn, p, trial_id)
            rect = tuple(json.loads(row.image_rect)) if row.image_rect else None
            info = TrialInfo(int(row.participant_id), row.status, rect, int(row.width), int(row.height))
            if row.status != "pending":
                self._trials[trial_id] = info
        elif info.participant_id != p.id:
            raise StudyError(403, f"trial_id {trial_id} belongs to another participant")
        return info

    def prepare_gaze(self, p: ParticipantRef, trial_id: int, seq: int, source: str,
                     cols: dict[str, np.ndarray]) -> "PendingBatch":
        """Check a participant's gaze batch (screen CSS px) and convert it to image pixels with
        the trial's on-screen rectangle; nothing is written (see :meth:`write_batches`)."""
        info = self._trials.get(trial_id)
        if info is None or info.participant_id != p.id:
            with self.db.read() as conn:
                info = self._trial_info(conn, p, trial_id)
        if info.rect is None:
            raise StudyError(409, f"trial_id {trial_id} has not started: POST /api/trials/{trial_id}/start first")
        return self._pending(trial_id, info, seq, source, cols)

    def _pending(self, trial_id: int, info: TrialInfo, seq: int, source: str,
                 cols: dict[str, np.ndarray], late_ok: bool = False) -> "PendingBatch":
        left, top, w, h = info.rect  # type: ignore[misc]
        cols = dict(cols)
        cols["x"] = (cols["screen_x"] - left) * (info.width / w)
        cols["y"] = (cols["screen_y"] - top) * (info.height / h)
        data, digest, n = pack_samples(cols)
        return PendingBatch(trial_id, source, seq, n, data, digest, late_ok)

    def write_batches(self, items: list["PendingBatch"]) -> list[dict | StudyError]:
        """Store prepared gaze batches in one transaction (group commit); one result per item.

        The same ``(trial, source, seq)`` again with the same samples is acknowledged as a
        duplicate and stores nothing; with different samples it is refused (409), as is a batch
        for an answered trial (unless ``late_ok``: tracker samples cut to the trial's LSL window).
        A result is returned only after the commit, so an acknowledged batch is durable.
        """
        out: list[dict | StudyError] = [None] * len(items)  # type: ignore[list-item]
        c = T.gaze_batches.c
        keys = list({(b.trial_id, b.source, b.seq) for b in items})
        tids = list({b.trial_id for b in items})
        now = time.time()
        with self.db.write() as conn:
            known: dict[tuple, str] = {}
            for i in range(0, len(keys), 300):  # bound the number of SQL parameters
                q = sa.select(c.trial_id, c.source, c.seq, c.digest).where(
                    sa.tuple_(c.trial_id, c.source, c.seq).in_(keys[i:i + 300]))
                known.update({(r.trial_id, r.source, r.seq): r.digest for r in conn.execute(q)})
            status = dict(conn.execute(_Q_STATUS, {"tids": tids}).all())
            rows = []
            for k, b in enumerate(items):
                key = (b.trial_id, b.source, b.seq)
                old = known.get(key)
                if old is not None:
                    out[k] = (_dup(b) if old == b.digest else StudyError(
                        409, f"seq {b.seq} of trial_id {b.trial_id} was already stored with different samples"))
                elif status.get(b.trial_id) == "answered" and not b.late_ok:
                    out[k] = StudyError(409, f"trial_id {b.trial_id} is already answered; "
                                             f"gaze batch seq {b.seq} comes too late")
                else:
                    known[key] = b.digest
                    rows.append(dict(trial_id=b.trial_id, source=b.source, seq=b.seq, n=b.n, data=b.data,
                                     digest=b.digest, received_at=now))
                    out[k] = {"stored": True, "duplicate": False, "seq": b.seq, "n": b.n}
            if rows:
                # another server process may have stored a twin meanwhile: keep the first, and
                # look at the digests of what was not inserted
                ins = _insert_ignore(conn, T.gaze_batches)
                inserted = conn.execute(ins, rows).rowcount
                if inserted is not None and 0 <= inserted < len(rows):
                    self._resolve_twins(conn, items, out)
        return out

    def _resolve_twins(self, conn: sa.Connection, items: list["PendingBatch"], out: list) -> None:
        c = T.gaze_batches.c
        for k, b in enumerate(items):
            if isinstance(out[k], dict) and out[k]["stored"]:
                twin = conn.execute(sa.select(c.digest, c.received_at).where(
                    (c.trial_id == b.trial_id) & (c.source == b.source) & (c.seq == b.seq))).first()
                if twin is not None and twin.digest != b.digest:
                    out[k] = StudyError(409, f"seq {b.seq} of trial_id {b.trial_id} was already stored with different samples")

    def add_gaze(self, p: ParticipantRef, trial_id: int, seq: int, source: str,
                 cols: dict[str, np.ndarray]) -> dict:
        """Store one batch of gaze samples (screen CSS px) for a started trial (see
        :meth:`prepare_gaze` and :meth:`write_batches`)."""
        res = self.write_batches([self.prepare_gaze(p, trial_id, seq, source, cols)])[0]
        if isinstance(res, StudyError):
            raise res
        return res

    def find_trial(self, participant: str, index: int) -> tuple[int, dict]:
        """``(trial_id, geometry)`` of trial ``index`` (0-based, order shown) of ``participant``
        (participant id or external id); 404 naming what is missing."""
        with self.db.read() as conn:
            q = sa.select(T.participants.c.id)
            by_ext = conn.execute(q.where(T.participants.c.external_id == participant)).scalars().all()
            pid = by_ext[0] if len(by_ext) == 1 else None
            if pid is None and participant.isdigit():
                pid = conn.execute(q.where(T.participants.c.id == int(participant))).scalar()
            if pid is None:
                why = f"{len(by_ext)} participants have external id" if by_ext else "no participant has id or external id"
                raise StudyError(404, f"participant {participant!r}: {why} {participant!r}")
            tid = conn.execute(sa.select(T.trials.c.id).where(
                (T.trials.c.participant_id == pid) & (T.trials.c.idx == index))).scalar()
        if tid is None:
            raise StudyError(404, f"participant {participant!r} has no trial {index} "
                                  f"(trials are numbered 0 .. {self.cfg.trials_per_participant - 1})")
        return int(tid), self.trial_window(int(tid))  # type: ignore[return-value]

    def trial_window(self, trial_id: int) -> Optional[dict]:
        """What the LSL bridge needs about a trial: rectangle, image size, viewport, LSL onset and
        offset (``None`` when the trial does not exist)."""
        with self.db.read() as conn:
            row = conn.execute(
                sa.select(T.trials.c.image_rect, T.trials.c.viewport, T.trials.c.lsl_onset,
                          T.trials.c.lsl_offset, T.trials.c.status, T.stimuli.c.width, T.stimuli.c.height)
                .join(T.stimuli, T.stimuli.c.id == T.trials.c.stimulus_id)
                .where(T.trials.c.id == trial_id)).first()
        if row is None:
            return None
        return {"rect": tuple(json.loads(row.image_rect)) if row.image_rect else None,
                "viewport": valid_viewport(row.viewport) or {},
                "lsl_onset": row.lsl_onset, "lsl_offset": row.lsl_offset, "status": row.status,
                "width": int(row.width), "height": int(row.height)}

    def add_tracker_batch(self, trial_id: int, seq: int, cols: dict[str, np.ndarray],
                          rect: tuple, width: int, height: int) -> dict:
        """Store a batch of lab-tracker samples (source ``tracker``; ``screen_x, screen_y`` in the
        page's CSS px, ``t_ms`` on the LSL clock) through the same idempotent path as the
        browser's batches; accepted after the answer, since the samples are cut to the trial's
        LSL window."""
        info = TrialInfo(0, "shown", tuple(rect), int(width), int(height))
        res = self.write_batches([self._pending(trial_id, info, seq, "tracker", cols, late_ok=True)])[0]
        if isinstance(res, StudyError):
            raise res
        return res

    def add_markers(self, rows: list[dict]) -> None:
        """Store samples of extra LSL streams: dicts ``trial_id, stream, t_lsl, value`` (a list)."""
        if rows:
            with self.db.write() as conn:
                conn.execute(T.markers.insert(), [dict(r, value=json.dumps(r["value"])) for r in rows])

    def answer(self, p: ParticipantRef, trial_id: int, answer: int, rt_ms: float, timed_out: bool,
               lsl_offset: float | None = None, gaze_batches: int | None = None,
               gaze_model: int | None = None, expression: dict | None = None) -> dict:
        """Store the answer and response time; one answer per trial (a repeat with the same values
        is acknowledged, a different one refused with 409).  Webcam mode: ``gaze_model`` (which
        fit of the page's gaze model predicted the trial's gaze) and ``expression`` (mean
        expression scores of the trial's camera frames, :data:`EXPRESSION_NAMES`)."""
        scale = self.cfg.answer_scale
        lo, hi = (0, 1) if scale == "binary" else (1, 5)
        if not lo <= answer <= hi:
            raise StudyError(422, f"answer = {answer} is outside the {scale} scale [{lo}, {hi}]")
        with self.db.write() as conn:
            row = self._trial(conn, p, trial_id)
            if row.status == "answered":
                if row.answer == answer and abs((row.rt_ms or 0) - rt_ms) < 1e-6:
                    return {"stored": False, "duplicate": True}
                raise StudyError(409, f"trial_id {trial_id} is already answered (answer {row.answer})")
            if row.status != "shown":
                raise StudyError(409, f"trial_id {trial_id} has not started: POST /api/trials/{trial_id}/start first")
            now = time.time()
            values = dict(tid=trial_id, status="answered", answer=answer, rt_ms=rt_ms,
                          timed_out=timed_out, answered_at=now, lsl_offset=lsl_offset, gaze_model=gaze_model,
                          expression=json.dumps(expression) if expression is not None else None)
            if gaze_batches is not None:  # did every batch the page made arrive? (the page's own source)
                c = T.gaze_batches.c
                stored = conn.execute(sa.select(sa.func.count()).select_from(T.gaze_batches).where(
                    (c.trial_id == trial_id) & (c.source != "tracker") & (c.seq < gaze_batches))).scalar()
                values.update(gaze_batches_sent=gaze_batches, gaze_complete=bool(stored >= gaze_batches))
            if self.cfg.design == "hype_time":  # the exposure this trial was shown with (see next_trial)
                values["exposure_ms"] = self._exposure(p, conn)
            conn.execute(_U_TRIAL, values)
            # the trainer's feed: catch trials and guided variants never; with exclusion rules, the
            # participant's trials join it at completion, once they passed (see complete)
            if not self.cfg.exclusions_enabled and not self._kept_from_trainer(conn, row):
                conn.execute(_I_RESPONSE, dict(trial_id=trial_id, created_at=now))
        info = self._trials.get(trial_id)
        if info is not None:
            info.status = "answered"
        out: dict[str, Any] = {"stored": True, "duplicate": False}
        if gaze_batches is not None:
            out["gaze_complete"] = values["gaze_complete"]
        return out

    def complete(self, p: ParticipantRef) -> dict:
        """The completion code (and the platform's completion link) once every trial is answered
        (409 before).  The exclusion rules judge the participant here, once; with rules on, a
        participant who passes has their trials (catch trials and guided variants aside) join the
        trainer's feed."""
        cfg = self.cfg
        with self.db.write() as conn:
            left = conn.execute(sa.select(sa.func.count()).select_from(T.trials).where(
                (T.trials.c.participant_id == p.id) & (T.trials.c.status != "answered"))).scalar()
            if left:
                total = cfg.trials_per_participant + cfg.catch_trials
                raise StudyError(409, f"{left} of {total} trials are not answered yet")
            row = conn.execute(sa.select(T.participants.c.completion_code, T.participants.c.completed_at,
                                         T.participants.c.external_id)
                               .where(T.participants.c.id == p.id)).first()
            if row.completed_at is None:
                now = time.time()
                history = self._history(conn, p.id)
                reasons = exclusion_reasons(cfg, history, self._last_validation(conn, p.id))
                conn.execute(T.participants.update().where(T.participants.c.id == p.id).values(
                    completed_at=now, excluded=bool(reasons), exclusion_reasons=json.dumps(reasons)))
                if cfg.exclusions_enabled and not reasons:
                    keep = [t["id"] for t in history if not t["catch"] and not t["guided"]]
                    if keep:
                        conn.execute(_I_RESPONSE, [dict(trial_id=t, created_at=now) for t in keep])
        return {"completion_code": row.completion_code,
                "redirect_url": cfg.completion_link(row.completion_code, row.external_id)}

    def _kept_from_trainer(self, conn: sa.Connection, row: sa.Row) -> bool:
        """Whether trial ``row`` (of :data:`_Q_TRIAL`) stays out of the trainer's feed: a catch
        trial, or one showing a guided variant (the trainer knows a synthetic image by (version,
        seed) and renders it again from the generator: the variant's answer and gaze would be
        credited to the plain image)."""
        if row.kind in CATCH_KINDS or row.condition:
            return True
        if row.stimulus2_id is None:
            return False
        second = conn.execute(sa.select(T.stimuli.c.kind, T.stimuli.c.condition)
                              .where(T.stimuli.c.id == row.stimulus2_id)).first()
        return second.kind in CATCH_KINDS or bool(second.condition)

    def _last_validation(self, conn: sa.Connection, pid: int) -> dict | None:
        c = T.calibrations.c
        r = conn.execute(sa.select(c.passed, c.accuracy_deg).where(
            (c.participant_id == pid) & (c.kind == "validation")).order_by(c.id.desc()).limit(1)).first()
        return None if r is None else {"passed": bool(r.passed), "accuracy_deg": r.accuracy_deg}

    # ------------------------------------------------------------------ trainer side
    def responses_since(self, cursor: int, limit: int) -> dict:
        """Answered trials with ``responses.id > cursor`` (oldest first, at most ``limit``; no catch
        trials and no guided variants, see :meth:`_kept_from_trainer`), each
        with its stimulus provenance, answer, response time, gaze samples in image pixels and the
        participant's viewing geometry (``screen``: viewport in CSS px, CSS px per mm from the card
        scaling, viewing distance in mm from the blind-spot test; ``None`` where not measured)."""
        with self.db.read() as conn:
            rows = conn.execute(
                sa.select(T.responses.c.id.label("cursor"), T.trials, T.stimuli.c.kind, T.stimuli.c.name,
                          T.stimuli.c.generator_version, T.stimuli.c.seed, T.stimuli.c.width,
                          T.stimuli.c.height, T.participants.c.external_id, T.participants.c.px_per_mm,
                          T.participants.c.viewing_distance_mm)
                .join(T.trials, T.trials.c.id == T.responses.c.trial_id)
                .join(T.stimuli, T.stimuli.c.id == T.trials.c.stimulus_id)
                .join(T.participants, T.participants.c.id == T.trials.c.participant_id)
                .where(T.responses.c.id > cursor).order_by(T.responses.c.id).limit(limit)).mappings().all()
            ids = [r["id"] for r in rows]
            batches = load_batches(conn, ids)
            version = self.current_version(conn)
            second = {x.id: dict(x._mapping) for x in conn.execute(sa.select(
                T.stimuli.c.id, T.stimuli.c.name, T.stimuli.c.kind, T.stimuli.c.generator_version, T.stimuli.c.seed,
                T.stimuli.c.width, T.stimuli.c.height).where(
                T.stimuli.c.id.in_([r["stimulus2_id"] for r in rows if r["stimulus2_id"]])))}
        out = []
        for r in rows:
            s = batches.get(r["id"])
            extra: dict[str, Any] = {"design": self.cfg.design}
            if r["exposure_ms"] is not None:
                extra["exposure_ms"] = r["exposure_ms"]
            if r["stimulus2_id"]:  # 2AFC: the right-hand image, with the gaze in its own pixels
                st2, rect2 = second[r["stimulus2_id"]], json.loads(r["image_rect2"]) if r["image_rect2"] else None
                pair = {"stimulus_id": st2["id"], "image": st2["name"], "kind": st2["kind"],
                        "generator_version": st2["generator_version"], "seed": st2["seed"],
                        "image_size": [int(st2["width"]), int(st2["height"])], "image_rect": rect2}
                if s is not None and rect2:
                    pair["samples"] = {k: [None if not math.isfinite(v) else round(float(v), 3) for v in col]
                                       for k, col in zip(("x", "y"), _to_image(s, rect2, st2["width"], st2["height"]))}
                extra.update(real_side=r["real_side"], image2=pair)
            out.append({**extra,
                "cursor": int(r["cursor"]), "trial_id": int(r["id"]), "participant_id": int(r["participant_id"]),
                "external_id": r["external_id"], "image": r["name"], "stimulus_id": r["stimulus_id"],
                "kind": r["kind"], "generator_version": r["generator_version"], "seed": r["seed"],
                "image_size": [int(r["width"]), int(r["height"])],
                "image_rect": json.loads(r["image_rect"]) if r["image_rect"] else None,
                "answer": r["answer"], "answer_scale": self.cfg.answer_scale, "rt_ms": r["rt_ms"],
                "timed_out": bool(r["timed_out"]),
                "gaze_complete": r["gaze_complete"], "gaze_batches_sent": r["gaze_batches_sent"],
                # the participant's viewing geometry as measured in the browser (None = not measured):
                # the trainer converts pixels to degrees with it, as the export does
                "screen": {"viewport": valid_viewport(r["viewport"]),
                           "px_per_mm": r["px_per_mm"], "viewing_distance_mm": r["viewing_distance_mm"]},
                "samples": _json_samples(s) if s is not None else {k: [] for k in ("t_ms", "x", "y", "screen_x", "screen_y")},
            })
        next_cursor = out[-1]["cursor"] if out else cursor
        return {"responses": out, "next_cursor": next_cursor, "current_version": version}

    def stimulus_png(self, stimulus_id: str) -> bytes:
        if not (len(stimulus_id) <= 32 and stimulus_id.isascii() and stimulus_id.isalnum()):
            raise StudyError(404, f"stimulus_id {stimulus_id[:40]!r} does not exist")
        with self.db.read() as conn:
            png = conn.execute(sa.select(T.stimuli.c.png).where(T.stimuli.c.id == stimulus_id)).scalar()
        if png is None:
            raise StudyError(404, f"stimulus_id {stimulus_id!r} does not exist")
        return png


# Statements of the hot paths, built once (building a SQLAlchemy statement per request costs
# more than running it on SQLite).
_Q_TRIAL = (sa.select(T.trials, T.stimuli.c.width, T.stimuli.c.height, T.stimuli.c.kind, T.stimuli.c.condition)
            .join(T.stimuli, T.stimuli.c.id == T.trials.c.stimulus_id)
            .where(T.trials.c.id == sa.bindparam("tid")))
_Q_NEXT = (sa.select(T.trials.c.id, T.trials.c.idx, T.stimuli.c.width, T.stimuli.c.height)
           .join(T.stimuli, T.stimuli.c.id == T.trials.c.stimulus_id)
           .where((T.trials.c.participant_id == sa.bindparam("pid")) & (T.trials.c.status != "answered"))
           .order_by(T.trials.c.idx).limit(1))
_Q_STATUS = sa.select(T.trials.c.id, T.trials.c.status).where(T.trials.c.id.in_(sa.bindparam("tids", expanding=True)))
_U_TRIAL = T.trials.update().where(T.trials.c.id == sa.bindparam("tid"))  # SET the columns given
_I_RESPONSE = T.responses.insert()
_Q_VERSION = sa.select(sa.func.max(T.generator_versions.c.version))


@dataclass
class PendingBatch:
    """A checked, converted and packed gaze batch waiting to be written."""

    trial_id: int
    source: str
    seq: int
    n: int
    data: bytes
    digest: str
    late_ok: bool = False


def _dup(b: PendingBatch) -> dict:
    return {"stored": False, "duplicate": True, "seq": b.seq, "n": b.n}


def _insert_ignore(conn: sa.Connection, table: sa.Table):  # noqa: ANN202
    """``INSERT ... ON CONFLICT DO NOTHING`` for SQLite and PostgreSQL."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


def _families(rows: list) -> list[list[str]]:
    """Synthetic stimuli ``(id, source_stimulus_id)`` (in id order) grouped by the plain image
    they show: ``[plain id, variant ids...]`` per plain image, in the order of the plain ids."""
    variants: dict[str, list[str]] = {}
    for r in rows:
        if r.source_stimulus_id:
            variants.setdefault(r.source_stimulus_id, []).append(r.id)
    return [[r.id, *variants.get(r.id, [])] for r in rows if not r.source_stimulus_id]


def _draw_synthetic(rng: np.random.Generator, families: list[list[str]], k: int) -> list[str]:
    """``k`` synthetic images: plain images drawn as :func:`_draw` does, each then shown plain or
    as one of its guided variants (uniformly), so that a participant sees at most one version of
    each generated image while the pool lasts.  Without variants this is exactly
    ``_draw(rng, ids, k)``."""
    plain = [f[0] for f in families]
    if all(len(f) == 1 for f in families):
        return _draw(rng, plain, k)
    members = {f[0]: f for f in families}
    return [members[p][int(rng.integers(len(members[p])))] for p in _draw(rng, plain, k)]


def _plan(rng: np.random.Generator, cfg: StudyConfig, real_ids: list[str], syn_families: list[list[str]],
          catch: dict[str, list[str]]) -> list[dict]:
    """A participant's trials (unshuffled) as ``trials`` row values.

    ``single`` and ``hype_time``: ``round(n * real_fraction)`` real images, the rest synthetic.
    ``2afc``: ``n`` pairs of a real and a synthetic image, the real one on a random side.  Catch
    trials: broken images (and obviously real ones when there are any); in ``2afc`` a real image
    next to a broken one.  Synthetic images: see :func:`_draw_synthetic` (``syn_families`` from
    :func:`_families`).
    """
    n, k = cfg.trials_per_participant, cfg.catch_trials
    if cfg.design == "2afc":
        pairs = list(zip(_draw(rng, real_ids, n), _draw_synthetic(rng, syn_families, n)))
        pairs += list(zip(_draw(rng, real_ids, k), _draw(rng, catch.get("catch_fake", []), k)))
        out = []
        for real, other in pairs:
            side = int(rng.integers(2))
            left, right = (real, other) if side == 0 else (other, real)
            out.append(dict(stimulus_id=left, stimulus2_id=right, real_side=side))
        return out
    n_real = int(round(n * cfg.real_fraction))
    ids = _draw(rng, real_ids, n_real) + _draw_synthetic(rng, syn_families, n - n_real)
    ids += _draw(rng, catch.get("catch_fake", []) + catch.get("catch_real", []), k)
    return [dict(stimulus_id=i) for i in ids]


def judged_real(answer: int | None, scale: str) -> bool | None:
    """What an answer says: real (``True``), generated (``False``) or undecided (``None``, the
    middle of the rating scale)."""
    if answer is None:
        return None
    if scale == "binary":
        return answer == 1
    return True if answer >= 4 else False if answer <= 2 else None


def answer_correct(t: dict, scale: str) -> bool | None:
    """Whether the answer of trial ``t`` (keys ``kind``, ``answer`` and, in 2AFC, ``real_side``) is
    right: 2AFC, the real image's side was picked; otherwise the verdict matches the image.
    ``None`` for an undecided rating."""
    if t.get("real_side") is not None:
        return t["answer"] == t["real_side"]
    verdict = judged_real(t["answer"], scale)
    if verdict is None:
        return None
    return verdict == (t["kind"] in ("real", "catch_real"))


def hype_exposure(cfg: StudyConfig, history: list[dict]) -> float:
    """HYPE-time exposure of the next trial (ms) after the answered non-catch trials ``history``
    (in order): start at ``hype_start_ms``; each correct answer shortens the exposure by
    ``hype_step_ms``, each wrong one lengthens it (1-up 1-down, converging on 50 % correct), within
    ``[hype_min_ms, hype_max_ms]``."""
    level = float(cfg.hype_start_ms)
    for t in history:
        ok = answer_correct(t, cfg.answer_scale)
        level += -cfg.hype_step_ms if ok else cfg.hype_step_ms
        level = min(max(level, cfg.hype_min_ms), cfg.hype_max_ms)
    return level


def exclusion_reasons(cfg: StudyConfig, trials: list[dict], last_validation: dict | None) -> list[str]:
    """The exclusion rules of ``cfg`` that a participant breaks, each as a sentence with the
    numbers (empty: kept).  ``trials``: the participant's answered trials (``kind``, ``answer``,
    ``rt_ms``, ``real_side``, ``catch``); ``last_validation``: their last validation (``passed``,
    ``accuracy_deg``) or ``None``."""
    reasons = []
    if cfg.exclude_catch_accuracy_below > 0:
        catch = [t for t in trials if t["catch"]]
        if catch:
            right = sum(1 for t in catch if answer_correct(t, cfg.answer_scale))
            if right / len(catch) < cfg.exclude_catch_accuracy_below:
                reasons.append(f"catch trials: {right} of {len(catch)} right ({right / len(catch):.2f} < "
                               f"{cfg.exclude_catch_accuracy_below:g})")
    if cfg.exclude_fast_rt_ms > 0 and trials:
        fast = sum(1 for t in trials if t["rt_ms"] is not None and t["rt_ms"] < cfg.exclude_fast_rt_ms)
        if fast / len(trials) > cfg.exclude_fast_share_above:
            reasons.append(f"too fast: {fast} of {len(trials)} answers under {cfg.exclude_fast_rt_ms:g} ms "
                           f"({fast / len(trials):.2f} > {cfg.exclude_fast_share_above:g})")
    if cfg.exclude_failed_validation:
        if last_validation is None:
            reasons.append("no validation")
        elif not last_validation["passed"]:
            acc = last_validation.get("accuracy_deg")
            shown = "no gaze" if acc is None else f"{acc:.2f}°"
            reasons.append(f"validation failed ({shown} > {cfg.validation_max_deg:g}°)")
    return reasons


def _draw(rng: np.random.Generator, ids: list[str], k: int) -> list[str]:
    """``k`` ids without replacement while they last, then again from the full list."""
    if k <= 0:
        return []
    if not ids:
        raise StudyError(503, "the study has no images of a needed kind (real or synthetic)")
    out: list[str] = []
    while len(out) < k:
        out += [ids[i] for i in rng.permutation(len(ids))[: k - len(out)]]
    return out


EXPRESSION_NAMES = ("eye_open", "brow_raise", "brow_gap", "mouth_open", "mouth_width", "smile")
"""Expression scores the webcam page sends with each answer (means over the trial's camera
frames; formulas in ``static/gaze_features.js`` and docs/study.md), with ``n_frames``."""

SOURCE_RANK = {"tracker": 0, "webcam": 1, "mouse": 2, "simulated": 3}
"""When a trial has gaze from several sources (tracker mode: the lab tracker's samples and the
page's pointer), the most accurate is the trial's gaze: tracker, then webcam, then mouse."""


def load_batches(conn: sa.Connection, trial_ids: list[int], source: str | None = None) -> dict[int, dict[str, np.ndarray]]:
    """Gaze samples of ``trial_ids``: ``{trial_id: {column: float64 (n,)}}``, batches concatenated
    in ``seq`` order, of ``source`` or else of each trial's best source (:data:`SOURCE_RANK`)."""
    if not trial_ids:
        return {}
    c = T.gaze_batches.c
    q = sa.select(c.trial_id, c.source, c.data).where(c.trial_id.in_(trial_ids))
    if source is not None:
        q = q.where(c.source == source)
    parts: dict[int, dict[str, list[dict[str, np.ndarray]]]] = {}
    for row in conn.execute(q.order_by(c.trial_id, c.source, c.seq)):
        parts.setdefault(int(row.trial_id), {}).setdefault(row.source, []).append(unpack_samples(row.data))
    out = {}
    for tid, by_source in parts.items():
        bs = by_source[min(by_source, key=lambda k: SOURCE_RANK.get(k, 9))]
        out[tid] = {k: np.concatenate([b[k] for b in bs]) for k in T.SAMPLE_COLUMNS}
    return out


def _without_paths(text: str, *paths: Path) -> str:
    """``text`` with the given files and folders replaced by their last part."""
    for p in sorted({str(p) for p in paths} | {str(Path(p).resolve()) for p in paths}, key=len, reverse=True):
        text = text.replace(p, Path(p).name)
    return text


def _loads_or_none(text: str | None) -> Any:
    """Stored JSON, or ``None`` when absent or unreadable (rows written before validation)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


VIEWPORT_RANGE_PX = (100.0, 32768.0)
"""Viewport width and height (CSS px) that are a real browser window: the start endpoint refuses
others; rows stored before that check are treated as not measured."""


def valid_viewport(text: str | None) -> dict | None:
    """The parts of a trial's stored viewport ``{width, height, dpr}`` that are a real window:
    width and height (both, within :data:`VIEWPORT_RANGE_PX`) and ``dpr`` (in (0, 16]), each
    kept only when valid; ``None`` when nothing is.  So nothing computes a geometry from a width
    of -100 or 1e308 stored before the start endpoint checked it."""
    vp = _loads_or_none(text)
    if not isinstance(vp, dict):
        return None

    def number(v: Any, lo: float, hi: float, lo_open: bool = False) -> bool:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v <= hi
        return ok and (v > lo if lo_open else v >= lo)

    out = {}
    if all(number(vp.get(k), *VIEWPORT_RANGE_PX) for k in ("width", "height")):
        out.update(width=vp["width"], height=vp["height"])
    if number(vp.get("dpr"), 0.0, 16.0, lo_open=True):
        out["dpr"] = vp["dpr"]
    return out or None


def _to_image(s: dict[str, np.ndarray], rect: list, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Screen samples -> pixels of an image shown at ``rect``."""
    left, top, w, h = rect
    return (s["screen_x"] - left) * (width / w), (s["screen_y"] - top) * (height / h)


def _json_samples(s: dict[str, np.ndarray]) -> dict[str, list]:
    """Sample columns as JSON lists (NaN -> null; pupil/confidence only when present)."""
    out = {}
    for k, v in s.items():
        if k in ("pupil", "confidence") and not np.isfinite(v).any():
            continue
        out[k] = [None if not math.isfinite(x) else round(float(x), 3) for x in v]
    return out
