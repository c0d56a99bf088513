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

The trial record on disk is a CSV (see :func:`read_trials_csv`)::

    participant,image,kind,generator,answer_real,rt_ms
    p01,real_0007.png,real,,1,1840
    p01,g3_seed42,synthetic,v3,0,2210
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Sequence

import numpy as np
from scipy import stats

Kind = Literal["real", "synthetic"]
Method = Literal["bootstrap", "wilson"]

_TRUE = {"1", "true", "yes", "real", "r"}
_FALSE = {"0", "false", "no", "fake", "f", "synthetic"}


@dataclass(frozen=True)
class Trial:
    """One answer of one participant on one image.

    Attributes
    ----------
    participant
        Participant id.
    image
        Image id (file name, or ``"<version>/<seed>"`` for a synthetic image).
    kind
        ``"real"`` or ``"synthetic"``.
    generator
        Generator version of a synthetic image; ``None`` (or ``""``) for real images.
    answer_real
        True when the participant called the image real.
    rt_ms
        Response time in milliseconds (NaN when unknown).
    """

    participant: str
    image: str
    kind: Kind
    generator: str | None
    answer_real: bool
    rt_ms: float = float("nan")

    def __post_init__(self) -> None:
        if self.kind not in ("real", "synthetic"):
            raise ValueError(f"trial kind must be 'real' or 'synthetic'; got {self.kind!r}")
        if self.kind == "synthetic" and not self.generator:
            raise ValueError(f"synthetic trial on image {self.image!r} has no generator version")

    @property
    def correct(self) -> bool:
        """True when the answer matches the truth (real called real, synthetic called fake)."""
        return self.answer_real == (self.kind == "real")


@dataclass(frozen=True)
class RateEstimate:
    """A proportion with its confidence interval.

    Attributes
    ----------
    rate
        Point estimate in [0, 1] (share of trials).
    lo, hi
        Lower and upper bound of the confidence interval, in [0, 1].
    n
        Number of trials behind the estimate.
    n_participants, n_images
        Distinct participants and images behind the estimate.
    confidence
        Nominal coverage of ``[lo, hi]`` (e.g. 0.95).
    method
        ``"bootstrap"`` (two-way, participants x images) or ``"wilson"``.
    """

    rate: float
    lo: float
    hi: float
    n: int
    n_participants: int = 0
    n_images: int = 0
    confidence: float = 0.95
    method: str = "bootstrap"

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "rate": self.rate, "lo": self.lo, "hi": self.hi, "n": self.n,
            "n_participants": self.n_participants, "n_images": self.n_images,
            "confidence": self.confidence, "method": self.method,
        }

    def __str__(self) -> str:
        return f"{self.rate:.3f} [{self.lo:.3f}, {self.hi:.3f}] (n={self.n})"


# ----------------------------------------------------------------------------------------------
# reading trials


def _parse_bool(value: str, where: str) -> bool:
    v = str(value).strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ValueError(f"{where}: answer_real must be 1/0, true/false or real/fake; got {value!r}")


