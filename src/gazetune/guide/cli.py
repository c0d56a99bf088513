"""``gazetune guide``: change an image so people look where you want (seed 001); ``guide train``: the feed-forward network.

``gazetune guide --image IMG (--target MAP.png | --region L,T,W,H) --model SAL --judge SAL2 --out OUT.png``
optimises the image against ``--model`` (an Inception-backbone saliency checkpoint) and measures
the result with ``--judge`` (one or more checkpoints trained on another split and seed; checked)
or applies a trained network (``--net``).  The report (console and ``--json``) gives
``saliency_in_region_before``, ``saliency_in_region_after`` (by the first judge) and ``psnr``.
:func:`run_guide` and :func:`run_train` are the functions behind the commands.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
import typer

from gazetune.atomic import atomic_write_text
from gazetune.cli_options import renamed

app = typer.Typer(
    help="Gaze guidance (seed 001): change an image so that predicted fixations move toward a target.",
    invoke_without_command=True,
    no_args_is_help=True,
)


def _write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1, default=float))


def _load_target_map(path: Path) -> np.ndarray:
    from PIL import Image

    if not path.exists():
        raise FileNotFoundError(f"target map not found: {path}")
    from gazetune.images import rgb_to_grey

    with Image.open(path) as im:
        return rgb_to_grey(np.asarray(im.convert("RGB"), dtype=np.float32), axis=-1)[..., 0]


def run_guide(
    image: Path,
    model: Path,
    judges: list[Path],
    out: Path,
    region: str | None = None,
    target: Path | None = None,
    strength: float = 1.0,
    away: bool = False,
    steps: int = 40,
    net: Path | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Guide one image; writes ``out`` and returns the report (see :func:`gazetune.guide.core.measure`)."""
    from gazetune.guide.core import (
        GuideConfig,
        check_independent,
        guide_image,
        guide_with_net,
        load_image,
        load_judge,
        measure,
        save_image,
        target_region_of_map,
    )
    from gazetune.guide.losses import parse_region
    from gazetune.saliency.backbone import InceptionSaliency

    if (region is None) == (target is None):
        raise ValueError("give exactly one of --region L,T,W,H or --target MAP.png")
    if not judges:
        raise ValueError("give at least one --judge: a saliency model trained on another split and seed measures the result")
    if not image.exists():
        raise FileNotFoundError(f"image not found: {image}")
    box = parse_region(region) if region is not None else None
    target_map = _load_target_map(target) if target is not None else None
    opt = load_judge(model, "optimised")
    if not isinstance(opt.model, InceptionSaliency):
        raise ValueError(f"{model}: the optimised model must be an Inception-backbone checkpoint (saliency train --backbone inception)")
    loaded = [load_judge(j) for j in judges]
    for j in loaded:
        check_independent(opt.info, j.info, opt.path, j.path)
    x = load_image(image)
    cfg = GuideConfig(strength=strength, away=away, steps=steps, seed=seed)
    t0 = time.perf_counter()
    if net is not None:
        from gazetune.guide.train import load_guide_net

        if box is None:
            raise ValueError("the guide network takes a --region, not a target map")
        gnet, _ = load_guide_net(net)
        guided = guide_with_net(x, gnet, opt.model, box, away=away)
        history: dict[str, list[float]] = {}
    else:
        res = guide_image(x, opt.model, cfg, region=box, target_map=target_map)
        guided, history = res.image, res.history
    seconds = time.perf_counter() - t0
    save_image(guided, out)
    where = box if box is not None else target_region_of_map(target_map)
    report = measure(x, guided, loaded, where, optimised=opt.model, map_width=cfg.map_width)
    report.update({
        "image": str(image), "out": str(out), "mode": "network" if net is not None else "per-image",
        "direction": "away" if away else "toward", "strength": strength, "steps": steps if net is None else 0,
        "seconds": round(seconds, 2), "final_losses": {k: v[-1] for k, v in history.items() if v},
    })  # fmt: skip
    return report


