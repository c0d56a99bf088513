"""Stimuli of a study: real images and synthetic images traceable to (generator version, seed).

Real and synthetic images are brought to the same size and channel count and encoded as plain
PNG without metadata, so neither the file nor its size tells the participant which is which.

Synthetic images come from one of three places:

* a generator checkpoint (gazetune safetensors or TorchScript, read by
  :func:`gazetune.nets.generator.load_generator`): image ``seed`` is
  ``G(latent_from_seed(seed, G.z_dim))``;
* a folder of pre-made images (the name of each file is kept);
* the **demo blend** (``--demo`` without a generator): image ``seed`` mixes two real faces chosen
  by ``seed`` (weight ``a ~ U(0.35, 0.65)``) and adds smooth noise (Gaussian-filtered white noise,
  sigma 1.5 px, amplitude 0.25 of the [-1, 1] range).  Such blends look plausible at a glance
  but carry ghosting around the eyes and mouth, which is what the study should reveal.
"""

from __future__ import annotations

import io
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from gazetune.images import convert_channels, load_image_set, resize_images, to_uint8


@dataclass
class Stimulus:
    """One image ready to store: ``png`` bytes plus where it came from."""

    kind: str  # real | synthetic
    name: str
    png: bytes
    width: int
    height: int
    generator_version: int | None = None
    seed: int | None = None
    id: str = ""
    condition: str = ""  # "" plain; "guided_toward" / "guided_away" (see gazetune.study.guided)
    source_stimulus_id: str | None = None  # a guided variant: id of the plain stimulus it was made from

    def __post_init__(self) -> None:
        if not self.id:
            self.id = secrets.token_hex(8)


