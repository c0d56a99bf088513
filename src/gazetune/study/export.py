"""Researcher exports and the dashboard summary.

Tables (CSV or Parquet):

* ``trials``: one row per trial: participant, image name, kind (real/synthetic), generator
  version and latent seed, answer, response time (ms), on-screen rectangle (CSS px);
* ``samples``: one row per gaze sample: trial, time (ms), screen position (CSS px), image
  position (image px), confidence;
* ``fixations``: the fixation table of DESIGN.md (OSIE CSV columns ``image, subject, index, x, y,
  duration_ms``; x, y in image pixels), subject = participant id;
* ``validations``: every validation and drift check with accuracy and precision (px, deg);
* ``markers``: samples of extra LSL streams (heart rate, GSR, ...) inside trial windows: trial,
  stream name, LSL time (s), channel values (JSON list).
"""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import sqlalchemy as sa

from gazetune.evaluate.human import wilson_interval
from gazetune.gaze.fixation_table import COLUMNS as FIXATION_COLUMNS
from gazetune.study import db as T
from gazetune.study.calibration import DEFAULT_DISTANCE_MM, DEFAULT_PX_PER_MM

if TYPE_CHECKING:
    from gazetune.study.store import StudyStore

TABLES = ("trials", "samples", "fixations", "validations", "markers")

IDT_DISPERSION_DEG = 1.0
"""I-DT dispersion threshold, degrees of visual angle (Salvucci & Goldberg, ETRA 2000).  I-DT
rather than I-VT because mouse and webcam gaze are too noisy for velocity thresholds."""
IDT_MIN_DURATION_MS = 100.0
"""I-DT minimum fixation duration, milliseconds."""


def _trial_rows(conn: sa.Connection) -> list[dict]:
    q = (sa.select(T.trials.c.id.label("trial_id"), T.trials.c.participant_id, T.participants.c.external_id,
                   T.trials.c.idx, T.stimuli.c.name.label("image"), T.stimuli.c.kind,
                   T.stimuli.c.generator_version, T.stimuli.c.seed, T.stimuli.c.width, T.stimuli.c.height,
                   T.trials.c.status, T.trials.c.answer, T.trials.c.rt_ms, T.trials.c.timed_out,
                   T.trials.c.image_rect, T.trials.c.shown_at, T.trials.c.answered_at,
                   T.trials.c.lsl_onset, T.trials.c.lsl_offset,
                   T.participants.c.px_per_mm, T.participants.c.viewing_distance_mm, T.participants.c.gaze_mode)
         .join(T.stimuli, T.stimuli.c.id == T.trials.c.stimulus_id)
         .join(T.participants, T.participants.c.id == T.trials.c.participant_id)
         .order_by(T.trials.c.id))
    out = []
    for r in conn.execute(q).mappings():
        d = dict(r)
        rect = json.loads(d.pop("image_rect")) if r["image_rect"] else [None] * 4
        d.update(rect_left=rect[0], rect_top=rect[1], rect_width=rect[2], rect_height=rect[3])
        out.append(d)
    return out


def trials_table(store: "StudyStore") -> pa.Table:
    with store.db.read() as conn:
        rows = _trial_rows(conn)
        counts = dict(conn.execute(sa.select(T.gaze_batches.c.trial_id, sa.func.sum(T.gaze_batches.c.n))
                                   .group_by(T.gaze_batches.c.trial_id)).all())
    for r in rows:
        r["n_samples"] = int(counts.get(r["trial_id"], 0))
        r.pop("px_per_mm"), r.pop("viewing_distance_mm"), r.pop("gaze_mode")
    return _table(rows, ["trial_id", "participant_id", "external_id", "idx", "image", "kind", "generator_version",
                         "seed", "width", "height", "status", "answer", "rt_ms", "timed_out", "rect_left", "rect_top",
                         "rect_width", "rect_height", "shown_at", "answered_at", "lsl_onset", "lsl_offset", "n_samples"])


