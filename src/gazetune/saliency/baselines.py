"""Reference predictors for saliency evaluation: centre bias and inter-observer consistency.

* **Centre bias** (lower reference): viewers look at the image centre regardless of content.
  :func:`gaussian_center_bias` fits a 2-D Gaussian (mean and full covariance) to the training
  fixations, in coordinates relative to the image size; :func:`mean_map_center_bias` averages
  training maps.  Either is a content-free density; it is also the baseline of the information
  gain.
* **Inter-observer consistency** (upper reference, "how well does one person predict another"):
  leave one observer out, build the pooled map of the others (:func:`leave_one_out_maps`), score
  it on the held-out observer's fixations.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np

from gazetune.gaze import heatmap


def _stack_xy(fixations: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    if isinstance(fixations, np.ndarray):
        parts = [fixations]
    else:
        parts = [np.asarray(f, dtype=np.float64).reshape(-1, np.asarray(f).shape[-1]) for f in fixations if len(f)]
    if not parts:
        raise ValueError("no fixations to fit a centre bias to")
    xy = np.concatenate([p[:, :2] for p in parts]).astype(np.float64)
    if not np.all(np.isfinite(xy)):
        raise ValueError("fixations contain non-finite coordinates")
    return xy


def gaussian_center_bias(
    fixations: Sequence[np.ndarray] | np.ndarray, shape: tuple[int, int], fit_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Centre-bias density: a 2-D Gaussian fitted to fixation positions.

    Parameters
    ----------
    fixations
        ``(n, 2)`` array (or a list of them) of ``x, y`` in pixels of ``fit_shape``.
    shape
        ``(height, width)`` of the returned map.
    fit_shape
        ``(height, width)`` of the images the fixations belong to (default ``shape``).  Positions
        are divided by it, so the fit transfers to any resolution with the same framing.

    Returns
    -------
    numpy.ndarray
        ``(height, width)`` float64 density (sums to 1): the Gaussian with the sample mean and the
        sample covariance of the relative positions ``((x + 0.5) / W, (y + 0.5) / H)``, evaluated
        at the pixel centres.
    """
    fit_shape = tuple(fit_shape or shape)
    xy = _stack_xy(fixations)
    if len(xy) < 3:
        raise ValueError(f"need at least 3 fixations to fit a Gaussian centre bias; got {len(xy)}")
    rel = (xy + 0.5) / np.array([fit_shape[1], fit_shape[0]], dtype=np.float64)
    mean = rel.mean(axis=0)
    cov = np.cov(rel, rowvar=False) + 1e-6 * np.eye(2)
    inv = np.linalg.inv(cov)
    height, width = int(shape[0]), int(shape[1])
    gx = (np.arange(width) + 0.5) / width - mean[0]
    gy = (np.arange(height) + 0.5) / height - mean[1]
    dx, dy = np.meshgrid(gx, gy)
    quad = inv[0, 0] * dx**2 + 2 * inv[0, 1] * dx * dy + inv[1, 1] * dy**2
    dens = np.exp(-0.5 * quad)
    return dens / dens.sum()


def mean_map_center_bias(maps: np.ndarray) -> np.ndarray:
    """Centre-bias density: the mean of training maps ``(N, H, W)``, each first made a density."""
    maps = np.asarray(maps, dtype=np.float64)
    if maps.ndim != 3 or len(maps) == 0:
        raise ValueError(f"maps must be a non-empty (N, H, W) array; got shape {maps.shape}")
    sums = maps.sum(axis=(1, 2), keepdims=True)
    if np.any(sums <= 0):
        raise ValueError("every map needs a positive sum to be made a density")
    mean = (maps / sums).mean(axis=0)
    return mean / mean.sum()


def leave_one_out_maps(
    fixations_by_subject: Mapping[str, np.ndarray],
    shape: tuple[int, int],
    sigma: float,
    prior: np.ndarray | None = None,
    prior_weight: float = 0.05,
) -> Iterator[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:
    """For each observer: the density of all *other* observers and the observer's own fixations.

    Parameters
    ----------
    fixations_by_subject
        ``{subject: (n, 2) x, y}`` in map pixels (one image).
    shape, sigma
        Map size and Gaussian standard deviation (pixels).  The others' map is the mean of their
        individual densities, as :func:`gazetune.gaze.pooled_heatmap` pools observers (computed
        once per observer and subtracted from the total, not rebuilt for every held-out observer).
    prior, prior_weight
        The others' density is mixed as ``(1 - prior_weight) * map + prior_weight * prior``
        (default prior: uniform), so that no pixel has zero density (information gain, KLD) --
        the usual regularisation of an empirical "gold standard" map.

    Yields
    ------
    (subject, density, held_out, own)
        ``density``: the others' ``(H, W)`` float64 density; ``held_out``: the subject's ``(n, 2)``
        fixations; ``own``: the subject's own density (same ``sigma``).  Observers without
        fixations, and images with fewer than two observers, yield nothing.
    """
    if not 0 <= prior_weight <= 1:
        raise ValueError(f"prior_weight must be in [0, 1]; got {prior_weight}")
    subjects = [s for s in sorted(fixations_by_subject) if len(fixations_by_subject[s])]
    if len(subjects) < 2:
        return
    prior = np.full(shape, 1.0, dtype=np.float64) if prior is None else np.asarray(prior, dtype=np.float64)
    prior = prior / prior.sum()
    own = {s: heatmap(np.asarray(fixations_by_subject[s])[:, :2], shape, sigma, "sum").astype(np.float64) for s in subjects}
    total = sum(own.values())
    for held in subjects:
        dens = (total - own[held]) / (len(subjects) - 1)
        dens = (1 - prior_weight) * dens / dens.sum() + prior_weight * prior
        yield held, dens, np.asarray(fixations_by_subject[held])[:, :2], own[held]
