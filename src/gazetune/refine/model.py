"""The refiner and its local discriminator (SimGAN, Shrivastava et al., CVPR 2017).

:class:`Refiner` maps an image to a refined image of the same size: a fully convolutional
residual network, so it works on any image size and only ever sees a neighbourhood of each pixel
(its receptive field is ``3 + 4 * blocks`` pixels).  Its last convolution starts at zero and its
output is added to the input in ``atanh`` space, so the untrained refiner is the identity:
training starts from "change nothing" and the self-regularisation term starts at 0 (SimGAN gets
there by pretraining the refiner on the regulariser alone).

:class:`LocalDiscriminator` is fully convolutional too and gives one logit per patch (a grid at
1/4 of the image size, each cell seeing a ``receptive_field``-pixel patch), so every local
region of a refined image is judged on its own (SimGAN's local adversarial loss).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ResidualBlock(nn.Module):
    """``x + conv(lrelu(conv(x)))`` followed by a leaky ReLU; keeps shape."""

    def __init__(self, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.conv2(F.leaky_relu(self.conv1(x), 0.2)), 0.2)


class Refiner(nn.Module):
    """``R(x) (N, C, H, W) -> (N, C, H, W)`` in (-1, 1); the identity before training.

    Parameters
    ----------
    channels
        1 (grey) or 3 (RGB).
    width
        Feature channels of the residual blocks.
    blocks
        Number of residual blocks (SimGAN: 4).
    residual_scale
        Factor on the residual before it is added: the un-normalised features grow through the
        blocks, and at full scale Adam's first steps on the last layer (each about lr in size)
        already change every pixel a lot.
    """

    def __init__(self, channels: int = 3, width: int = 32, blocks: int = 4, residual_scale: float = 0.1):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels}")
        if width < 1 or blocks < 0:
            raise ValueError(f"need width >= 1 and blocks >= 0; got width={width}, blocks={blocks}")
        self.channels, self.width, self.blocks = int(channels), int(width), int(blocks)
        self.head = nn.Conv2d(channels, width, 3, padding=1)
        self.body = nn.Sequential(*(ResidualBlock(width) for _ in range(blocks)))
        self.tail = nn.Conv2d(width, channels, 1)
        nn.init.zeros_(self.tail.weight)
        nn.init.zeros_(self.tail.bias)
        self.residual_scale = float(residual_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"refiner input must be (N, {self.channels}, H, W); got {tuple(x.shape)}")
        delta = self.residual_scale * self.tail(self.body(F.leaky_relu(self.head(x), 0.2)))
        return torch.tanh(torch.atanh(x.clamp(-0.999, 0.999)) + delta)

    def config(self) -> dict[str, float]:
        """Constructor arguments (stored in checkpoints)."""
        return {"channels": self.channels, "width": self.width, "blocks": self.blocks, "residual_scale": self.residual_scale}


class LocalDiscriminator(nn.Module):
    """``D(x) (N, C, H, W) -> patch logits (N, 1, ceil(H/4), ceil(W/4))``; logit > 0 means "real".

    Five 3x3 convolutions (two with stride 2) and a 1x1 output: each logit sees a patch of
    :attr:`receptive_field` pixels.
    """

    receptive_field = 21

    def __init__(self, channels: int = 3, width: int = 32):
        super().__init__()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels}")
        self.channels, self.width = int(channels), int(width)
        w = width
        self.convs = nn.ModuleList([
            nn.Conv2d(channels, w, 3, padding=1),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1),
            nn.Conv2d(4 * w, 4 * w, 3, padding=1),
        ])
        self.out = nn.Conv2d(4 * w, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"discriminator input must be (N, {self.channels}, H, W); got {tuple(x.shape)}")
        for conv in self.convs:
            x = F.leaky_relu(conv(x), 0.2)
        return self.out(x)

    def config(self) -> dict[str, int]:
        return {"channels": self.channels, "width": self.width}
