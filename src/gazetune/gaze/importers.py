"""Read eye-tracker exports into :class:`~gazetune.gaze.samples.GazeSamples`.

Formats
-------
``asc``
    EyeLink ASC (``edf2asc`` output), parsed by :func:`pymovements.gaze.from_asc`.
``tobii``
    Tobii Pro Lab (and Tobii Studio) tab-separated data export: ``Recording timestamp``,
    ``Gaze point X``, ``Gaze point Y``, optionally ``Pupil diameter left/right``,
    ``Validity left/right``, ``Sensor``, ``Presented Stimulus name``.
``pupil``
    Pupil Labs (Pupil Player) ``gaze_positions.csv`` (``gaze_timestamp, confidence, norm_pos_x,
    norm_pos_y``) or a surface export ``gaze_positions_on_surface_<name>.csv`` (``x_norm, y_norm``).
``csv``
    Generic CSV: ``t_ms, x, y`` and optionally ``pupil``, ``confidence``.

Coordinates: trackers record screen (or camera-frame) pixels.  With ``image_rect`` (where the
image was on screen) and ``image_size`` the samples are converted to image pixels and the raw
coordinates kept in ``screen_x, screen_y``; without it the file's coordinates are taken as image
pixels.  Missing values become NaN (track loss); run
:func:`~gazetune.gaze.samples.validate_samples` next.  A bad value raises ``ValueError`` naming
the file, line and column.
"""

from __future__ import annotations

import csv
import math
import os
import re
import warnings
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from gazetune.gaze.samples import GazeSamples, Rect, Source

PathLike = str | os.PathLike


def _number(text: Optional[str], where: str, column: str, allow_empty: bool = True) -> float:
    """Parse one cell; empty or NaN-like cells are NaN when ``allow_empty``."""
    s = (text or "").strip()
    if s == "" or s.lower() in ("nan", "na", "null", "none", "undefined", "."):
        if allow_empty:
            return math.nan
        raise ValueError(f"{where}: column {column!r} is empty")
    if "," in s and "." not in s:  # decimal comma (Tobii exports in some locales)
        s = s.replace(",", ".")
    try:
        return float(s)
    except ValueError:
        raise ValueError(f"{where}: column {column!r} is not a number: {text!r}") from None


def _finish(
    path: Path,
    t_ms: np.ndarray,
    px: np.ndarray,
    py: np.ndarray,
    *,
    image_rect: Optional[Rect],
    image_size: Optional[tuple[int, int]],
    source: Source,
    pupil: Optional[np.ndarray] = None,
    confidence: Optional[np.ndarray] = None,
    meta: Optional[dict] = None,
) -> GazeSamples:
    if len(t_ms) == 0:
        raise ValueError(f"{path}: no gaze samples found")
    meta = {"file": str(path), **(meta or {})}
    if image_rect is not None:
        if image_size is None:
            raise ValueError(f"{path}: image_rect needs image_size (width, height) too")
        return GazeSamples.from_screen(t_ms, px, py, image_rect, image_size, source, pupil, confidence, meta)
    return GazeSamples(
        t_ms=t_ms,
        x=px,
        y=py,
        source=source,
        image_size=None if image_size is None else (int(image_size[0]), int(image_size[1])),
        pupil=pupil,
        confidence=confidence,
        meta=meta,
    )


