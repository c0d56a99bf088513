"""Building blocks shared by the U-Nets of the project (saliency model, U-Net discriminator,
human-response model).  Plain PyTorch, readable top to bottom.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


def _norm(channels: int, kind: str) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)  # up to 8 groups that divide evenly
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; use 'batch', 'group' or 'none'")


def init_weights(module: nn.Module, slope: float = 0.2) -> None:
    """Kaiming-normal weights for leaky ReLU (negative ``slope``) and zero biases in every
    convolution and linear layer of ``module`` (in place).

    PyTorch's default (Kaiming-uniform with ``a = sqrt(5)``) shrinks the signal at every layer;
    without normalisation a deep stack then outputs its biases whatever the input (see
    :mod:`gazetune.nets.discriminator`).
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            weight = getattr(m, "parametrizations", None)
            w = m.parametrizations.weight.original if weight is not None and hasattr(weight, "weight") else m.weight
            nn.init.kaiming_normal_(w, a=slope, nonlinearity="leaky_relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class ConvBlock(nn.Module):
    """Two 3x3 convolutions, each followed by normalisation and a leaky ReLU; keeps H x W."""

    def __init__(self, in_ch: int, out_ch: int, norm: str = "group", spectral: bool = False, slope: float = 0.2):
        super().__init__()
        wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        self.conv1 = wrap(nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.norm1 = _norm(out_ch, norm)
        self.conv2 = wrap(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.norm2 = _norm(out_ch, norm)
        self.slope = slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.norm1(self.conv1(x)), self.slope)
        return F.leaky_relu(self.norm2(self.conv2(x)), self.slope)


class Down(nn.Module):
    """Average-pool by 2 then :class:`ConvBlock`: (N, in, H, W) -> (N, out, H/2, W/2)."""

    def __init__(self, in_ch: int, out_ch: int, **kw):
        super().__init__()
        self.block = ConvBlock(in_ch, out_ch, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(F.avg_pool2d(x, 2, ceil_mode=True))


class Up(nn.Module):
    """Upsample to the skip's size, concatenate the skip, :class:`ConvBlock`.

    (N, in, h, w) and skip (N, skip, H, W) -> (N, out, H, W).  Bilinear upsampling to the skip's
    exact size lets odd sizes (e.g. 25 px faces) pass through the U-Net.
    """

    def __init__(self, in_ch: int, skip_ch: int, out_ch: int, **kw):
        super().__init__()
        self.block = ConvBlock(in_ch + skip_ch, out_ch, **kw)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.block(torch.cat([x, skip], dim=1))