def samples_table(store: "StudyStore") -> pa.Table:
    cols: dict[str, list] = {k: [] for k in ("trial_id", "participant_id", "image", "source", "seq", *T.SAMPLE_COLUMNS)}
    with store.db.read() as conn:
        q = (sa.select(T.gaze_batches.c.trial_id, T.gaze_batches.c.source, T.gaze_batches.c.seq,
                       T.gaze_batches.c.data, T.trials.c.participant_id, T.stimuli.c.name)
             .join(T.trials, T.trials.c.id == T.gaze_batches.c.trial_id)
             .join(T.stimuli, T.stimuli.c.id == T.trials.c.stimulus_id)
             .order_by(T.gaze_batches.c.trial_id, T.gaze_batches.c.source, T.gaze_batches.c.seq))
        for r in conn.execute(q):
            s = T.unpack_samples(r.data)
            n = len(s["t_ms"])
            cols["trial_id"] += [r.trial_id] * n
            cols["participant_id"] += [r.participant_id] * n
            cols["image"] += [r.name] * n
            cols["source"] += [r.source] * n
            cols["seq"] += [r.seq] * n
            for k in T.SAMPLE_COLUMNS:
                cols[k].append(s[k])
    arrays = {}
    for k, v in cols.items():
        if k in T.SAMPLE_COLUMNS:
            arr = np.concatenate(v) if v else np.zeros(0)
            arrays[k] = pa.array(arr, type=pa.float64(), from_pandas=True)  # NaN -> null
        else:
            arrays[k] = pa.array(v, type=pa.string() if k in ("image", "source") else pa.int64())
    return pa.table(arrays)


def fixations_table(store: "StudyStore") -> pa.Table:
    """Fixations of every answered trial, detected by :func:`gazetune.gaze.fixations.detect_fixations`
    (I-DT, :data:`IDT_DISPERSION_DEG`, :data:`IDT_MIN_DURATION_MS`) in the participant's own
    viewing geometry (card-size scaling and blind-spot distance).  Trials with fewer than 6
    samples have no fixations."""
    from gazetune.gaze.fixations import detect_fixations
    from gazetune.gaze.samples import GazeSamples
    from gazetune.study.store import load_batches

    rows: dict[str, list] = {c: [] for c in FIXATION_COLUMNS}
    with store.db.read() as conn:
        trials = [t for t in _trial_rows(conn) if t["status"] == "answered"]
        batches = load_batches(conn, [t["trial_id"] for t in trials])
        viewports = dict(conn.execute(sa.select(T.trials.c.id, T.trials.c.viewport)).all())
    for t in trials:
        s = batches.get(t["trial_id"])
        if s is None or not t["rect_width"] or len(s["t_ms"]) < 6:
            continue
        try:
            geometry = participant_geometry(t["px_per_mm"], t["viewing_distance_mm"], viewports.get(t["trial_id"]))
            samples = GazeSamples(t_ms=s["t_ms"], x=s["x"], y=s["y"], source=t["gaze_mode"],
                                  image_size=(t["width"], t["height"]),
                                  image_rect=(t["rect_left"], t["rect_top"], t["rect_width"], t["rect_height"]),
                                  screen_x=s["screen_x"], screen_y=s["screen_y"])
            fx = detect_fixations(samples, geometry, method="idt", dispersion_threshold_deg=IDT_DISPERSION_DEG,
                                  min_duration_ms=IDT_MIN_DURATION_MS)
        except Exception:  # noqa: BLE001  one trial's odd data (all samples lost, a rect stored before
            # the checks) must not take the table away from everyone: that trial has no fixations
            continue
        for k, (fx_x, fx_y, dur) in enumerate(fx.as_array()):
            rows["image"].append(t["image"])
            rows["subject"].append(str(t["participant_id"]))
            rows["index"].append(k)
            rows["x"].append(round(float(fx_x), 3))
            rows["y"].append(round(float(fx_y), 3))
            rows["duration_ms"].append(round(float(dur), 1))
    return pa.table({"image": pa.array(rows["image"], pa.string()), "subject": pa.array(rows["subject"], pa.string()),
                     "index": pa.array(rows["index"], pa.int64()), "x": pa.array(rows["x"], pa.float64()),
                     "y": pa.array(rows["y"], pa.float64()), "duration_ms": pa.array(rows["duration_ms"], pa.float64())})


def participant_geometry(px_per_mm: float | None, distance_mm: float | None, viewport_json: str | None):
    """:class:`~gazetune.gaze.geometry.ScreenGeometry` of a participant's browser window (CSS px),
    with the defaults of :mod:`gazetune.study.calibration` where a measurement is missing."""
    from gazetune.gaze.geometry import ScreenGeometry
    from gazetune.study.store import valid_viewport

    vp = valid_viewport(viewport_json) or {}  # a stored width of -100 or 1e308 counts as not measured
    w, h = float(vp.get("width") or 1280), float(vp.get("height") or 800)
    ppm = px_per_mm or DEFAULT_PX_PER_MM
    return ScreenGeometry(screen_width_px=int(w), screen_height_px=int(h), screen_width_cm=w / ppm / 10,
                          screen_height_cm=h / ppm / 10, distance_cm=(distance_mm or DEFAULT_DISTANCE_MM) / 10)


