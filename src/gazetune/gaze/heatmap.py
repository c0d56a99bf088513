"""Fixation heatmaps (patent eq 3 and ¶80).

Each fixation ``(x_i, y_i, dur_i)`` of eq 3 becomes an isotropic Gaussian centred on it and
weighted by its duration; the heatmap is their sum.  Because an isotropic Gaussian is separable,
the sum over ``n`` fixations is the matrix product ``G_y^T diag(w) G_x`` of an ``(n, H)`` and an
``(n, W)`` matrix: exact, vectorised, and ``O(n (H + W) + H W n)`` with BLAS instead of a Python
loop over pixels or fixations.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np

Normalize = Literal["max", "sum", "none"]


def _as_fixation_array(fixations: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    arr = np.asarray(fixations, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 3), dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ValueError(
            f"fixations must be an (n, 3) array of x, y, duration_ms (or (n, 2) of x, y); got shape {arr.shape}"
        )
    if arr.shape[1] == 2:  # unweighted fixations: every one counts the same
        arr = np.concatenate([arr, np.ones((arr.shape[0], 1))], axis=1)
    if not np.all(np.isfinite(arr)):
        bad = int(np.argmax(~np.all(np.isfinite(arr), axis=1)))
        raise ValueError(f"fixation {bad} has a non-finite value: {arr[bad].tolist()}")
    if np.any(arr[:, 2] < 0):
        bad = int(np.argmax(arr[:, 2] < 0))
        raise ValueError(f"fixation {bad} has a negative duration_ms: {arr[bad, 2]}")
    return arr


def _check_args(shape: tuple[int, int], sigma: float, normalize: str) -> tuple[int, int]:
    height, width = (int(shape[0]), int(shape[1]))
    if height <= 0 or width <= 0:
        raise ValueError(f"shape must be two positive integers (height, width); got {shape}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels; got {sigma}")
    if normalize not in ("max", "sum", "none"):
        raise ValueError(f"normalize must be 'max', 'sum' or 'none'; got {normalize!r}")
    return height, width


def _gaussians(fix: np.ndarray, height: int, width: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """The separable factors: ``(n, H)`` Gaussians in y and ``(n, W)`` in x, peak 1."""
    ys = np.arange(height, dtype=np.float64)
    xs = np.arange(width, dtype=np.float64)
    gy = np.exp(-0.5 * ((ys[None, :] - fix[:, 1:2]) / sigma) ** 2)
    gx = np.exp(-0.5 * ((xs[None, :] - fix[:, 0:1]) / sigma) ** 2)
    return gy, gx


def heatmap(
    fixations: np.ndarray | Sequence[Sequence[float]],
    shape: tuple[int, int],
    sigma: float,
    normalize: Normalize = "max",
) -> np.ndarray:
    """Duration-weighted Gaussian heatmap of fixations (eq 3, ¶80).

    Parameters
    ----------
    fixations
        ``(n, 3)`` array of ``x, y, duration_ms``; ``x`` and ``y`` in pixels of the image (``x``
        to the right, ``y`` down, pixel centres at integers).  An ``(n, 2)`` array of ``x, y``
        weighs every fixation equally.  Fixations outside the image still contribute their tails.
    shape
        ``(height, width)`` of the map in pixels.
    sigma
        Standard deviation of each Gaussian in pixels (about one degree of visual angle; see
        :func:`gazetune.gaze.geometry.ScreenGeometry.deg_to_px`).
    normalize
        ``"max"`` scales the map to [0, 1] (targets for BCE, eq 5-7); ``"sum"`` makes it a density
        summing to 1 (KL, metrics); ``"none"`` returns the raw sum with weights in seconds.

    Returns
    -------
    numpy.ndarray
        float32 array of ``shape``.  All zeros when there are no fixations (or all durations are 0).

    Examples
    --------
    >>> m = heatmap([[2, 1, 300]], (3, 5), sigma=1.0)
    >>> m.shape, float(m[1, 2])
    ((3, 5), 1.0)
    """
    height, width = _check_args(shape, sigma, normalize)
    fix = _as_fixation_array(fixations)
    if not len(fix):
        return _normalize(np.zeros((height, width)), normalize)
    weights = fix[:, 2] / 1000.0  # seconds: keeps raw sums readable
    gy, gx = _gaussians(fix, height, width, sigma)
    out = (gy * weights[:, None]).T @ gx
    return _normalize(out, normalize)


def _normalize(m: np.ndarray, normalize: Normalize) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if normalize == "max":
        peak = m.max() if m.size else 0.0
        if peak > 0:
            m = m / peak
    elif normalize == "sum":
        total = m.sum()
        if total > 0:
            m = m / total
    return m.astype(np.float32)


def pooled_heatmap(
    fixations_per_observer: Sequence[np.ndarray],
    shape: tuple[int, int],
    sigma: float,
    normalize: Normalize = "max",
) -> np.ndarray:
    """Map of one image pooled over observers (¶58: average the responses).

    Each observer's map is first made a density (so an observer with long trials does not
    dominate), then the densities are averaged, then ``normalize`` is applied.  Observers without
    fixations are skipped.  Returns a float32 ``(H, W)`` map; zeros when nobody fixated.
    """
    height, width = _check_args(shape, sigma, normalize)
    arrays = [_as_fixation_array(f) for f in fixations_per_observer]
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        return np.zeros((height, width), dtype=np.float32)
    # One matrix product for all observers: observer o's raw map sums to
    # sum_i w_i * sum(gy_i) * sum(gx_i) over its fixations (the Gaussians are separable), so
    # weighting each fixation by w_i / (that total * n_observers) gives the mean of densities.
    fix = np.concatenate(arrays)
    weights = fix[:, 2] / 1000.0
    gy, gx = _gaussians(fix, height, width, sigma)
    owner = np.repeat(np.arange(len(arrays)), [len(a) for a in arrays])
    totals = np.bincount(owner, weights=weights * gy.sum(axis=1) * gx.sum(axis=1), minlength=len(arrays))
    inv = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0) / len(arrays)
    out = (gy * (weights * inv[owner])[:, None]).T @ gx
    return _normalize(out, normalize)
