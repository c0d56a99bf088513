"""Import gaze recorded elsewhere (EyeLink, Tobii Pro Lab, Pupil Labs, generic CSV) into a study.

``gazetune study import --config study.toml --format asc --file s01.asc --participant P --trial T``
reads the file with :func:`gazetune.gaze.importers.read_samples` and stores its samples with
trial ``T`` (the trial's index, 0-based, in the order participant ``P`` saw them; ``P`` is the
participant id or the external id from the URL) as the canonical samples: the file's screen
pixels become the page's CSS pixels (divided by the trial's device pixel ratio; the browser ran
full screen), then image pixels with the trial's on-screen rectangle, exactly like the lab
tracker's LSL stream (:mod:`gazetune.study.lsl`).  ``t_ms`` stays on the file's clock.

A mapping CSV imports many files at once; columns ``file, participant, trial`` and optionally
``format`` (else ``--format``), ``start_ms, end_ms`` (keep only samples in ``[start_ms, end_ms)``
of the file's clock, to cut one session recording into trials).  Relative file names are taken
relative to the mapping file.

Imported samples go through the same idempotent batch path as live gaze (source ``tracker``,
batch number :data:`IMPORT_SEQ` + k for the k-th import into a trial): importing the same file
again stores nothing, a different file for the same trial and number is refused.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from gazetune.gaze.importers import FORMATS, read_samples
from gazetune.study.store import StudyError, StudyStore

IMPORT_SEQ = 1_000_000
"""Batch numbers of imported files start here, clear of live (LSL) tracker batches."""


@dataclass
class ImportJob:
    """One file for one trial."""

    file: Path
    format: str
    participant: str
    trial: int
    start_ms: Optional[float] = None
    end_ms: Optional[float] = None
    part: int = 0  # k-th import into this trial (batch IMPORT_SEQ + part)


def import_file(store: StudyStore, job: ImportJob, screen_px: Optional[tuple[int, int]] = None) -> dict:
    """Read ``job.file`` and store its samples with the trial; returns what was stored.

    Parameters
    ----------
    store : StudyStore
    job : ImportJob
    screen_px : (width, height), optional
        Pupil Labs exports are normalised: the screen (or world camera frame) size in pixels is
        needed to turn them into pixels.  Not used by the other formats.
    """
    if job.format not in FORMATS:
        raise ValueError(f"{job.file}: format {job.format!r} is unknown; choose one of {sorted(FORMATS)}")
    kwargs = {}
    if job.format == "pupil":
        if screen_px is None:
            raise ValueError(f"{job.file}: Pupil Labs CSV needs --screen-px WIDTH HEIGHT (its positions are normalised)")
        kwargs["frame_size"] = tuple(screen_px)
    trial_id, geo = store.find_trial(job.participant, job.trial)
    if geo["rect"] is None:
        raise StudyError(409, f"participant {job.participant!r} trial {job.trial} (trial_id {trial_id}) was never "
                              "shown: there is no on-screen rectangle to convert the samples with")
    s = read_samples(job.file, job.format, **kwargs)
    keep = np.ones(len(s.t_ms), bool)
    if job.start_ms is not None:
        keep &= s.t_ms >= job.start_ms
    if job.end_ms is not None:
        keep &= s.t_ms < job.end_ms
    if not keep.any():
        raise ValueError(f"{job.file}: no samples in [{job.start_ms}, {job.end_ms}) ms "
                         f"(file spans {s.t_ms[0]:.1f} .. {s.t_ms[-1]:.1f} ms)")
    dpr = float((geo.get("viewport") or {}).get("dpr") or 1.0)
    cols = {"t_ms": s.t_ms[keep], "screen_x": s.x[keep].astype(np.float64) / dpr,
            "screen_y": s.y[keep].astype(np.float64) / dpr,
            "pupil": None if s.pupil is None else s.pupil[keep],
            "confidence": None if s.confidence is None else s.confidence[keep]}
    res = store.add_tracker_batch(trial_id, IMPORT_SEQ + job.part, cols, geo["rect"], geo["width"], geo["height"])
    return {"file": str(job.file), "trial_id": trial_id, **res}


def read_mapping(path: str | Path, default_format: Optional[str]) -> list[ImportJob]:
    """Jobs from a mapping CSV (see the module notes); errors name the line and column."""
    path = Path(path)
    jobs: list[ImportJob] = []
    seen: dict[tuple[str, int], int] = {}
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = csv.DictReader(fh)
        missing = {"file", "participant", "trial"} - set(rows.fieldnames or [])
        if missing:
            raise ValueError(f"{path}:1: mapping CSV lacks column(s) {sorted(missing)}; has {rows.fieldnames}")
        for line, r in enumerate(rows, start=2):
            fmt = (r.get("format") or "").strip() or default_format
            if not fmt:
                raise ValueError(f"{path}:{line}: no format (column 'format' empty and no --format)")
            try:
                trial = int(r["trial"])
                lo = float(r["start_ms"]) if (r.get("start_ms") or "").strip() else None
                hi = float(r["end_ms"]) if (r.get("end_ms") or "").strip() else None
            except ValueError as e:
                raise ValueError(f"{path}:{line}: {e}") from None
            f = Path(r["file"].strip())
            key = (r["participant"].strip(), trial)
            part = seen[key] = seen.get(key, -1) + 1
            jobs.append(ImportJob(f if f.is_absolute() else path.parent / f, fmt, key[0], trial, lo, hi, part))
    return jobs
