"""Gaze guidance (seed 001): change an image so that predicted fixations move toward a target.

The total loss (Gatys et al., eq 9) on the guided image ``T(I)``:

    strength * KL(p_t || p(T(I)))  +  w_feature * L_feat  +  w_texture * L_tex  +  w_adversarial * L_adv

``p`` is the density of the *optimised* saliency model (an
:class:`~gazetune.saliency.backbone.InceptionSaliency`, differentiable through its frozen
backbone), ``L_feat`` and ``L_tex`` compare the frozen Inception features of ``T(I)`` and ``I``
(relative to the size of ``I``'s features), ``L_adv`` is the patch LSGAN loss of a discriminator
trained at the same time to tell patches of ``T(I)`` from patches of ``I``.  ``T`` is a smooth
local colour field (:mod:`gazetune.guide.transform`), found per image (:func:`guide_image`) or
predicted by a trained :class:`~gazetune.guide.transform.GuideNet` (:func:`guide_with_net`).

Whether it worked is measured by :func:`measure`, with *independent* saliency models (trained on
another split and seed, :func:`check_independent`): the optimised model would report success
even for an adversarial change, a model that never saw the optimisation does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from torch.nn import functional as F

from gazetune.guide.losses import (
    PatchDiscriminator,
    lsgan_discriminator_loss,
    lsgan_generator_loss,
    map_target,
    region_mask,
    region_target,
    relative_feature_loss,
    relative_gram_loss,
)
from gazetune.guide.transform import FIELD_CHANNELS, apply_field, bounded, field_grid
from gazetune.saliency.backbone import InceptionSaliency, seeded
from gazetune.saliency.losses import kl_loss, log_density

#: Inception layer of the feature (content) loss and layers of the texture (Gram) loss.
CONTENT_TAPS: tuple[str, ...] = ("mixed_7",)
TEXTURE_TAPS: tuple[str, ...] = ("conv_2", "mixed_2", "mixed_5")


@dataclass
class GuideConfig:
    """Settings of gaze guidance.

    ``strength`` weighs the saliency loss (eq 3) against the naturalness terms; ``w_feature``,
    ``w_texture`` and ``w_adversarial`` weigh eq 4, 5-6 and 7.  ``factor``: how many times the
    target multiplies the predicted density inside a region (``away``: divides it).  ``steps``
    and ``lr``: Adam on the field (per image).  ``map_width``: width of the saliency maps the loss
    compares (height from the aspect ratio).  ``grid_cols``: columns of the field grid.
    """

    strength: float = 1.0
    w_feature: float = 1.0
    w_texture: float = 1.0
    w_adversarial: float = 0.05
    factor: float = 4.0
    away: bool = False
    steps: int = 40
    lr: float = 0.08
    d_lr: float = 2e-4
    map_width: int = 80
    grid_cols: int = 16
    seed: int = 0


def load_image(path: str | Path) -> torch.Tensor:
    """An image file as ``(1, 3, H, W)`` float32 in ``[-1, 1]``."""
    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(arr.transpose(2, 0, 1) / 127.5 - 1.0)[None]


def save_image(x: torch.Tensor, path: str | Path) -> Path:
    """Save ``(1, 3, H, W)`` in ``[-1, 1]`` as an 8-bit PNG (atomic)."""
    from gazetune.atomic import atomic_path

    path = Path(path)
    arr = ((x[0].detach().clamp(-1, 1).cpu().numpy().transpose(1, 2, 0) + 1) * 127.5).round().astype(np.uint8)
    with atomic_path(path, suffix=path.suffix or ".png") as tmp:  # Pillow picks the format from the suffix
        Image.fromarray(arr).save(tmp)
    return path


def to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.detach().clamp(-1, 1).cpu().numpy() + 1) * 127.5).round().astype(np.uint8)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of two images in ``[-1, 1]`` after 8-bit quantisation (``inf`` when equal)."""
    ua, ub = to_uint8(a).astype(np.float64), to_uint8(b).astype(np.float64)
    if ua.shape != ub.shape:
        raise ValueError(f"images differ in shape: {ua.shape} vs {ub.shape}")
    mse = float(np.mean((ua - ub) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def resize_width(x: torch.Tensor, width: int) -> torch.Tensor:
    """Resize ``(N, C, H, W)`` to ``width`` (aspect kept; antialiased when shrinking)."""
    h = max(1, int(round(width * x.shape[2] / x.shape[3])))
    if (h, width) == tuple(x.shape[-2:]):
        return x
    return F.interpolate(x, size=(h, width), mode="bilinear", align_corners=False, antialias=width < x.shape[3])


def map_shape(image_shape: Sequence[int], map_width: int) -> tuple[int, int]:
    return max(1, int(round(map_width * image_shape[0] / image_shape[1]))), int(map_width)


class GuideObjective:
    """The total loss (eq 9) for one optimised saliency model, without the adversarial part.

    ``__call__(x_hat, ref, target)`` returns ``(loss, parts)`` where ``ref`` are the frozen
    features of the original images (:meth:`reference`) and ``target`` the ``(N, h, w)`` target
    densities at ``out_size``.
    """

    def __init__(self, model: InceptionSaliency, out_size: Sequence[int], cfg: GuideConfig):
        if not isinstance(model, InceptionSaliency):
            raise TypeError(
                "the optimised saliency model must be an InceptionSaliency (train it with "
                "`gazetune saliency train --backbone inception`): guidance needs gradients through its features"
            )
        self.model = model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        self.out_size = (int(out_size[0]), int(out_size[1]))
        self.cfg = cfg
        self.taps = tuple(dict.fromkeys((*model.taps, *CONTENT_TAPS, *TEXTURE_TAPS)))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.backbone(x.device)(x, taps=self.taps, size=self.model.feature_width)

    @torch.no_grad()
    def reference(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.features(x)

    def density_logits(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.model.readout({t: feats[t] for t in self.model.taps}, self.out_size)

    def __call__(self, x_hat: torch.Tensor, ref: dict[str, torch.Tensor], target: torch.Tensor):
        feats = self.features(x_hat)
        parts = {
            "saliency": kl_loss(self.density_logits(feats), target, density="softmax"),
            "feature": relative_feature_loss({t: feats[t] for t in CONTENT_TAPS}, ref),
            "texture": relative_gram_loss({t: feats[t] for t in TEXTURE_TAPS}, ref),
        }
        c = self.cfg
        loss = c.strength * parts["saliency"] + c.w_feature * parts["feature"] + c.w_texture * parts["texture"]
        return loss, parts


def make_target(
    p0: torch.Tensor,
    cfg: GuideConfig,
    region: Sequence[float] | None = None,
    target_map: np.ndarray | None = None,
) -> torch.Tensor:
    """Target density ``(N, h, w)`` from the current prediction ``p0`` and a region or a target map."""
    if (region is None) == (target_map is None):
        raise ValueError("give exactly one of a region (L,T,W,H) or a target map")
    if region is not None:
        mask = torch.from_numpy(region_mask(region, p0.shape[-2:]))
        return region_target(p0, mask, cfg.factor, cfg.away)
    return map_target(target_map, p0.shape[-2:]).expand_as(p0).contiguous()


def adversarial_step(loss, parts, x_hat, x, opt, disc, d_opt, w_adversarial: float, history: dict[str, list[float]]) -> None:
    """Add the patch LSGAN term (eq 7) to ``loss``, step the transformation, then the
    discriminator (eq 8); append every loss part to ``history``.  ``disc=None``: no adversary."""
    if disc is not None:
        parts["adversarial"] = lsgan_generator_loss(disc(x_hat))
        loss = loss + w_adversarial * parts["adversarial"]
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    if disc is not None:
        d_loss = lsgan_discriminator_loss(disc(x_hat.detach()), disc(x))
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()
    history["loss"].append(loss.item())
    for k, v in parts.items():
        history[k].append(v.item())


@dataclass
class GuideResult:
    """Output of :func:`guide_image`: the guided full-size image, the field, the target and the loss history."""

    image: torch.Tensor
    field: torch.Tensor
    target: torch.Tensor
    history: dict[str, list[float]] = field(default_factory=dict)


def guide_image(
    image: torch.Tensor,
    model: InceptionSaliency,
    cfg: GuideConfig | None = None,
    region: Sequence[float] | None = None,
    target_map: np.ndarray | None = None,
) -> GuideResult:
    """Per-image gaze guidance: optimise the colour field of one image (Adam, ``cfg.steps``).

    Parameters
    ----------
    image
        ``(1, 3, H, W)`` in ``[-1, 1]``, any size; the field is optimised on a copy at the model's
        feature width and applied to ``image`` at full size.
    model
        The optimised saliency model (never the one that measures the result).
    cfg
        :class:`GuideConfig`.
    region, target_map
        Exactly one: a region ``(L, T, W, H)`` in fractions of the image, or a non-negative target
        map (any size).
    """
    cfg = cfg or GuideConfig()
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise ValueError(f"image must be (1, 3, H, W); got shape {tuple(image.shape)}")
    x = resize_width(image.float(), model.feature_width)
    objective = GuideObjective(model, map_shape(x.shape[-2:], cfg.map_width), cfg)
    ref = objective.reference(x)
    with torch.no_grad():
        p0 = log_density(objective.density_logits(ref), "softmax").exp()
    target = make_target(p0, cfg, region, target_map)
    history: dict[str, list[float]] = {"loss": [], "saliency": [], "feature": [], "texture": [], "adversarial": []}
    with seeded(cfg.seed):
        raw = torch.zeros(1, FIELD_CHANNELS, *field_grid(x.shape[2], x.shape[3], cfg.grid_cols), requires_grad=True)
        disc = PatchDiscriminator() if cfg.w_adversarial > 0 else None
        opt = torch.optim.Adam([raw], lr=cfg.lr)
        d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr, betas=(0.5, 0.999)) if disc is not None else None
        for _ in range(cfg.steps):
            x_hat = apply_field(x, bounded(raw))
            loss, parts = objective(x_hat, ref, target)
            adversarial_step(loss, parts, x_hat, x, opt, disc, d_opt, cfg.w_adversarial, history)
    fld = bounded(raw.detach())
    with torch.no_grad():
        out = apply_field(image.float(), fld)
    return GuideResult(image=out, field=fld, target=target, history=history)


@torch.no_grad()
def guide_with_net(image: torch.Tensor, net, model: InceptionSaliency, region: Sequence[float], away: bool = False, work_width: int | None = None) -> torch.Tensor:
    """Feed-forward guidance of ``(1, 3, H, W)`` with a trained :class:`GuideNet`; returns the full-size image."""
    from gazetune.guide.train import net_field

    x = resize_width(image.float(), work_width or model.feature_width)
    feats = model.backbone(x.device)(x, taps=CONTENT_TAPS, size=model.feature_width)[CONTENT_TAPS[0]]
    sign = torch.from_numpy(region_mask(region, x.shape[-2:]))[None, None] * (-1.0 if away else 1.0)
    return apply_field(image.float(), net_field(net, x, sign, feats))


# ----------------------------------------------------------------------------------------------
# measurement with independent models


@dataclass
class Judge:
    """A saliency model used only to measure: the loaded model, its checkpoint path and info."""

    name: str
    model: torch.nn.Module
    info: dict[str, Any]
    path: str = ""

    @property
    def map_size(self) -> tuple[int, int] | None:
        size = self.info.get("extra", {}).get("size")
        return (int(size[0]), int(size[1])) if size else None


def load_judge(path: str | Path, name: str | None = None) -> Judge:
    from gazetune.saliency.model import checkpoint_weights, load_saliency_model, read_checkpoint_info

    weights = checkpoint_weights(path)
    return Judge(name or Path(path).name, load_saliency_model(weights), read_checkpoint_info(weights), str(weights.resolve()))


def check_independent(optimised: dict[str, Any], judge: dict[str, Any], optimised_path: str = "", judge_path: str = "") -> None:
    """Refuse a judge that is not independent of the optimised model.

    Both are checkpoint infos (:func:`gazetune.saliency.model.read_checkpoint_info`).  A judge
    must be another file, trained with another seed and on another split.
    """
    if optimised_path and judge_path and Path(optimised_path).resolve() == Path(judge_path).resolve():
        raise ValueError("the judge is the optimised model itself; measure with a model trained on another split and seed")
    so = optimised.get("extra", {}).get("split", {})
    sj = judge.get("extra", {}).get("split", {})
    if not sj or "seed" not in sj:
        raise ValueError("the judge checkpoint records no training split, so its independence cannot be checked")
    if so and so.get("seed") == sj.get("seed"):
        raise ValueError(f"the judge was trained with the same seed ({sj.get('seed')}) as the optimised model; use another seed")
    if so and sorted(so.get("train", [])) == sorted(sj.get("train", [])):
        raise ValueError("the judge was trained on the same images as the optimised model; use another split")


@torch.no_grad()
def judge_density(judge: Judge, image: torch.Tensor) -> torch.Tensor:
    """``(h, w)`` fixation density of a judge for a full-size ``(1, 3, H, W)`` image, at its working size."""
    size = judge.map_size or map_shape(image.shape[-2:], 80)
    if isinstance(judge.model, InceptionSaliency):
        logits = judge.model(image.float(), out_size=size)
        return log_density(logits, "softmax").exp()[0]
    small = F.interpolate(image.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
    density = judge.info.get("extra", {}).get("density", "sigmoid")
    return log_density(judge.model(small), density).exp()[0]


def in_region(density: torch.Tensor, region: Sequence[float] | np.ndarray) -> float:
    """Probability mass of a density inside a region ``(L, T, W, H)`` (fractional pixels counted
    by cover) or inside a mask array of any size (resampled by area to the density's grid)."""
    if isinstance(region, np.ndarray) and region.ndim == 2:
        m = torch.from_numpy(region.astype(np.float32))[None, None]
        mask = F.interpolate(m, size=tuple(density.shape[-2:]), mode="area")[0, 0]
    else:
        mask = torch.from_numpy(region_mask(region, density.shape[-2:]))
    return float((density * mask).sum())


def target_region_of_map(target_map: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """For a target map: the mask of pixels at or above ``threshold`` of its maximum."""
    t = np.asarray(target_map, dtype=np.float64)
    return (t >= threshold * t.max()).astype(np.float32)


def measure(
    original: torch.Tensor,
    guided: torch.Tensor,
    judges: Sequence[Judge],
    region: Sequence[float] | np.ndarray,
    optimised: InceptionSaliency | None = None,
    map_width: int = 80,
) -> dict[str, Any]:
    """Region saliency before and after by each judge, and PSNR.

    ``region`` is ``(L, T, W, H)`` in fractions of the image or a mask array (see :func:`in_region`).

    Returns ``{"saliency_in_region_before", "saliency_in_region_after"}`` of the first judge,
    ``"psnr"`` (dB, full size, 8 bit), ``"judges": {name: {"before", "after"}}`` for every judge
    and, when ``optimised`` is given, ``"optimised_model": {"before", "after"}`` (what the
    optimised model itself believes: not evidence).
    """
    if not judges:
        raise ValueError("at least one independent judge is needed to measure guidance")
    per = {}
    for j in judges:
        per[j.name] = {"before": in_region(judge_density(j, original), region), "after": in_region(judge_density(j, guided), region)}
    first = per[judges[0].name]
    report: dict[str, Any] = {
        "saliency_in_region_before": first["before"],
        "saliency_in_region_after": first["after"],
        "psnr": psnr(original, guided),
        "judge": judges[0].name,
        "judges": per,
        "region": list(region) if not isinstance(region, np.ndarray) else "mask",
    }
    if optimised is not None:
        size = map_shape(original.shape[-2:], map_width)
        with torch.no_grad():
            d0 = log_density(optimised(original.float(), out_size=size), "softmax").exp()[0]
            d1 = log_density(optimised(guided.float(), out_size=size), "softmax").exp()[0]
        report["optimised_model"] = {"before": in_region(d0, region), "after": in_region(d1, region)}
    return report
