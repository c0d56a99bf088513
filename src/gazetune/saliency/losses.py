"""Losses for the saliency model, one function per equation.

Patent (seed 000) eq 5-8: per-pixel binary cross-entropy between the predicted map
``SM_pred = sigmoid(logits)`` (eq 4) and the heatmap scaled to ``[0, 1]`` (eq 5-6), optionally
weighted with an inverted Gaussian centred on the image to counter the central fixation bias
(eq 7-8).  Gatys et al. (seed 001) eq 3: the KL divergence from the predicted to the target
saliency density.  :func:`cc_loss` (``1 - CC``) is an extra, the usual companion of KL when a
saliency model is trained for the correlation-type metrics.

All losses take **logits** ``(N, 1, H, W)`` (or ``(N, H, W)``) and a target of the same number of
pixels, and are computed in a numerically stable way (``log sigmoid`` instead of ``log`` of a
sigmoid).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.nn import functional as F

Density = Literal["sigmoid", "softmax"]
Reduction = Literal["mean", "sum", "none"]


def _flat(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both as ``(N, H, W)``; errors name the mismatch."""
    if logits.ndim == 4:
        if logits.shape[1] != 1:
            raise ValueError(f"logits must have one channel (N, 1, H, W); got {tuple(logits.shape)}")
        logits = logits[:, 0]
    if target.ndim == 4:
        if target.shape[1] != 1:
            raise ValueError(f"target must have one channel (N, 1, H, W); got {tuple(target.shape)}")
        target = target[:, 0]
    if logits.ndim != 3 or logits.shape != target.shape:
        raise ValueError(
            f"logits and target must both be (N, H, W) or (N, 1, H, W) of the same size; "
            f"got {tuple(logits.shape)} and {tuple(target.shape)}"
        )
    return logits, target.to(logits.dtype)


