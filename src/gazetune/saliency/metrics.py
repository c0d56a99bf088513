"""Saliency metrics on one image (NumPy), with the definitions of pysaliency.

Location-based metrics score a saliency map at fixations: :func:`auc_judd`, :func:`shuffled_auc`,
:func:`nss`, :func:`information_gain`.  Distribution-based metrics compare two maps:
:func:`cc`, :func:`sim`, :func:`kld`.  The definitions follow pysaliency (Kümmerer, Wallis, Bethge,
"Saliency benchmarking made easy", ECCV 2018) and are checked against it in the tests; the
conventions that differ are stated in each docstring.

Fixations are ``(n, 2)`` arrays of ``x, y`` in pixels of the map with **pixel centres at
integers** (the convention of :func:`gazetune.gaze.heatmap`): a fixation falls in pixel
``(round(y), round(x))`` (halves round up).  pysaliency puts pixel centres at ``+0.5`` and
truncates (``int(x)``); both pick the same pixel for ``x_pysaliency = x + 0.5``.  Fixations outside
the map are an error.
"""

from __future__ import annotations

import numpy as np

#: Standard deviation of the tie-breaking noise added by :func:`auc_judd` (pysaliency's default).
JUDD_JITTER = 1e-7


def _map(saliency_map: np.ndarray, name: str = "saliency_map") -> np.ndarray:
    m = np.asarray(saliency_map, dtype=np.float64)
    if m.ndim != 2 or m.size == 0:
        raise ValueError(f"{name} must be a non-empty 2-D (H, W) array; got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name} has non-finite values")
    return m


def fixation_pixels(fixations: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Row and column index of each fixation: ``(floor(y + 0.5), floor(x + 0.5))``.

    Raises ``ValueError`` for a malformed array, no fixations, or a fixation outside the map.
    """
    fix = np.asarray(fixations, dtype=np.float64)
    if fix.ndim != 2 or fix.shape[1] < 2:
        raise ValueError(f"fixations must be an (n, 2) array of x, y pixels; got shape {fix.shape}")
    if len(fix) == 0:
        raise ValueError("no fixations to score")
    if not np.all(np.isfinite(fix[:, :2])):
        raise ValueError("fixations contain non-finite coordinates")
    cols = np.floor(fix[:, 0] + 0.5).astype(np.int64)
    rows = np.floor(fix[:, 1] + 0.5).astype(np.int64)
    outside = (rows < 0) | (rows >= shape[0]) | (cols < 0) | (cols >= shape[1])
    if np.any(outside):
        i = int(np.argmax(outside))
        raise ValueError(f"fixation {i} at x={fix[i, 0]}, y={fix[i, 1]} is outside the {shape[0]}x{shape[1]} map")
    return rows, cols


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2.0))


def _count_at_least(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return len(sorted_values) - np.searchsorted(sorted_values, thresholds, side="left")


def auc_judd(saliency_map: np.ndarray, fixations: np.ndarray, jitter: bool = True, seed: int = 42) -> float:
    """AUC-Judd: area under the ROC of fixated against unfixated pixels, thresholds at fixations.

    Positives are the map values at the fixations (a pixel fixated twice counts twice), negatives
    all pixels not fixated.  The thresholds are the positives' values (plus one above and one below
    everything); the ROC points are ``(FPR, TPR)`` with ``TPR = #{pos >= t} / #pos`` and
    ``FPR = #{neg >= t} / #neg`` and the area is the trapezoid rule.  With ``jitter`` Gaussian noise
    of standard deviation ``1e-7`` from ``numpy.random.RandomState(seed)`` is added to the map first
    to break ties, as pysaliency's ``AUC_Judd`` does (same noise for the same seed and shape).

    Returns
    -------
    float
        In ``[0, 1]``; 0.5 is chance.  NaN when every pixel is fixated (no negatives).
    """
    m = _map(saliency_map)
    rows, cols = fixation_pixels(fixations, m.shape)
    if jitter:
        m = m + np.random.RandomState(seed).randn(*m.shape) * JUDD_JITTER
    fixated = np.zeros(m.shape, dtype=bool)
    fixated[rows, cols] = True
    negatives = np.sort(m[~fixated])
    if len(negatives) == 0:
        return float("nan")
    positives = np.sort(m[rows, cols])
    lowest = min(positives[0], negatives[0])
    highest = max(positives[-1], negatives[-1]) + 1
    thresholds = np.concatenate([[highest], positives[::-1], [lowest]])
    tpr = np.concatenate([[0.0], _count_at_least(positives, thresholds) / len(positives)])
    fpr = np.concatenate([[0.0], _count_at_least(negatives, thresholds) / len(negatives)])
    return _trapezoid(tpr, fpr)


def _auc_all_thresholds(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Area under the full ROC = P(pos > neg) + 0.5 P(pos == neg) (Mann-Whitney)."""
    negatives = np.sort(negatives)
    below = np.searchsorted(negatives, positives, side="left")
    at_or_below = np.searchsorted(negatives, positives, side="right")
    return float(np.mean((below + 0.5 * (at_or_below - below)) / len(negatives)))


