"""The fixation table on disk: CSV with ``image, subject, index, x, y, duration_ms``.

This is the format of OSIE's ``fixations.csv`` and the common exchange format of the project
(docs/architecture.md): every command that reads fixations accepts it.  ``x`` and ``y`` are image pixels,
``index`` is the order of the fixation in its scanpath, ``duration_ms`` in milliseconds.
A table whose first column is named ``file`` instead of ``image`` (faces64's
``face_fixations.csv``) is accepted too.
"""

from __future__ import annotations

import csv
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from gazetune.atomic import atomic_write

COLUMNS = ("image", "subject", "index", "x", "y", "duration_ms")


def inside_image(xy: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which fixations (rows ``x, y, ...`` in image pixels) are centred on an image of ``shape``
    ``(height, width)``: the pixel centres run from 0 to ``width - 1``, so a point is inside for
    ``-0.5 < x < width - 0.5`` (and the same for ``y``).

    >>> inside_image(np.array([[0.0, 0.0], [-0.6, 3.0], [9.4, 4.0]]), (5, 10)).tolist()
    [True, False, True]
    """
    xy = np.asarray(xy, dtype=np.float64)
    xy = xy.reshape(-1, 2) if xy.ndim < 2 else xy
    h, w = shape
    x, y = xy[:, 0], xy[:, 1]
    return (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)


@dataclass
class FixationTable:
    """Fixations grouped by image and subject.

    ``data[image][subject]`` is an ``(n, 3)`` float64 array of ``x, y, duration_ms`` in scanpath
    order (sorted by ``index``).
    """

    data: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    def images(self) -> list[str]:
        """Image names in sorted order."""
        return sorted(self.data)

    def subjects(self, image: str) -> list[str]:
        return sorted(self.data.get(image, {}))

    def for_image(self, image: str) -> dict[str, np.ndarray]:
        """``{subject: (n, 3) x, y, duration_ms}`` for one image (empty dict when unseen)."""
        return self.data.get(image, {})

    def all_fixations(self, image: str) -> np.ndarray:
        """All subjects' fixations on ``image`` stacked into one ``(n, 3)`` array."""
        parts = list(self.for_image(image).values())
        return np.concatenate(parts, axis=0) if parts else np.zeros((0, 3))

    def n_fixations(self) -> int:
        return sum(len(a) for subj in self.data.values() for a in subj.values())

    def subset(self, images: Iterable[str]) -> "FixationTable":
        keep = set(images)
        return FixationTable({k: v for k, v in self.data.items() if k in keep})

    def add(self, image: str, subject: str, fixations: np.ndarray) -> None:
        """Add (or replace) one subject's scanpath on one image; ``fixations`` is (n, 3)."""
        arr = np.asarray(fixations, dtype=np.float64).reshape(-1, 3)
        self.data.setdefault(str(image), {})[str(subject)] = arr


def read_fixation_table(path: str | os.PathLike) -> FixationTable:
    """Read a fixation table CSV (``image`` or ``file``, ``subject``, ``index``, ``x``, ``y``,
    ``duration_ms``).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file, line and
    column of the first bad row (missing column, non-numeric or non-finite value, negative
    duration).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"fixation table not found: {path}")
    rows: dict[str, dict[str, list[tuple[float, float, float, float]]]] = defaultdict(lambda: defaultdict(list))
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        image_col = "image" if "image" in header else ("file" if "file" in header else None)
        missing = [c for c in COLUMNS[1:] if c not in header]
        if image_col is None or missing:
            need = (["image"] if image_col is None else []) + missing
            raise ValueError(f"{path}: missing column(s) {need}; header is {header}")
        for lineno, row in enumerate(reader, start=2):
            try:
                vals = {c: float(row[c]) for c in ("index", "x", "y", "duration_ms")}
            except (TypeError, ValueError):
                bad = next(c for c in ("index", "x", "y", "duration_ms") if not _is_float(row.get(c)))
                raise ValueError(f"{path}:{lineno}: column {bad!r} is not a number: {row.get(bad)!r}") from None
            for c, v in vals.items():
                if not math.isfinite(v):
                    raise ValueError(f"{path}:{lineno}: column {c!r} is not finite: {row[c]!r}")
            if vals["duration_ms"] < 0:
                raise ValueError(f"{path}:{lineno}: negative duration_ms {row['duration_ms']!r}")
            rows[row[image_col]][row["subject"]].append(
                (vals["index"], vals["x"], vals["y"], vals["duration_ms"])
            )
    table = FixationTable()
    for image, subjects in rows.items():
        for subject, fix in subjects.items():
            arr = np.asarray(sorted(fix), dtype=np.float64)
            table.add(image, subject, arr[:, 1:4])
    return table


def _is_float(v: object) -> bool:
    try:
        float(v)  # type: ignore[arg-type]
        return True
    except (TypeError, ValueError):
        return False


def write_fixation_table(table: FixationTable, path: str | os.PathLike) -> None:
    """Write ``table`` as CSV atomically (temporary file + rename: a crash leaves the old file)."""
    path = Path(path)
    with atomic_write(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for image in table.images():
            for subject in table.subjects(image):
                for i, (x, y, d) in enumerate(table.data[image][subject]):
                    w.writerow([image, subject, i, f"{x:.3f}", f"{y:.3f}", f"{d:.1f}"])
