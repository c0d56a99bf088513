"""Long gaze tables from online study platforms -> one :class:`GazeSamples` per trial.

Online studies with webcam gaze (WebGazer run by jsPsych, Gorilla, Labvanced) export one long
table: many participants and trials in one file, with column names the platform chose.  A
:class:`TableMapping` says which column is what; the rows are grouped into trials and every trial
becomes canonical samples (:mod:`gazetune.gaze.samples`) in image pixels, ready for fixation
detection.  :func:`import_long_table` runs the whole way to a fixation table.

Two shapes are read:

* **one row per sample**: ``time``, ``x``, ``y`` columns (screen pixels), rows of one trial
  identified by ``participant`` plus the ``trial`` columns;
* **one row per trial with the samples in a JSON cell** (``samples_json``): a list of objects
  with ``x``, ``y`` and ``t`` (time), as jsPsych's WebGazer extension writes ``webgazer_data``.

The image's on-screen box (left, top, width, height in screen pixels) comes from box columns on
each trial's rows, from other rows of the trial picked by ``box_rows`` (Gorilla writes its zones
as rows of their own), from a JSON cell (``box_json``: jsPsych's ``webgazer_targets``, an object
of CSS selector -> ``{x, y, width, height, ...}``), or from one box for the whole study
(``image_rect``).  The image's own size comes from columns, one size for the study
(``image_size``), or the image files (``images`` folder in :func:`import_long_table`).

Time stamps may be in s, ms or µs (``time_unit``; ``"auto"`` takes seconds when the median step
between samples of a trial is below 0.5, else ms: right for trackers up to 2 kHz); any origin.
Rows of a trial are sorted by time and exact duplicate time stamps dropped (both counted).

Presets (:data:`PRESETS`) give the column names of each platform.  **They are assumptions,
written from the platforms' public descriptions, not checked against a real export**: check them
against your file's header, and override any key with a mapping file or ``--column``.

``jspsych``
    one row per trial: ``subject`` (added by the experimenter; jsPsych has no participant column
    of its own), ``trial_index``, ``stimulus`` (image), ``webgazer_data`` (JSON list of
    ``{x, y, t}``, t in ms from the trial's start), ``webgazer_targets`` (JSON object
    selector -> ``{x, y, width, height, ...}``; with several targets name the image's with
    ``box_json_target``).  Rows without ``webgazer_data`` are other trials and skipped.
``gorilla``
    Gorilla's eye-tracking files, concatenated: ``participant_id``, ``spreadsheet_row`` and
    ``screen_index`` (trial), ``type`` (``prediction`` rows are samples, ``zone`` rows boxes),
    ``time_stamp`` (ms), ``x_pred``, ``y_pred``, ``face_conf``, ``zone_x``, ``zone_y``,
    ``zone_width``, ``zone_height``.  These files do not name the stimulus: add an image column
    (e.g. joined from the task's spreadsheet).  y is assumed to grow downwards from the top of
    the screen; if your zones say otherwise, set ``y_origin = "bottom"``.
``labvanced``
    ``Rec_Session_Id`` (participant), ``Task_Name`` and ``Trial_Nr`` (trial), ``X``, ``Y``,
    ``T`` (ms), ``C`` (confidence); no image or box columns assumed: give them, or
    ``image_rect`` for the study.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

import numpy as np

from gazetune.gaze.importers import _number
from gazetune.gaze.samples import SOURCES, GazeSamples, Rect

PathLike = str | os.PathLike

#: Keys of :attr:`TableMapping.columns`: what each column holds.
COLUMN_KEYS = (
    "participant",  # participant id
    "trial",  # one or more columns that, with the participant, identify a trial
    "image",  # image name (written to the fixation table)
    "time",  # sample time stamp
    "x",
    "y",  # gaze in screen pixels
    "confidence",  # optional per-sample confidence
    "box_left",
    "box_top",
    "box_width",
    "box_height",  # the image's on-screen box, screen pixels
    "image_width",
    "image_height",  # the image's own size, pixels
    "samples_json",  # one cell with the trial's samples [{x, y, t}, ...]
    "box_json",  # one cell with {target: {x, y, width, height}}
)
TIME_UNITS = {"ms": 1.0, "s": 1000.0, "us": 1e-3}


@dataclass
class TableMapping:
    """How to read a long gaze table (see the module notes).

    Attributes
    ----------
    columns : dict
        :data:`COLUMN_KEYS` -> column name (``trial``: a list of names).  Needed:
        ``participant`` and either ``time, x, y`` or ``samples_json``.
    keep : dict
        Column -> accepted values: only rows that match all are samples (e.g. Gorilla's
        ``type = "prediction"``).  Empty: every row.
    box_rows : dict, optional
        Column -> accepted values of the rows that carry the box columns (Gorilla's
        ``type = "zone"``, maybe with ``zone_name``).  None: the sample rows carry them.
    box_json_target : str, optional
        Which target of ``box_json`` is the image; None: the only one there is.
    image_rect : (left, top, width, height), optional
        One on-screen box for the whole study (screen pixels), used where a trial has none.
    image_size : (width, height), optional
        One image size for the whole study (image pixels), used where no column gives it.
    time_unit : {"auto", "ms", "s", "us"}
    y_origin : {"top", "bottom"}
        Where ``y = 0`` is.  ``"bottom"`` flips ``y`` and the box with the screen height.
    source : str
        Gaze source of the samples (``webcam`` for these platforms).
    json_keys : (x, y, t)
        Keys of each sample object in ``samples_json``.
    delimiter : str, optional
        Field separator; None: guessed from the header line (comma, semicolon or tab).
    """

    columns: dict[str, Any] = field(default_factory=dict)
    keep: dict[str, tuple[str, ...]] = field(default_factory=dict)
    box_rows: Optional[dict[str, tuple[str, ...]]] = None
    box_json_target: Optional[str] = None
    image_rect: Optional[Rect] = None
    image_size: Optional[tuple[int, int]] = None
    time_unit: str = "auto"
    y_origin: str = "top"
    source: str = "webcam"
    json_keys: tuple[str, str, str] = ("x", "y", "t")
    delimiter: Optional[str] = None

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(COLUMN_KEYS))
        if unknown:
            raise ValueError(f"mapping: unknown column key(s) {unknown}; known: {list(COLUMN_KEYS)}")
        cols = {k: v for k, v in self.columns.items() if v not in (None, "", [], ())}
        trial = cols.get("trial", ())
        cols["trial"] = tuple([trial] if isinstance(trial, str) else trial)
        self.columns = cols
        self.keep = {k: _as_values(v) for k, v in self.keep.items()}
        if self.box_rows is not None:
            self.box_rows = {k: _as_values(v) for k, v in self.box_rows.items()}
        if "participant" not in cols:
            raise ValueError("mapping: no 'participant' column given")
        if "samples_json" not in cols:
            missing = [k for k in ("time", "x", "y") if k not in cols]
            if missing:
                raise ValueError(f"mapping: need columns {missing} (or 'samples_json' for samples in a JSON cell)")
        box = [k for k in ("box_left", "box_top", "box_width", "box_height") if k in cols]
        if box and len(box) != 4:
            raise ValueError(f"mapping: the box needs all of box_left, box_top, box_width, box_height; got only {box}")
        size = [k for k in ("image_width", "image_height") if k in cols]
        if len(size) == 1:
            raise ValueError(f"mapping: give both image_width and image_height columns; got only {size}")
        if self.time_unit not in ("auto", *TIME_UNITS):
            raise ValueError(f"mapping: time_unit must be auto, ms, s or us; got {self.time_unit!r}")
        if self.y_origin not in ("top", "bottom"):
            raise ValueError(f"mapping: y_origin must be 'top' or 'bottom'; got {self.y_origin!r}")
        if self.source not in SOURCES:
            raise ValueError(f"mapping: source must be one of {SOURCES}; got {self.source!r}")
        if self.image_rect is not None:
            r = tuple(float(v) for v in self.image_rect)
            if len(r) != 4 or r[2] <= 0 or r[3] <= 0:
                raise ValueError(f"mapping: image_rect must be [left, top, width > 0, height > 0]; got {self.image_rect}")
            self.image_rect = r  # type: ignore[assignment]
        if self.image_size is not None:
            sz = tuple(int(v) for v in self.image_size)
            if len(sz) != 2 or min(sz) <= 0:
                raise ValueError(f"mapping: image_size must be [width > 0, height > 0]; got {self.image_size}")
            self.image_size = sz  # type: ignore[assignment]

    def needed_columns(self) -> list[tuple[str, str]]:
        """``(key, column name)`` of every mapped column, filters included."""
        out = [(k, v) for k, v in self.columns.items() if k != "trial"]
        out += [("trial", c) for c in self.columns["trial"]]
        out += [("keep", c) for c in self.keep]
        out += [("box_rows", c) for c in (self.box_rows or {})]
        return out


def _as_values(v: Any) -> tuple[str, ...]:
    return tuple(str(x) for x in v) if isinstance(v, (list, tuple)) else (str(v),)


#: Column names assumed for each platform (unchecked against real exports; see module notes).
PRESETS: dict[str, dict[str, Any]] = {
    # jsPsych + its WebGazer extension: one row per trial; `subject` is the name commonly added
    # with jsPsych.data.addProperties (jsPsych has no participant column of its own).
    "jspsych": {
        "columns": {
            "participant": "subject",
            "trial": ["trial_index"],
            "image": "stimulus",
            "samples_json": "webgazer_data",
            "box_json": "webgazer_targets",
        },
        "time_unit": "ms",
        "json_keys": ("x", "y", "t"),
    },
    # Gorilla eye tracking files (several concatenated): prediction rows are samples, zone rows
    # hold each zone's box.  The stimulus name is not in these files: add an image column.
    "gorilla": {
        "columns": {
            "participant": "participant_id",
            "trial": ["spreadsheet_row", "screen_index"],
            "time": "time_stamp",
            "x": "x_pred",
            "y": "y_pred",
            "confidence": "face_conf",
            "box_left": "zone_x",
            "box_top": "zone_y",
            "box_width": "zone_width",
            "box_height": "zone_height",
        },
        "keep": {"type": "prediction"},
        "box_rows": {"type": "zone"},
        "time_unit": "ms",
    },
    # Labvanced: one row per gaze sample with X, Y, T (ms) and C (confidence); the image's box
    # is usually one per study (image_rect).
    "labvanced": {
        "columns": {
            "participant": "Rec_Session_Id",
            "trial": ["Task_Name", "Trial_Nr"],
            "time": "T",
            "x": "X",
            "y": "Y",
            "confidence": "C",
        },
        "time_unit": "ms",
    },
}

MAPPING_KEYS = tuple(f.name for f in dataclasses.fields(TableMapping))


def make_mapping(preset: Optional[str] = None, overrides: Optional[dict] = None) -> TableMapping:
    """A :class:`TableMapping` from a preset (:data:`PRESETS`) with ``overrides`` on top.

    ``overrides`` has the fields of :class:`TableMapping`; ``columns``, ``keep`` and
    ``box_rows`` are merged key by key (an empty value removes a preset's column).
    """
    base: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        base = json.loads(json.dumps(PRESETS[preset]))
    for key, value in (overrides or {}).items():
        if key not in MAPPING_KEYS:
            raise ValueError(f"mapping: unknown key {key!r}; known: {list(MAPPING_KEYS)}")
        if key in ("columns", "keep", "box_rows") and isinstance(value, dict):
            merged = {**(base.get(key) or {}), **value}
            base[key] = {k: v for k, v in merged.items() if v not in (None, "")} if key != "columns" else merged
        else:
            base[key] = value
    return TableMapping(**base)


def load_mapping(path: PathLike) -> tuple[Optional[str], dict]:
    """Read a mapping file (``.toml`` or ``.json``): ``(preset or None, overrides)``.

    The file holds an optional ``preset`` and any :class:`TableMapping` field, e.g.::

        preset = "gorilla"
        [columns]
        image = "stimulus_file"
        [box_rows]
        type = "zone"
        zone_name = "face"
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mapping file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import tomllib

            data = tomllib.loads(text)
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable mapping file ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a mapping file holds a table of keys")
    preset = data.pop("preset", None)
    unknown = sorted(set(data) - set(MAPPING_KEYS))
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: ['preset', {', '.join(map(repr, MAPPING_KEYS))}]")
    return preset, data


# ------------------------------------------------------------------------------- reading
@dataclass
class TableTrial:
    """One trial of a long table: who, which image, and the samples (screen pixels)."""

    participant: str
    trial: tuple[str, ...]
    image: str
    first_line: int
    t: list[float] = field(default_factory=list)
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)
    conf: list[float] = field(default_factory=list)
    box: Optional[Rect] = None
    box_line: int = 0
    size: Optional[tuple[int, int]] = None

    @property
    def label(self) -> str:
        parts = [f"participant {self.participant!r}"] + [f"trial {'/'.join(self.trial)!r}"] * bool(self.trial)
        return ", ".join(parts + [f"image {self.image!r}"] * bool(self.image))


