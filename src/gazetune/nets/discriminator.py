"""U-Net discriminator: one image-level logit and one logit per pixel (patent ¶96).

After U-Net GAN (Schönfeld, Schiele and Khoreva, "A U-Net Based Discriminator for Generative
Adversarial Networks", CVPR 2020): the encoder ends in an image-level real/fake head (used by
eq 1-2) and the decoder, with skip connections, returns a real/fake logit for every pixel (used by
eq 9a-10b, where the per-pixel losses are weighted by gaze saliency).

Shapes: ``x (N, C, H, W) -> (image_logit (N,), pixel_logits (N, 1, H, W))``; ``H`` and ``W`` may
be odd (e.g. 25 px): the shared :class:`~gazetune.nets.blocks.Down` pools with ``ceil_mode`` and
:class:`~gazetune.nets.blocks.Up` resizes to the skip's exact size.

Why Kaiming initialisation (the fix of the core issue): with PyTorch's default initialisation
each of the encoder's eight 3x3 convolutions shrinks the signal by about half while the biases
stay, so the image logit of the freshly built network varied by 6e-4 between images and was
dominated by the biases.  Trained against a moving generator it never left that state: ``D/eq2``
sat at 2 ln 2 for whole runs and the generator learnt nothing.  Kaiming-normal weights for the
leaky ReLU and zero biases (:func:`~gazetune.nets.blocks.init_weights`) keep the activations at
unit scale, so the output depends on the input from the first step.  The image head averages
(not sums) the bottleneck over positions so its scale does not grow with the image size.

Why group normalisation by default: with Kaiming initialisation alone the network is alive at
the start, but on the built-in faces it still drifted back to chance within 40 steps (mean
accuracy 0.53, logit gap 0.003 over steps 40-80).  Group normalisation (per image, so an image's
score never depends on the rest of its batch) together with a discriminator learning rate four
times the generator's (TTUR, :class:`gazetune.tune.train.TrainConfig`) separated real from fake
all along (accuracy 0.60-0.69, logit gap 0.3-0.8 over the same steps).  The price: normalisation
couples each pixel to the whole image's statistics, so pixel logits are less local -- changing a
4x4 corner moves the far corner's pixel logits a fifth as much as the near ones (without
normalisation a 250th).  ``norm="none"`` keeps the strictly local variant.
"""

from __future__ import annotations

import torch
from torch import nn

from gazetune.nets.blocks import ConvBlock, Down, Up, init_weights


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
        Normalisation inside the blocks: ``"group"`` (default, see the module docstring),
        ``"none"`` (as in U-Net GAN) or ``"batch"``.
    """

    def __init__(self, size: int = 32, channels: int = 3, width: int = 32, spectral: bool = False, norm: str = "group"):
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
        self.image_head = nn.Linear(chans[-1], 1)
        self.pixel_head = nn.Conv2d(chans[0], 1, 1)
        init_weights(self)
        if spectral:  # after init: the parametrisation wraps the initialised weights
            self.image_head = wrap(self.image_head)
            self.pixel_head = wrap(self.pixel_head)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(image_logit (N,), pixel_logits (N, 1, H, W))`` for images ``x (N, C, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape (N, {self.channels}, H, W); got {tuple(x.shape)}")
        h = self.stem(x)
        skips = []
        for down in self.down:
            skips.append(h)
            h = down(h)
        # image-level head on the bottleneck features averaged over positions
        image_logit = self.image_head(h.mean(dim=(2, 3)))[:, 0]
        for up, skip in zip(self.up, reversed(skips)):
            h = up(h, skip)
        return image_logit, self.pixel_head(h)

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps of the stem and of every encoder level (for feature matching, seed 004)."""
        h = self.stem(x)
        out = [h]
        for down in self.down:
            h = down(h)
            out.append(h)
        return out

    def config(self) -> dict[str, int | bool | str]:
        """Constructor arguments (stored in checkpoints)."""
        return {
            "arch": "unet",
            "size": self.size,
            "channels": self.channels,
            "width": self.width,
            "spectral": self.spectral,
            "norm": self.norm,
        }


class ConvDiscriminator(nn.Module):
    """Plain convolutional discriminator with an image-level logit only: the reference recipe.

    The usual DCGAN-style stack (Radford et al. 2016, with Kaiming initialisation): a 3x3
    convolution at full size, then per level a stride-2 4x4 convolution doubling the channels up
    to ``8 * width``, leaky ReLU 0.2 throughout, and a linear head on the features averaged over
    positions.  It has no decoder, so ``forward`` returns ``None`` for the pixel logits and the
    loss drops the per-pixel terms (eq 9a-10b, CutMix).  ``bench/gan_quality.py`` trains it with
    the same generator and DiffAugment as a standard baseline for the U-Net recipe.

    Shapes: ``x (N, C, H, W) -> (image_logit (N,), None)``.
    """

    def __init__(self, size: int = 32, channels: int = 3, width: int = 32, spectral: bool = False, norm: str = "none"):
        super().__init__()
        if size < 4:
            raise ValueError(f"size must be >= 4 pixels; got {size}")
        if channels < 1 or width < 1:
            raise ValueError(f"channels and width must be >= 1; got channels={channels}, width={width}")
        if norm != "none":
            raise ValueError(f"ConvDiscriminator has no normalisation option; got norm={norm!r}")
        self.size, self.channels, self.width, self.spectral = int(size), int(channels), int(width), bool(spectral)
        wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2)]
        s, ch = int(size), int(width)
        while s > 4:
            nxt = min(8 * width, 2 * ch)
            layers += [nn.Conv2d(ch, nxt, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            ch, s = nxt, (s + 1) // 2
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(ch, 1)
        init_weights(self)
        if spectral:
            for i, m in enumerate(self.features):
                if isinstance(m, nn.Conv2d):
                    self.features[i] = wrap(m)
            self.head = wrap(self.head)

    pixel_logits = False  # the loss skips CutMix (it needs pixel logits)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """Return ``(image_logit (N,), None)`` for images ``x (N, C, H, W)``."""
        if x.ndim != 4 or x.shape[1] != self.channels:
            raise ValueError(f"x must have shape (N, {self.channels}, H, W); got {tuple(x.shape)}")
        return self.head(self.features(x).mean(dim=(2, 3)))[:, 0], None

    def encoder_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after every activation (for feature matching, seed 004)."""
        out, h = [], x
        for m in self.features:
            h = m(h)
            if isinstance(m, nn.LeakyReLU):
                out.append(h)
        return out

    def config(self) -> dict[str, int | bool | str]:
        """Constructor arguments plus ``arch`` (stored in checkpoints)."""
        return {"arch": "conv", "size": self.size, "channels": self.channels, "width": self.width,
                "spectral": self.spectral, "norm": "none"}


DISCRIMINATORS = {"unet": UNetDiscriminator, "conv": ConvDiscriminator}


def build_discriminator(config: dict) -> nn.Module:
    """A discriminator from its stored ``config()`` (``arch`` ``"unet"``, the default, or ``"conv"``)."""
    cfg = dict(config)
    arch = cfg.pop("arch", "unet")
    if arch not in DISCRIMINATORS:
        raise ValueError(f"unknown discriminator arch {arch!r}; choose from {sorted(DISCRIMINATORS)}")
    return DISCRIMINATORS[arch](**cfg)