def to_png(image: np.ndarray) -> bytes:
    """Encode one image ``(C,H,W)`` float in [-1, 1] (C = 1 or 3) as PNG bytes (no metadata)."""
    hwc = to_uint8(np.asarray(image, dtype=np.float32))
    pil = Image.fromarray(hwc[..., 0], "L") if hwc.shape[-1] == 1 else Image.fromarray(hwc, "RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return buf.getvalue()


def _fit(images: np.ndarray, size: int, channels: int) -> np.ndarray:
    """``(N,C,H,W)`` in [-1, 1] -> ``(N,channels,size,size)``."""
    return resize_images(convert_channels(np.asarray(images, dtype=np.float32), channels), size)


def real_stimuli(source: str, size: int, channels: int) -> tuple[list[Stimulus], np.ndarray]:
    """One :class:`Stimulus` per real image of ``source`` (see
    :func:`gazetune.images.load_image_set`), and the images ``(N,channels,size,size)``."""
    s = load_image_set(source, size=size, channels=channels)
    return [Stimulus("real", n, to_png(im), size, size) for im, n in zip(s.images, s.names)], s.images


def folder_stimuli(folder: str, size: int, channels: int, version: int) -> list[Stimulus]:
    """Synthetic stimuli from a folder of pre-made images (``seed`` is the file's position in
    name order)."""
    s = load_image_set(folder, size=size, channels=channels)
    return [Stimulus("synthetic", n, to_png(im), size, size, version, i)
            for i, (im, n) in enumerate(zip(s.images, s.names))]


def synthetic_name(version: int, seed: int) -> str:
    """Name of synthetic image ``seed`` of generator ``version``: ``v{version}_s{seed}.png``."""
    return f"v{int(version)}_s{int(seed)}.png"


def demo_blend(real: np.ndarray, seed: int) -> np.ndarray:
    """The demo's synthetic image ``seed``: a blend of two real faces plus smooth noise.

    ``real`` is ``(N,C,H,W)`` in [-1, 1]; returns ``(C,H,W)`` in [-1, 1], a pure function of
    ``(real, seed)``.
    """
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(int(seed))
    i, j = rng.choice(len(real), size=2, replace=False)
    a = rng.uniform(0.35, 0.65)
    img = a * real[i] + (1 - a) * real[j]
    noise = gaussian_filter(rng.standard_normal(img.shape[1:]), sigma=1.5)
    noise *= 0.25 / (np.abs(noise).max() + 1e-8)
    return np.clip(img + noise[None], -1, 1).astype(np.float32)


def blend_stimuli(real: np.ndarray, seeds: Sequence[int], version: int) -> list[Stimulus]:
    """Demo-blend stimuli for ``seeds`` (see :func:`demo_blend`)."""
    h = real.shape[-1]
    return [Stimulus("synthetic", synthetic_name(version, s), to_png(demo_blend(real, s)), h, h, version, int(s))
            for s in seeds]


def generator_stimuli(path: str | Path, seeds: Sequence[int], version: int, size: int,
                      channels: int, batch: int = 32) -> list[Stimulus]:
    """Render ``seeds`` with the generator in ``path``: image of seed ``s`` is
    ``G(latent_from_seed(s, G.z_dim))`` resized to ``size``; returns synthetic stimuli."""
    import torch

    from gazetune.nets.generator import load_generator
    from gazetune.nets.latent import latents_from_seeds

    g = load_generator(path)
    z_dim = int(g.z_dim)
    out: list[Stimulus] = []
    seeds = [int(s) for s in seeds]
    with torch.no_grad():
        for k in range(0, len(seeds), batch):
            chunk = seeds[k:k + batch]
            x = g(latents_from_seeds(chunk, z_dim)).float().clamp(-1, 1).cpu().numpy()
            x = _fit(x, size, channels)
            out += [Stimulus("synthetic", synthetic_name(version, s), to_png(im), size, size, version, s)
                    for s, im in zip(chunk, x)]
    return out


CATCH_KINDS = {"catch_real": 1, "catch_fake": 0}
"""Stimulus kinds of catch trials and the answer they call for (1 = real, 0 = generated)."""


def broken_image(real: np.ndarray, k: int) -> np.ndarray:
    """Catch image ``k``: an obviously broken picture made from the real images ``(N,C,H,W)``
    in [-1, 1].  Even ``k``: a real image cut into a 4 x 4 grid whose tiles are shuffled and
    flipped; odd ``k``: coarse coloured noise (blocks of 4 x 4 pixels).  Returns ``(C,H,W)``."""
    rng = np.random.default_rng([int(k), 7])
    c, h, w = real.shape[1:]
    if k % 2 == 0:
        img = real[int(rng.integers(len(real)))]
        g = 4
        th, tw = h // g, w // g
        tiles = [img[:, i * th:(i + 1) * th, j * tw:(j + 1) * tw] for i in range(g) for j in range(g)]
        order = rng.permutation(len(tiles))
        out = np.array(img, copy=True)
        for n, t in enumerate(order):
            i, j = divmod(n, g)
            tile = tiles[t][:, ::-1] if rng.random() < 0.5 else tiles[t][:, :, ::-1]
            out[:, i * th:(i + 1) * th, j * tw:(j + 1) * tw] = tile
        return out.astype(np.float32)
    coarse = rng.uniform(-1, 1, size=(c, -(-h // 4), -(-w // 4)))
    return np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)[:, :h, :w].astype(np.float32)


def catch_stimuli(real: np.ndarray, n_broken: int, real_folder: str | None, size: int,
                  channels: int) -> list[Stimulus]:
    """Catch-trial stimuli: ``n_broken`` broken images (kind ``catch_fake``, see
    :func:`broken_image`) and, when ``real_folder`` is given, its photographs (``catch_real``)."""
    out = [Stimulus("catch_fake", f"catch_broken_{k:02d}.png", to_png(broken_image(real, k)), size, size)
           for k in range(n_broken)]
    if real_folder:
        s = load_image_set(real_folder, size=size, channels=channels)
        out += [Stimulus("catch_real", f"catch_{n}", to_png(im), size, size) for im, n in zip(s.images, s.names)]
    return out