def _matches(row: dict, filt: dict[str, tuple[str, ...]]) -> bool:
    return all((row.get(c) or "").strip() in vals for c, vals in filt.items())


def _sniff_delimiter(first_line: str) -> str:
    counts = {d: first_line.count(d) for d in (",", ";", "\t")}
    return max(counts, key=lambda d: counts[d]) if any(counts.values()) else ","


def _set_box(trial: TableTrial, box: Rect, where: str) -> None:
    if not (box[2] > 0 and box[3] > 0):
        raise ValueError(f"{where}: the image box must have width and height > 0; got {box}")
    if trial.box is None:
        trial.box, trial.box_line = box, int(where.rsplit(":", 1)[-1])
    elif not np.allclose(trial.box, box):
        raise ValueError(
            f"{where}: {trial.label} has two different image boxes: {trial.box} (line {trial.box_line}) and {box}; "
            "pick the image's rows with box_rows (e.g. zone_name=...)"
        )


def _json_box(cell: str, target: Optional[str], where: str, column: str) -> Optional[Rect]:
    if not cell.strip():
        return None
    try:
        targets = json.loads(cell)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: column {column!r} is not JSON ({exc.msg})") from None
    if isinstance(targets, list):  # some jsPsych versions write a list of {id, x, y, width, height}
        targets = {str(t.get("id", i)): t for i, t in enumerate(targets) if isinstance(t, dict)}
    if not isinstance(targets, dict) or not targets:
        return None
    if target is None:
        if len(targets) != 1:
            raise ValueError(f"{where}: column {column!r} has {len(targets)} targets {sorted(targets)}; say which is the image (box_json_target)")
        target = next(iter(targets))
    if target not in targets:
        raise ValueError(f"{where}: target {target!r} not in column {column!r}; it has {sorted(targets)}")
    t = targets[target]
    try:
        left = float(t["x"] if "x" in t else t["left"])
        top = float(t["y"] if "y" in t else t["top"])
        return (left, top, float(t["width"]), float(t["height"]))
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"{where}: target {target!r} in column {column!r} needs x (or left), y (or top), width, height; got {t}") from None


