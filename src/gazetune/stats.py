"""Rates with confidence intervals, shared by every stage that reports a proportion.

:class:`RateEstimate` (a proportion and its interval), :func:`wilson_interval` (one binomial
sample) and :func:`two_way_bootstrap` (trials crossed by participants and images, Owen 2007).
This module sits below the stages: the study's exports and dashboard
(:mod:`gazetune.study.export`) and the evaluation (:mod:`gazetune.evaluate.human`) use the same
intervals without the study importing a later stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np


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
    from scipy import stats  # imported here: scipy.stats costs about a second at start-up

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