def validations_table(store: "StudyStore") -> pa.Table:
    with store.db.read() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(T.calibrations).order_by(T.calibrations.c.id)).mappings()]
    return _table(rows, [c.name for c in T.calibrations.columns])


def markers_table(store: "StudyStore") -> pa.Table:
    with store.db.read() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(T.markers).order_by(T.markers.c.id)).mappings()]
    return _table(rows, [c.name for c in T.markers.columns])


def _table(rows: list[dict], columns: list[str]) -> pa.Table:
    return pa.table({c: pa.array([r.get(c) for r in rows]) for c in columns}) if rows else \
        pa.table({c: pa.array([], pa.string()) for c in columns})


def export_table(store: "StudyStore", name: str) -> pa.Table:
    """One of :data:`TABLES` as an Arrow table."""
    return {"trials": trials_table, "samples": samples_table, "fixations": fixations_table,
            "validations": validations_table, "markers": markers_table}[name](store)


def export_bytes(store: "StudyStore", name: str, fmt: str) -> bytes:
    """Table ``name`` encoded as ``csv`` or ``parquet``."""
    table = export_table(store, name)
    buf = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(table, buf)
    else:
        pq.write_table(table, buf)
    return buf.getvalue()


def summary(store: "StudyStore") -> dict:
    """Dashboard numbers: participants, trials, validation quality, and the fool rate (share of
    synthetic images judged real: answer 1 on the binary scale, 4-5 on the rating scale) per
    generator version with a 95 % Wilson interval, next to the same rate on real images."""
    real_from = 1 if store.cfg.answer_scale == "binary" else 4
    with store.db.read() as conn:
        trials = _trial_rows(conn)
        parts = conn.execute(sa.select(T.participants).order_by(T.participants.c.id)).mappings().all()
        vals = conn.execute(sa.select(T.calibrations).order_by(T.calibrations.c.id)).mappings().all()
        n_samples = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(T.gaze_batches.c.n), 0))).scalar()
    answered = [t for t in trials if t["status"] == "answered"]
    groups: dict[str, list[dict]] = {}
    for t in answered:
        key = "real" if t["kind"] == "real" else f"v{t['generator_version']}"
        groups.setdefault(key, []).append(t)
    rates = []
    for key, ts in sorted(groups.items()):
        k = sum(1 for t in ts if t["answer"] >= real_from)
        lo, hi = wilson_interval(k, len(ts))
        rates.append({"group": key, "n": len(ts), "judged_real": k, "rate": k / len(ts),
                      "ci95": [lo, hi], "mean_rt_ms": float(np.mean([t["rt_ms"] for t in ts]))})
    last_val: dict[int, dict] = {}
    for v in vals:
        if v["kind"] == "validation":
            last_val[v["participant_id"]] = dict(v)
    per_part = []
    for p in parts:
        mine = [t for t in trials if t["participant_id"] == p["id"]]
        v = last_val.get(p["id"])
        per_part.append({
            "id": p["id"], "external_id": p["external_id"], "created_at": p["created_at"],
            "answered": sum(1 for t in mine if t["status"] == "answered"), "n_trials": len(mine),
            "completed": p["completed_at"] is not None, "px_per_mm": p["px_per_mm"],
            "viewing_distance_mm": p["viewing_distance_mm"],
            "validation_accuracy_deg": v["accuracy_deg"] if v else None,
            "validation_precision_deg": v["precision_deg"] if v else None,
            "validation_passed": v["passed"] if v else None,
        })
    acc = [v["accuracy_deg"] for v in last_val.values() if v["accuracy_deg"] is not None]
    drifts = [v["accuracy_deg"] for v in vals if v["kind"] == "drift" and v["accuracy_deg"] is not None]
    return {
        "participants": {"n": len(parts), "completed": sum(1 for p in per_part if p["completed"]), "list": per_part},
        "trials": {"n": len(trials), "answered": len(answered), "gaze_samples": int(n_samples)},
        "validation": {"n": len(last_val), "passed": sum(1 for v in last_val.values() if v["passed"]),
                       "median_accuracy_deg": float(np.median(acc)) if acc else None,
                       "median_drift_deg": float(np.median(drifts)) if drifts else None},
        "fool_rate": rates,
        "answer_scale": store.cfg.answer_scale,
        "current_version": store.current_version(),
    }
