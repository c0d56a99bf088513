"""U-Net discriminator: one image-level logit and one logit per pixel (patent ¶96).

After U-Net GAN (Schönfeld, Schiele and Khoreva, "A U-Net Based Discriminator for Generative
Adversarial Networks", CVPR 2020): the encoder ends in an image-level real/fake head (used by
eq 1-2) and the decoder, with skip connections, returns a real/fake logit for every pixel (used by
eq 9a-10b, where the per-pixel losses are weighted by gaze saliency).

Shapes: ``x (N, C, H, W) -> (image_logit (N,), pixel_logits (N, 1, H, W))``; ``H`` and ``W`` may
be odd (e.g. 25 px): the shared :class:`~gazetune.nets.blocks.Down` pools with ``ceil_mode`` and
:class:`~gazetune.nets.blocks.Up` resizes to the skip's exact size.
"""

from __future__ import annotations

import torch
from torch import nn

from gazetune.nets.blocks import ConvBlock, Down, Up


class UNetDiscriminator(nn.Module):
    """U-Net discriminator with an image-level head on the bottleneck and a per-pixel decoder head.

    Parameters
    ----------
    size
        Side length of the input images in pixels (sets the depth: halve until <= 4 px).
    channels
        Input channels (1 or 3).
    width
        Feature channels at full resolution; doubled per level up to ``8 * width``.
    spectral
        Wrap every convolution and the heads in spectral normalisation (stabilises training;
        costs about 10-20 % time).
    norm
        Normalisation inside the blocks: ``"none"`` (default, as in U-Net GAN), ``"group"`` or
        ``"batch"``.
    """

    def __init__(self, size: int = 32, channels: int = 3, width: int = 32, spectral: bool = False, norm: str = "none"):
        super().__init__()
        if size < 4:
            raise ValueError(f"size must be >= 4 pixels; got {size}")
        if channels < 1 or width < 1:
            raise ValueError(f"channels and width must be >= 1; got channels={channels}, width={width}")
        self.size, self.channels, self.width = int(size), int(channels), int(width)
        self.spectral, self.norm = bool(spectral), str(norm)
        levels, s = 0, int(size)
        while s > 4:
            s = (s + 1) // 2
            levels += 1
        chans = [width * min(8, 2**k) for k in range(levels + 1)]
        kw = {"norm": norm, "spectral": spectral}
        wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        self.stem = ConvBlock(channels, chans[0], **kw)
        self.down = nn.ModuleList(Down(chans[k], chans[k + 1], **kw) for k in range(levels))
        self.up = nn.ModuleList(Up(chans[k + 1], chans[k], chans[k], **kw) for k in reversed(range(levels)))
        self.image_head = wrap(nn.Linear(chans[-1], 1))
        self.pixel_head = wrap(nn.Conv2d(chans[0], 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(image_logit (N,), pixel_logits (N, 1, H, W))`` for images ``x (N, C, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape (N, {self.channels}, H, W); got {tuple(x.shape)}")
        h = self.stem(x)
        skips = []
        for down in self.down:
            skips.append(h)
            h = down(h)
        # image-level head: sum of bottleneck features over positions (BigGAN/U-Net GAN style)
        image_logit = self.image_head(h.sum(dim=(2, 3)))[:, 0]
        for up, skip in zip(self.up, reversed(skips)):
            h = up(h, skip)
        return image_logit, self.pixel_head(h)

    def config(self) -> dict[str, int | bool | str]:
        """Constructor arguments (stored in checkpoints)."""
        return {
            "size": self.size,
            "channels": self.channels,
            "width": self.width,
            "spectral": self.spectral,
            "norm": self.norm,
        }
