"""Losses of gaze guidance (Gatys, Kümmerer, Wallis, Bethge, seed 001, eq 3-9) and its targets.

* saliency loss (eq 3): KL from the predicted to the target fixation density,
  :func:`gazetune.saliency.losses.kl_loss` with a softmax density;
* feature (content) loss (eq 4) and texture (Gram) loss (eq 5-6):
  :mod:`gazetune.features.losses`, here divided by the size of the original image's features
  (:func:`relative_feature_loss`, :func:`relative_gram_loss`) so that every weight is a
  dimensionless fraction;
* patch LSGAN losses (eq 7, 8) with a small patch discriminator (:class:`PatchDiscriminator`),
  averaged over positions instead of summed.

Targets: a region given as fractions of the image (:func:`parse_region`, :func:`region_mask`)
becomes a target density by scaling the current prediction inside the region
(:func:`region_target`); a target map image becomes a density directly (:func:`map_target`).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gazetune.features.losses import feature_loss, gram_loss, gram_matrix

#: Default factor by which the target multiplies the predicted density inside the region.
REGION_FACTOR = 4.0


def parse_region(text: str | Sequence[float]) -> tuple[float, float, float, float]:
    """``"L,T,W,H"`` (fractions of width and height) -> a validated tuple."""
    parts = [p for p in text.replace(" ", "").split(",")] if isinstance(text, str) else list(text)
    try:
        vals = tuple(float(p) for p in parts)
    except ValueError:
        raise ValueError(f"region must be four numbers L,T,W,H; got {text!r}") from None
    if len(vals) != 4:
        raise ValueError(f"region must be four numbers L,T,W,H (fractions of width and height); got {text!r}")
    left, top, w, h = vals
    if min(vals) < 0 or w <= 0 or h <= 0 or left + w > 1 + 1e-9 or top + h > 1 + 1e-9:
        raise ValueError(f"region {vals} must lie inside the image: 0 <= L, T; W, H > 0; L + W <= 1; T + H <= 1")
    return left, top, w, h


def region_mask(region: Sequence[float], shape: Sequence[int]) -> np.ndarray:
    """``(H, W)`` float32 mask: the fraction of each pixel covered by the region (1 inside)."""
    left, top, w, h = parse_region(region)
    height, width = int(shape[0]), int(shape[1])

    def cover(lo: float, hi: float, n: int) -> np.ndarray:
        edges = np.arange(n + 1) / n
        return np.clip(np.minimum(edges[1:], hi) - np.maximum(edges[:-1], lo), 0, None) * n

    return np.outer(cover(top, top + h, height), cover(left, left + w, width)).astype(np.float32)


def region_target(density: torch.Tensor, mask: torch.Tensor, factor: float = REGION_FACTOR, away: bool = False) -> torch.Tensor:
    """Target density: ``density * factor^(+-mask)`` renormalised (``away``: divide inside the region).

    ``density`` ``(N, H, W)`` or ``(H, W)`` sums to 1 per image; ``mask`` ``(H, W)`` in ``[0, 1]``.
    """
    if factor <= 1:
        raise ValueError(f"factor must be > 1; got {factor}")
    gain = torch.as_tensor(factor, dtype=density.dtype) ** ((-1.0 if away else 1.0) * mask.to(density.dtype))
    t = density * gain
    return t / t.sum(dim=(-2, -1), keepdim=True)


def map_target(target_map: np.ndarray | torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """A non-negative target map of any size -> ``(H, W)`` density at ``shape`` (area resampling)."""
    t = torch.as_tensor(np.asarray(target_map, dtype=np.float32))
    if t.ndim != 2:
        raise ValueError(f"target map must be 2-D (H, W); got shape {tuple(t.shape)}")
    if (t < 0).any() or t.sum() <= 0:
        raise ValueError("target map must be non-negative with a positive sum")
    t = F.interpolate(t[None, None], size=tuple(int(s) for s in shape), mode="area")[0, 0]
    return t / t.sum()


def relative_feature_loss(feats: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Feature loss (eq 4) of each layer divided by the mean square of the reference features, summed."""
    total = torch.zeros(())
    for name in feats:
        scale = ref[name].detach().square().mean().clamp_min(1e-8)
        total = total + feature_loss(feats[name], ref[name].detach()) / scale
    return total


def relative_gram_loss(feats: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Texture loss (eq 5-6, equal layer weights) of each layer divided by ``sum G_ref^2 / C^2``."""
    total = torch.zeros(())
    for name in feats:
        g = gram_matrix(ref[name].detach())
        scale = (g.square().sum(dim=(1, 2)).mean() / g.shape[1] ** 2).clamp_min(1e-12)
        total = total + gram_loss(feats[name], ref[name].detach()) / scale
    return total


def lsgan_generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Eq 7: ``(1 - D(I_hat))^2``, averaged over positions and images."""
    return (1 - d_fake).square().mean()


def lsgan_discriminator_loss(d_fake: torch.Tensor, d_real: torch.Tensor) -> torch.Tensor:
    """Eq 8: ``1/2 (D(I_hat)^2 + (1 - D(I))^2)``, averaged over positions and images."""
    return 0.5 * (d_fake.square().mean() + (1 - d_real).square().mean())


class PatchDiscriminator(nn.Module):
    """Patch discriminator (PatchGAN-like, receptive field 26 px): ``(N, 3, H, W) -> (N, 1, H/4, W/4)``."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1), nn.GroupNorm(8, 2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GroupNorm(8, 2 * width), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 1, 3, padding=1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