def read_long_table(path: PathLike, mapping: TableMapping) -> tuple[list[TableTrial], dict]:
    """Group a long table's rows into trials (samples still in screen pixels, time raw).

    Returns ``(trials, counts)``; ``counts`` has ``n_rows``, ``n_sample_rows``, ``n_box_rows``,
    ``n_other_rows`` (rows neither kept as samples nor carrying a box) and
    ``n_trials_without_samples`` (trials with a box but no sample, left out).

    Raises
    ------
    FileNotFoundError
    ValueError
        A mapped column missing from the header (names the mapping key), or a bad value
        (names file, line and column): a time stamp that is empty or not a number, a
        coordinate that is not a number, a box with width or height <= 0, two different boxes
        or images in one trial, unreadable JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"gaze table not found: {path}")
    cols = mapping.columns
    trials: dict[tuple, TableTrial] = {}
    counts = {"n_rows": 0, "n_sample_rows": 0, "n_box_rows": 0, "n_other_rows": 0}
    box_cols = [cols.get(k) for k in ("box_left", "box_top", "box_width", "box_height")]
    has_box_cols = all(box_cols)
    with path.open(newline="", encoding="utf-8-sig") as fh:
        first = fh.readline()
        fh.seek(0)
        reader = csv.DictReader(fh, delimiter=mapping.delimiter or _sniff_delimiter(first))
        header = [h.strip() for h in (reader.fieldnames or [])]
        reader.fieldnames = header
        for key, name in mapping.needed_columns():
            if name not in header:
                raise ValueError(f"{path}:1: column {name!r} (mapping key {key!r}) is not in the header; header is {header}")
        for lineno, row in enumerate(reader, start=2):
            counts["n_rows"] += 1
            where = f"{path}:{lineno}"
            is_sample = _matches(row, mapping.keep)
            if is_sample and "samples_json" in cols and not (row.get(cols["samples_json"]) or "").strip():
                is_sample = False  # a trial without gaze (instructions, a response screen)
            is_box = has_box_cols and (is_sample if mapping.box_rows is None else _matches(row, mapping.box_rows))
            if not (is_sample or is_box):
                counts["n_other_rows"] += 1
                continue
            participant = (row.get(cols["participant"]) or "").strip()
            if not participant:
                raise ValueError(f"{where}: column {cols['participant']!r} (participant) is empty")
            tkey = tuple((row.get(c) or "").strip() for c in cols["trial"])
            key = (participant, tkey) if cols["trial"] else (participant, (row.get(cols.get("image", "")) or "").strip())
            image = (row.get(cols["image"]) or "").strip() if "image" in cols else ""
            trial = trials.get(key)
            if trial is None:
                trial = trials[key] = TableTrial(participant, tkey, image, lineno)
            elif image and trial.image and image != trial.image:
                raise ValueError(f"{where}: {trial.label} shows a second image {image!r} (column {cols['image']!r})")
            elif image and not trial.image:
                trial.image = image
            if is_box:
                cells = [row.get(c) or "" for c in box_cols]  # type: ignore[arg-type]
                if any(c.strip() for c in cells):
                    box = tuple(_number(c, where, n, allow_empty=False) for c, n in zip(cells, box_cols))  # type: ignore[arg-type]
                    _set_box(trial, box, where)  # type: ignore[arg-type]
                    counts["n_box_rows"] += not is_sample
            if "image_width" in cols and (row.get(cols["image_width"]) or "").strip():
                size = (
                    int(_number(row.get(cols["image_width"]), where, cols["image_width"])),
                    int(_number(row.get(cols["image_height"]), where, cols["image_height"], allow_empty=False)),
                )
                if min(size) <= 0:
                    raise ValueError(f"{where}: image size must be > 0; got {size}")
                trial.size = trial.size or size
            if "box_json" in cols:
                jbox = _json_box(row.get(cols["box_json"]) or "", mapping.box_json_target, where, cols["box_json"])
                if jbox is not None:
                    _set_box(trial, jbox, where)
            if not is_sample:
                continue
            counts["n_sample_rows"] += 1
            if "samples_json" in cols:
                _read_json_samples(trial, row.get(cols["samples_json"]) or "", mapping, where, cols["samples_json"])
                continue
            trial.t.append(_number(row.get(cols["time"]), where, cols["time"], allow_empty=False))
            trial.x.append(_number(row.get(cols["x"]), where, cols["x"]))
            trial.y.append(_number(row.get(cols["y"]), where, cols["y"]))
            if "confidence" in cols:
                trial.conf.append(_number(row.get(cols["confidence"]), where, cols["confidence"]))
    with_samples = [t for t in trials.values() if t.t]
    counts["n_trials_without_samples"] = len(trials) - len(with_samples)
    return with_samples, counts


def _read_json_samples(trial: TableTrial, cell: str, mapping: TableMapping, where: str, column: str) -> None:
    if not cell.strip():
        return
    try:
        items = json.loads(cell)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: column {column!r} is not JSON ({exc.msg})") from None
    if not isinstance(items, list):
        raise ValueError(f"{where}: column {column!r} must hold a JSON list of samples; got {type(items).__name__}")
    kx, ky, kt = mapping.json_keys
    for i, item in enumerate(items):
        if not isinstance(item, dict) or kt not in item:
            raise ValueError(f"{where}: column {column!r}, sample {i}: expected an object with {kt!r}; got {item!r}")
        t = item[kt]
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t):
            raise ValueError(f"{where}: column {column!r}, sample {i}: time {kt!r} is not a number: {t!r}")
        vals = []
        for k in (kx, ky):
            v = item.get(k)
            if v is None:
                vals.append(math.nan)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                vals.append(float(v))
            else:
                raise ValueError(f"{where}: column {column!r}, sample {i}: {k!r} is not a number: {v!r}")
        trial.t.append(float(t))
        trial.x.append(vals[0])
        trial.y.append(vals[1])


def guess_time_unit(trials: Iterable[TableTrial]) -> str:
    """``"s"`` when the median step between successive time stamps within trials is below 0.5,
    else ``"ms"`` (see the module notes)."""
    steps = [np.diff(np.sort(np.asarray(tr.t))) for tr in trials if len(tr.t) > 1]
    steps = np.concatenate(steps) if steps else np.zeros(0)
    steps = steps[steps > 0]
    return "s" if steps.size and float(np.median(steps)) < 0.5 else "ms"


def trial_samples(
    trial: TableTrial,
    mapping: TableMapping,
    time_unit: str,
    image_size: Optional[tuple[int, int]],
    screen_height_px: int,
) -> tuple[GazeSamples, dict]:
    """Canonical samples of one trial (image pixels; time in ms, sorted, duplicates dropped).

    Returns ``(samples, counts)`` with ``n_reordered`` (steps back in time in the file) and
    ``n_duplicate_times`` (rows dropped).  Raises ``ValueError`` when the trial has no box or no
    image size.
    """
    box = trial.box or mapping.image_rect
    if box is None:
        raise ValueError(f"{trial.label} (line {trial.first_line}): no image box: map box columns or give image_rect")
    size = trial.size or image_size or mapping.image_size
    if size is None:
        raise ValueError(
            f"{trial.label} (line {trial.first_line}): image size unknown: map image_width/image_height, "
            "give image_size, or an image folder"
        )
    t = np.asarray(trial.t, np.float64) * TIME_UNITS[time_unit]
    x = np.asarray(trial.x, np.float64)
    y = np.asarray(trial.y, np.float64)
    conf = np.asarray(trial.conf, np.float64) if trial.conf else None
    if mapping.y_origin == "bottom":
        y = screen_height_px - y
        box = (box[0], screen_height_px - box[1] - box[3], box[2], box[3])
    n_back = int(np.sum(np.diff(t) < 0))
    order = np.argsort(t, kind="stable")
    t, x, y = t[order], x[order], y[order]
    keep = np.concatenate([[True], np.diff(t) > 0]) if t.size else np.zeros(0, bool)
    conf = conf[order][keep] if conf is not None else None
    samples = GazeSamples.from_screen(
        t[keep],
        x[keep],
        y[keep],
        box,
        size,
        source=mapping.source,  # type: ignore[arg-type]
        confidence=conf,
        meta={"participant": trial.participant, "trial": "/".join(trial.trial), "image": trial.image},
    )
    return samples, {"n_reordered": n_back, "n_duplicate_times": int((~keep).sum())}


# ------------------------------------------------------------------------------- importing
def _image_size_from_folder(images: Path, name: str, cache: dict) -> Optional[tuple[int, int]]:
    if name not in cache:
        path = images / name
        if not path.is_file():
            cache[name] = None
        else:
            from PIL import Image

            with Image.open(path) as im:
                cache[name] = (int(im.width), int(im.height))
    return cache[name]


def import_long_table(
    path: PathLike,
    mapping: TableMapping,
    out: PathLike,
    *,
    images: Optional[PathLike] = None,
    geometry=None,
    validate_kwargs: Optional[dict] = None,
    detect_kwargs: Optional[dict] = None,
) -> dict:
    """Long table -> fixation table CSV (``image, subject, index, x, y, duration_ms``) at ``out``.

    Every trial is converted (:func:`trial_samples`), validated
    (:func:`~gazetune.gaze.samples.validate_samples`) and its fixations detected
    (:func:`~gazetune.gaze.fixations.detect_fixations`, by default the method for the mapping's
    ``source``).  The subject is the participant; a participant who saw the same image in more
    than one trial gets ``<participant>#2``, ``#3``, ... for the later ones.  Trials that cannot
    be used (too short, too few valid samples, no image name) are skipped and listed.

    Parameters
    ----------
    path, mapping
        The table and how to read it.
    out
        Fixation table CSV to write (atomically).
    images : folder, optional
        Image files named as in the image column, to read image sizes from.
    geometry : ScreenGeometry, optional
        Viewing geometry for detection (default :class:`ScreenGeometry()`).
    validate_kwargs, detect_kwargs : dict, optional
        Passed to ``validate_samples`` and ``detect_fixations``.  ``out_of_image`` defaults to
        ``"keep"``: webcam error (150-500 px) often exceeds the image's margin, and dropping
        every sample that lands off the image would split or lose many fixations.

    Returns
    -------
    dict
        Counts (rows, trials, fixations, skipped trials with reasons, reordered and duplicate
        time stamps, repeated views), the time unit and method used.
    """
    from gazetune.gaze.fixation_table import FixationTable, write_fixation_table
    from gazetune.gaze.fixations import default_method, detect_fixations
    from gazetune.gaze.geometry import ScreenGeometry
    from gazetune.gaze.samples import TrialTooShortError, validate_samples

    geometry = geometry or ScreenGeometry()
    trials, counts = read_long_table(path, mapping)
    if not trials:
        raise ValueError(f"{path}: no sample rows (check the keep filter {mapping.keep or '{}'} and the header)")
    if not any(tr.image for tr in trials):
        raise ValueError(
            f"{path}: no trial has an image name; map the image column (mapping key 'image', e.g. "
            "--column image=NAME): the gorilla and labvanced presets have none"
        )
    unit = guess_time_unit(trials) if mapping.time_unit == "auto" else mapping.time_unit
    detect_kwargs = dict(detect_kwargs or {})
    method = detect_kwargs.get("method", "auto")
    if method == "auto":
        method = default_method(mapping.source)
    detect_kwargs["method"] = method
    validate_kwargs = {"out_of_image": "keep", **(validate_kwargs or {})}
    size_cache: dict = {}
    table = FixationTable()
    views: dict[tuple[str, str], int] = {}
    skipped: list[dict] = []
    n_fix = n_reordered = n_dup = n_repeat = 0
    for tr in trials:
        if not tr.image:
            skipped.append({"trial": tr.label, "line": tr.first_line, "reason": "no image name (map the image column)"})
            continue
        size = _image_size_from_folder(Path(images), tr.image, size_cache) if images is not None else None
        samples, c = trial_samples(tr, mapping, unit, size, geometry.screen_height_px)
        n_reordered += c["n_reordered"]
        n_dup += c["n_duplicate_times"]
        try:
            clean, _ = validate_samples(samples, **validate_kwargs)
            fix = detect_fixations(clean, geometry, **detect_kwargs)
        except TrialTooShortError as exc:
            skipped.append({"trial": tr.label, "line": tr.first_line, "reason": str(exc)})
            continue
        except ValueError as exc:  # e.g. fewer than 6 samples, I2MC gave up
            skipped.append({"trial": tr.label, "line": tr.first_line, "reason": str(exc)})
            continue
        k = views[(tr.image, tr.participant)] = views.get((tr.image, tr.participant), 0) + 1
        subject = tr.participant if k == 1 else f"{tr.participant}#{k}"
        n_repeat += k > 1
        table.add(tr.image, subject, fix.as_array())
        n_fix += len(fix)
    write_fixation_table(table, out)
    return {
        **counts,
        "n_trials": len(trials),
        "n_trials_written": len(trials) - len(skipped),
        "n_participants": len({t.participant for t in trials}),
        "n_fixations": n_fix,
        "n_reordered": n_reordered,
        "n_duplicate_times": n_dup,
        "n_repeated_views": n_repeat,
        "time_unit": unit,
        "method": method,
        "skipped": skipped,
    }
