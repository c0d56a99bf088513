"""``gazetune gan ...``: pretrain a GAN, build gaze map sets, tune with maps (eq 9b/10b).

Thin commands over :mod:`gazetune.tune.train` and :mod:`gazetune.tune.maps`; every run directory
gets ``config.toml``, ``log.jsonl``, sample grids and ``checkpoint.safetensors``.  ``gan tune
--generator SPEC`` also tunes generators gazetune has never seen (:mod:`gazetune.nets.external`).
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from pathlib import Path
from typing import Optional

import typer

from gazetune.cli_options import renamed

app = typer.Typer(no_args_is_help=True, help="Pretrain a GAN and tune it with gaze maps (eq 1-2, 9a-10b).")


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


class GArch(str, Enum):
    dcgan = "dcgan"
    style = "style"


class Precision(str, Enum):
    fp32 = "fp32"
    bf16 = "bf16"


class NoiseMode(str, Enum):
    const = "const"
    random = "random"
    none = "none"


class MapMode(str, Enum):
    direct = "direct"
    hybrid = "hybrid"
    predicted = "predicted"
    auto = "auto"
    none = "none"


def _load_images(data: str, size: int | None, channels: int | None):
    """``ImageSet`` from a folder, an ``.npz`` file or ``builtin`` (the scikit-image faces)."""
    from gazetune.images import load_image_set

    source = None if data in ("builtin", "builtin:faces") else data
    if source is not None and not Path(source).exists():
        raise typer.BadParameter(f"image data not found: {source}", param_hint="--images")
    return load_image_set(source, size=size, channels=channels)


def _load_saliency_model(path: Path, device: str):
    """A :class:`gazetune.saliency.model.SaliencyUNet` checkpoint or a TorchScript model."""
    import torch

    if not path.exists():
        raise typer.BadParameter(f"saliency model not found: {path}", param_hint="--saliency-model")
    if path.read_bytes()[:2] == b"PK":
        return torch.jit.load(str(path), map_location=device).eval()
    from gazetune.saliency.model import load_saliency_model

    return load_saliency_model(path, device=device)


def _say(text: str) -> None:
    """Print a result line; under torchrun only rank 0 does (:mod:`gazetune.tune.distributed`)."""
    from gazetune.tune.distributed import env_rank

    if env_rank() == 0:
        typer.echo(text)


def _gpu_batch(cfg, out: Path, resume: bool, size: int):
    """``--batch`` and ``--config`` not given, on CUDA: a new run gets a batch that fills the GPU
    (:func:`gazetune.tune.train.default_batch`), a resumed one keeps its own.  The CPU keeps the
    config default."""
    from gazetune.tune.distributed import env_world
    from gazetune.tune.train import default_batch, load_run_config

    if not cfg.device.startswith("cuda"):
        return cfg
    if resume and (out / "config.toml").exists():
        return dataclasses.replace(cfg, batch=load_run_config(out, type(cfg)).batch)
    return dataclasses.replace(cfg, batch=default_batch(size, cfg.device, env_world()))


_PRECISION_HELP = ("fp32 (default) or bf16: forward passes and losses under torch.autocast(bfloat16); weights, "
                   "optimiser steps, EMA and R1 stay float32 (GPUs with bfloat16: Ampere and later; also runs on "
                   "the CPU). A resumed run keeps its own unless given.")
_CHANNELS_LAST_HELP = ("G, D and the image batches in channels_last memory format (faster convolutions on "
                       "tensor-core GPUs; harmless on the CPU). A resumed run keeps its own unless given.")


def _precision_settings(cfg, out: Path, resume: bool, precision, channels_last, config: Optional[Path]):
    """``--precision`` / ``--channels-last`` into ``cfg``; an option not given (nor in ``--config``)
    keeps the resumed run's own value from its ``config.toml``."""
    from gazetune.config import load_config

    kept = {}
    if resume and (out / "config.toml").exists():
        try:
            run_cfg = load_config(type(cfg), out / "config.toml")
        except ValueError as e:
            raise typer.BadParameter(f"{out / 'config.toml'}: {e}", param_hint="--resume") from None
        import tomllib

        in_config = tomllib.loads(config.read_text()) if config is not None else {}
        kept = {k: getattr(run_cfg, k) for k in ("precision", "channels_last") if k not in in_config}
    given = {"precision": precision.value if precision is not None else None, "channels_last": channels_last}
    return dataclasses.replace(cfg, **{**kept, **{k: v for k, v in given.items() if v is not None}})


