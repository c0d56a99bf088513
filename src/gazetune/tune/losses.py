"""GAN losses, one function per equation of the patent (eq 1-2, 9a-10b), plus the CutMix terms
of ¶100.

Everything works on **logits** (``D = sigmoid(logit)``) through the numerically stable identities

* ``-log D     = -log sigmoid(l)     = softplus(-l)``
* ``-log(1-D)  = -log(1-sigmoid(l))  = softplus(l)``

which stay finite for any logit (``log(sigmoid(-100))`` would underflow to ``-inf``).

Reduction
---------
The patent writes every loss as a **sum** over latents ``z`` / images ``x`` and pixels ``(i, j)``.
Here ``reduction="mean"`` (the default) divides that sum by the number of terms: by ``N`` for the
image-level eq 1-2 and by ``N * H * W`` for the per-pixel eq 9a-10b, so learning rates and loss
balances do not change with batch size or image size.  ``reduction="sum"`` returns the patent's
sum exactly.  In eq 2 / 10a / 10b the real and the fake sums are reduced separately (each by its
own count) and then added.

Saliency weights
----------------
Eq 9b/10b multiply each pixel's loss by the saliency map ``SM`` of its image.  A raw map is near 0
over most pixels, so :func:`saliency_weights` offers ``w = (1 - a) + a * SM / mean(SM)`` with the
mean per image; pass ``w`` as the ``sm_*`` arguments of eq 9b/10b.  With ``a = 1`` the weights are
``SM / mean(SM)``: exactly eq 9b/10b with every image's map rescaled by the constant
``1 / mean(SM)`` of that image (so each image's weights average 1 and the loss has the scale of the
unweighted eq 9a/10a); to get the literal equation pass the raw map ``SM`` itself as ``sm_*``.
``a = 0`` gives weights 1, i.e. eq 9a/10a.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch.nn import functional as F

Reduction = Literal["mean", "sum"]


def _reduce(terms: torch.Tensor, reduction: Reduction) -> torch.Tensor:
    if reduction == "mean":
        return terms.mean()
    if reduction == "sum":
        return terms.sum()
    raise ValueError(f"reduction must be 'mean' or 'sum'; got {reduction!r}")


def _check_pixels(logits: torch.Tensor, name: str) -> None:
    if logits.ndim != 4 or logits.shape[1] != 1:
        raise ValueError(f"{name} must have shape (N, 1, H, W); got {tuple(logits.shape)}")


def _check_weights(weights: torch.Tensor, logits: torch.Tensor, name: str) -> torch.Tensor:
    if weights.ndim == 3:
        weights = weights[:, None]
    if weights.shape != logits.shape:
        raise ValueError(f"{name} must have the shape of the pixel logits {tuple(logits.shape)}; got {tuple(weights.shape)}")
    return weights.to(logits.dtype)


def generator_loss_eq1(image_logits_fake: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """Image-level non-saturating generator loss, patent eq 1.

    ``L_G = - sum_z log D(G(z)) = sum_z softplus(-l_z)``.

    Parameters
    ----------
    image_logits_fake
        ``(N,)`` discriminator logits of generated images ``G(z)``.
    reduction
        ``"mean"`` (divide by ``N``) or ``"sum"`` (the patent's sum).
    """
    return _reduce(F.softplus(-image_logits_fake), reduction)


def discriminator_loss_eq2(
    image_logits_real: torch.Tensor, image_logits_fake: torch.Tensor, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Image-level discriminator loss, patent eq 2.

    ``L_D = - sum_x log D(x) - sum_z log(1 - D(G(z))) = sum_x softplus(-l_x) + sum_z softplus(l_z)``.

    Parameters
    ----------
    image_logits_real, image_logits_fake
        ``(N_real,)`` and ``(N_fake,)`` logits of real and generated images.
    reduction
        ``"mean"``: each sum divided by its own count; ``"sum"``: the patent's sums.
    """
    return _reduce(F.softplus(-image_logits_real), reduction) + _reduce(F.softplus(image_logits_fake), reduction)


def generator_pixel_loss_eq9a(pixel_logits_fake: torch.Tensor, reduction: Reduction = "mean") -> torch.Tensor:
    """Per-pixel generator loss, patent eq 9a.

    ``L_G = - sum_z sum_ij log D(G(z))_ij = sum_z sum_ij softplus(-l_z,ij)``.

    Parameters
    ----------
    pixel_logits_fake
        ``(N, 1, H, W)`` per-pixel logits (U-Net decoder) of generated images.
    reduction
        ``"mean"`` (divide by ``N H W``) or ``"sum"``.
    """
    _check_pixels(pixel_logits_fake, "pixel_logits_fake")
    return _reduce(F.softplus(-pixel_logits_fake), reduction)


def discriminator_pixel_loss_eq10a(
    pixel_logits_real: torch.Tensor, pixel_logits_fake: torch.Tensor, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Per-pixel discriminator loss, patent eq 10a.

    ``L_D = sum_x sum_ij softplus(-l_x,ij) + sum_z sum_ij softplus(l_z,ij)``.

    Parameters
    ----------
    pixel_logits_real, pixel_logits_fake
        ``(N, 1, H, W)`` per-pixel logits of real and generated images.
    reduction
        ``"mean"``: each double sum divided by its own ``N H W``; ``"sum"``: the patent's sums.
    """
    _check_pixels(pixel_logits_real, "pixel_logits_real")
    _check_pixels(pixel_logits_fake, "pixel_logits_fake")
    return _reduce(F.softplus(-pixel_logits_real), reduction) + _reduce(F.softplus(pixel_logits_fake), reduction)


def generator_pixel_loss_eq9b(
    pixel_logits_fake: torch.Tensor, sm_fake: torch.Tensor, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Saliency-weighted per-pixel generator loss, patent eq 9b.

    ``L_G = sum_z sum_ij SM_z,ij * softplus(-l_z,ij)``.

    Parameters
    ----------
    pixel_logits_fake
        ``(N, 1, H, W)`` per-pixel logits of generated images.
    sm_fake
        ``(N, 1, H, W)`` or ``(N, H, W)`` per-pixel weights of the generated images: the raw
        saliency map (literal eq 9b) or :func:`saliency_weights` of it.
    reduction
        ``"mean"`` (divide by ``N H W``) or ``"sum"``.
    """
    _check_pixels(pixel_logits_fake, "pixel_logits_fake")
    w = _check_weights(sm_fake, pixel_logits_fake, "sm_fake")
    return _reduce(w * F.softplus(-pixel_logits_fake), reduction)


def discriminator_pixel_loss_eq10b(
    pixel_logits_real: torch.Tensor,
    pixel_logits_fake: torch.Tensor,
    sm_real: torch.Tensor,
    sm_fake: torch.Tensor,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """Saliency-weighted per-pixel discriminator loss, patent eq 10b.

    ``L_D = sum_x sum_ij SM_x,ij softplus(-l_x,ij) + sum_z sum_ij SM_z,ij softplus(l_z,ij)``.

    Parameters
    ----------
    pixel_logits_real, pixel_logits_fake
        ``(N, 1, H, W)`` per-pixel logits of real and generated images.
    sm_real, sm_fake
        Per-pixel weights (raw maps or :func:`saliency_weights`) of the same shapes.
    reduction
        ``"mean"``: each double sum divided by its own ``N H W``; ``"sum"``: the patent's sums.
    """
    _check_pixels(pixel_logits_real, "pixel_logits_real")
    _check_pixels(pixel_logits_fake, "pixel_logits_fake")
    w_r = _check_weights(sm_real, pixel_logits_real, "sm_real")
    w_f = _check_weights(sm_fake, pixel_logits_fake, "sm_fake")
    return _reduce(w_r * F.softplus(-pixel_logits_real), reduction) + _reduce(
        w_f * F.softplus(pixel_logits_fake), reduction
    )


def saliency_weights(sm: torch.Tensor, a: float) -> torch.Tensor:
    """Per-pixel loss weights from saliency maps: ``w = (1 - a) + a * SM / mean(SM)``.

    Parameters
    ----------
    sm
        ``(N, 1, H, W)`` or ``(N, H, W)`` non-negative saliency maps (any scale: heatmaps in
        [0, 1], densities, or sigmoid outputs of M_saliency).
    a
        Mixing weight in [0, 1]: 0 gives all-ones weights (eq 9a/10a), 1 gives ``SM / mean(SM)``
        (eq 9b/10b with each map rescaled by the constant ``1 / mean(SM)`` of its image).

    Returns
    -------
    torch.Tensor
        Weights of the shape of ``sm`` with per-image mean exactly 1 (the mean is taken over
        ``H, W`` of each image).  An image whose map is all zeros (nobody fixated) gets weights 1.

    Examples
    --------
    >>> w = saliency_weights(torch.tensor([[[0.0, 1.0], [1.0, 2.0]]]), a=0.5)
    >>> w.tolist()
    [[[0.5, 1.0], [1.0, 1.5]]]
    """
    if not 0.0 <= float(a) <= 1.0:
        raise ValueError(f"saliency weight a must be in [0, 1]; got {a}")
    if sm.ndim not in (3, 4):
        raise ValueError(f"sm must have shape (N, 1, H, W) or (N, H, W); got {tuple(sm.shape)}")
    if bool((sm < 0).any()):
        raise ValueError("saliency maps must be non-negative")
    mean = sm.mean(dim=(-2, -1), keepdim=True)
    empty = mean <= 0
    rel = torch.where(empty, torch.ones_like(sm), sm / torch.where(empty, torch.ones_like(mean), mean))
    return (1.0 - a) + a * rel


def discriminator_cutmix_loss(
    pixel_logits_mixed: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None = None, reduction: Reduction = "mean"
) -> torch.Tensor:
    """Per-pixel discriminator loss on CutMix images (¶100; U-Net GAN eq 4).

    A CutMix image takes the real image where ``mask == 1`` and the generated one elsewhere, so
    the decoder's target is the mask: eq 10a/10b applied pixel by pixel with the real term where
    ``mask`` is 1 and the fake term where it is 0:
    ``sum_ij w_ij (M_ij softplus(-l_ij) + (1 - M_ij) softplus(l_ij))``.

    Parameters
    ----------
    pixel_logits_mixed
        ``(N, 1, H, W)`` per-pixel logits of the mixed images.
    mask
        ``(N, 1, H, W)`` 1 where the pixel comes from the real image, 0 where from the fake.
    weights
        Optional per-pixel weights (e.g. the real and fake saliency weights mixed by ``mask``).
    reduction
        ``"mean"`` over ``N H W`` or ``"sum"``.
    """
    _check_pixels(pixel_logits_mixed, "pixel_logits_mixed")
    mask = _check_weights(mask, pixel_logits_mixed, "mask")
    terms = mask * F.softplus(-pixel_logits_mixed) + (1 - mask) * F.softplus(pixel_logits_mixed)
    if weights is not None:
        terms = _check_weights(weights, pixel_logits_mixed, "weights") * terms
    return _reduce(terms, reduction)


def cutmix_consistency_loss(
    pixel_logits_mixed: torch.Tensor,
    pixel_logits_real: torch.Tensor,
    pixel_logits_fake: torch.Tensor,
    mask: torch.Tensor,
    reduction: Reduction = "mean",
) -> torch.Tensor:
    """CutMix consistency regularisation of the per-pixel head (¶100; U-Net GAN eq 5).

    The decoder should commute with mixing: its logits on the mixed image equal the mix of its
    logits on the two source images,
    ``sum_ij (l_mix,ij - (M_ij l_real,ij + (1 - M_ij) l_fake,ij))**2``.
    Gradients flow into all three logits (as in U-Net GAN).

    Parameters
    ----------
    pixel_logits_mixed, pixel_logits_real, pixel_logits_fake
        ``(N, 1, H, W)`` per-pixel logits of the mixed, real and generated images.
    mask
        ``(N, 1, H, W)`` CutMix mask, 1 = pixel from the real image.
    reduction
        ``"mean"`` over ``N H W`` or ``"sum"``.
    """
    for t, n in ((pixel_logits_mixed, "pixel_logits_mixed"), (pixel_logits_real, "pixel_logits_real"), (pixel_logits_fake, "pixel_logits_fake")):
        _check_pixels(t, n)
    mask = _check_weights(mask, pixel_logits_mixed, "mask")
    target = mask * pixel_logits_real + (1 - mask) * pixel_logits_fake
    return _reduce((pixel_logits_mixed - target).pow(2), reduction)
