"""``gazetune refine ...``: train a gaze-weighted refiner on generated images, and apply it.

For generators gazetune cannot tune: ``refine train`` learns from a folder of their outputs and
a folder of real images; ``refine apply`` refines new outputs.  Thin commands over
:mod:`gazetune.refine.train`.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from gazetune.cli_options import renamed

app = typer.Typer(no_args_is_help=True, help="Refine the outputs of a generator you cannot tune (SimGAN, gaze-weighted).")


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


def _fail(e: Exception, hint: str) -> typer.BadParameter:
    return typer.BadParameter(str(e), param_hint=hint)


@app.command("train", cls=renamed({"--real": "--images"}))
def train_command(
    fake: Path = typer.Option(..., help="Folder (or .npz) of generated images to refine."),
    real: Path = typer.Option(..., "--images", help="Folder (or .npz) of real images (unpaired; resized to the fakes' size)."),
    out: Path = typer.Option(..., help="Run directory (config.toml, log.jsonl, samples.png, checkpoint.safetensors)."),
    maps: Optional[Path] = typer.Option(None, help="Map set .npz (gazetune gan map-set): maps looked up by image name."),
    saliency_model: Optional[Path] = typer.Option(None, help="Saliency model (SaliencyUNet checkpoint or TorchScript): predicted maps."),
    alpha: Optional[float] = typer.Option(None, help="Saliency weight a in [0, 1]: w = (1-a) + a SM/mean(SM) (default 1)."),
    reg_weight: Optional[float] = typer.Option(None, help="Weight of the self-regularisation |R(x) - x| (default 1)."),
    steps: Optional[int] = typer.Option(None, help="Training steps (default 1000)."),
    batch: Optional[int] = typer.Option(None, help="Batch size (default 16)."),
    size: Optional[int] = typer.Option(None, help="Working side in pixels (default: the fake images' size)."),
    history_share: Optional[float] = typer.Option(None, help="Share of D's refined batch from the history of earlier ones, [0, 1) (default 0.5)."),
    seed: Optional[int] = typer.Option(None, help="Random seed (default 0)."),
    device: Device = typer.Option(Device.cpu, help="cpu or cuda."),
    config: Optional[Path] = typer.Option(None, help="TOML with RefineConfig fields (command options win)."),
) -> None:
    """Train a refiner: local (patch) adversarial loss weighted by saliency maps, plus
    self-regularisation; the discriminator sees a history of earlier refined images."""
    from gazetune.config import load_config
    from gazetune.refine.train import RefineConfig, load_pair, load_saliency, maps_by_name, predicted_maps, train_refiner

    if maps is not None and saliency_model is not None:
        raise typer.BadParameter("give --maps or --saliency-model, not both", param_hint="--maps")
    base = load_config(RefineConfig, config) if config is not None else RefineConfig()
    mode = "direct" if maps is not None else "predicted" if saliency_model is not None else "none"
    overrides = dict(alpha=alpha, reg_weight=reg_weight, steps=steps, batch=batch, size=size, history_share=history_share, seed=seed)
    cfg = dataclasses.replace(
        base, fake=str(fake), real=str(real), maps=str(maps or ""), saliency_model=str(saliency_model or ""),
        map_mode=mode, device=device.value, **{k: v for k, v in overrides.items() if v is not None},
    )
    try:
        cfg.validate()
    except ValueError as e:
        raise _fail(e, "--config") from None
    try:
        fakes, reals = load_pair(fake, real, cfg.size, cfg.channels)
    except (FileNotFoundError, ValueError) as e:
        raise _fail(e, "--fake/--images") from None
    fake_maps = real_maps = None
    if maps is not None:
        from gazetune.tune.maps import MapSet

        try:
            map_set = MapSet.load(maps)
        except (FileNotFoundError, ValueError) as e:
            raise _fail(e, "--maps") from None
        fake_maps, n_fake = maps_by_name(map_set, fakes.names, fakes.size)
        real_maps, n_real = maps_by_name(map_set, reals.names, reals.size)
        if n_fake == 0:
            raise typer.BadParameter(
                f"no map in {maps} matches a fake image (map names e.g. {sorted(map_set.real)[:3]}, "
                f"image names e.g. {fakes.names[:3]})", param_hint="--maps",
            )
        typer.echo(f"maps: {n_fake}/{len(fakes)} fake and {n_real}/{len(reals)} real images (the rest weigh 1 everywhere)")
    elif saliency_model is not None:
        try:
            model = load_saliency(saliency_model, device.value)
        except (FileNotFoundError, ValueError) as e:
            raise _fail(e, "--saliency-model") from None
        fake_maps = predicted_maps(model, fakes.to_tensor().to(device.value))
        real_maps = predicted_maps(model, reals.to_tensor().to(device.value))
    try:
        path = train_refiner(cfg, fakes, reals, out, fake_maps=fake_maps, real_maps=real_maps)
    except FileExistsError as e:
        raise _fail(e, "--out") from None
    typer.echo(f"{len(fakes)} fake, {len(reals)} real images at {fakes.size[0]} px, maps: {mode}; checkpoint: {path}")


@app.command("apply")
def apply_command(
    model: Path = typer.Option(..., help="Refiner run directory (gazetune refine train) or its checkpoint."),
    images: Path = typer.Option(..., help="Folder (or .npz) of images to refine."),
    out: Path = typer.Option(..., help="Output folder: one PNG per image, same relative name."),
    size: Optional[int] = typer.Option(None, help="Resize to this side first (default: keep each image's size)."),
    device: Device = typer.Option(Device.cpu, help="cpu or cuda."),
) -> None:
    """Refine every image of a folder with a trained refiner."""
    from gazetune.refine.train import apply_refiner

    try:
        paths = apply_refiner(model, images, out, size or 0, device.value)
    except (FileNotFoundError, ValueError) as e:
        raise _fail(e, "--model/--images") from None
    typer.echo(f"{len(paths)} refined image(s) -> {out}")