def shuffled_auc(saliency_map: np.ndarray, fixations: np.ndarray, other_fixations: np.ndarray) -> float:
    """Shuffled AUC: fixations on this image against the fixations made on other images.

    Positives are the map values at ``fixations``, negatives the values at ``other_fixations``
    (the fixations of other images, already scaled to this map's pixels); the area under the ROC
    over all thresholds equals ``P(pos > neg) + 0.5 P(pos == neg)``.  Centre bias alone scores about
    0.5.  Matches pysaliency's ``sAUC`` for one image (which rescales the other images' fixations
    itself and averages over fixations across images).
    """
    m = _map(saliency_map)
    rows, cols = fixation_pixels(fixations, m.shape)
    nrows, ncols = fixation_pixels(other_fixations, m.shape)
    return _auc_all_thresholds(m[rows, cols], m[nrows, ncols])


def nss(saliency_map: np.ndarray, fixations: np.ndarray) -> float:
    """Normalized scanpath saliency: mean over fixations of ``(s(x) - mean(s)) / std(s)``.

    ``std`` is the population standard deviation (``ddof = 0``); a constant map scores 0.
    Averaged over the fixations of this image (pysaliency averages over all fixations of a data
    set by default; per image this is the same).
    """
    m = _map(saliency_map)
    rows, cols = fixation_pixels(fixations, m.shape)
    std = m.std()
    values = m[rows, cols] - m.mean()
    return float(np.mean(values / std if std > 0 else values))


def cc(map_a: np.ndarray, map_b: np.ndarray) -> float:
    """Pearson's linear correlation coefficient between two maps of the same shape.

    0 when either map is constant (pysaliency returns NaN when the second map is constant).
    """
    a, b = _map(map_a, "map_a"), _map(map_b, "map_b")
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape; got {a.shape} and {b.shape}")
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else 0.0


def to_density(saliency_map: np.ndarray, eps: float = 0.0) -> np.ndarray:
    """Make a map a density: subtract the minimum if negative, add ``eps``, divide by the sum.

    An all-zero map becomes uniform.  (pysaliency's ``convert_saliency_map_to_density``.)
    """
    m = _map(saliency_map)
    if m.min() < 0:
        m = m - m.min()
    m = m + eps
    total = m.sum()
    return m / total if total > 0 else np.full(m.shape, 1.0 / m.size)


def sim(map_a: np.ndarray, map_b: np.ndarray) -> float:
    """Similarity (histogram intersection): ``sum(min(p_a, p_b))`` of the two maps as densities.

    In ``[0, 1]``; 1 for identical densities.
    """
    a, b = to_density(map_a), to_density(map_b)
    if a.shape != b.shape:
        raise ValueError(f"maps must have the same shape; got {a.shape} and {b.shape}")
    return float(np.minimum(a, b).sum())


def kld(predicted: np.ndarray, target: np.ndarray, eps: float = 1e-20) -> float:
    """Image-based KL divergence ``sum p_t log(p_t / p)`` of the target from the predicted map, nats.

    Both maps are made densities with ``eps`` added to every pixel (pysaliency's
    ``image_based_kl_divergence`` with its default ``minimum_value = 1e-20``; the MIT benchmark's
    variant regularises inside the log instead and gives slightly different numbers).  Lower is
    better; 0 for identical maps.
    """
    p, t = to_density(predicted, eps), to_density(target, eps)
    if p.shape != t.shape:
        raise ValueError(f"maps must have the same shape; got {p.shape} and {t.shape}")
    return float(np.sum(t * (np.log(t) - np.log(p))))


def information_gain(
    saliency_map: np.ndarray, baseline_map: np.ndarray, fixations: np.ndarray, eps: float = 0.0
) -> float:
    """Information gain over a baseline: mean over fixations of ``log2 p(x) - log2 b(x)``, bits.

    ``p`` and ``b`` are the two maps made densities (:func:`to_density` with ``eps``); use a
    probabilistic prediction (a density, not an arbitrary monotone map) for a meaningful value.
    Matches pysaliency's ``information_gain`` with both models' log densities ``log p``, ``log b``
    (fixation-averaged).  A fixation on a pixel of zero density in ``p`` gives ``-inf``.
    """
    m = _map(saliency_map)
    rows, cols = fixation_pixels(fixations, m.shape)
    p, b = to_density(m, eps), to_density(baseline_map, eps)
    if p.shape != b.shape:
        raise ValueError(f"maps must have the same shape; got {p.shape} and {b.shape}")
    with np.errstate(divide="ignore"):
        return float(np.mean(np.log2(p[rows, cols]) - np.log2(b[rows, cols])))


LOCATION_METRICS = ("NSS", "AUC-Judd", "sAUC", "IG")
DISTRIBUTION_METRICS = ("CC", "KLD", "SIM")
ALL_METRICS = ("NSS", "CC", "AUC-Judd", "sAUC", "KLD", "SIM", "IG")
#: Whether a larger value is better, per metric name.
HIGHER_IS_BETTER = {"NSS": True, "CC": True, "AUC-Judd": True, "sAUC": True, "KLD": False, "SIM": True, "IG": True}


def all_metrics(
    saliency_map: np.ndarray,
    fixations: np.ndarray,
    target_map: np.ndarray,
    other_fixations: np.ndarray,
    baseline_map: np.ndarray,
) -> dict[str, float]:
    """Every metric of one map in a dict keyed by :data:`ALL_METRICS` names."""
    return {
        "NSS": nss(saliency_map, fixations),
        "CC": cc(saliency_map, target_map),
        "AUC-Judd": auc_judd(saliency_map, fixations),
        "sAUC": shuffled_auc(saliency_map, fixations, other_fixations),
        "KLD": kld(saliency_map, target_map),
        "SIM": sim(saliency_map, target_map),
        "IG": information_gain(saliency_map, baseline_map, fixations),
    }
