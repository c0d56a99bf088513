"""``gazetune human train|predict``: the model of the human judge (FIG. 5, eq 11-15).

``train`` reads the answers from a study export or any other study's long table
(:func:`gazetune.human.train.read_study_export`; any answer scale with ``--answer-scale`` and
``--real-end``, truth from a column or ``--image-table``, participants excluded by
``--exclude-column``), optionally the fixation table, and the images that were shown; or a live
study server (``--server URL --token T``, :func:`gazetune.human.live.trials_from_server`:
answered trials, gaze -> fixations in each participant's geometry, the shown PNGs).  It trains the
joint or separate human-response model (the label head on every trial, the gaze head on the
trials with gaze) with participants (and, with ``--holdout-images``, images) held out, and writes

* ``<out>`` (``.safetensors``; a directory gets ``human_model.safetensors``) with the config and the
  report in its header, and ``<out>.json`` beside it;
* ``report.json`` (held-out answer AUC with a participant-bootstrap CI, Spearman of P(real) with
  the per-image mean realness, the ceilings and the truth baseline of
  :mod:`gazetune.human.scores`, accuracy against the majority baseline, gaze NSS / CC, final
  losses) and ``config.toml`` (the resolved :class:`~gazetune.human.train.HumanTrainConfig`) in
  the same directory.

Synthetic images that are not in ``--images`` are regenerated from ``--generator`` and the
trial's latent seed (the ``seed`` column of the export, or a ``synthetic/<version>/<seed>`` name).

``predict`` writes ``image,p_real`` (P(a person calls it real)) as CSV and the predicted gaze maps
as ``.npz``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from gazetune.atomic import atomic_write
from gazetune.cli_options import renamed

app = typer.Typer(no_args_is_help=True, help="Model of the human judge: where people look and what they answer (FIG. 5).")


def _model_path(out: Path) -> Path:
    return out if out.suffix == ".safetensors" else out / "human_model.safetensors"


def _image_set(images: str, size: Optional[int], channels: Optional[int]):
    """``ImageSet`` from a folder, an ``.npz`` file or ``builtin`` (the scikit-image faces)."""
    from gazetune.images import load_image_set

    try:
        return load_image_set(None if images == "builtin" else images, size=size, channels=channels)
    except FileNotFoundError as e:
        raise typer.BadParameter(str(e), param_hint="--images") from None


def _regenerate(trials, names: list[str], images: np.ndarray, generator: Optional[Path], device: str) -> tuple[np.ndarray, list[str]]:
    """Append the synthetic trial images missing from ``names``, rendered by ``generator``."""
    from gazetune.images.names import parse_synthetic_name

    have = set(names)
    wanted: dict[str, int] = {}
    for name, seed in zip(trials.image, trials.latent_seed):
        if name in have or name in wanted:
            continue
        parsed = parse_synthetic_name(name) if name.startswith("synthetic/") else None
        seed = parsed[1] if parsed else seed
        if seed is None:
            raise typer.BadParameter(f"trial image {name!r} is not in --images and has no latent seed", param_hint="--images")
        wanted[name] = int(seed)
    if not wanted:
        return images, names
    if generator is None:
        raise typer.BadParameter(
            f"{len(wanted)} synthetic trial image(s) are not in --images (e.g. {next(iter(wanted))!r}); "
            "pass --generator to regenerate them from their latent seeds", param_hint="--generator")
    import torch
    from torch.nn import functional as F

    from gazetune.images import rgb_to_grey
    from gazetune.nets.generator import load_generator
    from gazetune.nets.latent import latents_from_seeds

    G = load_generator(generator, device=device)
    with torch.no_grad():
        fake = G(latents_from_seeds(list(wanted.values()), G.z_dim).to(device)).float().cpu()
    c, h, w = images.shape[1:]
    if fake.shape[1] != c:
        fake = rgb_to_grey(fake) if c == 1 else fake.expand(-1, c, -1, -1)
    if tuple(fake.shape[-2:]) != (h, w):
        fake = F.interpolate(fake, size=(h, w), mode="bilinear", align_corners=False)
    return np.concatenate([images, fake.clamp(-1, 1).numpy()]), names + list(wanted)


@app.command("train", cls=renamed({"--sigma": "--sigma-px", "--width": "--net-width"}))
def train_command(
    out: Path = typer.Option(..., help="Model file (.safetensors) or directory."),
    trials: Optional[Path] = typer.Option(None, help="Trials CSV: a study export or any long table (participant, image, answer/rating, rt_ms[, kind, generator, seed])."),
    fixations: Optional[Path] = typer.Option(None, help="Fixation table CSV (image, subject, index, x, y, duration_ms); without it only the answers are learned."),
    image_table: Optional[Path] = typer.Option(None, help="CSV with image, synthetic (1/0), source: the truth per image (for the report)."),
    answer_scale: Optional[str] = typer.Option(None, help="binary, likert5 or LOW-HIGH (e.g. 1-7); default: the server's, else binary or 1-5 from the answers."),
    real_end: str = typer.Option("high", help="Which end of a rating scale means real: high or low."),
    exclude_column: Optional[str] = typer.Option(None, help="Leave out every participant marked 1/true in this column (e.g. outlier)."),
    server: Optional[str] = typer.Option(None, help="Read a live study server instead of an export (http://host:port)."),
    token: Optional[str] = typer.Option(None, envvar="GAZETUNE_ADMIN_TOKEN", help="Admin token of --server."),
    fixation_method: str = typer.Option("ivt", help="With --server: fixation detection, ivt or idt."),
    images: str = typer.Option("builtin", help="Images shown (folder, .npz or 'builtin'); names as in the trials CSV."),
    size: Optional[int] = typer.Option(None, help="Resize the images to this side (px) to train faster; not with --fixations."),
    channels: Optional[int] = typer.Option(None, help="1 or 3 channels; default: the images'."),
    generator: Optional[Path] = typer.Option(None, help="Generator (checkpoint or TorchScript) to regenerate synthetic images by seed."),
    variant: str = typer.Option("joint", help="joint (eq 11) or separate (M_gaze then M_h-label, eq 14-15)."),
    backbone: str = typer.Option("none", help="none (trained from scratch) or inception (frozen pretrained TF-Inception features; joint only)."),
    rt_weighting: str = typer.Option("none", help="Confidence weight from response time: none or inverse (slow = unsure)."),
    cyborg: float = typer.Option(0.0, help="CYBORG weight in [0, 1]: pull the label head's CAM toward the gaze map."),
    sigma: float = typer.Option(2.0, "--sigma-px", help="Heatmap Gaussian sigma in image pixels."),
    steps: int = typer.Option(300, help="Training steps."),
    batch: int = typer.Option(32, help="Trials per step."),
    width: int = typer.Option(16, "--net-width", help="Channels of the first block."),
    holdout: float = typer.Option(0.25, help="Fraction of participants held out for the report."),
    holdout_images: float = typer.Option(0.0, help="Fraction of images held out too: the report then scores new people on new images."),
    seed: int = typer.Option(0, help="Seed of the split, weights and batches."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Train the human-response model on a study export, another study's long table or a live
    study server; report on held-out participants (and images) next to the ceilings."""
    from gazetune.config import save_config
    from gazetune.human.model import save_human_model
    from gazetune.human.train import HumanTrainConfig, read_study_export, train_from_trials

    if server is not None and (trials is not None or fixations is not None):
        raise typer.BadParameter("give either --server or --trials [--fixations], not both", param_hint="--server")
    if server is None:
        if trials is None:
            raise typer.BadParameter("missing: pass --trials (a study export or long table) or --server", param_hint="--trials")
        for p, hint in ((trials, "--trials"), (fixations, "--fixations"), (image_table, "--image-table")):
            if p is not None and not p.exists():
                raise typer.BadParameter(f"file not found: {p}", param_hint=hint)
    if size is not None and fixations is not None:
        raise typer.BadParameter("--size resizes the images but not the fixations; drop --size", param_hint="--size")
    source = server if server is not None else trials
    try:
        cfg = HumanTrainConfig(
            variant=variant, backbone=backbone, real_end=real_end, rt_weighting=rt_weighting, cyborg_weight=cyborg, sigma_px=sigma,
            steps=steps, batch_size=batch, width=width, holdout_fraction=holdout, holdout_images=holdout_images,
            seed=seed, device=device,
        )
        if server is not None:
            from gazetune.human.live import trials_from_server
            from gazetune.study.client import TrainerError

            try:
                live = trials_from_server(server, token or "", method=fixation_method, progress=True)
            except TrainerError as e:
                raise typer.BadParameter(str(e), param_hint="--server/--token") from None
            table, x, names = live.trials, live.images, live.names
            i = live.info
            typer.echo(f"{server}: {len(table)} answered trials of {i['participants']} participants on {i['images']} "
                       f"images; {i['fixations']} fixations ({i['trials_without_gaze']} trials without usable gaze, "
                       f"{i['trials_default_geometry']} on the fallback screen geometry)")
        else:
            table = read_study_export(trials, fixations, answer_scale, real_end, image_table=image_table,
                                      exclude_column=exclude_column)
            typer.echo(f"{trials}: {table.summary()}")
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if len(table) == 0:
        raise typer.BadParameter(f"no answered trials in {source}", param_hint="--trials")
    cfg = dataclasses.replace(cfg, answer_scale=table.scale.name, real_end=table.scale.real_end)
    if server is None:
        image_set = _image_set(images, size, channels)  # without --size as stored: fixations are in these pixels
        x, names = _regenerate(table, list(image_set.names), image_set.images, generator, device)
    try:
        model, report = train_from_trials(x, names, table, cfg, progress=True)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    path = save_human_model(model, _model_path(out), extra={"report": report.as_dict()})
    save_config(cfg, path.parent / "config.toml")
    with atomic_write(path.parent / "report.json", "w") as fh:
        fh.write(json.dumps(report.as_dict(), indent=2))
    typer.echo(
        f"{cfg.variant} human model: {report.n_train_trials} training trials ({report.n_train_with_gaze} with gaze), "
        f"{len(report.holdout_participants)} held-out participants ({report.n_holdout_trials} trials"
        + (f" on {report.holdout['held_out_images']} held-out images)" if cfg.holdout_images else ")")
    )
    for line in report_lines(report.holdout):
        typer.echo(line)
    typer.echo(f"model: {path}")


