"""Exponential moving average (EMA) of generator weights.

Sampling from the averaged weights ``theta_ema <- beta * theta_ema + (1 - beta) * theta`` gives
smoother, better images than the last training iterate (Karras et al. 2018; Yazici et al. 2019).
The decay is given as a half-life in images, as in StyleGAN2-ADA, so it does not depend on the
batch size: ``beta = 0.5 ** (batch / half_life_images)``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def ema_beta(batch: int, half_life_images: float) -> float:
    """Per-step decay ``0.5 ** (batch / half_life_images)`` (0 when the half-life is 0)."""
    if half_life_images < 0 or batch < 1:
        raise ValueError(f"need batch >= 1 and half_life_images >= 0; got {batch}, {half_life_images}")
    return 0.0 if half_life_images == 0 else 0.5 ** (batch / half_life_images)


class EMA:
    """Keeps ``self.model``, a frozen copy of ``model`` whose parameters track an EMA of it.

    Parameters
    ----------
    model
        The network being trained.
    beta
        Decay per :meth:`update` in [0, 1): 0 copies the weights, close to 1 averages many steps.
    """

    def __init__(self, model: nn.Module, beta: float):
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"EMA beta must be in [0, 1); got {beta}")
        self.beta = float(beta)
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the averaged parameters toward ``model``'s; copy buffers (e.g. spectral-norm ``u``)."""
        for p_ema, p in zip(self.model.parameters(), model.parameters()):
            p_ema.lerp_(p.detach(), 1.0 - self.beta)
        for b_ema, b in zip(self.model.buffers(), model.buffers()):
            b_ema.copy_(b)
