"""Losses of the gaze-weighted refiner (SimGAN, Shrivastava et al. 2017, with the patent's eq 9b/10b).

The refiner ``R`` is trained with

``L_R = L_adv + lambda * L_reg``,

* ``L_adv``: the local adversarial loss, one non-saturating term per patch logit of the local
  discriminator, weighted per patch by the saliency of that patch (patent eq 9b applied to patch
  logits): ``mean_patches w_p * softplus(-D(R(x))_p)``;
* ``L_reg``: the self-regularisation term ``mean |R(x) - x|`` (SimGAN eq 2 with the identity
  feature map), which keeps the refined image close to its input so its content (identity,
  pose, the annotation a user cares about) survives.

The local discriminator is trained with patent eq 10b on its patch logits: saliency-weighted
``softplus(-l)`` on real patches and ``softplus(l)`` on refined ones.  The weights are
``(1 - a) + a * SM / mean(SM)`` (:func:`gazetune.tune.losses.saliency_weights`) of each image's
map averaged over the patch grid (:func:`patch_weights`): ``a = 0`` is plain SimGAN, ``a = 1``
puts all of the adversarial pressure where people look.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from gazetune.tune.losses import discriminator_pixel_loss_eq10b, generator_pixel_loss_eq9b, saliency_weights


def self_regularization_loss(refined: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """SimGAN's self-regularisation ``mean |R(x) - x|`` over all pixels and channels.

    >>> self_regularization_loss(torch.tensor([[[[0.5, -0.5]]]]), torch.zeros(1, 1, 1, 2)).item()
    0.5
    """
    if refined.shape != source.shape:
        raise ValueError(f"refined and source images differ in shape: {tuple(refined.shape)} vs {tuple(source.shape)}")
    return (refined - source).abs().mean()


def patch_weights(maps: torch.Tensor | None, grid: tuple[int, int], a: float, n: int | None = None) -> torch.Tensor:
    """Per-patch loss weights ``(N, 1, gh, gw)`` from per-pixel saliency maps.

    Parameters
    ----------
    maps
        ``(N, 1, H, W)`` non-negative maps, or ``None`` for uniform weights (then ``n`` is needed).
    grid
        ``(gh, gw)``, the discriminator's patch grid.
    a
        Saliency weight in [0, 1] (see :func:`gazetune.tune.losses.saliency_weights`).

    Returns
    -------
    torch.Tensor
        The map's mean over each grid cell (adaptive average pooling), turned into weights
        ``(1 - a) + a * m / mean(m)``: per-image mean 1, all ones without a map or with ``a = 0``.

    >>> m = torch.zeros(1, 1, 4, 4); m[..., :2, :2] = 1.0
    >>> patch_weights(m, (2, 2), a=1.0).flatten().tolist()
    [4.0, 0.0, 0.0, 0.0]
    """
    if maps is None:
        if n is None:
            raise ValueError("patch_weights without maps needs the batch size n")
        return torch.ones(n, 1, *grid)
    if maps.ndim != 4 or maps.shape[1] != 1:
        raise ValueError(f"maps must be (N, 1, H, W); got {tuple(maps.shape)}")
    return saliency_weights(F.adaptive_avg_pool2d(maps, grid), a)


def refiner_adversarial_loss(patch_logits_refined: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Local adversarial loss of the refiner: ``mean w * softplus(-l)`` over patches (eq 9b)."""
    return generator_pixel_loss_eq9b(patch_logits_refined, weights.to(patch_logits_refined.device))


def local_discriminator_loss(
    patch_logits_real: torch.Tensor,
    patch_logits_refined: torch.Tensor,
    weights_real: torch.Tensor,
    weights_refined: torch.Tensor,
) -> torch.Tensor:
    """Local discriminator loss: ``mean w_r softplus(-l_r) + mean w_f softplus(l_f)`` (eq 10b)."""
    dev = patch_logits_real.device
    return discriminator_pixel_loss_eq10b(patch_logits_real, patch_logits_refined, weights_real.to(dev), weights_refined.to(dev))
