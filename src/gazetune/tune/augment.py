"""Differentiable augmentation (DiffAugment) and CutMix for the discriminator.

DiffAugment (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS
2020): the *same kind* of random augmentation is applied to real and generated images before the
discriminator sees them, in both the D and the G phases; every operation is differentiable in the
image so the generator gets gradients through it.  With the small datasets of gaze studies
(hundreds of images) this keeps D from memorising the real set.

Per-pixel maps travel with the images: :func:`diff_augment` moves saliency maps (and CutMix masks)
by the same translation as their images, so the weight of pixel ``(i, j)`` in eq 9b/10b still
refers to the content at that pixel.  Cutout and colour changes leave maps unchanged.

All randomness comes from an explicit :class:`torch.Generator` (drawn on the CPU, then moved to the
images' device), so a training run is reproducible and resumable bit for bit.
"""

from __future__ import annotations

from typing import Sequence

import torch

POLICIES = ("color", "translation", "cutout")


def _uniform(n: int, gen: torch.Generator, device: torch.device, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return (lo + (hi - lo) * torch.rand(n, 1, 1, 1, generator=gen)).to(device)


def colour(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random brightness (+U(-0.5, 0.5)), saturation (x U(0, 2) around the grey value) and contrast
    (x U(0.5, 1.5) around the image mean), one draw per image, for images in [-1, 1]."""
    n, dev = x.shape[0], x.device
    x = x + _uniform(n, gen, dev, -0.5, 0.5)
    grey = x.mean(dim=1, keepdim=True)
    x = grey + (x - grey) * _uniform(n, gen, dev, 0.0, 2.0)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return mean + (x - mean) * _uniform(n, gen, dev, 0.5, 1.5)


def translation_offsets(n: int, height: int, width: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """Integer shifts ``(n, 2)`` (dy, dx) in pixels, uniform in ``[-r, r]`` with
    ``r = round(ratio * side / 2)``."""
    ry, rx = int(round(ratio * height / 2)), int(round(ratio * width / 2))
    dy = torch.randint(-ry, ry + 1, (n,), generator=gen)
    dx = torch.randint(-rx, rx + 1, (n,), generator=gen)
    return torch.stack([dy, dx], dim=1)


def translate(x: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Shift each image by integer ``offsets (N, 2)`` (dy, dx) pixels, filling with zeros.

    Output pixel ``(i, j)`` of image ``n`` is input pixel ``(i - dy, j - dx)`` (zero outside).
    A gather, hence exactly differentiable in ``x`` (gradient 1 at the moved pixels).
    """
    n, c, h, w = x.shape
    dev = x.device
    off = offsets.to(dev)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))  # a zero border: index 0 and h+1 / w+1
    iy = (torch.arange(h, device=dev)[None, :] - off[:, :1] + 1).clamp(0, h + 1)  # (n, h)
    ix = (torch.arange(w, device=dev)[None, :] - off[:, 1:] + 1).clamp(0, w + 1)  # (n, w)
    b = torch.arange(n, device=dev)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[b, iy[:, :, None], ix[:, None, :]]  # (n, h, w, c)
    return out.permute(0, 3, 1, 2)


def cutout_mask(n: int, height: int, width: int, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """``(n, 1, H, W)`` float mask, 0 inside one random square of side ``ratio * side`` per image
    (centre uniform over the image, clipped at the border), 1 elsewhere."""
    sy, sx = max(1, int(round(ratio * height))), max(1, int(round(ratio * width)))
    cy = torch.randint(0, height, (n, 1), generator=gen)
    cx = torch.randint(0, width, (n, 1), generator=gen)
    ys, xs = torch.arange(height)[None, :], torch.arange(width)[None, :]
    in_y = (ys >= cy - sy // 2) & (ys < cy - sy // 2 + sy)  # (n, H)
    in_x = (xs >= cx - sx // 2) & (xs < cx - sx // 2 + sx)  # (n, W)
    return (~(in_y[:, :, None] & in_x[:, None, :])).float()[:, None]


def diff_augment(
    x: torch.Tensor,
    gen: torch.Generator,
    policy: Sequence[str] = POLICIES,
    maps: Sequence[torch.Tensor | None] = (),
    translation_ratio: float = 0.125,
    cutout_ratio: float = 0.5,
) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
    """Apply DiffAugment to a batch of images and move per-pixel maps along.

    Parameters
    ----------
    x
        ``(N, C, H, W)`` images in [-1, 1].
    gen
        Random generator (CPU) for every draw.
    policy
        Subset of ``("color", "translation", "cutout")``, applied in that order; empty = identity.
    maps
        ``(N, 1, H, W)`` maps (saliency weights, CutMix masks; ``None`` entries pass through) that
        get the same translation as their image.  Maps are padded with their own per-image mean
        where content moves in from outside, so a weight map keeps mean 1 approximately.
    translation_ratio
        Largest shift as a fraction of the side length (the shift is at most half of it each way).
    cutout_ratio
        Side of the cut-out square as a fraction of the image side.

    Returns
    -------
    (torch.Tensor, list)
        Augmented images and the moved maps (same order as ``maps``).
    """
    unknown = [p for p in policy if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown}; choose from {POLICIES}")
    n, _, h, w = x.shape
    out_maps = list(maps)
    if "color" in policy:
        x = colour(x, gen)
    if "translation" in policy:
        off = translation_offsets(n, h, w, translation_ratio, gen)
        x = translate(x, off)
        for k, m in enumerate(out_maps):
            if m is not None:
                mean = m.mean(dim=(2, 3), keepdim=True)
                out_maps[k] = translate(m - mean, off) + mean
    if "cutout" in policy:
        x = x * cutout_mask(n, h, w, cutout_ratio, gen).to(x.device)
    return x, out_maps


def cutmix(
    real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """CutMix of real and generated images (¶100; U-Net GAN, after Yun et al. 2019).

    A rectangle whose area is a fraction ``lam ~ U(0, 1)`` of the image (aspect ratio of the
    image, random position) is taken from ``fake``; the rest comes from ``real``.

    Parameters
    ----------
    real, fake
        ``(N, C, H, W)`` batches of equal shape.
    gen
        Random generator (CPU).

    Returns
    -------
    (mixed, mask)
        ``mixed (N, C, H, W)`` and ``mask (N, 1, H, W)`` float with 1 where the pixel is real, the
        target of the per-pixel head (:func:`gazetune.tune.losses.discriminator_cutmix_loss`).
    """
    if real.shape != fake.shape:
        raise ValueError(f"real and fake batches must have the same shape; got {tuple(real.shape)} and {tuple(fake.shape)}")
    n, _, h, w = real.shape
    lam = torch.rand(n, 1, generator=gen)
    ch = (h * lam.sqrt()).round().long()
    cw = (w * lam.sqrt()).round().long()
    y0 = (torch.rand(n, 1, generator=gen) * (h - ch + 1)).floor().long()
    x0 = (torch.rand(n, 1, generator=gen) * (w - cw + 1)).floor().long()
    ys, xs = torch.arange(h)[None, :], torch.arange(w)[None, :]
    box = ((ys >= y0) & (ys < y0 + ch))[:, :, None] & ((xs >= x0) & (xs < x0 + cw))[:, None, :]
    mask = (~box).float()[:, None].to(real.device)
    return mask * real + (1 - mask) * fake, mask
