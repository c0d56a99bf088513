"""``gazetune human train|predict``: the model of the human judge (FIG. 5, eq 11-15).

``train`` reads a study export (trials CSV + fixation table CSV, see
:func:`gazetune.human.train.read_study_export`) and the images that were shown, or a live
study server (``--server URL --token T``, :func:`gazetune.human.live.trials_from_server`:
answered trials, gaze -> fixations in each participant's geometry, the shown PNGs), trains the
joint or separate human-response model with a held-out split by participant, and writes

* ``<out>`` (``.safetensors``; a directory gets ``human_model.safetensors``) with the config and the
  report in its header, and ``<out>.json`` beside it;
* ``report.json`` (held-out label AUC with a participant-bootstrap CI, accuracy against the
  majority baseline, gaze NSS / CC, final losses) and ``config.toml`` (the resolved
  :class:`~gazetune.human.train.HumanTrainConfig`) in the same directory.

Synthetic images that are not in ``--images`` are regenerated from ``--generator`` and the
trial's latent seed (the ``seed`` column of the export, or a ``synthetic/<version>/<seed>`` name).

``predict`` writes, per image, P(a person calls it real) as CSV and the predicted gaze maps as
``.npz``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from gazetune.gaze._atomic import atomic_write

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

    from gazetune.nets.generator import load_generator
    from gazetune.nets.latent import latents_from_seeds

    G = load_generator(generator, device=device)
    with torch.no_grad():
        fake = G(latents_from_seeds(list(wanted.values()), G.z_dim).to(device)).float().cpu()
    c, h, w = images.shape[1:]
    if fake.shape[1] != c:
        fake = fake.mean(1, keepdim=True) if c == 1 else fake.expand(-1, c, -1, -1)
    if tuple(fake.shape[-2:]) != (h, w):
        fake = F.interpolate(fake, size=(h, w), mode="bilinear", align_corners=False)
    return np.concatenate([images, fake.clamp(-1, 1).numpy()]), names + list(wanted)


@app.command("train")
def train_command(
    out: Path = typer.Option(..., help="Model file (.safetensors) or directory."),
    trials: Optional[Path] = typer.Option(None, help="Trials CSV of a study export (participant, image, kind, answer, rt_ms[, seed])."),
    fixations: Optional[Path] = typer.Option(None, help="Fixation table CSV of the export (image, subject, index, x, y, duration_ms)."),
    server: Optional[str] = typer.Option(None, help="Read a live study server instead of an export (http://host:port)."),
    token: Optional[str] = typer.Option(None, envvar="GAZETUNE_ADMIN_TOKEN", help="Admin token of --server."),
    fixation_method: str = typer.Option("ivt", help="With --server: fixation detection, ivt or idt."),
    images: str = typer.Option("builtin", help="Images shown (folder, .npz or 'builtin'); names as in the trials CSV."),
    channels: Optional[int] = typer.Option(None, help="1 or 3 channels; default: the images'."),
    generator: Optional[Path] = typer.Option(None, help="Generator (checkpoint or TorchScript) to regenerate synthetic images by seed."),
    variant: str = typer.Option("joint", help="joint (eq 11) or separate (M_gaze then M_h-label, eq 14-15)."),
    answer_scale: Optional[str] = typer.Option(None, help="binary (0 fake / 1 real) or likert5 (1-5, 5 = surely real); default: the server's, else binary."),
    rt_weighting: str = typer.Option("none", help="Confidence weight from response time: none or inverse (slow = unsure)."),
    cyborg: float = typer.Option(0.0, help="CYBORG weight in [0, 1]: pull the label head's CAM toward the gaze map."),
    sigma: float = typer.Option(2.0, help="Heatmap Gaussian sigma in image pixels."),
    steps: int = typer.Option(300, help="Training steps."),
    batch: int = typer.Option(32, help="Trials per step."),
    width: int = typer.Option(16, help="Channels of the first block."),
    holdout: float = typer.Option(0.25, help="Fraction of participants held out for the report."),
    seed: int = typer.Option(0, help="Seed of the split, weights and batches."),
    device: str = typer.Option("cpu", help="cpu or cuda."),
) -> None:
    """Train the human-response model on a study export or a live study server; report on
    held-out participants."""
    from gazetune.config import save_config
    from gazetune.human.model import save_human_model
    from gazetune.human.train import HumanTrainConfig, read_study_export, train_from_trials

    if server is not None and (trials is not None or fixations is not None):
        raise typer.BadParameter("give either --server or --trials/--fixations, not both", param_hint="--server")
    if server is None:
        for p, hint in ((trials, "--trials"), (fixations, "--fixations")):
            if p is None:
                raise typer.BadParameter("missing: pass --trials and --fixations (a study export) or --server",
                                         param_hint=hint)
            if not p.exists():
                raise typer.BadParameter(f"file not found: {p}", param_hint=hint)
    source = server if server is not None else trials
    try:
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
            answer_scale = answer_scale or live.answer_scale
        cfg = HumanTrainConfig(
            variant=variant, answer_scale=answer_scale or "binary", rt_weighting=rt_weighting,
            cyborg_weight=cyborg, sigma_px=sigma, steps=steps, batch_size=batch, width=width,
            holdout_fraction=holdout, seed=seed, device=device,
        )
        if server is None:
            table = read_study_export(trials, fixations)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    if len(table) == 0:
        raise typer.BadParameter(f"no answered trials in {source}", param_hint="--trials")
    if server is None:
        image_set = _image_set(images, None, channels)  # as stored: fixations are in these pixels
        x, names = _regenerate(table, list(image_set.names), image_set.images, generator, device)
    model, report = train_from_trials(x, names, table, cfg, progress=True)
    path = save_human_model(model, _model_path(out), extra={"report": report.as_dict()})
    save_config(cfg, path.parent / "config.toml")
    with atomic_write(path.parent / "report.json", "w") as fh:
        fh.write(json.dumps(report.as_dict(), indent=2))
    h = report.holdout
    typer.echo(
        f"{cfg.variant} human model: {report.n_train_trials} training trials, "
        f"{len(report.holdout_participants)} held-out participants ({report.n_holdout_trials} trials)"
    )
    if h:
        lo, hi = h["label_auc_ci95"]
        typer.echo(
            f"held out: label AUC {h['label_auc']:.3f} [{lo:.3f}, {hi:.3f}], accuracy {h['label_accuracy']:.3f} "
            f"(majority {h['majority_accuracy']:.3f}), gaze NSS {h['gaze_nss']:.2f}, CC {h['gaze_cc']:.2f}"
        )
    typer.echo(f"model: {path}")


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
    image_set = _image_set(images, None, mcfg.in_channels)
    net = load_human_model(model, map_location=device)
    p_real, maps = predict(net, image_set.images)
    write_predictions(image_set.names, p_real, maps, out)
    typer.echo(f"{len(p_real)} images, mean P(real) {float(p_real.mean()):.3f}: {out}")
