"""Perceptual losses on feature maps: Gram (texture / style) and feature (content) losses.

Feature maps ``F`` are ``(N, C, H, W)`` tensors, e.g. taps of
:class:`~gazetune.features.inception.InceptionTaps`.  With ``M = H * W`` positions and
``F_l`` seen as an ``M x C`` matrix (one column per channel), following Gatys, Kümmerer, Wallis and
Bethge, "Guiding human gaze with convolutional neural networks" (eq 4-6), and Gatys, Ecker and
Bethge's texture and style losses:

* Gram matrix ``G_l = F_l^T F_l / M`` (``C x C``);
* texture loss ``E_l = (1 / C^2) * sum_ij (G_l(a) - G_l(b))_ij^2``, summed over layers with weights;
* feature loss ``(1 / (C M)) * sum (F_l(a) - F_l(b))^2``, the mean squared difference.

Every function also takes an optional per-pixel weight map (e.g. a saliency map, for the
saliency-weighted style loss of seed 004): positions count in proportion to their weight, and with
all weights equal the plain definitions above are recovered exactly.  Losses are averaged over
the batch.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch.nn import functional as F

Features = torch.Tensor | Mapping[str, torch.Tensor]


def _check(a: torch.Tensor, name: str = "features") -> None:
    if a.ndim != 4:
        raise ValueError(f"{name} must be (N, C, H, W); got shape {tuple(a.shape)}")


def _position_weights(weight: torch.Tensor | None, feats: torch.Tensor) -> torch.Tensor | None:
    """``(N, 1, h, w)`` non-negative weights on the feature grid, averaging 1 per image."""
    if weight is None:
        return None
    w = torch.as_tensor(weight, dtype=feats.dtype, device=feats.device)
    if w.ndim == 2:
        w = w[None, None]
    elif w.ndim == 3:
        w = w[:, None]
    if w.ndim != 4 or w.shape[1] != 1 or w.shape[0] not in (1, feats.shape[0]):
        raise ValueError(f"weight must be (H, W), (N, H, W) or (N, 1, H, W); got shape {tuple(w.shape)}")
    if (w < 0).any():
        raise ValueError("weight must be non-negative")
    if tuple(w.shape[-2:]) != tuple(feats.shape[-2:]):
        w = F.adaptive_avg_pool2d(w, feats.shape[-2:])
    mean = w.mean(dim=(2, 3), keepdim=True)
    if (mean <= 0).any():
        raise ValueError("weight is zero everywhere for at least one image")
    return (w / mean).expand(feats.shape[0], -1, -1, -1)


def gram_matrix(feats: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Gram matrices ``F^T F / M`` of ``(N, C, H, W)`` features -> ``(N, C, C)``.

    With ``weight`` (a map of any size, pooled to the feature grid and scaled to mean 1), each
    position's outer product counts with its weight: ``sum_x w(x) f(x) f(x)^T / sum_x w(x)``.
    """
    _check(feats)
    n, c, h, w = feats.shape
    flat = feats.reshape(n, c, h * w)
    pw = _position_weights(weight, feats)
    if pw is not None:
        return torch.bmm(flat * pw.reshape(n, 1, h * w), flat.transpose(1, 2)) / (h * w)
    return torch.bmm(flat, flat.transpose(1, 2)) / (h * w)


def _layers(a: Features, b: Features) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return [("", a, b)]
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        if set(a) != set(b):
            raise ValueError(f"feature dicts have different layers: {sorted(a)} vs {sorted(b)}")
        return [(k, a[k], b[k]) for k in a]
    raise TypeError("pass two tensors or two {layer: tensor} dicts")


def _layer_weight(weights: Mapping[str, float] | None, name: str) -> float:
    if weights is None or name == "":
        return 1.0
    if name not in weights:
        raise ValueError(f"no weight for layer {name!r}; weights given for {sorted(weights)}")
    return float(weights[name])


def gram_loss(
    a: Features, b: Features, layer_weights: Mapping[str, float] | None = None, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Texture (style) loss ``sum_l w_l (1/C_l^2) sum_ij (G_l(a) - G_l(b))_ij^2``, batch mean.

    Parameters
    ----------
    a, b
        Features of the two images: tensors ``(N, C, H, W)`` or dicts ``{layer: tensor}`` with the
        same layers (``b`` may have batch size 1 and is then broadcast, e.g. one style image).
    layer_weights
        ``{layer: w_l}`` for dict inputs (default: 1 for every layer).
    weight
        Optional per-pixel weight map for the Gram matrices of *both* images, see :func:`gram_matrix`.
    """
    total = None
    for name, fa, fb in _layers(a, b):
        _check(fa, f"features {name or 'a'}")
        _check(fb, f"features {name or 'b'}")
        if fa.shape[1] != fb.shape[1]:
            raise ValueError(f"layer {name!r}: channel counts differ ({fa.shape[1]} vs {fb.shape[1]})")
        ga = gram_matrix(fa, weight)
        gb = gram_matrix(fb, weight if fb.shape[0] == fa.shape[0] else None)
        e = ((ga - gb) ** 2).sum(dim=(1, 2)).mean() / fa.shape[1] ** 2
        term = _layer_weight(layer_weights, name) * e
        total = term if total is None else total + term
    assert total is not None
    return total


def feature_loss(
    a: Features, b: Features, layer_weights: Mapping[str, float] | None = None, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """Content loss: mean squared feature difference ``(1/(C M)) sum (F(a) - F(b))^2``, batch mean.

    Same arguments as :func:`gram_loss`; ``a`` and ``b`` must have the same shapes.  With
    ``weight``, each position's squared error counts with its weight (scaled to mean 1).
    """
    total = None
    for name, fa, fb in _layers(a, b):
        _check(fa, f"features {name or 'a'}")
        if fa.shape != fb.shape:
            raise ValueError(f"layer {name!r}: shapes differ ({tuple(fa.shape)} vs {tuple(fb.shape)})")
        sq = (fa - fb) ** 2
        pw = _position_weights(weight, fa)
        if pw is not None:
            sq = sq * pw
        term = _layer_weight(layer_weights, name) * sq.mean()
        total = term if total is None else total + term
    assert total is not None
    return total
