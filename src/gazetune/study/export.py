"""Researcher exports and the dashboard summary.

Tables (CSV or Parquet):

* ``trials``: one row per trial: participant, image name, kind (real/synthetic), generator
  version and latent seed, ``condition`` (``""`` plain, ``guided_toward`` / ``guided_away`` for a
  guided variant, :mod:`gazetune.study.guided`; ``condition2`` of a 2AFC pair's second image),
  answer, response time (ms), on-screen rectangle (CSS px);
* ``samples``: one row per gaze sample: trial, time (ms), screen position (CSS px), image
  position (image px), confidence;
* ``fixations``: the fixation table of docs/architecture.md (OSIE CSV columns ``image, subject,
  index, x, y, duration_ms``; x, y in image pixels), subject = participant id;
* ``validations``: every validation and drift check with accuracy and precision (px, deg);
* ``markers``: samples of extra LSL streams (heart rate, GSR, ...) inside trial windows: trial,
  stream name, LSL time (s), channel values (JSON list); and the webcam's expression scores of
  each trial (stream ``gazetune-expression``, a JSON object), also in the trials export
  (``expr_*`` columns next to ``lsl_onset``, ``lsl_offset``).
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

from gazetune.stats import two_way_bootstrap, wilson_interval
from gazetune.gaze.fixation_table import COLUMNS as FIXATION_COLUMNS
from gazetune.study import db as T
from gazetune.study.calibration import DEFAULT_DISTANCE_MM, DEFAULT_PX_PER_MM
from gazetune.study.stimuli import CATCH_KINDS
from gazetune.study.store import EXPRESSION_NAMES, answer_correct, exclusion_reasons, judged_real

if TYPE_CHECKING:
    from gazetune.study.store import StudyStore

TABLES = ("trials", "samples", "fixations", "validations", "markers")

IDT_DISPERSION_DEG = 1.0
"""I-DT dispersion threshold, degrees of visual angle (Salvucci & Goldberg, ETRA 2000).  I-DT
rather than I-VT because mouse and webcam gaze are too noisy for velocity thresholds."""
IDT_MIN_DURATION_MS = 100.0
"""I-DT minimum fixation duration, milliseconds."""


def _trial_rows(conn: sa.Connection, scale: str = "binary") -> list[dict]:
    """Every trial with its stimulus (and a 2AFC trial's second one), its participant's
    geometry and exclusion, whether it is a catch trial and whether its answer is right."""
    q = (sa.select(T.trials.c.id.label("trial_id"), T.trials.c.participant_id, T.participants.c.external_id,
                   T.trials.c.idx, T.stimuli.c.name.label("image"), T.stimuli.c.kind,
                   T.stimuli.c.generator_version, T.stimuli.c.seed, T.stimuli.c.condition, T.stimuli.c.width,
                   T.stimuli.c.height,
                   T.trials.c.status, T.trials.c.answer, T.trials.c.rt_ms, T.trials.c.timed_out,
                   T.trials.c.image_rect, T.trials.c.shown_at, T.trials.c.answered_at,
                   T.trials.c.lsl_onset, T.trials.c.lsl_offset, T.trials.c.real_side, T.trials.c.exposure_ms,
                   T.trials.c.stimulus2_id, T.trials.c.image_rect2, T.trials.c.gaze_batches_sent,
                   T.trials.c.gaze_complete, T.trials.c.gaze_model, T.trials.c.expression,
                   T.participants.c.excluded, T.participants.c.exclusion_reasons,
                   T.participants.c.px_per_mm, T.participants.c.viewing_distance_mm, T.participants.c.gaze_mode)
         .join(T.stimuli, T.stimuli.c.id == T.trials.c.stimulus_id)
         .join(T.participants, T.participants.c.id == T.trials.c.participant_id)
         .order_by(T.trials.c.id))
    second = {r.id: r for r in conn.execute(sa.select(
        T.stimuli.c.id, T.stimuli.c.name, T.stimuli.c.kind, T.stimuli.c.generator_version, T.stimuli.c.seed,
        T.stimuli.c.condition).where(T.stimuli.c.id.in_(sa.select(T.trials.c.stimulus2_id).where(T.trials.c.stimulus2_id.is_not(None))))
        .distinct())}
    out = []
    for r in conn.execute(q).mappings():
        d = dict(r)
        rect = json.loads(d.pop("image_rect")) if r["image_rect"] else [None] * 4
        d.update(rect_left=rect[0], rect_top=rect[1], rect_width=rect[2], rect_height=rect[3])
        s2 = second.get(d.pop("stimulus2_id"))
        d.update(image2=s2.name if s2 else None, kind2=s2.kind if s2 else None,
                 generator_version2=s2.generator_version if s2 else None, seed2=s2.seed if s2 else None,
                 condition2=s2.condition if s2 else None)
        d["catch"] = d["kind"] in CATCH_KINDS or d["kind2"] in CATCH_KINDS
        d["correct"] = answer_correct(d, scale) if d["status"] == "answered" else None
        d["excluded"] = bool(d["excluded"])
        d["exclusion_reasons"] = "; ".join(json.loads(d["exclusion_reasons"])) if d["exclusion_reasons"] else None
        out.append(d)
    return out


def trials_table(store: "StudyStore") -> pa.Table:
    with store.db.read() as conn:
        rows = _trial_rows(conn, store.cfg.answer_scale)
        counts = {t: (int(n), int(b)) for t, n, b in conn.execute(
            sa.select(T.gaze_batches.c.trial_id, sa.func.sum(T.gaze_batches.c.n), sa.func.count())
            .group_by(T.gaze_batches.c.trial_id)).all()}
    for r in rows:
        r["n_samples"], r["n_batches"] = counts.get(r["trial_id"], (0, 0))
        r.pop("px_per_mm"), r.pop("viewing_distance_mm"), r.pop("gaze_mode")
        rect2 = json.loads(r.pop("image_rect2")) if r.get("image_rect2") else [None] * 4
        r.update(rect2_left=rect2[0], rect2_top=rect2[1], rect2_width=rect2[2], rect2_height=rect2[3])
        r.update(_expression_columns(r.pop("expression")))
    return _table(rows, ["trial_id", "participant_id", "external_id", "idx", "image", "kind", "generator_version",
                         "seed", "condition", "width", "height", "status", "answer", "rt_ms", "timed_out", "rect_left", "rect_top",
                         "rect_width", "rect_height", "shown_at", "answered_at", "lsl_onset", "lsl_offset", *EXPRESSION_COLUMNS,
                         "gaze_model", "n_samples",
                         "catch", "correct", "excluded", "exclusion_reasons", "image2", "kind2", "generator_version2",
                         "seed2", "condition2", "real_side", "rect2_left", "rect2_top", "rect2_width", "rect2_height",
                         "exposure_ms", "gaze_batches_sent", "n_batches", "gaze_complete"])


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
        trials = [t for t in _trial_rows(conn) if t["status"] == "answered" and not t["catch"] and not t["excluded"]]
        batches = load_batches(conn, [t["trial_id"] for t in trials])
        viewports = dict(conn.execute(sa.select(T.trials.c.id, T.trials.c.viewport)).all())
        rects2 = dict(conn.execute(sa.select(T.trials.c.id, T.trials.c.image_rect2)
                                   .where(T.trials.c.image_rect2.is_not(None))).all())
    for t in trials:
        s = batches.get(t["trial_id"])
        if s is None or not t["rect_width"] or len(s["t_ms"]) < 6:
            continue
        # one map per image: a 2AFC trial's fixations go to the image they fall on
        shown = [(t["image"], (t["rect_left"], t["rect_top"], t["rect_width"], t["rect_height"]))]
        if rects2.get(t["trial_id"]):
            shown.append((t["image2"], tuple(json.loads(rects2[t["trial_id"]]))))
        for image, rect in shown:
            try:
                geometry = participant_geometry(t["px_per_mm"], t["viewing_distance_mm"], viewports.get(t["trial_id"]))
                samples = GazeSamples.from_screen(s["t_ms"], s["screen_x"], s["screen_y"], rect,
                                                  (t["width"], t["height"]), source=t["gaze_mode"])
                fx = detect_fixations(samples, geometry, method="idt", dispersion_threshold_deg=IDT_DISPERSION_DEG,
                                      min_duration_ms=IDT_MIN_DURATION_MS)
            except Exception:  # noqa: BLE001  one trial's odd data (all samples lost, a rect stored before
                # the checks) must not take the table away from everyone: that trial has no fixations
                continue
            k = 0
            for fx_x, fx_y, dur in fx.as_array():
                if len(shown) > 1 and not (0 <= fx_x < t["width"] and 0 <= fx_y < t["height"]):
                    continue  # on the other image of the pair
                rows["image"].append(image)
                rows["subject"].append(str(t["participant_id"]))
                rows["index"].append(k)
                rows["x"].append(round(float(fx_x), 3))
                rows["y"].append(round(float(fx_y), 3))
                rows["duration_ms"].append(round(float(dur), 1))
                k += 1
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


EXPRESSION_STREAM = "gazetune-expression"
"""``stream`` of the webcam expression rows in the markers export."""
EXPRESSION_COLUMNS = tuple(f"expr_{k}" for k in ("n_frames", *EXPRESSION_NAMES))
"""Columns of the trials export with a trial's mean expression scores (webcam mode)."""


def _expression_columns(text: str | None) -> dict:
    e = json.loads(text) if text else {}
    return {f"expr_{k}": e.get(k) for k in ("n_frames", *EXPRESSION_NAMES)}


def markers_table(store: "StudyStore") -> pa.Table:
    """The samples of the extra LSL streams, then one row per webcam trial with its expression
    scores (``stream`` :data:`EXPRESSION_STREAM`, ``t_lsl`` the trial's LSL answer time when the
    server has LSL, else empty; ``value`` a JSON object ``{n_frames, eye_open, ...}``)."""
    with store.db.read() as conn:
        rows = [dict(r) for r in conn.execute(sa.select(T.markers).order_by(T.markers.c.id)).mappings()]
        rows += [{"id": None, "trial_id": r.id, "stream": EXPRESSION_STREAM, "t_lsl": r.lsl_offset, "value": r.expression}
                 for r in conn.execute(sa.select(T.trials.c.id, T.trials.c.lsl_offset, T.trials.c.expression)
                                       .where(T.trials.c.expression.is_not(None)).order_by(T.trials.c.id))]
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


N_BOOT = 1000
"""Bootstrap replicates of the dashboard's intervals (``gazetune eval study`` uses 2000)."""


def _interval(outcomes: list[bool], ts: list[dict], seed: int = 0) -> list[float]:
    """95 % interval of a share: the participants x images bootstrap of ``gazetune eval study``
    (:func:`gazetune.stats.two_way_bootstrap`); Wilson's for a single trial."""
    if len(ts) < 2:
        return list(wilson_interval(int(sum(outcomes)), len(outcomes)))
    est = two_way_bootstrap(np.asarray(outcomes, dtype=float), [str(t["participant_id"]) for t in ts],
                            [t["image"] for t in ts], image_strata=[t["kind"] for t in ts], n_boot=N_BOOT, seed=seed)
    return [est.lo, est.hi]


def _hype_time(ts: list[dict]) -> dict | None:
    """HYPE-time of the answered trials ``ts`` of one generator version: each participant's
    threshold is the mean exposure at the reversals of their staircase (all their exposures when
    it never reversed); the version's is the mean over participants, with a 95 % percentile
    bootstrap over participants."""
    per: dict[int, list[dict]] = {}
    for t in sorted(ts, key=lambda t: (t["participant_id"], t["idx"])):
        if t["exposure_ms"] is not None and t["correct"] is not None:
            per.setdefault(t["participant_id"], []).append(t)
    thresholds = []
    for mine in per.values():
        # the staircase moves after each answer: a reversal is an answer whose correctness differs
        # from the one before; its exposure is where the direction turned
        rev = [b["exposure_ms"] for a, b in zip(mine, mine[1:]) if a["correct"] != b["correct"]]
        thresholds.append(float(np.mean(rev if rev else [t["exposure_ms"] for t in mine])))
    if not thresholds:
        return None
    arr = np.asarray(thresholds)
    rng = np.random.default_rng(0)
    boot = arr[rng.integers(0, len(arr), size=(N_BOOT, len(arr)))].mean(axis=1)
    return {"threshold_ms": float(arr.mean()), "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
            "n_participants": len(arr)}


def summary(store: "StudyStore") -> dict:
    """Dashboard numbers: participants (with exclusions and why, and gaze quality), trials,
    validation quality, and per generator version: the share judged real (fool rate; the row
    ``real`` is the same share on real images), and in 2AFC the accuracy (the real image picked),
    in HYPE-time the threshold next to the HYPE-infinity error rate.  Guided variants have groups
    of their own (``v1/guided_toward``, ``v1/guided_away`` next to the plain ``v1``).  Intervals are
    95 %, by the participants x images bootstrap of ``gazetune eval study``.  Catch trials and
    excluded participants count in none of these rates."""
    cfg = store.cfg
    with store.db.read() as conn:
        trials = _trial_rows(conn, cfg.answer_scale)
        parts = conn.execute(sa.select(T.participants).order_by(T.participants.c.id)).mappings().all()
        vals = conn.execute(sa.select(T.calibrations).order_by(T.calibrations.c.id)).mappings().all()
        n_samples = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(T.gaze_batches.c.n), 0))).scalar()
        per_trial = dict(conn.execute(sa.select(T.gaze_batches.c.trial_id, sa.func.sum(T.gaze_batches.c.n))
                                      .group_by(T.gaze_batches.c.trial_id)).all())
    answered = [t for t in trials if t["status"] == "answered"]
    counted = [t for t in answered if not t["catch"] and not t["excluded"]]
    groups: dict[str, list[dict]] = {}
    for t in counted:
        if cfg.design == "2afc":  # a pair belongs to the version (and condition) of its generated image
            first = t["kind"] == "synthetic"
            v = t["generator_version"] if first else t["generator_version2"]
            key = f"v{v}" + _condition_suffix(t["condition"] if first else t["condition2"])
        else:
            key = "real" if t["kind"] == "real" else f"v{t['generator_version']}" + _condition_suffix(t["condition"])
        groups.setdefault(key, []).append(t)
    rates = []
    reals = groups.get("real", [])
    for key, ts in sorted(groups.items()):
        row: dict = {"group": key, "n": len(ts), "mean_rt_ms": float(np.mean([t["rt_ms"] for t in ts])),
                     "ci_method": "two-way bootstrap (participants x images)"}
        if cfg.design == "2afc":
            ok = [bool(t["correct"]) for t in ts]
            row.update(correct=int(sum(ok)), accuracy=float(np.mean(ok)), ci95=_interval(ok, ts))
        else:
            judged = [judged_real(t["answer"], cfg.answer_scale) is True for t in ts]
            row.update(judged_real=int(sum(judged)), rate=float(np.mean(judged)), ci95=_interval(judged, ts))
            if key != "real" and reals:  # HYPE-infinity: wrong answers over these fakes and the reals
                both = ts + [t for t in reals if t["participant_id"] in {x["participant_id"] for x in ts}]
                wrong = [t["correct"] is False for t in both]
                row["hype_infinity"] = {"error_rate": float(np.mean(wrong)), "ci95": _interval(wrong, both)}
            if cfg.design == "hype_time":
                row["hype_time"] = _hype_time(ts + [t for t in reals if t["participant_id"] in
                                                    {x["participant_id"] for x in ts}])
        rates.append(row)
    last_val: dict[int, dict] = {}
    for v in vals:
        if v["kind"] == "validation":
            last_val[v["participant_id"]] = dict(v)
    per_part, excluded = [], []
    for p in parts:
        mine = [t for t in trials if t["participant_id"] == p["id"]]
        done = [t for t in mine if t["status"] == "answered"]
        v = last_val.get(p["id"])
        catch = [t for t in done if t["catch"]]
        if p["excluded"] is not None:
            reasons, final = json.loads(p["exclusion_reasons"] or "[]"), True
        else:  # not judged yet: what the rules say so far
            reasons = exclusion_reasons(cfg, done, v) if done else []
            final = False
        shown = [t for t in mine if t["status"] != "pending"]
        with_gaze = [t for t in shown if per_trial.get(t["trial_id"], 0) > 0]
        drifts = [d["accuracy_deg"] for d in vals if d["participant_id"] == p["id"] and d["kind"] == "drift"
                  and d["accuracy_deg"] is not None]
        rec = {
            "id": p["id"], "external_id": p["external_id"], "created_at": p["created_at"],
            "answered": len(done), "n_trials": len(mine),
            "completed": p["completed_at"] is not None, "px_per_mm": p["px_per_mm"],
            "viewing_distance_mm": p["viewing_distance_mm"],
            "validation_accuracy_deg": v["accuracy_deg"] if v else None,
            "validation_precision_deg": v["precision_deg"] if v else None,
            "validation_passed": v["passed"] if v else None,
            "catch_correct": sum(1 for t in catch if t["correct"]), "catch_n": len(catch),
            "excluded": bool(reasons), "exclusion_final": final, "exclusion_reasons": reasons,
            # gaze quality: trials with gaze, samples per shown trial, drift error
            "gaze_trials": len(with_gaze), "shown_trials": len(shown),
            "gaze_incomplete": sum(1 for t in done if t["gaze_complete"] is False),
            "samples_per_trial": (float(np.mean([per_trial.get(t["trial_id"], 0) for t in shown])) if shown else None),
            "median_drift_deg": float(np.median(drifts)) if drifts else None,
        }
        per_part.append(rec)
        if reasons:
            excluded.append({"id": p["id"], "external_id": p["external_id"], "final": final, "reasons": reasons})
    acc = [v["accuracy_deg"] for v in last_val.values() if v["accuracy_deg"] is not None]
    drifts = [v["accuracy_deg"] for v in vals if v["kind"] == "drift" and v["accuracy_deg"] is not None]
    return {
        "design": cfg.design,
        "participants": {"n": len(parts), "completed": sum(1 for p in per_part if p["completed"]), "list": per_part},
        "trials": {"n": len(trials), "answered": len(answered), "gaze_samples": int(n_samples),
                   "catch_answered": sum(1 for t in answered if t["catch"])},
        "validation": {"n": len(last_val), "passed": sum(1 for v in last_val.values() if v["passed"]),
                       "median_accuracy_deg": float(np.median(acc)) if acc else None,
                       "median_drift_deg": float(np.median(drifts)) if drifts else None},
        "fool_rate": rates,
        "exclusions": {"rules": _rules(cfg), "excluded": excluded},
        "answer_scale": cfg.answer_scale,
        "current_version": store.current_version(),
    }


def _condition_suffix(condition: str | None) -> str:
    """Dashboard group of a guided variant: its version's group plus ``/guided_toward`` (or
    ``/guided_away``), so plain and guided images of a version are rated apart."""
    return f"/{condition}" if condition else ""


def _rules(cfg) -> list[str]:  # noqa: ANN001
    out = []
    if cfg.exclude_catch_accuracy_below > 0:
        out.append(f"catch-trial accuracy below {cfg.exclude_catch_accuracy_below:g}")
    if cfg.exclude_fast_rt_ms > 0:
        out.append(f"more than {cfg.exclude_fast_share_above:g} of answers faster than {cfg.exclude_fast_rt_ms:g} ms")
    if cfg.exclude_failed_validation:
        out.append("last validation failed")
    return out