def read_trials_csv(path: str | os.PathLike, scale: Literal["auto", "binary", "rating"] = "auto") -> list[Trial]:
    """Read trials from a CSV: the trial record, or the study's ``trials`` export.

    The trial record has columns ``participant, image, kind, generator, answer_real, rt_ms``:
    ``kind`` is ``real`` or ``synthetic``; ``generator`` is empty for real images;
    ``answer_real`` is ``1``/``0``, ``true``/``false`` or ``real``/``fake``; ``rt_ms`` (optional
    column) is the response time in milliseconds.

    The study export (``gazetune.study``; columns ``participant_id, image, kind,
    generator_version, status, answer, rt_ms``) is read too: rows whose ``status`` is not
    ``answered`` are skipped; ``answer`` is 1 (real) / 0 (generated) on the binary scale, or a
    1-5 rating (5 = surely real) counted as "called real" when it is 4 or 5.  ``scale="auto"``
    takes ratings when any answer is above 1.

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and line of
    the first bad row.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"trials file not found: {path}")
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    export = "answer_real" not in header and {"participant_id", "generator_version", "answer"} <= set(header)
    if export:
        rows = [r for r in rows if r.get("status", "answered") == "answered" and (r.get("answer") or "") != ""]
        answers = [float(r["answer"]) for r in rows if _is_number(r["answer"])]
        rating = scale == "rating" or (scale == "auto" and any(a > 1 for a in answers))
        header = [{"participant_id": "participant", "generator_version": "generator", "answer": "answer_real"}.get(h, h) for h in header]
    need = ("participant", "image", "kind", "generator", "answer_real")
    missing = [c for c in need if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; header is {header}")
    trials: list[Trial] = []
    for lineno, row in enumerate(rows, start=2):
        where = f"{path}:{lineno}"
        if export:
            row = {"participant": row["participant_id"], "generator": row["generator_version"],
                   "answer_real": _rating_to_real(row["answer"], rating, where), **row}
        rt = row.get("rt_ms") or "nan"
        if not _is_number(rt):
            raise ValueError(f"{where}: rt_ms is not a number: {rt!r}")
        try:
            trials.append(Trial(
                participant=row["participant"], image=row["image"], kind=row["kind"].strip(),  # type: ignore[arg-type]
                generator=(row["generator"] or "").strip() or None,
                answer_real=_parse_bool(row["answer_real"], where), rt_ms=float(rt),
            ))
        except ValueError as err:
            if str(err).startswith(where):
                raise
            raise ValueError(f"{where}: {err}") from None
    return trials


def _is_number(v: object) -> bool:
    try:
        float(v)  # type: ignore[arg-type]
        return True
    except (TypeError, ValueError):
        return False


def _rating_to_real(answer: str, rating: bool, where: str) -> str:
    if not _is_number(answer):
        raise ValueError(f"{where}: answer is not a number: {answer!r}")
    a = float(answer)
    if rating:
        if not 1 <= a <= 5:
            raise ValueError(f"{where}: rating answer must be in 1..5; got {answer!r}")
        return "1" if a >= 4 else "0"
    if a not in (0, 1):
        raise ValueError(f"{where}: binary answer must be 0 (generated) or 1 (real); got {answer!r}")
    return str(int(a))


def write_trials_csv(trials: Iterable[Trial], path: str | os.PathLike) -> None:
    """Write trials in the format read by :func:`read_trials_csv`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["participant", "image", "kind", "generator", "answer_real", "rt_ms"])
        for t in trials:
            w.writerow([t.participant, t.image, t.kind, t.generator or "", int(t.answer_real), t.rt_ms])


