"""Training and inference for M_saliency (eq 4-8), and the data it learns from.

* :func:`load_fixation_dataset` reads an image folder and a fixation table, resizes the images to
  a working resolution, scales the fixations accordingly and builds the pooled target heatmaps.
* :func:`split_names` makes the deterministic train/test split (recorded by the CLI).
* :func:`train_saliency` fits a :class:`~gazetune.saliency.model.SaliencyUNet` with Adam on a
  weighted sum of the losses of :mod:`gazetune.saliency.losses`, with horizontal-flip
  augmentation and a Rich progress bar.
* :func:`predict_maps` turns a model's logits into saliency densities.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter

from gazetune.gaze import FixationTable, pooled_heatmap, read_fixation_table
from gazetune.saliency import losses as L
from gazetune.saliency.model import SaliencyUNet
from gazetune.seeding import seeded

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
LOSS_TERMS = ("bce", "weighted_bce", "kl", "cc", "nss")


# ----------------------------------------------------------------------------------------------
# data


@dataclass
class FixationDataset:
    """Images, target maps and fixations of one image set at a working resolution.

    Attributes
    ----------
    names
        Image file names (keys of the fixation table), in order.
    images
        ``(N, 3, H, W)`` float32 in ``[-1, 1]``.
    maps
        ``(N, H, W)`` float32 pooled target heatmaps scaled to ``[0, 1]`` (BCE targets, eq 5-7).
    fixations
        Per image, ``{subject: (n, 2) x, y}`` in pixels of the working resolution (pixel centres at
        integers, like :func:`gazetune.gaze.heatmap`).
    sigma
        Standard deviation of the target Gaussians, pixels of the working resolution.
    original_sizes
        ``(height, width)`` of each image file.
    """

    names: list[str]
    images: np.ndarray
    maps: np.ndarray
    fixations: list[dict[str, np.ndarray]]
    sigma: float
    original_sizes: list[tuple[int, int]] = field(default_factory=list)

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, names: Sequence[str]) -> "FixationDataset":
        index = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in index]
        if missing:
            raise KeyError(f"images not in the dataset: {missing[:5]}{' ...' if len(missing) > 5 else ''}")
        idx = [index[n] for n in names]
        return FixationDataset(
            names=list(names),
            images=self.images[idx],
            maps=self.maps[idx],
            fixations=[self.fixations[i] for i in idx],
            sigma=self.sigma,
            original_sizes=[self.original_sizes[i] for i in idx] if self.original_sizes else [],
        )


def _load_image(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """RGB image resized to ``size = (height, width)`` as ``(3, H, W)`` float32 in [-1, 1]."""
    with Image.open(path) as im:
        original = (im.height, im.width)
        im = im.convert("RGB").resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=2.0)
        arr = np.asarray(im, dtype=np.float32)
    return (arr.transpose(2, 0, 1) / 127.5 - 1.0), original


def working_shape(original: tuple[int, int], width: int) -> tuple[int, int]:
    """``(height, width)`` with the given width and the original aspect ratio (height rounded)."""
    if width <= 0:
        raise ValueError(f"working width must be positive; got {width}")
    return max(1, int(round(width * original[0] / original[1]))), int(width)


def scale_fixations(fix: np.ndarray, original: tuple[int, int], shape: tuple[int, int]) -> np.ndarray:
    """Map fixation ``x, y`` from original pixels to the working resolution.

    Pixel centres stay at integers in both: ``x' = (x + 0.5) * W'/W - 0.5`` (same for ``y``), then
    clipped to ``[0, W' - 1]`` x ``[0, H' - 1]``.  Returns ``(n, 2)`` float64.
    """
    fix = np.asarray(fix, dtype=np.float64)
    if fix.size == 0:
        return np.zeros((0, 2))
    if fix.ndim != 2 or fix.shape[1] < 2:
        raise ValueError(f"fixations must be an (n, 2+) array of x, y; got shape {fix.shape}")
    sx = shape[1] / original[1]
    sy = shape[0] / original[0]
    x = np.clip((fix[:, 0] + 0.5) * sx - 0.5, 0, shape[1] - 1)
    y = np.clip((fix[:, 1] + 0.5) * sy - 0.5, 0, shape[0] - 1)
    return np.stack([x, y], axis=1)


def load_fixation_dataset(
    images_dir: str | os.PathLike,
    fixations: str | os.PathLike | FixationTable,
    width: int = 64,
    sigma_frac: float = 0.03,
    names: Sequence[str] | None = None,
    duration_weighted: bool = False,
) -> FixationDataset:
    """Read images and fixations into a :class:`FixationDataset` at a working resolution.

    Parameters
    ----------
    images_dir
        Folder with the image files named as in the fixation table.
    fixations
        Fixation table CSV (``image, subject, index, x, y, duration_ms``) or a loaded table.
    width
        Working width in pixels; the height follows the aspect ratio of the first image (all
        images are resized to that one shape; OSIE 800 x 600 at width 80 gives 80 x 60).
    sigma_frac
        Target Gaussian standard deviation as a fraction of the working width (0.03: 24 px at 800
        px, about one degree of visual angle in OSIE).
    names
        Images to load (default: all images of the table that exist in the folder, sorted).
    duration_weighted
        Weigh fixations by duration in the targets (eq 3).  Off by default: the metrics count
        every fixation once, so unweighted targets match what is scored.
    """
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise FileNotFoundError(f"image folder not found: {images_dir}")
    table = fixations if isinstance(fixations, FixationTable) else read_fixation_table(fixations)
    if names is None:
        names = [n for n in table.images() if (images_dir / n).exists()]
        if not names:
            raise ValueError(f"no image of the fixation table exists in {images_dir}")
    missing = [n for n in names if not (images_dir / n).exists()]
    if missing:
        raise FileNotFoundError(f"{len(missing)} image(s) not found in {images_dir}, e.g. {missing[:3]}")
    with Image.open(images_dir / names[0]) as im:
        shape = working_shape((im.height, im.width), width)
    sigma = sigma_frac * shape[1]
    imgs, maps, fixes, sizes = [], [], [], []
    for name in names:
        arr, original = _load_image(images_dir / name, shape)
        raw = table.for_image(name)
        per_subject = {subject: scale_fixations(fx, original, shape) for subject, fx in raw.items()}
        if duration_weighted:  # x, y, duration_ms
            observers = [np.concatenate([per_subject[s], raw[s][:, 2:3]], axis=1) for s in per_subject]
        else:
            observers = list(per_subject.values())
        imgs.append(arr)
        maps.append(pooled_heatmap(observers, shape, sigma, normalize="max"))
        fixes.append(per_subject)
        sizes.append(original)
    return FixationDataset(list(names), np.stack(imgs), np.stack(maps), fixes, float(sigma), sizes)


def split_names(names: Sequence[str], train_fraction: float = 0.8, seed: int = 0) -> tuple[list[str], list[str]]:
    """Deterministic random split of image names into (train, test) by ``seed``.

    The names are sorted first, so the split depends only on the set of names, the fraction and
    the seed.  Both parts keep sorted order.
    """
    if not 0 < train_fraction < 1:
        raise ValueError(f"train fraction must be in (0, 1); got {train_fraction}")
    ordered = sorted(names)
    if len(ordered) < 2:
        raise ValueError(f"need at least 2 images to split; got {len(ordered)}")
    perm = np.random.default_rng(seed).permutation(len(ordered))
    n_train = min(len(ordered) - 1, max(1, int(round(train_fraction * len(ordered)))))
    train = sorted(ordered[i] for i in perm[:n_train])
    test = sorted(ordered[i] for i in perm[n_train:])
    return train, test


# ----------------------------------------------------------------------------------------------
# training


@dataclass
class SaliencyTrainConfig:
    """Training configuration of M_saliency.

    ``loss`` is a ``+``-separated sum of terms, each optionally weighted ``w*name``, with names
    ``bce`` (eq 5-6), ``weighted_bce`` (eq 7-8, parameters ``k`` and ``center_sigma``), ``kl``
    (Gatys eq 3), ``cc`` (``1 - CC``) and ``nss`` (``-NSS`` on the target map); e.g. ``"kl+0.5*cc"`` or ``"weighted_bce"``.
    ``center_sigma`` is eq 8's sigma as a fraction of the map height.

    ``backbone="inception"`` trains :class:`~gazetune.saliency.backbone.InceptionSaliency`
    instead of the U-Net: a readout (channels ``readout``, output blur ``blur_frac`` of the width,
    channel ``dropout``) on the frozen TF-Inception ``taps`` of the image resized to
    ``feature_width`` pixels; ``width``, ``depth``, ``center_prior``, ``norm`` and ``density`` are
    then unused (its density is a softmax) and ``bias_grid`` is the size of its learned prior.
    ``finetune`` also trains the last Inception block (``mixed_10``) at ``finetune_lr_scale``
    times the learning rate.
    """

    epochs: int = 24
    batch_size: int = 16
    lr: float = 2e-3
    weight_decay: float = 1e-4
    loss: str = "kl+cc+0.5*bce"
    k: float = 1.0
    center_sigma: float = 0.25
    density: str = "sigmoid"
    flip: bool = True
    width: int = 16
    depth: int = 3
    center_prior: bool = True
    bias_grid: list[int] = field(default_factory=lambda: [6, 8])
    norm: str = "group"
    seed: int = 0
    threads: int = 0
    progress: bool = True
    backbone: str = "none"
    taps: list[str] = field(default_factory=lambda: ["mixed_2", "mixed_5", "mixed_7", "mixed_9", "mixed_10"])
    feature_width: int = 448  # 2x Inception's 224: finer taps (mixed_2 at 53 x 39 on OSIE); NSS 2.94 against 2.48 at 224 (docs/benchmarks.md)
    readout: list[int] = field(default_factory=lambda: [64, 32])
    blur_frac: float = 0.02
    dropout: float = 0.1
    finetune: bool = False
    finetune_lr_scale: float = 0.02


def parse_loss(spec: str) -> list[tuple[float, str]]:
    """``"kl+0.5*cc"`` -> ``[(1.0, "kl"), (0.5, "cc")]``; errors name the bad term."""
    terms = []
    for raw in spec.replace(" ", "").split("+"):
        if not raw:
            raise ValueError(f"empty term in loss {spec!r}")
        weight, _, name = raw.rpartition("*")
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise ValueError(f"loss term {raw!r}: weight {weight!r} is not a number") from None
        if name not in LOSS_TERMS:
            raise ValueError(f"loss term {raw!r}: unknown loss {name!r}; known: {', '.join(LOSS_TERMS)}")
        terms.append((w, name))
    return terms


def _loss_terms(logits: torch.Tensor, target: torch.Tensor, terms, cfg: SaliencyTrainConfig) -> dict[str, torch.Tensor]:
    out = {}
    for _, name in terms:
        if name == "bce":
            out[name] = L.bce_loss(logits, target)
        elif name == "weighted_bce":
            out[name] = L.weighted_bce_loss(logits, target, k=cfg.k, sigma=cfg.center_sigma * target.shape[-2])
        elif name == "kl":
            out[name] = L.kl_loss(logits, target, density=cfg.density)  # type: ignore[arg-type]
        elif name == "cc":
            out[name] = L.cc_loss(logits, target, density=cfg.density)  # type: ignore[arg-type]
        elif name == "nss":
            out[name] = L.nss_loss(logits, target, density=cfg.density)  # type: ignore[arg-type]
    return out


def optimisation_step(logits, target, terms, cfg, opt, sched, sums: dict[str, float]) -> float:
    """One Adam step on the weighted loss terms; adds each term times the batch size to ``sums``
    and returns the total loss times the batch size."""
    parts = _loss_terms(logits, target, terms, cfg)
    loss = sum(w * parts[name] for w, name in terms)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    for name, v in parts.items():
        sums[name] += v.item() * len(target)
    return loss.item() * len(target)


def _check_training_data(images: np.ndarray | torch.Tensor, maps: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(maps), dtype=torch.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(x.shape)}")
    if y.ndim != 3 or y.shape[0] != x.shape[0] or y.shape[1:] != x.shape[2:]:
        raise ValueError(f"target_maps must be (N, H, W) matching images {tuple(x.shape)}; got {tuple(y.shape)}")
    if x.min() < -1.0001 or x.max() > 1.0001:
        raise ValueError(f"images must be scaled to [-1, 1]; got range [{x.min():.3f}, {x.max():.3f}]")
    if y.min() < 0 or y.max() > 1.0001:
        raise ValueError(f"target_maps must lie in [0, 1]; got range [{y.min():.3f}, {y.max():.3f}]")
    return x, y.clamp(0, 1)


def train_saliency(
    images: np.ndarray | torch.Tensor,
    target_maps: np.ndarray | torch.Tensor,
    cfg: SaliencyTrainConfig | None = None,
    val_images: np.ndarray | torch.Tensor | None = None,
    val_maps: np.ndarray | torch.Tensor | None = None,
    model: SaliencyUNet | None = None,
) -> tuple[SaliencyUNet, dict[str, list[float]]]:
    """Train M_saliency on images and target heatmaps.

    Parameters
    ----------
    images
        ``(N, C, H, W)`` float32 in ``[-1, 1]`` (C = 3, or 1 for gray).
    target_maps
        ``(N, H, W)`` heatmaps in ``[0, 1]`` (``normalize="max"``).
    cfg
        :class:`SaliencyTrainConfig` (defaults if ``None``).
    val_images, val_maps
        Optional held-out data; its loss is recorded after each epoch.
    model
        Start from this model instead of a new one.

    Returns
    -------
    (model, history)
        The trained model (eval mode) and ``history``: per-epoch lists ``"loss"`` (mean training
        loss), one list per loss term, ``"val_loss"`` when validation data are given, and
        ``"seconds"`` (wall time of each epoch).
    """
    cfg = cfg or SaliencyTrainConfig()
    terms = parse_loss(cfg.loss)
    x, y = _check_training_data(images, target_maps)
    if cfg.epochs < 0 or cfg.batch_size < 1:
        raise ValueError(f"epochs must be >= 0 and batch_size >= 1; got {cfg.epochs}, {cfg.batch_size}")
    # the weight initialisation reads torch's global RNG: seeded inside a fork; threads for this call only
    with seeded(cfg.seed, cfg.threads):
        return _train_saliency(x, y, terms, cfg, val_images, val_maps, model)


def _train_saliency(x: torch.Tensor, y: torch.Tensor, terms, cfg: SaliencyTrainConfig, val_images, val_maps,
                    model: SaliencyUNet | None) -> tuple[SaliencyUNet, dict[str, list[float]]]:
    gen = torch.Generator().manual_seed(cfg.seed)
    if model is None:
        model = SaliencyUNet(
            in_channels=3 if x.shape[1] in (1, 3) else x.shape[1],
            width=cfg.width,
            depth=cfg.depth,
            center_prior=cfg.center_prior,
            bias_grid=tuple(cfg.bias_grid) if cfg.bias_grid else None,
            norm=cfg.norm,
        )
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(x) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=max(1, cfg.epochs * steps_per_epoch), pct_start=0.15
    )
    history: dict[str, list[float]] = {"loss": [], "seconds": []}
    for _, name in terms:
        history[name] = []
    if val_images is not None and val_maps is not None:
        vx, vy = _check_training_data(val_images, val_maps)
        history["val_loss"] = []
    else:
        vx = vy = None

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("saliency"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}")]
    with Progress(*columns, disable=not cfg.progress, transient=False) as progress:
        task = progress.add_task("train", total=cfg.epochs * steps_per_epoch, info="")
        for epoch in range(cfg.epochs):
            t0 = time.perf_counter()
            model.train()
            perm = torch.randperm(len(x), generator=gen)
            sums = {name: 0.0 for _, name in terms}
            total = 0.0
            for start in range(0, len(x), cfg.batch_size):
                idx = perm[start : start + cfg.batch_size]
                xb, yb = x[idx], y[idx]
                if cfg.flip:
                    flip = torch.rand(len(idx), generator=gen) < 0.5
                    xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
                    yb = torch.where(flip[:, None, None], yb.flip(-1), yb)
                total += optimisation_step(model(xb), yb, terms, cfg, opt, sched, sums)
                progress.update(task, advance=1, info=f"epoch {epoch + 1}/{cfg.epochs} loss {total / max(1, start + len(idx)):.4f}")
            history["loss"].append(total / len(x))
            for name in sums:
                history[name].append(sums[name] / len(x))
            if vx is not None:
                history["val_loss"].append(evaluate_loss(model, vx, vy, cfg))
            history["seconds"].append(time.perf_counter() - t0)
    return model.eval(), history


@torch.no_grad()
def evaluate_loss(model: SaliencyUNet, images, maps, cfg: SaliencyTrainConfig, batch_size: int = 64) -> float:
    """Mean training objective of ``cfg.loss`` on ``images`` / ``maps`` (no augmentation)."""
    terms = parse_loss(cfg.loss)
    x, y = _check_training_data(images, maps)
    model.eval()
    total = 0.0
    for start in range(0, len(x), batch_size):
        xb, yb = x[start : start + batch_size], y[start : start + batch_size]
        parts = _loss_terms(model(xb), yb, terms, cfg)
        total += float(sum(w * parts[name] for w, name in terms)) * len(xb)
    return total / len(x)


@torch.no_grad()
def predict_maps(
    model: SaliencyUNet,
    images: np.ndarray | torch.Tensor,
    density: str = "sigmoid",
    blur_sigma: float = 0.0,
    batch_size: int = 32,
) -> np.ndarray:
    """Predicted saliency densities.

    Parameters
    ----------
    model
        A trained saliency model.
    images
        ``(N, C, H, W)`` float32 in ``[-1, 1]``.
    density
        ``"sigmoid"``: ``SM_pred`` (eq 4) normalised to sum 1; ``"softmax"``: softmax of the logits.
    blur_sigma
        Optional Gaussian blur of each density (pixels), applied before renormalising.

    Returns
    -------
    numpy.ndarray
        ``(N, H, W)`` float32, each map non-negative and summing to 1.
    """
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if x.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W); got shape {tuple(x.shape)}")
    was_training = model.training
    model.eval()
    outs = []
    for start in range(0, len(x), batch_size):
        logits = model(x[start : start + batch_size])
        outs.append(L.log_density(logits, density).exp().cpu().numpy())  # type: ignore[arg-type]
    model.train(was_training)
    maps = np.concatenate(outs) if outs else np.zeros((0,) + tuple(x.shape[2:]))
    return blur_densities(maps, blur_sigma)


def blur_densities(maps: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (``sigma`` pixels; 0: none) of ``(N, H, W)`` densities, renormalised to sum 1; float32."""
    maps = np.asarray(maps, dtype=np.float64)
    if sigma > 0:
        maps = np.stack([gaussian_filter(m, sigma, mode="nearest") for m in maps])
        maps /= maps.sum(axis=(1, 2), keepdims=True)
    return maps.astype(np.float32)