def _base_config(kind, config: Optional[Path], **overrides):
    from gazetune.config import load_config

    try:  # e.g. precision = "fp16" in the TOML: the message names the field
        cfg = load_config(kind, config) if config is not None else kind()
    except ValueError as e:
        raise typer.BadParameter(f"{config}: {e}", param_hint="--config") from None
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


@app.command("pretrain", cls=renamed({"--data": "--images"}))
def pretrain_command(
    data: str = typer.Option("builtin", "--images", help="Image folder, .npz file, or 'builtin' (100 faces, 25 px)."),
    size: Optional[int] = typer.Option(None, help="Training image side in pixels (images are resized; default 32)."),
    channels: Optional[int] = typer.Option(None, help="1 (grey) or 3 (RGB) (default 1)."),
    steps: Optional[int] = typer.Option(None, help="Optimisation steps (default 2000)."),
    out: Path = typer.Option(..., help="Run directory."),
    batch: Optional[int] = typer.Option(None, help="Batch size (default 32; on CUDA 256 up to 64 px, halved per doubling of the side, per GPU); under torchrun the global batch, split over the processes."),
    seed: Optional[int] = typer.Option(None, help="Random seed of the run."),
    device: Optional[Device] = typer.Option(None, help="cpu or cuda (default cpu)."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint."),
    config: Optional[Path] = typer.Option(None, help="TOML with TrainConfig fields (command options win)."),
    arch: Optional[GArch] = typer.Option(
        None, "--arch", help="Generator: dcgan (default) or style (mapping network, modulated convolutions, noise, "
                             "style mixing)."),
    precision: Optional[Precision] = typer.Option(None, "--precision", help=_PRECISION_HELP),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help=_CHANNELS_LAST_HELP),
) -> None:
    """Train the built-in generator and U-Net discriminator (eq 1-2, 9a/10a) on real images."""
    from gazetune.tune.train import TrainConfig, pretrain

    # only options given on the command line override the TOML; the rest keep its values or the
    # pretraining defaults (size 32, grey, 2000 steps)
    defaults = {"size": 32, "channels": 1, "steps": 2000} if config is None else {}
    cfg = _base_config(TrainConfig, config, **defaults)
    cfg = dataclasses.replace(cfg, **{k: v for k, v in dict(
        size=size, channels=channels, steps=steps, batch=batch, seed=seed,
        device=device.value if device is not None else None,
        g_arch=arch.value if arch is not None else None).items() if v is not None})
    if batch is None and config is None:
        cfg = _gpu_batch(cfg, out, resume, cfg.size)
    cfg = _precision_settings(cfg, out, resume, precision, channels_last, config)
    images = _load_images(data, cfg.size, cfg.channels)
    path = pretrain(cfg, images.images, out, resume=resume)
    _say(f"checkpoint: {path}")


_MAP_SET_RENAMES = {"--sigma": "--sigma-px", "--height": "--height-px", "--width": "--width-px"}


@app.command("map-set", cls=renamed(_MAP_SET_RENAMES))
def maps_command(
    fixations: Path = typer.Option(..., help="Fixation table CSV (image, subject, index, x, y, duration_ms)."),
    sigma: float = typer.Option(..., "--sigma-px", help="Gaussian sigma in pixels of the displayed images (about 1 degree)."),
    height: int = typer.Option(..., "--height-px", help="Height of the displayed images in pixels."),
    width: int = typer.Option(..., "--width-px", help="Width of the displayed images in pixels."),
    out: Path = typer.Option(..., help="Output map set (.npz)."),
) -> None:
    """Pool a fixation table into one map set file (.npz) for gan tune and refine train.

    Real images by name, synthetic ones by version and seed (``gazetune gaze maps`` writes a
    heatmap file and an overlay per image instead)."""
    from gazetune.gaze.fixation_table import read_fixation_table
    from gazetune.tune.maps import MapSet

    ms = MapSet.from_fixations(read_fixation_table(fixations), sigma=sigma, shape=(height, width))
    ms.save(out)
    typer.echo(f"{len(ms.real)} real and {len(ms.synthetic)} synthetic maps -> {out}")


