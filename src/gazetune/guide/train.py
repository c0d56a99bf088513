"""Training the feed-forward gaze-guidance network (``gazetune guide train``).

As in Gatys et al. (seed 001, eq 10), one transformation network is trained to minimise the
total loss over many images and random targets, which keeps it from fitting adversarial changes
to single images.  Each step draws a batch of training images and, for each, a random box
(sides 15-45 % of the image) to draw gaze toward (or, with ``away_share``, away from); the
network predicts the colour field, the optimised saliency model scores it (eq 3), the frozen
features keep content and texture (eq 4-6) and a patch discriminator trained alongside keeps
patches realistic (eq 7-8).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gazetune.guide.core import CONTENT_TAPS, GuideConfig, GuideObjective, adversarial_step, map_shape
from gazetune.guide.losses import PatchDiscriminator, region_mask, region_target
from gazetune.guide.transform import GuideNet, apply_field, bounded
from gazetune.saliency.backbone import InceptionSaliency, seeded
from gazetune.saliency.losses import log_density


@dataclass
class GuideTrainConfig:
    """Training settings of :class:`~gazetune.guide.transform.GuideNet` (loss weights in ``guide``)."""

    steps: int = 300
    batch_size: int = 4
    lr: float = 1e-3
    d_lr: float = 2e-4
    away_share: float = 0.0
    width: int = 32
    blocks: int = 3
    seed: int = 0
    progress: bool = True


def net_field(net: GuideNet, x: torch.Tensor, sign: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
    """The bounded field a :class:`GuideNet` predicts."""
    return bounded(net(x, sign.expand(x.shape[0], 1, *x.shape[-2:]) if sign.shape[0] == 1 else sign, feats))


def random_region(gen: torch.Generator, low: float = 0.15, high: float = 0.45) -> tuple[float, float, float, float]:
    """A random box ``(L, T, W, H)`` with sides in ``[low, high]`` of the image."""
    w, h = (low + (high - low) * torch.rand(2, generator=gen)).tolist()
    left, top = (torch.rand(2, generator=gen) * torch.tensor([1 - w, 1 - h])).tolist()
    return left, top, w, h


def train_guide_net(
    images: torch.Tensor,
    model: InceptionSaliency,
    guide: GuideConfig | None = None,
    cfg: GuideTrainConfig | None = None,
) -> tuple[GuideNet, dict[str, list[float]]]:
    """Train a :class:`GuideNet` on images at the model's feature width.

    Parameters
    ----------
    images
        ``(N, 3, H, W)`` in ``[-1, 1]``, all the same size (resize them to the optimised model's
        ``feature_width`` first: that is the working size).
    model
        The optimised saliency model.
    guide
        Loss weights and target factor (:class:`~gazetune.guide.core.GuideConfig`).
    cfg
        :class:`GuideTrainConfig`.

    Returns
    -------
    (net, history)
        The trained network (eval mode) and per-step ``loss``, ``saliency``, ``feature``,
        ``texture``, ``adversarial``.
    """
    guide = guide or GuideConfig()
    cfg = cfg or GuideTrainConfig()
    if images.ndim != 4 or images.shape[1] != 3 or len(images) < 1:
        raise ValueError(f"images must be a non-empty (N, 3, H, W) batch; got shape {tuple(images.shape)}")
    objective = GuideObjective(model, map_shape(images.shape[-2:], guide.map_width), guide)
    history: dict[str, list[float]] = {k: [] for k in ("loss", "saliency", "feature", "texture", "adversarial", "seconds")}
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with seeded(cfg.seed):
        gen = torch.Generator().manual_seed(cfg.seed)
        net = GuideNet(feature_channels=_channels(CONTENT_TAPS[0]), width=cfg.width, blocks=cfg.blocks, grid_cols=guide.grid_cols)
        disc = PatchDiscriminator()
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
        d_opt = torch.optim.Adam(disc.parameters(), lr=cfg.d_lr, betas=(0.5, 0.999))
        cols = [TextColumn("guide net"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
        with Progress(*cols, disable=not cfg.progress) as progress:
            task = progress.add_task("train", total=cfg.steps)
            for _ in range(cfg.steps):
                t0 = time.perf_counter()
                idx = torch.randint(len(images), (cfg.batch_size,), generator=gen)
                x = images[idx].float()
                ref = objective.reference(x)
                with torch.no_grad():
                    p0 = log_density(objective.density_logits(ref), "softmax").exp()
                signs, targets = [], []
                for i in range(len(x)):
                    region = random_region(gen)
                    away = bool(torch.rand(1, generator=gen) < cfg.away_share)
                    targets.append(region_target(p0[i], torch.from_numpy(region_mask(region, p0.shape[-2:])), guide.factor, away))
                    signs.append(torch.from_numpy(region_mask(region, x.shape[-2:])) * (-1.0 if away else 1.0))
                sign = torch.stack(signs)[:, None]
                x_hat = apply_field(x, net_field(net, x, sign, ref[CONTENT_TAPS[0]]))
                loss, parts = objective(x_hat, ref, torch.stack(targets))
                adversarial_step(loss, parts, x_hat, x, opt, disc, d_opt, guide.w_adversarial, history)
                history["seconds"].append(time.perf_counter() - t0)
                progress.update(task, advance=1)
    return net.eval(), history


def _channels(tap: str) -> int:
    from gazetune.features.inception import CHANNELS

    return CHANNELS[tap]


def save_guide_net(net: GuideNet, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Weights as safetensors, config as JSON beside them (``<path>.json``), both atomic."""
    from safetensors.torch import save_file

    from gazetune.atomic import atomic_path, atomic_write_text

    path = Path(path)
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous() for k, v in net.state_dict().items()}, str(tmp))
    atomic_write_text(path.with_suffix(".json"), json.dumps(
        {"format": "gazetune.guide/1", "model": "GuideNet", "config": net.config, "extra": extra or {}}, indent=1))
    return path


def load_guide_net(path: str | os.PathLike) -> tuple[GuideNet, dict[str, Any]]:
    """A :class:`GuideNet` saved by :func:`save_guide_net` (eval mode) and its JSON info."""
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / "guide_net.safetensors"
    side = path.with_suffix(".json")
    if not path.exists() or not side.exists():
        raise FileNotFoundError(f"guide network not found: {path} (and {side.name}), written by `gazetune guide train`")
    info = json.loads(side.read_text())
    if info.get("model") != "GuideNet":
        raise ValueError(f"{side}: not a GuideNet checkpoint")
    net = GuideNet(**info["config"])
    net.load_state_dict(load_file(str(path)))
    return net.eval(), info


def config_dict(guide: GuideConfig, cfg: GuideTrainConfig) -> dict[str, Any]:
    return {"guide": asdict(guide), "train": asdict(cfg)}


def load_images_at(paths: Sequence[str | os.PathLike], width: int) -> torch.Tensor:
    """Image files resized to ``width`` (height from the first file's aspect ratio), ``(N, 3, H, W)`` in [-1, 1]."""
    from PIL import Image

    from gazetune.saliency.train import _load_image, working_shape

    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no images given")
    with Image.open(paths[0]) as im:
        shape = working_shape((im.height, im.width), width)
    return torch.from_numpy(np.stack([_load_image(p, shape)[0] for p in paths]))