def _reduce(per_pixel: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return per_pixel.mean()
    if reduction == "sum":
        return per_pixel.sum()
    if reduction == "none":
        return per_pixel
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")


def _bce_per_pixel(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    if torch.any((target < 0) | (target > 1)):
        raise ValueError("BCE target heatmap must lie in [0, 1] (use heatmap(..., normalize='max'))")
    # -(y log s(z) + (1 - y) log(1 - s(z))), with log(1 - s(z)) = log s(-z)
    return -(target * F.logsigmoid(logits) + (1 - target) * F.logsigmoid(-logits))


def bce_loss(logits: torch.Tensor, target: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """Per-pixel binary cross-entropy, patent eq 5-6.

    ``l_ij = -(I_heatmap_ij log SM_pred_ij + (1 - I_heatmap_ij) log(1 - SM_pred_ij))`` with
    ``SM_pred = sigmoid(logits)`` (eq 4).  Eq 6 sums ``l_ij`` over the pixels; ¶92 speaks of the
    average, which is the default here.

    Parameters
    ----------
    logits
        ``(N, 1, H, W)`` or ``(N, H, W)`` model outputs before the sigmoid.
    target
        Heatmap in ``[0, 1]`` of the same size (``normalize="max"``).
    reduction
        ``"mean"`` over all pixels and images (default), ``"sum"`` (eq 6 summed over the batch) or
        ``"none"`` (``(N, H, W)`` per-pixel values).

    Returns
    -------
    torch.Tensor
        The loss in nats (scalar unless ``reduction="none"``).
    """
    logits, target = _flat(logits, target)
    return _reduce(_bce_per_pixel(logits, target), reduction)


def center_weight(height: int, width: int, k: float, sigma: float) -> torch.Tensor:
    """Inverted-Gaussian centre weights, patent eq 8.

    ``w_ij = 1 - 1/(1 + k) * exp(-((i - i_c)^2 + (j - j_c)^2) / (2 sigma^2))`` with ``i`` the row,
    ``j`` the column and ``(i_c, j_c) = ((H - 1) / 2, (W - 1) / 2)`` the image centre in pixel
    indices.  The weight is ``k / (1 + k)`` at the centre and tends to 1 far from it; a larger
    ``k`` flattens the dip (less regularisation, ¶95).

    Parameters
    ----------
    height, width
        Map size in pixels.
    k
        Weight of the Gaussian, ``k > 0``.
    sigma
        Standard deviation of the Gaussian in pixels, ``sigma > 0``.

    Returns
    -------
    torch.Tensor
        ``(height, width)`` float32 weights in ``(0, 1)``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive; got {height} x {width}")
    if not k > 0:
        raise ValueError(f"k must be > 0 (eq 8); got {k}")
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0 pixels (eq 8); got {sigma}")
    i = torch.arange(height, dtype=torch.float64)[:, None] - (height - 1) / 2
    j = torch.arange(width, dtype=torch.float64)[None, :] - (width - 1) / 2
    w = 1.0 - torch.exp(-(i**2 + j**2) / (2.0 * sigma**2)) / (1.0 + k)
    return w.to(torch.float32)


def weighted_bce_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    k: float = 1.0,
    sigma: float | None = None,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Centre-weighted per-pixel BCE, patent eq 7 with the weights of eq 8.

    ``l = -sum_ij w_ij [I_ij log SM_ij + (1 - I_ij) log(1 - SM_ij)]`` with ``w`` from
    :func:`center_weight`.

    Parameters
    ----------
    logits, target
        As in :func:`bce_loss`.
    k
        Eq 8 ``k > 0``.
    sigma
        Eq 8 ``sigma`` in pixels; default a quarter of the map's smaller side.
    reduction
        ``"mean"``: ``sum(w * l) / (number of pixels)`` (weights are not renormalised, so for a
        given ``k`` the loss is on the same scale as :func:`bce_loss`); ``"sum"`` (eq 7, summed over
        the batch) or ``"none"``.
    """
    logits, target = _flat(logits, target)
    height, width = logits.shape[-2:]
    if sigma is None:
        sigma = min(height, width) / 4.0
    w = center_weight(height, width, k, sigma).to(logits.device, logits.dtype)
    return _reduce(w * _bce_per_pixel(logits, target), reduction)


def log_density(logits: torch.Tensor, density: Density = "sigmoid") -> torch.Tensor:
    """Log of the predicted saliency density of each image, ``(N, H, W)``, summing to 1 per image.

    ``"sigmoid"``: ``p = SM_pred / sum SM_pred`` (eq 4's map made a density);
    ``"softmax"``: ``p = softmax(logits)`` over the pixels.
    """
    if logits.ndim == 4:
        logits = logits[:, 0]
    if density == "sigmoid":
        logp = F.logsigmoid(logits)
    elif density == "softmax":
        logp = logits
    else:
        raise ValueError(f"density must be 'sigmoid' or 'softmax'; got {density!r}")
    flat = logp.flatten(1)
    return (flat - torch.logsumexp(flat, dim=1, keepdim=True)).view_as(logp)


def _target_density(target: torch.Tensor) -> torch.Tensor:
    if torch.any(target < 0):
        raise ValueError("target map must be non-negative")
    total = target.flatten(1).sum(1)
    if torch.any(total <= 0):
        raise ValueError("target map is all zeros for at least one image; it has no density")
    return target / total[:, None, None]


def kl_loss(logits: torch.Tensor, target: torch.Tensor, density: Density = "sigmoid") -> torch.Tensor:
    """KL divergence from the predicted to the target saliency density (Gatys et al., eq 3).

    ``KL = sum_xy p_t(x, y) log(p_t(x, y) / p(x, y))`` where ``p_t`` is ``target`` normalised to
    sum 1 per image and ``p`` the model's density (:func:`log_density`).  Pixels with
    ``p_t = 0`` contribute 0.  Averaged over the batch; in nats.

    Parameters
    ----------
    logits
        ``(N, 1, H, W)`` or ``(N, H, W)`` model outputs.
    target
        Non-negative maps of the same size (any scale; each image needs a positive sum).
    density
        How logits become a density, see :func:`log_density`.
    """
    logits, target = _flat(logits, target)
    pt = _target_density(target)
    logp = log_density(logits, density)
    per_image = (torch.special.xlogy(pt, pt) - pt * logp).flatten(1).sum(1)
    return per_image.mean()


def cc_loss(logits: torch.Tensor, target: torch.Tensor, density: Density = "sigmoid") -> torch.Tensor:
    """``1 - CC``: one minus Pearson's correlation between predicted density and target, batch mean.

    Not an equation of the patent; the correlation coefficient (CC) is a standard saliency metric
    and ``KL + (1 - CC)`` a common training objective.  In ``[0, 2]``; 0 for a perfect linear match.
    """
    logits, target = _flat(logits, target)
    p = log_density(logits, density).exp().flatten(1)
    t = target.flatten(1)
    p = p - p.mean(1, keepdim=True)
    t = t - t.mean(1, keepdim=True)
    cc = (p * t).sum(1) / (p.norm(dim=1) * t.norm(dim=1) + 1e-12)
    return (1 - cc).mean()


def nss_loss(logits: torch.Tensor, target: torch.Tensor, density: Density = "sigmoid") -> torch.Tensor:
    """``-NSS`` against a target map: minus the target-weighted mean of the standardised density.

    ``NSS_t = sum_xy p_t(x, y) (p(x, y) - mean p) / std p`` with ``p_t`` the target normalised to
    sum 1 and ``p`` the model's density (:func:`log_density`; population standard deviation over
    the pixels).  With a target that is a sum of unit impulses at the fixations this is the NSS
    metric (Peters et al. 2005) itself; with a blurred heatmap it is NSS over the blurred
    fixations.  Not an equation of the patent; NSS is the headline metric of the saliency tables,
    and ``KL + (1 - CC) - NSS`` a common objective.  Unbounded below; batch mean.
    """
    logits, target = _flat(logits, target)
    pt = _target_density(target).flatten(1)
    p = log_density(logits, density).exp().flatten(1)
    z = (p - p.mean(1, keepdim=True)) / (p.std(1, unbiased=False, keepdim=True) + 1e-12)
    return -(pt * z).sum(1).mean()