# the old name of map-set, for one release
app.command("maps", hidden=True, cls=renamed(_MAP_SET_RENAMES, replaced_by="map-set"))(maps_command)


@app.command("tune", cls=renamed({"--data": "--images"}))
def tune_command(
    generator: Optional[str] = typer.Option(
        None, "--generator", help="Generator to tune: a gazetune run directory, a TorchScript file, a factory "
                                  "package.module:function (nn.Module with z_dim, optional c_dim) or a StyleGAN2-ADA/"
                                  "StyleGAN3 .pkl (needs NVlabs' dnnlib and torch_utils on PYTHONPATH)."),
    checkpoint: Optional[Path] = typer.Option(None, "--checkpoint", hidden=True, help="Alias of --generator RUN."),
    out: Path = typer.Option(..., help="Run directory of the tuned model."),
    data: str = typer.Option("builtin", "--images", help="Real images (folder, .npz or 'builtin'); names match the maps."),
    maps: Optional[Path] = typer.Option(None, help="Map set .npz (gazetune gan map-set) for direct maps."),
    saliency_model: Optional[Path] = typer.Option(None, help="Saliency model (SaliencyUNet checkpoint or TorchScript)."),
    mode: Optional[MapMode] = typer.Option(
        None, help="hybrid (measured maps on real images, predicted ones on fresh fakes), direct, predicted, "
                   "auto (the default: hybrid when enough observed and a saliency model is given, direct when enough "
                   "observed without one, else predicted) or none."),
    alpha: Optional[float] = typer.Option(None, help="Saliency weight a in [0, 1]: w = (1-a) + a SM/mean(SM) (default 1)."),
    steps: Optional[int] = typer.Option(None, help="Tuning steps (default 500)."),
    min_observed: Optional[int] = typer.Option(None, help="auto: observed images needed for hybrid/direct maps (default 64)."),
    map_version: Optional[str] = typer.Option(None, help="Generator version of the synthetic maps (default: the run's, or the file stem / factory name of an external generator)."),
    batch: Optional[int] = typer.Option(None, help="Batch size (default 32; on CUDA 256 up to 64 px, halved per doubling of the side, per GPU); under torchrun the global batch, split over the processes."),
    device: Optional[Device] = typer.Option(None, help="cpu or cuda (default cpu)."),
    resume: bool = typer.Option(False, help="Continue the run in --out from its checkpoint."),
    config: Optional[Path] = typer.Option(None, help="TOML with TuneConfig fields (command options win)."),
    human_model: Optional[Path] = typer.Option(
        None, help="Human-response model (gazetune human train): adds its eq 12 term to the generator loss (FIG. 5)."
    ),
    human_weight: float = typer.Option(1.0, help="Weight of the human-model term (eq 12)."),
    history_share: Optional[float] = typer.Option(
        None, help="SimGAN history: share of D's fake batch drawn from earlier generator outputs, [0, 1) (default 0 = off)."
    ),
    history_capacity: Optional[int] = typer.Option(None, help="SimGAN history pool size in images (default 512)."),
    feature_matching: float = typer.Option(0.0, min=0.0, help="Weight of D feature matching (seed 004), saliency-weighted by --alpha (0 = off)."),
    style: float = typer.Option(0.0, min=0.0, help="Weight of a Gram style loss on Inception mixed_2 features against the real set (seed 004; 0 = off)."),
    discriminator: Optional[Path] = typer.Option(
        None, "--discriminator", help="Start D from this earlier gazetune tuning run of the same generator (default: "
                                      "the --generator run's D, else a fresh U-Net D)."),
    warmup_steps: Optional[int] = typer.Option(
        None, "--warmup-steps", min=0, help="Steps that train D alone against the frozen generator before tuning "
                                            "(default 100 with a fresh D, 0 with a D from a run)."),
    truncation_psi: Optional[float] = typer.Option(None, "--truncation-psi", help="StyleGAN pickles: truncation psi (default 1)."),
    noise_mode: Optional[NoiseMode] = typer.Option(None, "--noise-mode", help="StyleGAN pickles: const (default), random or none."),
    precision: Optional[Precision] = typer.Option(None, "--precision", help=_PRECISION_HELP),
    channels_last: Optional[bool] = typer.Option(None, "--channels-last/--no-channels-last", help=_CHANNELS_LAST_HELP),
) -> None:
    """Fine-tune a generator (a gazetune run, TorchScript, a factory or a StyleGAN pickle) with gaze-weighted per-pixel losses (eq 9b/10b, FIG. 4) and/or
    against a model of the human judge (eq 12, FIG. 5).  Use --mode none with --human-model for
    FIG. 5 alone."""
    from gazetune.tune.maps import MapProvider, MapSet
    from gazetune.tune.train import CHECKPOINT, TuneConfig, resolve_for_tuning, tune

    if generator is not None and checkpoint is not None:
        raise typer.BadParameter("give --generator or --checkpoint (its alias), not both", param_hint="--generator")
    spec = generator if generator is not None else (str(checkpoint) if checkpoint is not None else None)
    resuming = resume and (out / CHECKPOINT).exists()
    if spec is None and not resuming:
        raise typer.BadParameter("missing: the generator to tune (a run directory, TorchScript file, "
                                 "package.module:function or .pkl)", param_hint="--generator")
    cfg = _base_config(
        TuneConfig, config, steps=steps, alpha=alpha, mode=mode.value if mode is not None else None,
        min_observed=min_observed, batch=batch, device=device.value if device is not None else None,
        history_share=history_share, history_capacity=history_capacity, warmup_steps=warmup_steps,
        truncation_psi=truncation_psi, noise_mode=noise_mode.value if noise_mode is not None else None,
    )
    hint = "--generator" if generator is not None or checkpoint is None else "--checkpoint"
    try:  # once here (size, channels and version for the data and maps); tune() reuses it
        res = resolve_for_tuning(out if resuming else spec, cfg)
    except (FileNotFoundError, ValueError, ImportError, TypeError, AttributeError, KeyError) as e:
        raise typer.BadParameter(str(e).strip("'\""), param_hint=hint) from None
    if batch is None and config is None:
        cfg = _gpu_batch(cfg, out, resuming, res.size)
    cfg = _precision_settings(cfg, out, resuming, precision, channels_last, config)
    if discriminator is not None and not discriminator.exists():
        raise typer.BadParameter(f"discriminator run not found: {discriminator}", param_hint="--discriminator")
    if not 0 <= cfg.history_share < 1:
        raise typer.BadParameter(f"must be in [0, 1); got {cfg.history_share}", param_hint="--history-share")
    if cfg.history_capacity < 1:
        raise typer.BadParameter(f"must be >= 1 image; got {cfg.history_capacity}", param_hint="--history-capacity")
    map_set = MapSet.load(maps) if maps is not None else None
    model = _load_saliency_model(saliency_model, cfg.device) if saliency_model is not None else None
    try:
        provider = MapProvider(
            cfg.mode, maps=map_set, saliency_model=model, min_observed=cfg.min_observed,
            generator_version=map_version or res.version,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--mode") from None
    terms = []
    if human_model is not None:
        from gazetune.human.losses import HumanModelTerm

        if not human_model.exists():
            raise typer.BadParameter(f"human model not found: {human_model}", param_hint="--human-model")
        if human_weight < 0:
            raise typer.BadParameter(f"must be >= 0; got {human_weight}", param_hint="--human-weight")
        terms.append(HumanModelTerm.load(human_model, human_weight, cfg.device))
    images = _load_images(data, res.size, res.channels)  # resized to what the generator makes
    from gazetune.tune.terms import FeatureMatchingTerm, StyleTerm

    if feature_matching > 0:
        terms.append(FeatureMatchingTerm(feature_matching, alpha=cfg.alpha))
    if style > 0:
        terms.append(StyleTerm(images.images, style, alpha=cfg.alpha, device=cfg.device))
    try:
        path = tune(cfg, images.images, provider, out, names=images.names, resume=resume,
                    extra_generator_terms=terms, generator=None if resuming else res, discriminator=discriminator)
    except ValueError as e:
        if "discriminator" not in str(e):
            raise
        raise typer.BadParameter(str(e), param_hint="--discriminator") from None
    _say(f"map mode: {provider.mode}; checkpoint: {path}")


@app.command("health")
def health_command(
    run: Path = typer.Argument(..., help="Run directory (holds log.jsonl, config.toml)."),
    window: Optional[int] = typer.Option(
        None, help="Judging window in logged rows (default: the run's own, health_window or a fifth of its "
                   "steps, at least 50, divided by log_every)."),
    block: Optional[int] = typer.Option(None, help="Rows per line of the table (default: about 10 lines)."),
    plot: Optional[Path] = typer.Option(None, help="Write a PNG of accuracy, gap, spread and step gain against the step."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write the blocks, summary and warnings as JSON."),
) -> None:
    """Re-judge a run's training health from its log with the current rules (tune/health.py).

    A table per block of steps (D accuracy, logit gap, logit spread, eq 2 gain per D step with its
    standard error, the monitor's state), the warnings, and optionally a plot.  Works on a run that
    is still going, and on runs logged before a rule changed."""
    import json
    import math
    import tomllib

    from rich.console import Console
    from rich.table import Table

    from gazetune.atomic import atomic_write_text
    from gazetune.tune.health import health_blocks, health_warmup, plot_health, read_step_rows, replay

    if block is not None and block < 1:
        raise typer.BadParameter(f"must be >= 1; got {block}", param_hint="--block")
    try:
        rows = read_step_rows(run / "log.jsonl")
    except (FileNotFoundError, ValueError) as e:
        raise typer.BadParameter(str(e), param_hint="RUN") from None
    block = block or -(-len(rows) // 10)
    cfg: dict = {}
    if window is None:
        if (run / "config.toml").exists():
            try:
                cfg = tomllib.loads((run / "config.toml").read_text())
            except tomllib.TOMLDecodeError as e:
                raise typer.BadParameter(f"{run / 'config.toml'}: not valid TOML: {e}", param_hint="RUN") from None
        steps = int(cfg.get("steps", int(rows[-1]["step"])))
        every = max(1, int(cfg.get("log_every", 1) or 1))
        window = max(1, (int(cfg.get("health_window", 0) or 0) or max(50, steps // 5)) // every)
    if window < 1:
        raise typer.BadParameter(f"must be >= 1; got {window}", param_hint="--window")
    monitor, states = replay(rows, window, health_warmup(window, len(rows)))  # as the run judged itself
    blocks = health_blocks(rows, states, block)
    con = Console()
    table = Table(title=f"{run}: training health, window {window} rows ({len(rows)} rows logged)")
    for col in ("steps", "D acc", "gap", "spread", "gain/step ± se (n)", "D/eq2", "G diversity", "state"):
        table.add_column(col, justify="right" if col != "state" else "left")
    for b in blocks:
        gain = "-" if math.isnan(b["gain"]) else f"{b['gain']:+.4f}±{b['gain_se']:.4f} ({b['probes']})"
        state = ", ".join(f"{k} {v:.0%}" for k, v in b["states"].items())
        table.add_row(f"{b['from_step']}-{b['to_step']}", f"{b['acc']:.3f}", f"{b['gap']:+.3f}",
                      "-" if math.isnan(b["spread"]) else f"{b['spread']:.3f}", gain, f"{b['eq2']:.3f}",
                      "-" if math.isnan(b["diversity"]) else f"{b['diversity']:.2f}", state)
    con.print(table)
    summary = monitor.summary()
    con.print(f"steps after the warm-up: at chance {summary['share_steps_at_chance']:.0%}, balanced "
              f"{summary['share_steps_balanced']:.0%}, D wins {summary['share_steps_d_wins']:.0%}, "
              f"D frozen {summary['share_steps_d_frozen']:.0%}, G collapsed {summary['share_steps_g_collapsed']:.0%}")
    for w in monitor.warnings:
        con.print(f"[bold yellow]warning[/] ({w['problem']}): {w['message']}")
    if not monitor.warnings:
        con.print("[bold green]no warning[/]")
    if plot is not None:
        con.print(f"plot: {plot_health(rows, states, plot, title=str(run))}")
    if json_out is not None:
        atomic_write_text(json_out, json.dumps({"window": window, "blocks": blocks, "summary": summary},
                                               indent=2, default=float))
        con.print(f"json: {json_out}")