def run_train(
    images: Path,
    model: Path,
    out: Path,
    names: list[str] | None = None,
    steps: int = 300,
    batch_size: int = 4,
    strength: float = 1.0,
    away_share: float = 0.0,
    seed: int = 0,
) -> Path:
    """Train a :class:`~gazetune.guide.transform.GuideNet` on the images of a folder (or ``names`` in it)."""
    from gazetune.guide.core import GuideConfig
    from gazetune.guide.train import GuideTrainConfig, config_dict, load_images_at, save_guide_net, train_guide_net
    from gazetune.saliency.backbone import InceptionSaliency
    from gazetune.saliency.model import load_saliency_model, read_checkpoint_info
    from gazetune.saliency.train import IMAGE_SUFFIXES

    sal = load_saliency_model(model)
    if not isinstance(sal, InceptionSaliency):
        raise ValueError(f"{model}: the optimised model must be an Inception-backbone checkpoint (saliency train --backbone inception)")
    if not images.is_dir():
        raise FileNotFoundError(f"image folder not found: {images}")
    if names is None:
        names = sorted(p.name for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not names:
        raise ValueError(f"no images in {images}")
    x = load_images_at([images / n for n in names], sal.feature_width)
    guide = GuideConfig(strength=strength, seed=seed)
    cfg = GuideTrainConfig(steps=steps, batch_size=batch_size, away_share=away_share, seed=seed)
    t0 = time.perf_counter()
    net, history = train_guide_net(x, sal, guide, cfg)
    weights = out if out.suffix == ".safetensors" else out / "guide_net.safetensors"
    info = read_checkpoint_info(model)
    extra = {
        **config_dict(guide, cfg), "saliency_model": str(model), "saliency_split": info.get("extra", {}).get("split", {}).get("seed"),
        "images": names, "train_seconds": round(time.perf_counter() - t0, 1), "history": history,
    }  # fmt: skip
    return save_guide_net(net, weights, extra)


def _print_report(report: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"gaze guidance ({report['mode']}, {report['direction']}), PSNR {report['psnr']:.2f} dB")
    table.add_column("saliency model")
    table.add_column("in region before", justify="right")
    table.add_column("in region after", justify="right")
    for name, row in report["judges"].items():
        table.add_row(f"{name} (independent)", f"{row['before']:.4f}", f"{row['after']:.4f}")
    if "optimised_model" in report:
        row = report["optimised_model"]
        table.add_row("optimised model (not evidence)", f"{row['before']:.4f}", f"{row['after']:.4f}")
    Console().print(table)
    Console().print(
        f"saliency_in_region_before={report['saliency_in_region_before']:.4f} "
        f"saliency_in_region_after={report['saliency_in_region_after']:.4f} psnr={report['psnr']:.2f}"
    )


@app.callback()
def guide_command(
    ctx: typer.Context,
    image: Optional[Path] = typer.Option(None, "--image", help="Image to change."),
    region: Optional[str] = typer.Option(None, "--region", help="L,T,W,H as fractions of width and height: where gaze should go."),
    target: Optional[Path] = typer.Option(None, "--target", help="Target saliency map (grayscale image, any size) instead of --region."),
    strength: float = typer.Option(1.0, "--strength", help="Weight of the saliency loss against the naturalness losses."),
    away: bool = typer.Option(False, "--away", help="Draw gaze away from the region instead of toward it."),
    model: Optional[Path] = typer.Option(None, "--model", help="Saliency checkpoint optimised against (Inception backbone)."),
    judge: Optional[List[Path]] = typer.Option(None, "--judge", help="Independent saliency checkpoint(s) that measure the result (another split and seed)."),
    net: Optional[Path] = typer.Option(None, "--net", help="Trained guide network (`gazetune guide train`) instead of per-image optimisation."),
    steps: int = typer.Option(40, "--steps", help="Optimisation steps (per-image)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the patch discriminator."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output PNG."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the report as JSON."),
) -> None:
    """Change an image so that predicted fixations move toward a target region or map."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [n for n, v in (("--image", image), ("--model", model), ("--out", out)) if v is None]
    if missing:
        raise typer.BadParameter(f"missing {', '.join(missing)}")
    try:
        report = run_guide(image, model, list(judge or []), out, region=region, target=target, strength=strength,
                           away=away, steps=steps, net=net, seed=seed)  # fmt: skip
    except (ValueError, FileNotFoundError, TypeError, RuntimeError) as e:
        raise typer.BadParameter(str(e)) from None
    _print_report(report)
    if json_out is not None:
        _write_json(json_out, report)


@app.command("train", cls=renamed({"--batch-size": "--batch"}))
def train_command(
    images: Path = typer.Option(..., "--images", help="Folder of training images."),
    model: Path = typer.Option(..., "--model", help="Saliency checkpoint optimised against (Inception backbone)."),
    out: Path = typer.Option(..., "--out", help="Folder (or *.safetensors file) for the network."),
    steps: int = typer.Option(300, help="Training steps."),
    batch_size: int = typer.Option(4, "--batch", help="Images per step."),
    strength: float = typer.Option(1.0, help="Weight of the saliency loss."),
    away_share: float = typer.Option(0.0, help="Share of targets that draw gaze away from the region."),
    seed: int = typer.Option(0, help="Seed of initialisation, batches and regions."),
) -> None:
    """Train the feed-forward guide network on an image set (random target regions)."""
    from rich.console import Console

    try:
        weights = run_train(images, model, out, steps=steps, batch_size=batch_size, strength=strength, away_share=away_share, seed=seed)
    except (ValueError, FileNotFoundError, TypeError, RuntimeError) as e:
        raise typer.BadParameter(str(e)) from None
    Console().print(f"saved {weights}")
