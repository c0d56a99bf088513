"""Human judgements of realism: fool rate and HYPE-infinity error rate with confidence intervals.

A real-vs-fake study produces one **trial** per shown image: a participant saw an image (real, or
synthetic from some generator version) and answered "real" or "fake".  Two rates summarise it:

* **fool rate**: the share of synthetic images that were called real (higher = more realistic);
* **HYPE-infinity error rate** (Zhou et al., "HYPE: A Benchmark for Human eYe Perceptual Evaluation
  of Generative Models", NeurIPS 2019): the share of wrong answers over real and synthetic images
  together; 0.5 means people cannot tell the generator's images from real ones.

Both participants and images are random samples of larger populations, and answers of one
participant (or on one image) are correlated.  A plain binomial interval ignores this and is too
narrow; :func:`fool_rate` and :func:`error_rate` therefore default to a **two-way bootstrap**
that resamples participants and images independently and weighs each trial by the product of how
often its participant and its image were drawn (Owen, "The pigeonhole bootstrap", Annals of
Applied Statistics 2007).  The Wilson score interval of a plain binomial is available as
``method="wilson"``.

Trials are the project's one trial record, :class:`gazetune.trials.Trial` (re-exported here): a
verdict ``answer_real`` of None (the middle of a rating scale) is undecided and left out of every
rate; :func:`read_trials_csv` reads any long table (:func:`gazetune.trials.read_trials`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

import numpy as np

from gazetune.stats import RateEstimate, _check_confidence, two_way_bootstrap, wilson_interval  # noqa: F401 (re-exported)
from gazetune.trials import AnswerScale, Trial, TrialTable, read_trials, write_trials

Method = Literal["bootstrap", "wilson"]
__all__ = ["Trial", "RateEstimate", "read_trials_csv", "write_trials_csv", "wilson_interval", "two_way_bootstrap",
           "fool_rate", "error_rate", "called_real", "study_rates", "GeneratorRates", "SourceRate"]


# ----------------------------------------------------------------------------------------------
# reading trials


def read_trials_csv(
    path: str | os.PathLike,
    scale: AnswerScale | str | None = None,
    real_end: Literal["high", "low"] = "high",
    image_table: str | os.PathLike | None = None,
    exclude_column: str | None = None,
) -> TrialTable:
    """Read trials from a CSV long table: the trial record, the study's ``trials`` export or
    another study's table (:func:`gazetune.trials.read_trials`, which documents the columns).

    ``scale`` (``binary``, ``likert5``, ``1-7``, ...; None infers binary or 1-5) and ``real_end``
    say what an answer means; ``image_table`` gives the truth per image; ``exclude_column`` drops
    the participants it marks.  Out-of-scale answers and unanswered rows are counted in
    ``TrialTable.dropped``.  Raises ``FileNotFoundError`` for a missing file and ``ValueError``
    naming the file, line and column of the first bad cell.
    """
    return read_trials(path, scale, real_end, image_table=image_table, exclude_column=exclude_column)


def write_trials_csv(trials: Iterable[Trial], path: str | os.PathLike) -> None:
    """Write trials in a format read by :func:`read_trials_csv` (:func:`gazetune.trials.write_trials`)."""
    write_trials(trials, path)


def _estimate(
    outcomes: np.ndarray, trials: Sequence[Trial], method: Method, n_boot: int, confidence: float, seed: int
) -> RateEstimate:
    if method == "bootstrap":
        return two_way_bootstrap(
            outcomes, [t.participant for t in trials], [t.image for t in trials],
            image_strata=[t.kind for t in trials], n_boot=n_boot, confidence=confidence, seed=seed,
        )
    if method == "wilson":
        k, n = int(np.sum(outcomes)), len(outcomes)
        if n == 0:
            raise ValueError("no trials to estimate a rate from")
        lo, hi = wilson_interval(k, n, confidence)
        return RateEstimate(
            rate=k / n, lo=lo, hi=hi, n=n, n_participants=len({t.participant for t in trials}),
            n_images=len({t.image for t in trials}), confidence=confidence, method="wilson",
        )
    raise ValueError(f"method must be 'bootstrap' or 'wilson'; got {method!r}")


# ----------------------------------------------------------------------------------------------
# the rates


def _decided(trials: Iterable[Trial]) -> list[Trial]:
    """Trials with a verdict (undecided answers, the middle of a rating scale, count in no rate)."""
    return [t for t in trials if t.answer_real is not None]


def _check_truth(trials: Sequence[Trial]) -> None:
    unknown = [t for t in trials if not t.kind]
    if unknown:
        raise ValueError(f"{len(unknown)} trials have no truth (real or synthetic), e.g. image {unknown[0].image!r}: "
                         "give a kind/synthetic column or an image table")
    nameless = [t for t in trials if t.kind == "synthetic" and not t.generator]
    if nameless:
        raise ValueError(f"{len(nameless)} synthetic trials have no generator version, e.g. image "
                         f"{nameless[0].image!r}: give a generator/generator_version/source column")


def fool_rate(
    trials: Sequence[Trial],
    generator: str | None = None,
    method: Method = "bootstrap",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RateEstimate:
    """Share of synthetic images that participants called real.

    Parameters
    ----------
    trials
        Trial records; real trials are ignored.
    generator
        Only synthetic trials of this source (:attr:`Trial.source <gazetune.trials.Trial.source>`: a
        generator version, or ``version/condition`` for images shown in a condition such as a
        study's guided variants); ``None`` pools all.
    method
        ``"bootstrap"`` (participants x images, see :func:`two_way_bootstrap`) or ``"wilson"``.
    n_boot, confidence, seed
        Bootstrap replicates, nominal coverage, resampling seed.

    Returns
    -------
    RateEstimate
        Rate in [0, 1] and its interval; ``n`` is the number of decided synthetic trials.
    """
    fake = [t for t in _decided(trials) if t.kind == "synthetic" and (generator is None or t.source == generator)]
    if not fake:
        which = "any generator" if generator is None else f"generator {generator!r}"
        raise ValueError(f"no synthetic trials of {which}")
    y = np.array([t.answer_real for t in fake], dtype=np.float64)
    return _estimate(y, fake, method, n_boot, confidence, seed)


def error_rate(
    trials: Sequence[Trial],
    generator: str | None = None,
    method: Method = "bootstrap",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> RateEstimate:
    """HYPE-infinity error rate: share of wrong answers over real and synthetic images together.

    For one ``generator`` the synthetic trials are that version's and the real trials are those of
    the participants who saw at least one of its images (real images are shared between versions
    when a study interleaves them).  ``None`` uses every trial.  0.5 means chance: people cannot
    tell; it can exceed 0.5 when fakes look more real than the reals.

    Parameters and return value as in :func:`fool_rate`; ``n`` counts real plus synthetic trials.
    """
    trials = _decided(trials)
    if generator is None:
        chosen = list(trials)
    else:
        fake = [t for t in trials if t.kind == "synthetic" and t.source == generator]
        seen = {t.participant for t in fake}
        chosen = fake + [t for t in trials if t.kind == "real" and t.participant in seen]
    if not any(t.kind == "synthetic" for t in chosen):
        which = "any generator" if generator is None else f"generator {generator!r}"
        raise ValueError(f"no synthetic trials of {which}")
    if not any(t.kind == "real" for t in chosen):
        raise ValueError("no real trials: the HYPE error rate needs real images too (use fool_rate)")
    y = np.array([not t.correct for t in chosen], dtype=np.float64)
    return _estimate(y, chosen, method, n_boot, confidence, seed)


@dataclass(frozen=True)
class GeneratorRates:
    """Human rates of one generator version (a row of a study summary)."""

    generator: str
    fool: RateEstimate
    error: RateEstimate | None
    median_rt_ms: float

    def as_dict(self) -> dict[str, object]:
        return {
            "generator": self.generator, "fool_rate": self.fool.as_dict(),
            "hype_error_rate": None if self.error is None else self.error.as_dict(),
            "median_rt_ms": self.median_rt_ms,
        }


def study_rates(
    trials: Sequence[Trial],
    method: Method = "bootstrap",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[GeneratorRates]:
    """Fool rate and HYPE-infinity error rate of every generator version in ``trials`` (each
    condition of a version, :attr:`Trial.source <gazetune.trials.Trial.source>`, on its own row).

    Versions are sorted by name; ``error`` is ``None`` when the study has no real trials.  Every
    trial needs its truth, and a synthetic one its generator version (``ValueError`` otherwise);
    undecided answers are left out.
    ``median_rt_ms`` is the median response time on that version's synthetic images (NaN if unknown).
    """
    _check_truth(trials)
    versions = sorted({t.source for t in trials if t.kind == "synthetic" and t.source})
    if not versions:
        raise ValueError("no synthetic trials in the study")
    has_real = any(t.kind == "real" for t in trials)
    rows = []
    for v in versions:
        rows.append(GeneratorRates(
            generator=v,
            fool=fool_rate(trials, v, method, n_boot, confidence, seed),
            error=error_rate(trials, v, method, n_boot, confidence, seed) if has_real else None,
            median_rt_ms=_median_rt([t for t in trials if t.source == v and t.kind == "synthetic"]),
        ))
    return rows


def _median_rt(trials: Sequence[Trial]) -> float:
    rts = np.array([t.rt_ms for t in trials], dtype=float)
    return float(np.nanmedian(rts)) if np.any(np.isfinite(rts)) else float("nan")


@dataclass(frozen=True)
class SourceRate:
    """Share of trials called real for one source (``real`` or a generator version)."""

    source: str
    called_real: RateEstimate
    n_undecided: int
    median_rt_ms: float

    def as_dict(self) -> dict[str, object]:
        return {"source": self.source, "called_real": self.called_real.as_dict(), "n_undecided": self.n_undecided,
                "median_rt_ms": self.median_rt_ms}


def called_real(
    trials: Sequence[Trial],
    method: Method = "bootstrap",
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> list[SourceRate]:
    """Rate of "called real" per source: the real images first, then each generator version.

    For real images it is the share of correct answers, for a generator its fool rate; set side by
    side they show whether people call that generator's faces real more often than real photos.
    Undecided answers are left out (counted in ``n_undecided``); intervals as in :func:`fool_rate`.
    """
    _check_truth(trials)
    groups: dict[str, list[Trial]] = {}
    for t in trials:
        groups.setdefault("real" if t.kind == "real" else str(t.source), []).append(t)
    order = (["real"] if "real" in groups else []) + sorted(k for k in groups if k != "real")
    rows = []
    for src in order:
        ts = groups[src]
        decided = _decided(ts)
        if not decided:
            raise ValueError(f"source {src!r}: every one of its {len(ts)} answers is undecided")
        y = np.array([t.answer_real for t in decided], dtype=np.float64)
        rows.append(SourceRate(src, _estimate(y, decided, method, n_boot, confidence, seed), len(ts) - len(decided),
                               _median_rt(ts)))
    return rows