# ----------------------------------------------------------------------------------------------
# intervals


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n``.

    Parameters
    ----------
    k
        Number of successes, ``0 <= k <= n``.
    n
        Number of trials, ``n >= 1``.
    confidence
        Nominal coverage in (0, 1).

    Returns
    -------
    (lo, hi)
        Interval bounds in [0, 1].

    Examples
    --------
    >>> lo, hi = wilson_interval(50, 100)
    >>> round(lo, 3), round(hi, 3)
    (0.404, 0.596)
    """
    _check_confidence(confidence)
    if n < 1:
        raise ValueError(f"n must be >= 1 trial; got {n}")
    if not 0 <= k <= n:
        raise ValueError(f"k must be in [0, n={n}]; got {k}")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1); got {confidence}")


def _codes(labels: Sequence[str]) -> tuple[np.ndarray, int]:
    _, inverse = np.unique(np.asarray(labels, dtype=object).astype(str), return_inverse=True)
    return inverse.astype(np.int64), int(inverse.max()) + 1 if len(inverse) else 0


def _weighted_means(w: np.ndarray, y: np.ndarray) -> np.ndarray:
    tot = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(tot > 0, (w @ y) / tot, np.nan)


def two_way_bootstrap(
    outcomes: np.ndarray,
    participants: Sequence[str],
    images: Sequence[str],
    image_strata: Sequence[str] | None = None,
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    correct: bool = True,
) -> RateEstimate:
    """Proportion of ``outcomes`` with a participants x images bootstrap percentile interval.

    Each replicate draws participants with replacement and, independently, images with
    replacement (within each stratum of ``image_strata``, e.g. real and synthetic, so their
    balance is kept).  A trial then counts ``c_p * c_i`` times, where ``c_p`` and ``c_i`` are how
    often its participant and its image were drawn; the replicate's rate is the weighted mean.
    Replicates in which no drawn participant saw a drawn image are skipped.

    The plain two-way bootstrap counts the trial-level variance twice and is conservative
    (Owen 2007): with independent answers its 95% interval covers about 99% of the time.  With
    ``correct=True`` (default) the replicates are shrunk around their mean to the variance
    ``var_participants + var_images - p (1 - p) / n`` (one-way bootstrap variances from the same
    draws, each times ``G / (G - 1)`` for its ``G`` groups, minus the binomial variance counted in
    both), bounded below by the larger one-way
    variance and above by the two-way one; percentiles of the shrunk replicates give the interval.

    Parameters
    ----------
    outcomes
        ``(n,)`` array of 0/1 (bool) outcomes, one per trial.
    participants, images
        ``(n,)`` participant and image id of each trial.
    image_strata
        Optional ``(n,)`` stratum label of each trial's image; an image must stay in one stratum.
    n_boot
        Number of bootstrap replicates.
    confidence
        Nominal coverage of the percentile interval.
    seed
        Seed of the resampling (results are reproducible).
    correct
        Remove the double-counted trial-level variance (see above); ``False`` gives the plain
        pigeonhole bootstrap.

    Returns
    -------
    RateEstimate
        ``method="bootstrap"``.
    """
    _check_confidence(confidence)
    y = np.asarray(outcomes, dtype=np.float64).reshape(-1)
    n = len(y)
    if n == 0:
        raise ValueError("no trials to estimate a rate from")
    if len(participants) != n or len(images) != n:
        raise ValueError(
            f"outcomes, participants and images must have one entry per trial; "
            f"got {n}, {len(participants)}, {len(images)}"
        )
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1; got {n_boot}")
    p_idx, n_p = _codes(participants)
    i_idx, n_i = _codes(images)
    strata = np.zeros(n_i, dtype=np.int64)
    if image_strata is not None:
        s_idx, _ = _codes(image_strata)
        strata[i_idx] = s_idx
        if np.any(strata[i_idx] != s_idx):
            raise ValueError("an image id appears in more than one stratum (e.g. both real and synthetic)")
    rng = np.random.default_rng(seed)
    rate = float(y.mean())
    both, by_p, by_i = [], [], []
    chunk = max(1, min(n_boot, 2_000_000 // max(n, 1)))
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        cp = rng.multinomial(n_p, np.full(n_p, 1.0 / n_p), size=b).astype(np.float64)[:, p_idx]
        ci = np.zeros((b, n_i))
        for s in np.unique(strata):
            members = np.flatnonzero(strata == s)
            ci[:, members] = rng.multinomial(len(members), np.full(len(members), 1.0 / len(members)), size=b)
        ci = ci[:, i_idx]
        both.append(_weighted_means(cp * ci, y))
        by_p.append(_weighted_means(cp, y))
        by_i.append(_weighted_means(ci, y))
        done += b
    r = np.concatenate(both)
    r = r[np.isfinite(r)]
    if correct and len(r) > 1:
        # The product weights count the trial-level (residual) variance twice; estimate the
        # variance as var(participants only) + var(images only) - binomial variance and shrink
        # the two-way replicates around their mean to it (never below either one-way variance).
        # (one-way bootstrap variances carry the factor (G - 1) / G of G resampled groups; undo it)
        v_p = np.nanvar(np.concatenate(by_p)) * n_p / max(n_p - 1, 1)
        v_i = np.nanvar(np.concatenate(by_i)) * n_i / max(n_i - 1, 1)
        v_both = float(np.var(r))
        target = min(v_both, max(v_p + v_i - rate * (1 - rate) / n, v_p, v_i))
        if v_both > 0:
            r = r.mean() + (r - r.mean()) * math.sqrt(target / v_both)
    alpha = 1 - confidence
    if len(r):
        lo, hi = np.clip(np.quantile(r, [alpha / 2, 1 - alpha / 2]), 0.0, 1.0)
    else:  # pragma: no cover - only with pathological designs
        lo, hi = 0.0, 1.0
    return RateEstimate(
        rate=rate, lo=float(lo), hi=float(hi), n=n, n_participants=n_p,
        n_images=n_i, confidence=confidence, method="bootstrap",
    )


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
# the two rates


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
        Only synthetic trials of this generator version; ``None`` pools all versions.
    method
        ``"bootstrap"`` (participants x images, see :func:`two_way_bootstrap`) or ``"wilson"``.
    n_boot, confidence, seed
        Bootstrap replicates, nominal coverage, resampling seed.

    Returns
    -------
    RateEstimate
        Rate in [0, 1] and its interval; ``n`` is the number of synthetic trials.
    """
    fake = [t for t in trials if t.kind == "synthetic" and (generator is None or t.generator == generator)]
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
    if generator is None:
        chosen = list(trials)
    else:
        fake = [t for t in trials if t.kind == "synthetic" and t.generator == generator]
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
    """Fool rate and HYPE-infinity error rate of every generator version in ``trials``.

    Versions are sorted by name; ``error`` is ``None`` when the study has no real trials.
    ``median_rt_ms`` is the median response time on that version's synthetic images (NaN if unknown).
    """
    versions = sorted({t.generator for t in trials if t.kind == "synthetic" and t.generator})
    if not versions:
        raise ValueError("no synthetic trials in the study")
    has_real = any(t.kind == "real" for t in trials)
    rows = []
    for v in versions:
        rts = np.array([t.rt_ms for t in trials if t.generator == v and t.kind == "synthetic"], dtype=float)
        rows.append(GeneratorRates(
            generator=v,
            fool=fool_rate(trials, v, method, n_boot, confidence, seed),
            error=error_rate(trials, v, method, n_boot, confidence, seed) if has_real else None,
            median_rt_ms=float(np.nanmedian(rts)) if np.any(np.isfinite(rts)) else float("nan"),
        ))
    return rows