def report_lines(h: dict) -> list[str]:
    """The held-out scores of a training report as lines of text, ceilings beside them."""
    if not h:
        return []
    lo, hi = h["label_auc_ci95"]
    c = h.get("ceilings", {})
    lines = [
        f"held out: label AUC {h['label_auc']:.3f} [{lo:.3f}, {hi:.3f}] (oracle ceiling {c.get('oracle_answer_auc', float('nan')):.3f}), "
        f"image Spearman {h['image_spearman']:.3f} (split-half ceiling {c.get('split_half_spearman_brown', float('nan')):.3f}), "
        f"accuracy {h['label_accuracy']:.3f} (majority {h['majority_accuracy']:.3f})",
    ]
    if "truth_image_spearman" in c:
        lines.append(f"truth baseline (a perfect fake detector): answer AUC {c['truth_answer_auc']:.3f}, "
                     f"image Spearman {c['truth_image_spearman']:.3f}; the model as a fake detector: AUC {h['truth_auc']:.3f}")
    lines.append(f"gaze: NSS {h['gaze_nss']:.2f}, CC {h['gaze_cc']:.2f}" if np.isfinite(h["gaze_cc"]) else
                 "gaze: no held-out trial with gaze")
    return lines


@app.command("predict")
def predict_command(
    model: Path = typer.Option(..., help="Human model (.safetensors from 'gazetune human train')."),
    out: Path = typer.Option(..., help="CSV of P(real) per image; maps go to <out>.npz."),
    images: str = typer.Option("builtin", help="Images (folder, .npz or 'builtin')."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """P(a person calls it real) and the predicted gaze map of every image."""
    from gazetune.human.model import load_human_model, load_human_model_info
    from gazetune.human.predict import predict, write_predictions

    if not model.exists():
        raise typer.BadParameter(f"model not found: {model}", param_hint="--model")
    mcfg, _ = load_human_model_info(model)
    h, w = mcfg.image_size  # loaded at the model's size as training loaded them (square models)
    image_set = _image_set(images, h if h == w else None, mcfg.in_channels)
    net = load_human_model(model, map_location=device)
    p_real, maps = predict(net, image_set.images)
    write_predictions(image_set.names, p_real, maps, out)
    typer.echo(f"{len(p_real)} images, mean P(real) {float(p_real.mean()):.3f}: {out}")
