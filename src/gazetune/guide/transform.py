"""The admissible image changes of gaze guidance: a smooth local colour field, and a network predicting it.

Gatys et al. (seed 001) found that optimising pixels freely yields adversarial images: invisible
changes that satisfy the saliency model but not people.  Their cure is to restrict the class of
transformations.  Here the restriction is explicit: an image is changed only through a coarse
grid of five local parameters, bilinearly interpolated to every pixel,

* ``detail``: gain of the local detail ``x - blur(x)`` (local contrast and sharpness),
* ``saturation``: gain of the colour around the pixel's grey level,
* ``offset`` (3): additive RGB shift (brightness and colour),

each bounded by a ``tanh`` (:data:`FIELD_LIMITS`).  These are the local cues known to steer
attention (contrast, colour, sharpness), they cannot encode pixel-level adversarial noise, and the
same field applies at any resolution, so it is found on a small working copy and applied to the
full-size image.  :class:`GuideNet` is the feed-forward form (the paper's transformer network):
image, target sign map and frozen perceptual features in, field out.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

#: Bounds of the field channels after ``tanh``: log detail gain, log saturation gain, RGB offset.
FIELD_LIMITS = (0.7, 0.7, 0.25, 0.25, 0.25)
FIELD_CHANNELS = len(FIELD_LIMITS)
#: Standard deviation of the blur that separates detail from the local mean, as a fraction of the width.
DETAIL_SIGMA_FRAC = 1 / 80


def field_grid(height: int, width: int, cols: int = 16) -> tuple[int, int]:
    """``(rows, cols)`` of the field for an image of ``height x width`` (``cols`` across)."""
    return max(1, int(round(cols * height / width))), int(cols)


def bounded(raw: torch.Tensor) -> torch.Tensor:
    """Unconstrained ``(N, 5, h, w)`` parameters -> the field within :data:`FIELD_LIMITS`."""
    limits = torch.tensor(FIELD_LIMITS, dtype=raw.dtype, device=raw.device).view(1, -1, 1, 1)
    return limits * torch.tanh(raw)


def _blur_rgb(x: torch.Tensor, sigma: float) -> torch.Tensor:
    from gazetune.saliency.backbone import blur

    n, c, h, w = x.shape
    return blur(x.reshape(n * c, 1, h, w), sigma).reshape(n, c, h, w)


def apply_field(x: torch.Tensor, field: torch.Tensor) -> torch.Tensor:
    """Apply a bounded field ``(N, 5, h, w)`` to images ``(N, 3, H, W)`` in ``[-1, 1]``.

    ``y = m + e^detail (x - m)``, ``m`` the local mean (Gaussian blur, sigma ``W / 80``); then
    ``y = g + e^saturation (y - g)``, ``g`` the grey level; then ``y + offset``, clipped to
    ``[-1, 1]``.  A zero field returns ``x`` unchanged.
    """
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W); got shape {tuple(x.shape)}")
    if field.ndim != 4 or field.shape[1] != FIELD_CHANNELS or field.shape[0] not in (1, x.shape[0]):
        raise ValueError(f"field must be (N, {FIELD_CHANNELS}, h, w); got shape {tuple(field.shape)}")
    f = F.interpolate(field.to(x.dtype), size=x.shape[-2:], mode="bilinear", align_corners=False)
    low = _blur_rgb(x, DETAIL_SIGMA_FRAC * x.shape[-1])
    y = low + torch.exp(f[:, 0:1]) * (x - low)
    grey = y.mean(dim=1, keepdim=True)
    y = grey + torch.exp(f[:, 1:2]) * (y - grey)
    return (y + f[:, 2:5]).clamp(-1, 1)


class _Res(nn.Module):
    """Residual block: two 3 x 3 convolutions with instance norm; the input is added before the last ReLU."""

    def __init__(self, ch: int):
        super().__init__()
        self.a = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.InstanceNorm2d(ch, affine=True), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.InstanceNorm2d(ch, affine=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x + self.b(self.a(x)))


class GuideNet(nn.Module):
    """Feed-forward gaze guidance: ``(image, target sign map, features) -> raw field``.

    Parameters
    ----------
    feature_channels
        Channels of the perceptual features given to :meth:`forward` (a frozen Inception tap).
    width
        Channels inside the network.
    blocks
        Residual blocks at the field's resolution.
    grid_cols
        Columns of the field grid (rows from the aspect ratio, see :func:`field_grid`).

    Notes
    -----
    ``forward(x, sign_map, feats)``: ``x`` ``(N, 3, H, W)`` in ``[-1, 1]``, ``sign_map``
    ``(N, 1, H, W)`` (+1 inside a region to draw gaze to, -1 inside one to draw it away, 0
    elsewhere), ``feats`` ``(N, C, h, w)``.  Returns raw parameters ``(N, 5, rows, cols)``; pass
    them through :func:`bounded` and :func:`apply_field`.  The last layer starts at zero, so an
    untrained network changes nothing.
    """

    def __init__(self, feature_channels: int = 768, width: int = 32, blocks: int = 3, grid_cols: int = 16):
        super().__init__()
        self.config = {"feature_channels": feature_channels, "width": width, "blocks": blocks, "grid_cols": grid_cols}
        self.grid_cols = grid_cols
        self.pixels = nn.Sequential(
            nn.Conv2d(4, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.InstanceNorm2d(width, affine=True), nn.ReLU(),
        )  # fmt: skip
        self.features = nn.Conv2d(feature_channels, width, 1)
        self.mix = nn.Sequential(nn.Conv2d(2 * width + 1, width, 3, padding=1), nn.ReLU(), *[_Res(width) for _ in range(blocks)])
        self.head = nn.Conv2d(width, FIELD_CHANNELS, 3, padding=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor, sign_map: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        grid = field_grid(x.shape[2], x.shape[3], self.grid_cols)
        p = F.adaptive_avg_pool2d(self.pixels(torch.cat([x, sign_map], dim=1)), grid)
        f = F.interpolate(self.features(feats), size=grid, mode="bilinear", align_corners=False)
        s = F.adaptive_avg_pool2d(sign_map, grid)
        return self.head(self.mix(torch.cat([p, f, s], dim=1)))


def guide_net_grid(net: GuideNet, shape: Sequence[int]) -> tuple[int, int]:
    """Field grid of ``net`` for an image of ``shape = (H, W)``."""
    return field_grid(int(shape[0]), int(shape[1]), net.grid_cols)