# -------------------------------------------------------------------------------- EyeLink ASC
def read_eyelink_asc(
    path: PathLike,
    *,
    eye: str = "auto",
    image_rect: Optional[Rect] = None,
    image_size: Optional[tuple[int, int]] = None,
) -> GazeSamples:
    """Read the gaze samples of an EyeLink ASC file (via :func:`pymovements.gaze.from_asc`).

    Parameters
    ----------
    path
        ``.asc`` file written by SR Research's ``edf2asc``.
    eye : {"auto", "left", "right", "average"}
        For binocular recordings: one eye, or the mean of the two where both are tracked (the
        tracked one otherwise).  ``"auto"`` = ``"average"``; monocular files have one eye anyway.
    image_rect, image_size
        See the module notes.

    Returns
    -------
    GazeSamples
        ``source="tracker"``, ``t_ms`` the tracker clock in ms, ``pupil`` in the file's units
        (area or diameter; 0 becomes NaN).  ``meta`` holds ``sampling_rate_hz`` and
        ``screen_px`` when the file states them.
    """
    import pymovements as pm

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"EyeLink ASC file not found: {path}")
    if eye not in ("auto", "left", "right", "average"):
        raise ValueError(f"eye must be 'auto', 'left', 'right' or 'average'; got {eye!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymovements warns about each metadata line it misses
        try:
            gaze = pm.gaze.from_asc(path)
        except Exception as exc:  # pymovements raises many kinds on malformed files
            raise ValueError(f"{path}: not a readable EyeLink ASC file ({type(exc).__name__}: {exc})") from exc
    df = gaze.samples
    if df.height == 0 or "pixel" not in df.columns:
        raise ValueError(f"{path}: no gaze samples found (is it an EyeLink ASC file from edf2asc?)")
    t = df["time"].cast(float).to_numpy()
    pix = np.array(df["pixel"].to_list(), dtype=np.float64)  # None -> nan
    pupil_col = df["pupil"] if "pupil" in df.columns else None
    pupil = None
    if pupil_col is not None:
        pupil = np.array(pupil_col.to_list(), dtype=np.float64)
    if pix.shape[1] == 4:  # binocular: left x, y, right x, y
        left, right = pix[:, :2], pix[:, 2:]
        if eye == "left":
            pix = left
        elif eye == "right":
            pix = right
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                pix = np.nanmean(np.stack([left, right]), axis=0)
        if pupil is not None and pupil.ndim == 2:
            pupil = pupil[:, 0] if eye == "left" else pupil[:, 1] if eye == "right" else np.nanmean(pupil, axis=1)
    if pupil is not None:
        pupil = np.where(pupil > 0, pupil, np.nan)
    meta = {"format": "asc"}
    tracker = gaze.experiment.eyetracker if gaze.experiment is not None else None
    if tracker is not None and tracker.sampling_rate:
        meta["sampling_rate_hz"] = float(tracker.sampling_rate)
    screen = gaze.experiment.screen if gaze.experiment is not None else None
    if screen is not None and screen.width_px:
        meta["screen_px"] = (int(screen.width_px), int(screen.height_px))
    return _finish(
        path, t, pix[:, 0], pix[:, 1], image_rect=image_rect, image_size=image_size, source="tracker", pupil=pupil, meta=meta
    )


# ------------------------------------------------------------------------------- Tobii Pro Lab
def _norm_header(name: str) -> tuple[str, str]:
    """``"Recording timestamp [μs]"`` -> ``("recordingtimestamp", "μs")``; also Tobii Studio's
    ``"GazePointX (ADCSpx)"`` -> ``("gazepointx", "adcspx")``."""
    m = re.match(r"^\s*(.*?)\s*(?:[\[(]\s*([^\])]*)\s*[\])])?\s*$", name)
    base, unit = (m.group(1), m.group(2) or "") if m else (name, "")
    return re.sub(r"[\s_]+", "", base).lower(), unit.strip().lower()


def read_tobii_tsv(
    path: PathLike,
    *,
    image_rect: Optional[Rect] = None,
    image_size: Optional[tuple[int, int]] = None,
    media: Optional[str] = None,
) -> GazeSamples:
    """Read a Tobii Pro Lab (or Tobii Studio) data export (tab-separated).

    Rows of other sensors (``Sensor`` not ``Eye Tracker``: mouse, keyboard, event rows) and, with
    ``media``, rows of other stimuli are skipped and counted in ``meta``.  Time stamps in µs
    (``Recording timestamp [μs]``) are converted to ms.  ``confidence`` is the fraction of eyes
    marked ``Valid`` when validity columns exist; ``pupil`` the mean of the two diameters (mm).

    Parameters
    ----------
    path
        ``.tsv`` export.
    image_rect, image_size
        See the module notes (Tobii gaze points are screen pixels).
    media : str, optional
        Keep only rows whose ``Presented Stimulus name`` (or ``MediaName``) equals this.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Tobii TSV file not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
        if not header:
            raise ValueError(f"{path}:1: empty file, expected a Tobii header line")
        cols: dict[str, tuple[int, str, str]] = {}
        for i, name in enumerate(header):
            key, unit = _norm_header(name)
            cols.setdefault(key, (i, unit, name))
        need = {"recordingtimestamp": "Recording timestamp", "gazepointx": "Gaze point X", "gazepointy": "Gaze point Y"}
        missing = [label for key, label in need.items() if key not in cols]
        if missing:
            raise ValueError(f"{path}:1: missing Tobii column(s) {missing}; header is {header}")
        t_idx, t_unit, t_name = cols["recordingtimestamp"]
        t_scale = 1e-3 if t_unit in ("μs", "µs", "us", "microseconds") else 1e3 if t_unit == "s" else 1.0
        x_idx, _, x_name = cols["gazepointx"]
        y_idx, _, y_name = cols["gazepointy"]
        pupils = [cols[k] for k in ("pupildiameterleft", "pupildiameterright") if k in cols]
        validity = [cols[k] for k in ("validityleft", "validityright") if k in cols]
        sensor = cols.get("sensor")
        media_col = cols.get("presentedstimulusname") or cols.get("medianame")
        if media is not None and media_col is None:
            raise ValueError(f"{path}:1: media={media!r} given but there is no 'Presented Stimulus name' column")
        t, x, y, pu, conf = [], [], [], [], []
        n_other_sensor = n_other_media = 0
        for lineno, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            row = row + [""] * (len(header) - len(row))
            where = f"{path}:{lineno}"
            if sensor is not None and row[sensor[0]].strip() and row[sensor[0]].strip().lower() != "eye tracker":
                n_other_sensor += 1
                continue
            if media is not None and row[media_col[0]].strip() != media:  # type: ignore[index]
                n_other_media += 1
                continue
            t.append(_number(row[t_idx], where, t_name, allow_empty=False) * t_scale)
            x.append(_number(row[x_idx], where, x_name))
            y.append(_number(row[y_idx], where, y_name))
            if pupils:
                vals = [_number(row[i], where, name) for i, _, name in pupils]
                pu.append(np.nanmean(vals) if not all(math.isnan(v) for v in vals) else math.nan)
            if validity:
                flags = [row[i].strip().lower() for i, _, _ in validity]
                bad = [f for f in flags if f not in ("valid", "invalid", "")]
                if bad:
                    raise ValueError(f"{where}: validity column is {bad[0]!r}, expected 'Valid' or 'Invalid'")
                conf.append(sum(f == "valid" for f in flags) / len(flags))
    meta = {"format": "tobii", "n_other_sensor_rows": n_other_sensor, "n_other_media_rows": n_other_media}
    return _finish(
        path,
        np.asarray(t),
        np.asarray(x),
        np.asarray(y),
        image_rect=image_rect,
        image_size=image_size,
        source="tracker",
        pupil=np.asarray(pu) if pupils else None,
        confidence=np.asarray(conf) if validity else None,
        meta=meta,
    )


# --------------------------------------------------------------------------------- CSV helpers
def _read_csv_columns(
    path: Path, required: Sequence[Sequence[str]], optional: Sequence[str], what: str
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read numeric CSV columns.  ``required`` lists alternatives (the first set present wins).

    Returns ``(columns, chosen required set)``.  The first required column may not be empty.
    """
    if not path.exists():
        raise FileNotFoundError(f"{what} file not found: {path}")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        chosen = next((list(opt) for opt in required if all(c in header for c in opt)), None)
        if chosen is None:
            wants = " or ".join(str(list(opt)) for opt in required)
            raise ValueError(f"{path}:1: missing column(s): need {wants}; header is {header}")
        names = chosen + [c for c in optional if c in header]
        data: dict[str, list[float]] = {c: [] for c in names}
        for lineno, row in enumerate(reader, start=2):
            if None in row:
                raise ValueError(f"{path}:{lineno}: more fields than the {len(header)} columns of the header")
            for j, c in enumerate(names):
                data[c].append(_number(row[c], f"{path}:{lineno}", c, allow_empty=j != 0))
    return {c: np.asarray(v, np.float64) for c, v in data.items()}, chosen


def read_gaze_csv(
    path: PathLike,
    *,
    image_rect: Optional[Rect] = None,
    image_size: Optional[tuple[int, int]] = None,
    source: Source = "tracker",
) -> GazeSamples:
    """Read a generic CSV with columns ``t_ms, x, y`` and optional ``pupil, confidence``.

    Empty or ``nan`` ``x``/``y`` cells are track loss.  ``t_ms`` may not be empty.
    """
    path = Path(path)
    cols, _ = _read_csv_columns(path, [("t_ms", "x", "y")], ("pupil", "confidence"), "gaze CSV")
    return _finish(
        path,
        cols["t_ms"],
        cols["x"],
        cols["y"],
        image_rect=image_rect,
        image_size=image_size,
        source=source,
        pupil=cols.get("pupil"),
        confidence=cols.get("confidence"),
        meta={"format": "csv"},
    )


def read_pupil_csv(
    path: PathLike,
    frame_size: tuple[int, int],
    *,
    image_rect: Optional[Rect] = None,
    image_size: Optional[tuple[int, int]] = None,
) -> GazeSamples:
    """Read a Pupil Labs gaze export.

    ``gaze_positions.csv`` gives ``norm_pos_x, norm_pos_y`` in the world camera frame; a surface
    export (``gaze_positions_on_surface_*.csv``) gives ``x_norm, y_norm`` on the surface (which can
    be the image itself).  Normalised coordinates have their origin at the *bottom* left; pixels
    are ``x = nx * W``, ``y = (1 - ny) * H`` with ``frame_size = (W, H)``.

    Pupil Player writes a datum per eye pairing, so rows may repeat a time stamp or be slightly out
    of order: rows are sorted by time and, of rows with the same time stamp, the one with the
    highest confidence is kept.  Both are counted in ``meta`` (``n_reordered``: steps back in
    time in the file; ``n_duplicate_timestamps``: rows dropped).  ``confidence`` is kept; filter with
    ``validate_samples(..., min_confidence=0.6)`` (Pupil Labs' recommendation).
    """
    path = Path(path)
    if not (len(frame_size) == 2 and frame_size[0] > 0 and frame_size[1] > 0):
        raise ValueError(f"frame_size must be (width > 0, height > 0) in pixels; got {frame_size}")
    cols, chosen = _read_csv_columns(
        path,
        [("gaze_timestamp", "norm_pos_x", "norm_pos_y"), ("gaze_timestamp", "x_norm", "y_norm")],
        ("confidence",),
        "Pupil Labs CSV",
    )
    t = cols["gaze_timestamp"] * 1000.0
    nx, ny = cols[chosen[1]], cols[chosen[2]]
    conf = cols.get("confidence")
    n_reordered = int(np.sum(np.diff(t) < 0))  # steps back in time in the file
    # sort by time, most confident first among equal time stamps, then keep one per time stamp
    order = np.lexsort((-(conf if conf is not None else np.zeros_like(t)), t))
    t, nx, ny = t[order], nx[order], ny[order]
    conf = conf[order] if conf is not None else None
    keep = np.concatenate([[True], np.diff(t) > 0]) if len(t) else np.zeros(0, bool)
    n_dup = int((~keep).sum())
    w, h = frame_size
    meta = {"format": "pupil", "frame_size": (int(w), int(h)), "n_reordered": n_reordered, "n_duplicate_timestamps": n_dup}
    return _finish(
        path,
        t[keep],
        nx[keep] * w,
        (1.0 - ny[keep]) * h,
        image_rect=image_rect,
        image_size=image_size if image_size is not None or image_rect is not None else (int(w), int(h)),
        source="tracker",
        confidence=conf[keep] if conf is not None else None,
        meta=meta,
    )


FORMATS: dict[str, Callable[..., GazeSamples]] = {
    "asc": read_eyelink_asc,
    "tobii": read_tobii_tsv,
    "pupil": read_pupil_csv,
    "csv": read_gaze_csv,
}


def read_samples(path: PathLike, format: str, **kwargs) -> GazeSamples:
    """Read ``path`` with the importer for ``format`` (``asc``, ``tobii``, ``pupil``, ``csv``);
    keyword arguments go to that importer."""
    try:
        reader = FORMATS[format]
    except KeyError:
        raise ValueError(f"unknown gaze file format {format!r}; choose one of {sorted(FORMATS)}") from None
    return reader(path, **kwargs)
