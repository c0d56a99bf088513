"""Scores of a model of the human judge, and the ceilings and baselines to read them against.

People disagree: the same face is called real by some and fake by others, so no model can
predict every answer.  Two ceilings bound what any image-level predictor can reach, and one
baseline shows how far modelling people is from detecting fakes:

* **answer AUC** (:func:`auc`): P(real) of the trial's image against each decided answer
  (Mann-Whitney; the middle of a rating scale is left out).
* **image Spearman**: rank correlation of P(real) with the image's mean realness over its answers.
* **split-half ceiling** (:func:`split_half_reliability`): participants split at random into two
  halves; the Spearman correlation ``r`` of the per-image mean realness of the halves, stepped up
  to the full panel by Spearman-Brown, ``2 r / (1 + r)``, averaged over splits.  The image
  Spearman of a perfect model of the panel's mean.
* **oracle ceiling** (:func:`loo_oracle_auc`): each answer predicted by the mean realness of the
  same image over all *other* answers (leave one out): the answer AUC of a model that knows each
  image's true mean.
* **truth baseline** (:func:`truth_baseline`): a perfect fake detector (1 = real image, 0 =
  synthetic) scored the same way, against the answers and the per-image means.  Where people call
  a generator's faces real more often than real photos, it sits far below the ceilings.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from scipy import stats

from gazetune.saliency.metrics import _auc_all_thresholds


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for boolean ``positive``: P(pos > neg) + 0.5
    P(pos == neg) (Mann-Whitney).  NaN when one class is empty.

    >>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
    """
    s = np.asarray(scores, dtype=np.float64)
    pos = np.asarray(positive, dtype=bool)
    if pos.all() or not pos.any():
        return math.nan
    return _auc_all_thresholds(s[pos], s[~pos])


def auc_bootstrap_ci(
    scores: np.ndarray, positive: np.ndarray, groups: Sequence[str], n_boot: int = 500, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap CI of :func:`auc`, resampling whole ``groups`` (participants) with
    replacement, so trials of one person are not treated as independent."""
    g = np.asarray(groups)
    uniq = np.unique(g)
    rows = [np.flatnonzero(g == u) for u in uniq]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        pick = np.concatenate([rows[i] for i in rng.integers(0, len(uniq), len(uniq))])
        v = auc(scores[pick], positive[pick])
        if np.isfinite(v):
            vals.append(v)
    if not vals:
        return (math.nan, math.nan)
    lo, hi = np.quantile(vals, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def image_means(images: Sequence[str], realness: np.ndarray) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Per image: (sorted ids, mean realness, number of answers)."""
    ids, inv, counts = np.unique(np.asarray(images, dtype=object).astype(str), return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=np.asarray(realness, dtype=np.float64), minlength=len(ids))
    return list(ids), sums / counts, counts


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (average ranks for ties); NaN with fewer than 3 pairs or a
    constant side."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(stats.spearmanr(a, b)[0])


def split_half_reliability(participants: Sequence[str], images: Sequence[str], realness: np.ndarray,
                           n_splits: int = 50, seed: int = 0) -> float:
    """Spearman-Brown split-half reliability of the per-image mean realness (see module
    docstring); images answered in only one half of a split are left out of that split."""
    p = np.asarray(participants, dtype=object).astype(str)
    img = np.asarray(images, dtype=object).astype(str)
    r = np.asarray(realness, np.float64)
    uniq = np.unique(p)
    if len(uniq) < 2:
        return math.nan
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_splits):
        half = np.isin(p, rng.permutation(uniq)[: len(uniq) // 2])
        ia, ma, _ = image_means(img[half], r[half])
        ib, mb, _ = image_means(img[~half], r[~half])
        common = sorted(set(ia) & set(ib))
        pa, pb = dict(zip(ia, ma)), dict(zip(ib, mb))
        rho = spearman(np.array([pa[k] for k in common]), np.array([pb[k] for k in common]))
        if np.isfinite(rho) and rho > -1:
            values.append(2 * rho / (1 + rho))
    return float(np.mean(values)) if values else math.nan


def loo_oracle_auc(images: Sequence[str], realness: np.ndarray, answer_real: np.ndarray) -> float:
    """Answer AUC of the leave-one-out image mean (see module docstring).  ``answer_real`` is
    1 (called real), 0 (fake) or NaN (undecided: left out as a target, kept in the means)."""
    img = np.asarray(images, dtype=object).astype(str)
    r = np.asarray(realness, np.float64)
    ids, inv = np.unique(img, return_inverse=True)
    sums = np.bincount(inv, weights=r, minlength=len(ids))
    counts = np.bincount(inv, minlength=len(ids))
    others = counts[inv] - 1
    with np.errstate(invalid="ignore", divide="ignore"):
        loo = np.where(others > 0, (sums[inv] - r) / others, np.nan)
    v = np.asarray(answer_real, np.float64)
    keep = np.isfinite(v) & np.isfinite(loo)
    return auc(loo[keep], v[keep] > 0.5)


def truth_baseline(images: Sequence[str], realness: np.ndarray, answer_real: np.ndarray,
                   is_real: np.ndarray) -> dict[str, float]:
    """A perfect fake detector scored like a model: ``answer_auc`` and ``image_spearman``."""
    return judge_scores(np.asarray(is_real, np.float64), images, realness, answer_real)


def judge_scores(p_real: np.ndarray, images: Sequence[str], realness: np.ndarray,
                 answer_real: np.ndarray) -> dict[str, float]:
    """``answer_auc`` and ``image_spearman`` of per-trial predictions ``p_real`` (the prediction
    for the trial's image), against the trials' answers (``answer_real`` 1 / 0 / NaN undecided)
    and the per-image mean ``realness``."""
    p = np.asarray(p_real, np.float64)
    v = np.asarray(answer_real, np.float64)
    keep = np.isfinite(v)
    ids, means, _ = image_means(images, realness)
    first = {}
    for name, value in zip(np.asarray(images, dtype=object).astype(str), p):
        first.setdefault(name, value)
    return {"answer_auc": auc(p[keep], v[keep] > 0.5),
            "image_spearman": spearman(np.array([first[k] for k in ids]), means),
            "n_answers": int(keep.sum()), "n_images": len(ids)}


def ceilings(participants: Sequence[str], images: Sequence[str], realness: np.ndarray, answer_real: np.ndarray,
             is_real: np.ndarray | None = None, seed: int = 0) -> dict[str, float]:
    """The ceilings and, with ``is_real`` (per trial), the truth baseline of a set of trials:
    ``split_half_spearman_brown``, ``oracle_answer_auc``, ``truth_answer_auc``,
    ``truth_image_spearman``."""
    out = {"split_half_spearman_brown": split_half_reliability(participants, images, realness, seed=seed),
           "oracle_answer_auc": loo_oracle_auc(images, realness, answer_real)}
    if is_real is not None:
        tb = truth_baseline(images, realness, answer_real, is_real)
        out.update(truth_answer_auc=tb["answer_auc"], truth_image_spearman=tb["image_spearman"])
    return out