def history_summary(history: dict[str, list[float]]) -> dict[str, Any]:
    """Last value of each history list (for logs and JSON)."""
    return {k: (v[-1] if v else None) for k, v in history.items()}


# ----------------------------------------------------------------------------------------------
# evaluation


def _stack_fixations(per_subject: dict[str, np.ndarray]) -> np.ndarray:
    parts = [np.asarray(f)[:, :2] for f in per_subject.values() if len(f)]
    return np.concatenate(parts) if parts else np.zeros((0, 2))


def _mean_rows(rows: list[dict[str, float]]) -> dict[str, float]:
    keys = rows[0].keys() if rows else []
    return {k: float(np.nanmean([r[k] for r in rows])) for k in keys}


def evaluate_saliency(
    predictions: np.ndarray | dict[str, np.ndarray],
    dataset: FixationDataset,
    baseline: np.ndarray,
    inter_observer: bool = True,
) -> dict[str, Any]:
    """All metrics per image and their means, for predictions and the reference predictors.

    Parameters
    ----------
    predictions
        ``(N, H, W)`` maps for the images of ``dataset`` (named ``"model"``) or ``{name: maps}``.
        Use densities (:func:`predict_maps`) for a meaningful information gain.
    dataset
        The evaluation images: fixations per observer and the pooled target maps.
    baseline
        ``(H, W)`` centre-bias density (fitted on *training* fixations, see
        :mod:`gazetune.saliency.baselines`): it is scored as the row ``"center bias"`` and is the
        baseline of the information gain (IG, bits per fixation).
    inter_observer
        Add the row ``"inter-observer"``: leave one observer out, the others' map (mixed with 5 %
        of the centre bias) is scored on the held-out observer's fixations; CC, KLD and SIM compare
        it with the held-out observer's own map (a lower bound of the consistency for those
        metrics).  Images with a single observer are skipped.

    Returns
    -------
    dict
        ``{"images": names, "rows": {name: {"mean": {metric: value}, "per_image": [{...}]}}}`` with
        the metric names of :data:`gazetune.saliency.metrics.ALL_METRICS`.  Means are over images;
        sAUC's negatives for image ``i`` are the fixations of all other images of ``dataset``.
    """
    from gazetune.saliency import metrics as M
    from gazetune.saliency.baselines import leave_one_out_maps

    if isinstance(predictions, np.ndarray):
        predictions = {"model": predictions}
    n = len(dataset.names)
    shape = dataset.shape
    baseline = np.asarray(baseline, dtype=np.float64)
    if baseline.shape != shape:
        raise ValueError(f"baseline map has shape {baseline.shape}; the dataset's maps are {shape}")
    for name, maps in predictions.items():
        if np.shape(maps) != (n,) + shape:
            raise ValueError(f"predictions {name!r} have shape {np.shape(maps)}; expected {(n,) + shape}")
    fixations = [_stack_fixations(f) for f in dataset.fixations]
    others = [np.concatenate([fixations[j] for j in range(n) if j != i] or [np.zeros((0, 2))]) for i in range(n)]
    rows: dict[str, list[dict[str, float]]] = {name: [] for name in predictions}
    rows["center bias"] = []
    io_rows: list[dict[str, float]] = []
    for i in range(n):
        if not len(fixations[i]):
            raise ValueError(f"image {dataset.names[i]!r} has no fixations to evaluate")
        if not len(others[i]):
            raise ValueError("shuffled AUC needs fixations on at least two images")
        target = dataset.maps[i]
        for name, maps in predictions.items():
            rows[name].append(M.all_metrics(maps[i], fixations[i], target, others[i], baseline))
        rows["center bias"].append(M.all_metrics(baseline, fixations[i], target, others[i], baseline))
        if inter_observer:
            per_held = [
                M.all_metrics(dens, held, own, others[i], baseline)
                for _, dens, held, own in leave_one_out_maps(dataset.fixations[i], shape, dataset.sigma, prior=baseline)
            ]
            if per_held:
                io_rows.append(_mean_rows(per_held))
    if io_rows:
        rows["inter-observer"] = io_rows
    return {
        "images": list(dataset.names),
        "rows": {name: {"mean": _mean_rows(r), "per_image": r} for name, r in rows.items()},
    }
