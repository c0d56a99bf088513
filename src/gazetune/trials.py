"""The trial record: one person's answer on one image, shared by every stage that reads answers.

A study (ours or one run elsewhere), the trainer API of a running server and the simulated
observers all produce **trials**.  They meet here, in one typed record, so that the rates of
:mod:`gazetune.evaluate.human` and the targets of the human model (:mod:`gazetune.human.train`)
read the same answer the same way.  This module sits below every stage (it imports only numpy and
the image names), like :mod:`gazetune.config`: the record crosses stage boundaries, so it
belongs to none of them.

Records
-------
:class:`AnswerScale`
    What an answer means: binary (0 fake / 1 real) or a rating scale ``low..high`` whose *real
    end* is ``high`` or ``low``.  It owns the one rule that turns an answer into
    ``realness`` in [0, 1] (linear, 1 = surely real) and into the verdict ``answer_real``: True
    above the middle, False below it, None exactly in the middle (undecided: left out of rates;
    a target of 0.5 for the human model).  Values outside the scale are never answers.
:class:`Trial`
    participant, image, truth (``kind``, ``generator``), the answer (raw value, realness,
    verdict), response time, latent seed and, when gaze was recorded, the fixations.
:class:`TrialTable`
    Trials of one scale, with the count of every row left out and why, and column views
    (``table.image``, ``table.realness``, ...) for training.

Adapters at the edges
---------------------
* :func:`read_trials`: CSV long tables: the trial record written by :func:`write_trials`,
  ``gazetune study`` exports, and tables of other studies (jsPsych, Gorilla, Qualtrics, ...):
  one row per answer, truth from a column or from an image table (:func:`read_image_table`);
* :func:`gazetune.study.client.trial_table_from_responses`: the trainer API's JSON;
* :func:`from_simulated`: :class:`gazetune.observers.SimulatedTrial` of the simulated observers.

Long-table columns (first name found wins; names are case-sensitive)
--------------------------------------------------------------------
==============  ==========================================================================
participant     ``participant``, ``participant_id`` or ``subject`` (required)
image           ``image`` (required): a real image's name or ``synthetic/<version>/<seed>``
answer          ``answer``, ``rating`` or ``answer_real`` (required); numbers on the scale, or
                ``real``/``fake`` (and ``true``/``false``) on the binary scale
rt_ms           ``rt_ms``: response time in ms (optional; empty = unknown)
kind            ``kind`` (``real``/``synthetic``) or ``synthetic`` (1/0) (optional)
generator       ``generator``, ``generator_version`` or ``source`` (``real`` = a real image)
seed            ``seed`` or ``latent_seed``: latent seed of a synthetic image (optional)
condition       ``condition``: stimulus condition of a synthetic image (optional; empty = plain,
                e.g. ``guided_toward`` in a ``gazetune study`` export)
status          ``status``: rows other than ``answered`` (or empty) are left out, counted
==============  ==========================================================================
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping, Sequence

import numpy as np

from gazetune.images.names import parse_synthetic_name

RealEnd = Literal["high", "low"]

PARTICIPANT_COLUMNS = ("participant", "participant_id", "subject")
ANSWER_COLUMNS = ("answer", "rating", "answer_real")
GENERATOR_COLUMNS = ("generator", "generator_version", "source")
SEED_COLUMNS = ("seed", "latent_seed")
RECORD_COLUMNS = ("participant", "image", "kind", "generator", "answer", "answer_real", "rt_ms", "seed", "condition")

_WORDS = {"real": 1.0, "true": 1.0, "yes": 1.0, "r": 1.0, "fake": 0.0, "synthetic": 0.0, "false": 0.0,
          "no": 0.0, "f": 0.0}
_TRUTHY = {"1", "1.0", "true", "yes", "y"}
_FALSY = {"", "0", "0.0", "false", "no", "n"}


# ============================================================================ the answer scale
@dataclass(frozen=True)
class AnswerScale:
    """The meaning of an answer.

    Parameters
    ----------
    low, high
        Ends of the scale; ``(0, 1)`` is the binary scale (0 = fake, 1 = real).
    real_end
        Which end means *surely real*: ``"high"`` (default; the binary scale and gazetune's 1-5
        rating) or ``"low"`` (e.g. a slider from 1 = real to 7 = synthetic).

    >>> s = AnswerScale.parse("1-7", real_end="low")
    >>> s.realness(1.0), s.realness(4.0), s.answer_real(5.0), s.answer_real(4.0), s.contains(-1)
    (1.0, 0.5, False, None, False)
    """

    low: int = 0
    high: int = 1
    real_end: RealEnd = "high"

    def __post_init__(self) -> None:
        if not self.high > self.low:
            raise ValueError(f"answer scale needs low < high; got {self.low}-{self.high}")
        if self.real_end not in ("high", "low"):
            raise ValueError(f"real_end must be 'high' or 'low'; got {self.real_end!r}")

    @classmethod
    def parse(cls, text: str, real_end: RealEnd = "high") -> "AnswerScale":
        """``"binary"``, ``"likert5"`` / ``"rating"`` (1-5) or ``"<low>-<high>"`` (e.g. ``"1-7"``)."""
        t = str(text).strip().lower()
        if t == "binary":
            return cls(0, 1, real_end)
        if t in ("likert5", "rating"):
            return cls(1, 5, real_end)
        m = re.fullmatch(r"(-?\d+)\s*-\s*(-?\d+)", t)
        if not m:
            raise ValueError(f"answer scale {text!r} is not understood; use binary, likert5 or <low>-<high> (e.g. 1-7)")
        return cls(int(m.group(1)), int(m.group(2)), real_end)

    @property
    def binary(self) -> bool:
        return (self.low, self.high) == (0, 1)

    @property
    def name(self) -> str:
        """``"binary"`` or ``"<low>-<high>"``; with :attr:`real_end` it rebuilds the scale."""
        return "binary" if self.binary else f"{self.low}-{self.high}"

    def contains(self, value: float) -> bool:
        """Whether ``value`` is an answer on this scale (binary: exactly 0 or 1)."""
        if not math.isfinite(value):
            return False
        if self.binary:
            return value in (0.0, 1.0)
        return self.low <= value <= self.high

    def realness(self, value: float | np.ndarray) -> float | np.ndarray:
        """Answer -> realness in [0, 1], linear in the answer (1 = surely real).  The caller
        checks :meth:`contains` first."""
        r = (np.asarray(value, dtype=np.float64) - self.low) / (self.high - self.low)
        r = r if self.real_end == "high" else 1.0 - r
        return float(r) if np.ndim(r) == 0 else r

    def answer_real(self, value: float) -> bool | None:
        """The verdict: True when the answer is on the real side of the middle, False on the fake
        side, None exactly in the middle."""
        return verdict(self.realness(value))


def verdict(realness: float) -> bool | None:
    """Realness in [0, 1] -> True (> 0.5, called real), False (< 0.5), None (0.5, undecided).
    The one threshold rule of the project."""
    if not math.isfinite(realness) or realness == 0.5:
        return None
    return bool(realness > 0.5)


# ============================================================================ the record
@dataclass(frozen=True)
class Trial:
    """One answer of one participant on one image.

    Attributes
    ----------
    participant, image
        Ids; a synthetic image is best named ``synthetic/<version>/<seed>``.
    kind
        ``"real"``, ``"synthetic"`` or ``""`` (truth unknown).
    generator
        Generator version (or source, e.g. ``"StyleGAN"``) of a synthetic image; None otherwise.
    answer_real
        The verdict: True = called real, False = called fake, None = undecided (middle of a
        rating scale).  Derived from ``realness`` when not given.
    rt_ms
        Response time, ms (NaN = unknown).
    realness
        The answer on [0, 1] (1 = surely real); ``float(answer_real)`` when not given.
    answer
        The raw answer on its scale (for a verdict alone, 0 or 1 on the binary scale).
    latent_seed
        Latent seed of a synthetic image (to render it again), or None.
    fixations
        ``(n, 3)`` float64 ``x, y, duration_ms`` in image pixels, or None when no gaze was
        recorded.  Not part of equality.
    condition
        Stimulus condition of a synthetic image: ``""`` (plain) or, for example,
        ``guided_toward`` / ``guided_away`` (a study's guided variants, :mod:`gazetune.study.guided`).
        Rates are computed per :attr:`source`, so each condition of a generator gets its own.
    """

    participant: str
    image: str
    kind: str = ""
    generator: str | None = None
    answer_real: bool | None = None
    rt_ms: float = math.nan
    realness: float = math.nan
    answer: float = math.nan
    latent_seed: int | None = None
    fixations: np.ndarray | None = field(default=None, compare=False, repr=False)
    condition: str = ""

    def __post_init__(self) -> None:
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen)
        set_("participant", str(self.participant))
        set_("image", str(self.image))
        if self.kind not in ("real", "synthetic", ""):
            raise ValueError(f"trial kind must be 'real', 'synthetic' or '' (unknown); got {self.kind!r}")
        set_("generator", None if self.generator in (None, "") else str(self.generator))
        set_("rt_ms", float(self.rt_ms))
        if math.isnan(self.realness):
            if self.answer_real is None:
                raise ValueError(f"trial of {self.participant!r} on {self.image!r} has neither a verdict nor a realness")
            set_("realness", float(bool(self.answer_real)))
        elif not 0.0 <= self.realness <= 1.0:
            raise ValueError(f"realness must be in [0, 1]; got {self.realness}")
        implied = verdict(self.realness)
        if self.answer_real is None:
            set_("answer_real", implied)
        elif bool(self.answer_real) != implied:
            raise ValueError(f"answer_real={self.answer_real} disagrees with realness {self.realness}")
        else:
            set_("answer_real", bool(self.answer_real))
        if math.isnan(self.answer) and self.answer_real is not None and self.realness in (0.0, 1.0):
            set_("answer", self.realness)  # a verdict alone is an answer on the binary scale
        if self.latent_seed is not None:
            set_("latent_seed", int(self.latent_seed))
        if self.fixations is not None:
            set_("fixations", np.asarray(self.fixations, dtype=np.float64).reshape(-1, 3))
        set_("condition", "" if self.condition is None else str(self.condition).strip())
        if self.condition and self.kind != "synthetic":
            raise ValueError(f"trial of {self.participant!r} on {self.image!r}: condition {self.condition!r} "
                             f"is for synthetic images; the image is {self.kind or 'of unknown kind'}")

    @property
    def source(self) -> str | None:
        """What rates are grouped by: the generator, and ``generator/condition`` for a synthetic
        image shown in a condition (``"1/guided_toward"``); None without a generator."""
        if self.generator is None:
            return None
        return f"{self.generator}/{self.condition}" if self.condition else self.generator

    @property
    def correct(self) -> bool | None:
        """Whether the verdict matches the truth (None when undecided or the truth is unknown)."""
        if self.answer_real is None or not self.kind:
            return None
        return self.answer_real == (self.kind == "real")

    @property
    def has_gaze(self) -> bool:
        """True when the trial has at least one fixation."""
        return self.fixations is not None and len(self.fixations) > 0


@dataclass
class TrialTable(Sequence[Trial]):
    """Trials on one :class:`AnswerScale`, and what was left out on the way in.

    ``dropped`` maps a reason (``"out of scale: -1"``, ``"status timed_out"``, ``"no answer"``,
    ``"excluded participant"``) to the number of rows it removed; ``excluded`` lists the
    participants excluded by a column.  Column views (lists and float arrays) serve training.
    """

    trials: list[Trial]
    scale: AnswerScale = field(default_factory=AnswerScale)
    dropped: dict[str, int] = field(default_factory=dict)
    excluded: list[str] = field(default_factory=list)
    source: str = ""

    def __len__(self) -> int:
        return len(self.trials)

    def __getitem__(self, i):  # type: ignore[override]
        return self.trials[i]

    def __iter__(self) -> Iterator[Trial]:
        return iter(self.trials)

    # column views ------------------------------------------------------------------------
    @property
    def image(self) -> list[str]:
        return [t.image for t in self.trials]

    @property
    def participant(self) -> list[str]:
        return [t.participant for t in self.trials]

    @property
    def kind(self) -> list[str]:
        return [t.kind for t in self.trials]

    @property
    def generator(self) -> list[str | None]:
        return [t.generator for t in self.trials]

    @property
    def latent_seed(self) -> list[int | None]:
        return [t.latent_seed for t in self.trials]

    @property
    def answer(self) -> np.ndarray:
        """Raw answers on :attr:`scale` (the realness where only a verdict is known)."""
        return np.array([t.answer if math.isfinite(t.answer) else self.scale_value(t.realness) for t in self.trials])

    @property
    def realness(self) -> np.ndarray:
        return np.array([t.realness for t in self.trials], dtype=np.float64)

    @property
    def rt_ms(self) -> np.ndarray:
        return np.array([t.rt_ms for t in self.trials], dtype=np.float64)

    @property
    def fixations(self) -> list[np.ndarray]:
        """Per trial ``(n, 3)`` fixations; ``(0, 3)`` where no gaze was recorded."""
        return [t.fixations if t.fixations is not None else np.zeros((0, 3)) for t in self.trials]

    @property
    def has_gaze(self) -> np.ndarray:
        return np.array([t.has_gaze for t in self.trials], dtype=bool)

    def scale_value(self, realness: float) -> float:
        """Inverse of :meth:`AnswerScale.realness`."""
        s = self.scale
        r = realness if s.real_end == "high" else 1.0 - realness
        return s.low + r * (s.high - s.low)

    def participants(self) -> list[str]:
        return sorted(set(self.participant))

    def subset(self, rows: Iterable[int]) -> "TrialTable":
        return dataclasses.replace(self, trials=[self.trials[int(i)] for i in rows])

    def summary(self) -> str:
        """One line: trials, participants, images, the scale and what was left out."""
        left = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items())) or "nothing"
        undecided = sum(t.answer_real is None for t in self.trials)
        ex = f"; {len(self.excluded)} participants excluded" if self.excluded else ""
        return (f"{len(self)} trials of {len(set(self.participant))} participants on {len(set(self.image))} images, "
                f"scale {self.scale.name} (real end {self.scale.real_end}), {undecided} undecided (middle); "
                f"left out: {left}{ex}")


# ============================================================================ CSV adapters
def _pick(header: Sequence[str], names: Sequence[str]) -> str | None:
    return next((n for n in names if n in header), None)


def _float(text: str | None, column: str, where: str) -> float:
    t = (text or "").strip()
    if not t:
        return math.nan
    try:
        return float(t)
    except ValueError:
        raise ValueError(f"{where}: column {column!r}: {t!r} is not a number") from None


def _flag(text: str | None, column: str, where: str) -> bool:
    t = (text or "").strip().lower()
    if t in _TRUTHY:
        return True
    if t in _FALSY:
        return False
    raise ValueError(f"{where}: column {column!r}: {text!r} is not 0/1 (or true/false)")


def _truth_from(kind: str | None, synthetic: str | None, generator: str | None, image: str,
                where: str) -> tuple[str, str | None]:
    """(kind, generator) from whichever truth columns a row has; generator 'real' means real."""
    k = (kind or "").strip().lower()
    if k and k not in ("real", "synthetic"):
        raise ValueError(f"{where}: column 'kind': {kind!r} is neither real nor synthetic")
    if synthetic is not None and synthetic.strip():
        s = "synthetic" if _flag(synthetic, "synthetic", where) else "real"
        if k and k != s:
            raise ValueError(f"{where}: kind {k!r} and synthetic {synthetic!r} disagree")
        k = s
    g = (generator or "").strip() or None
    if g is not None and g.lower() == "real":
        if k == "synthetic":
            raise ValueError(f"{where}: a synthetic image with source 'real'")
        k, g = "real", None
    parsed = parse_synthetic_name(image) if image.startswith("synthetic/") else None
    if parsed is not None:
        if k == "real":
            raise ValueError(f"{where}: image {image!r} is named synthetic but marked real")
        k, g = "synthetic", g or parsed[0]
    if k == "real":
        g = None
    elif g is not None and not k:
        k = "synthetic"
    return k, g


@dataclass(frozen=True)
class ImageTruth:
    """Truth about one image from an image table: kind and source (generator) of a synthetic one."""

    kind: str
    generator: str | None


def read_image_table(path: str | os.PathLike) -> dict[str, ImageTruth]:
    """Read an image table: columns ``image`` and ``synthetic`` (1/0) or ``kind``, optional
    ``source`` / ``generator`` (e.g. ``real``, ``PGGAN``, ``StyleGAN``).  Errors name the file, line
    and column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image table not found: {path}")
    out: dict[str, ImageTruth] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        gcol = _pick(header, GENERATOR_COLUMNS)
        if "image" not in header or not ({"synthetic", "kind"} & set(header) or gcol):
            raise ValueError(f"{path}: an image table needs 'image' and 'synthetic' (or 'kind', or 'source'); "
                             f"header is {header}")
        for lineno, row in enumerate(reader, start=2):
            where = f"{path}:{lineno}"
            img = (row["image"] or "").strip()
            kind, gen = _truth_from(row.get("kind"), row.get("synthetic"), row.get(gcol) if gcol else None, img, where)
            if not kind:
                raise ValueError(f"{where}: image {img!r} has no truth (synthetic/kind/source empty)")
            if img in out and out[img] != ImageTruth(kind, gen):
                raise ValueError(f"{where}: image {img!r} appears twice with different truth")
            out[img] = ImageTruth(kind, gen)
    return out


def _participants_to_exclude(rows: list[dict], pcol: str, column: str, path: Path) -> set[str]:
    out = set()
    for lineno, row in enumerate(rows, start=2):
        if _flag(row.get(column), column, f"{path}:{lineno}"):
            out.add(row[pcol])
    return out


def _answer_value(text: str | None, column: str, where: str) -> float:
    t = (text or "").strip().lower()
    if t in _WORDS:
        return _WORDS[t]
    return _float(text, column, where)


def _infer_scale(values: Sequence[float], path: Path) -> AnswerScale:
    """Binary when every answer is 0/1, 1-5 when all lie in 1..5; otherwise ask for the scale."""
    finite = [v for v in values if math.isfinite(v)]
    if all(v in (0.0, 1.0) for v in finite):
        return AnswerScale(0, 1)
    if all(1 <= v <= 5 for v in finite):
        return AnswerScale(1, 5)
    raise ValueError(f"{path}: answers range from {min(finite):g} to {max(finite):g}: say what they mean with "
                     "--answer-scale (e.g. 1-7) and --real-end high|low")


def read_trials(
    path: str | os.PathLike,
    scale: AnswerScale | str | None = None,
    real_end: RealEnd = "high",
    image_table: str | os.PathLike | Mapping[str, ImageTruth] | None = None,
    exclude_column: str | None = None,
    fixations: Any = None,
) -> TrialTable:
    """Read a long table of trials (one row per answer; columns in the module docstring).

    Parameters
    ----------
    path
        CSV file.
    scale
        :class:`AnswerScale` or its name (``binary``, ``likert5``, ``1-7``); None infers binary or
        1-5 from the answers (and asks for the scale when they fit neither).
    real_end
        With a scale name: which end means real.
    image_table
        Truth per image (:func:`read_image_table` or its path); it fills or checks the truth
        columns of the trials.  An image missing from it is an error naming the image.
    exclude_column
        Every participant with a true value (1, true, yes) in this column in any row is left out.
    fixations
        A :class:`gazetune.gaze.FixationTable` (``subject`` = participant): trials get their
        fixations (an empty ``(0, 3)`` array where the table has none for them).

    Out-of-scale answers (such as -1 for "no answer"), rows without an answer and rows whose
    ``status`` is not ``answered`` are left out and counted in ``TrialTable.dropped``.  Malformed
    cells raise ``ValueError`` naming the file, line, column and value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trials file not found: {path}")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    pcol, acol = _pick(header, PARTICIPANT_COLUMNS), _pick(header, ANSWER_COLUMNS)
    missing = [what for what, col in (("participant", pcol), ("image", "image" if "image" in header else None),
                                      ("answer", acol)) if col is None]
    if missing:
        raise ValueError(f"{path}: no {' / '.join(missing)} column (participant: {'/'.join(PARTICIPANT_COLUMNS)}; "
                         f"answer: {'/'.join(ANSWER_COLUMNS)}); header is {header}")
    if exclude_column is not None and exclude_column not in header:
        raise ValueError(f"{path}: --exclude-column {exclude_column!r} is not a column; header is {header}")
    gcol, scol = _pick(header, GENERATOR_COLUMNS), _pick(header, SEED_COLUMNS)
    truth = read_image_table(image_table) if isinstance(image_table, (str, os.PathLike)) else image_table
    dropped: Counter[str] = Counter()
    excluded = _participants_to_exclude(rows, pcol, exclude_column, path) if exclude_column else set()
    kept: list[tuple[int, dict, float]] = []
    for lineno, row in enumerate(rows, start=2):
        where = f"{path}:{lineno}"
        status = (row.get("status") or "").strip()
        if status not in ("", "answered"):
            dropped[f"status {status}"] += 1
            continue
        if row[pcol] in excluded:
            dropped["excluded participant"] += 1
            continue
        value = _answer_value(row[acol], acol, where)
        if math.isnan(value):
            dropped["no answer"] += 1
            continue
        kept.append((lineno, row, value))
    if isinstance(scale, str):
        scale = AnswerScale.parse(scale, real_end)
    if scale is None:
        scale = _infer_scale([v for _, _, v in kept], path) if kept else AnswerScale()
    trials = []
    for lineno, row, value in kept:
        where = f"{path}:{lineno}"
        if not scale.contains(value):
            dropped[f"out of scale: {value:g}"] += 1
            continue
        image = (row["image"] or "").strip()
        kind, gen = _truth_from(row.get("kind"), row.get("synthetic"), row.get(gcol) if gcol else None, image, where)
        if truth is not None:
            if image not in truth:
                raise ValueError(f"{where}: image {image!r} is not in the image table")
            t = truth[image]
            if kind and kind != t.kind:
                raise ValueError(f"{where}: image {image!r} is {kind} here but {t.kind} in the image table")
            kind, gen = t.kind, gen or t.generator
        seed = _float(row.get(scol), scol, where) if scol else math.nan
        parsed = parse_synthetic_name(image) if image.startswith("synthetic/") else None
        seed_value = parsed[1] if parsed is not None else None if math.isnan(seed) else int(seed)
        trials.append(Trial(
            participant=row[pcol], image=image, kind=kind, generator=gen, rt_ms=_float(row.get("rt_ms"), "rt_ms", where),
            realness=scale.realness(value), answer=value,
            latent_seed=seed_value,
            fixations=None if fixations is None else fixations.for_image(image).get(row[pcol], np.zeros((0, 3))),
            condition=(row.get("condition") or "").strip() if kind == "synthetic" else "",
        ))
    return TrialTable(trials, scale, dict(dropped), sorted(excluded), str(path))


def write_trials(trials: Iterable[Trial], path: str | os.PathLike, scale: AnswerScale | None = None) -> Path:
    """Write trials as the trial record CSV (:data:`RECORD_COLUMNS`), read back by :func:`read_trials`
    (with the same ``scale``; fixations go to a fixation table, not here).  Atomic."""
    from gazetune.atomic import atomic_write

    path = Path(path)
    with atomic_write(path, "w", newline="") as fh:
        w = csv.writer(fh)
        trials = list(trials)
        conditions = any(t.condition for t in trials)  # the column only when some trial has one
        w.writerow(["participant", "image", "kind", "generator", "answer", "rt_ms", "seed"] + ["condition"] * conditions)
        for t in trials:
            answer = t.answer if math.isfinite(t.answer) else t.realness
            if scale is None and not math.isfinite(t.answer) and t.answer_real is None:
                raise ValueError(f"trial on {t.image!r} is undecided: write it with its scale")
            w.writerow([t.participant, t.image, t.kind, t.generator or "", f"{answer:g}",
                        "" if not math.isfinite(t.rt_ms) else f"{t.rt_ms:.1f}",
                        "" if t.latent_seed is None else t.latent_seed] + [t.condition] * conditions)
    return path


# ============================================================================ simulation
def from_simulated(sim: Sequence[Any], fixations: Sequence[np.ndarray] | None = None,
                   answer: Literal["binary", "rating"] = "binary", generators: Mapping[str, str] | None = None,
                   participant_prefix: str = "") -> TrialTable:
    """Trials of the simulated observers (:class:`gazetune.observers.SimulatedTrial`).

    ``fixations``: per trial ``(n, 3)`` arrays (e.g. detected from the samples); default the
    observers' true fixations.  ``answer="rating"`` takes the 1-5 rating (5 = real) instead of the
    binary answer.  ``generators`` maps a synthetic image id to its generator version (default:
    the version in a ``synthetic/<version>/<seed>`` name).
    """
    if answer not in ("binary", "rating"):
        raise ValueError(f"answer must be 'binary' or 'rating'; got {answer!r}")
    scale = AnswerScale(0, 1) if answer == "binary" else AnswerScale(1, 5)
    if fixations is not None and len(fixations) != len(sim):
        raise ValueError(f"{len(fixations)} fixation arrays for {len(sim)} trials")
    out = []
    for i, t in enumerate(sim):
        value = float(t.answer_real) if answer == "binary" else float(t.rating)
        gen = (generators or {}).get(t.image_id)
        if gen is None and t.kind == "synthetic" and t.image_id.startswith("synthetic/"):
            gen = parse_synthetic_name(t.image_id)[0]
        fix = fixations[i] if fixations is not None else t.fixations.as_array()
        out.append(Trial(participant_prefix + t.observer_id, t.image_id, t.kind, gen if t.kind == "synthetic" else None,
                         rt_ms=float(t.rt_ms), realness=scale.realness(value), answer=value,
                         latent_seed=t.latent_seed, fixations=fix))
    return TrialTable(out, scale, source="simulated observers")
