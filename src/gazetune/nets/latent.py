"""Latent codes named by seed, so every synthetic image is traceable to (generator version, seed).

The study shows synthetic image ``seed`` of a generator version; the trainer later regenerates
exactly that image from the seed to pair it with the gaze recorded on it (FIG. 4 "direct maps").
"""

from __future__ import annotations

from typing import Sequence

import torch


def latent_from_seed(seed: int, z_dim: int) -> torch.Tensor:
    """Standard normal latent ``z`` of shape ``(z_dim,)`` (float32, CPU), fixed by ``seed``.

    Uses its own ``torch.Generator`` so it neither reads nor disturbs the global RNG state.
    """
    if seed < 0:
        raise ValueError(f"latent seed must be >= 0; got {seed}")
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(int(z_dim), generator=g, dtype=torch.float32)


def latents_from_seeds(seeds: Sequence[int], z_dim: int) -> torch.Tensor:
    """Stack of :func:`latent_from_seed`: ``(len(seeds), z_dim)``."""
    if len(seeds) == 0:
        return torch.zeros((0, int(z_dim)))
    return torch.stack([latent_from_seed(int(s), z_dim) for s in seeds])
