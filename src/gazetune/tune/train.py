"""GAN training loop with phases: pretraining (eq 1-2, 9a-10a) and gaze tuning (eq 9b/10b).

The loop knows nothing about individual loss terms.  As in StyleGAN2-ADA, a *loss object* owns
``accumulate_gradients(phase, batch)`` and lists its phases with the optimiser each one steps:

================  ==========  ===============================================================
phase             optimiser   terms
================  ==========  ===============================================================
``"Dmain"``       ``D``       eq 2 + ``pixel_weight`` x eq 10a/10b, CutMix (¶100) + consistency
``"Gmain"``       ``G``       eq 1 + ``pixel_weight`` x eq 9a/9b + every extra generator term
``"Dreg"``        ``D``       R1 penalty on real images (only when ``r1_gamma > 0``)
================  ==========  ===============================================================

New terms plug in without touching the loop: an extra generator objective (e.g. the human-model
discriminator of eq 12) is a callable ``term(fake_images, batch) -> {name: loss}`` passed as
``extra_generator_terms``; a new network with its own optimiser is a subclass adding a phase.

Runs write to their directory: ``config.toml`` (the resolved :class:`TrainConfig` /
:class:`TuneConfig`), ``log.jsonl`` (one JSON object per logged step: step, wall time, every loss
term), ``samples_XXXXXX.png`` (grid from the EMA generator with fixed latent seeds ``0..n-1``) and
``checkpoint.safetensors`` (G, D, EMA G, optimisers, RNG state, step, history buffer; atomic).  A run
restarted with
``resume=True`` continues from the checkpoint to the same weights it would have reached without
stopping: every random draw comes from one ``torch.Generator`` whose state is checkpointed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from gazetune.config import load_config, save_config
from gazetune.images import save_image_grid
from gazetune.nets.discriminator import UNetDiscriminator
from gazetune.nets.generator import DCGANGenerator, check_generator
from gazetune.nets.latent import latents_from_seeds
from gazetune.tune import losses as L
from gazetune.tune.augment import POLICIES, cutmix, diff_augment
from gazetune.tune.history import HistoryBuffer
from gazetune.tune.checkpoint import read_checkpoint, write_checkpoint
from gazetune.tune.ema import EMA, ema_beta
from gazetune.tune.maps import MapProvider

CHECKPOINT = "checkpoint.safetensors"


@dataclass
class TrainConfig:
    """GAN training settings (pretraining; :class:`TuneConfig` adds the gaze settings).

    Attributes
    ----------
    size, channels : int
        Image side in pixels and channel count (must match the images).
    z_dim, g_width, d_width : int
        Latent size and network widths (:class:`DCGANGenerator`, :class:`UNetDiscriminator`).
    spectral_norm : bool
        Spectral normalisation in D.
    batch, steps : int
        Images per batch (real and fake each); total optimisation steps of the run.
    lr_g, lr_d, beta1, beta2 : float
        Adam settings.
    ema_half_life : float
        Half-life of the generator EMA in images (0 = no averaging).
    diffaug : str
        Comma-separated DiffAugment policy from ``color, translation, cutout`` ("" = none).
    pixel_weight : float
        Weight of the per-pixel losses (eq 9/10) relative to the image-level ones (eq 1/2).
    cutmix_prob, consistency_weight : float
        Probability of a CutMix term in a D step and the weight of its consistency loss (¶100).
    r1_gamma : float
        R1 penalty weight (0 = phase ``Dreg`` off).
    reduction : str
        ``"mean"`` or ``"sum"`` (see :mod:`gazetune.tune.losses`).
    seed : int
        Seed of the run's random generator (weights, batches, augmentations).
    device : str
        ``"cpu"`` or ``"cuda"``.
    log_every, sample_every, checkpoint_every, n_samples : int
        Intervals in steps (0 = only at the end) and the number of images in a sample grid.
    history_share, history_capacity : float, int
        SimGAN history (:class:`gazetune.tune.history.HistoryBuffer`): the share of each fake
        batch that ``Dmain`` draws from earlier generator outputs (0 = off, the default: it has
        not shown a benefit yet) and the pool size in images.  Direct maps travel with their
        images through the pool; predicted maps are computed on the mixed batch.  The pool is
        saved in the checkpoint, so a resumed run continues identically.
    """

    size: int = 32
    channels: int = 3
    z_dim: int = 64
    g_width: int = 32
    d_width: int = 32
    spectral_norm: bool = False
    batch: int = 32
    steps: int = 2000
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.99
    ema_half_life: float = 2000.0
    diffaug: str = "color,translation,cutout"
    pixel_weight: float = 1.0
    cutmix_prob: float = 0.5
    consistency_weight: float = 1.0
    r1_gamma: float = 0.0
    reduction: str = "mean"
    seed: int = 0
    device: str = "cpu"
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    n_samples: int = 16
    history_share: float = 0.0
    history_capacity: int = 512

    def policy(self) -> tuple[str, ...]:
        pol = tuple(p.strip() for p in self.diffaug.split(",") if p.strip())
        bad = [p for p in pol if p not in POLICIES]
        if bad:
            raise ValueError(f"diffaug: unknown policy {bad}; choose from {POLICIES}")
        return pol


@dataclass
class TuneConfig(TrainConfig):
    """Gaze tuning settings: :class:`TrainConfig` plus the saliency weighting (eq 9b/10b).

    Attributes
    ----------
    alpha : float
        ``a`` of :func:`gazetune.tune.losses.saliency_weights` (0 = unweighted, 1 = eq 9b/10b).
    mode : str
        Map source: ``direct``, ``predicted``, ``auto`` or ``none`` (:class:`MapProvider`).
    min_observed : int
        ``auto`` uses direct maps from this many observed images on.
    """

    lr_g: float = 1e-4
    lr_d: float = 1e-4
    steps: int = 500
    alpha: float = 1.0
    mode: str = "auto"
    min_observed: int = 64


Batch = dict  # keys: real, sm_real, z, sm_fake (maps may be None)
GeneratorTerm = Callable[[torch.Tensor, Batch], dict]


class GazeGANLoss:
    """Loss object of the loop: eq 1-2 and 9a-10b (weighted by maps when the batch has them).

    Parameters
    ----------
    G, D
        Generator (contract of :mod:`gazetune.nets.generator`) and :class:`UNetDiscriminator`.
    cfg
        Run settings (``alpha`` is read when present, else maps are ignored).
    provider
        Supplies maps of generated images in ``predicted`` mode.
    gen
        The run's random generator (augmentation, CutMix).
    extra_generator_terms
        Callables ``term(fake (N, C, H, W), batch) -> {name: scalar loss}`` added to ``Gmain``
        (hook for eq 12: the human-response discriminator's generator term).
    history
        SimGAN pool of earlier fakes mixed into ``Dmain``'s fake batch (``None`` = off).
    """

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        cfg: TrainConfig,
        provider: MapProvider,
        gen: torch.Generator,
        extra_generator_terms: Sequence[GeneratorTerm] = (),
        history: HistoryBuffer | None = None,
    ):
        self.G, self.D, self.cfg, self.provider, self.gen = G, D, cfg, provider, gen
        self.history = history if history is not None and history.enabled else None
        self.alpha = getattr(cfg, "alpha", None)
        self.policy = cfg.policy()
        self.extra_generator_terms = list(extra_generator_terms)
        self.phases: list[tuple[str, str]] = [("Dmain", "D"), ("Gmain", "G")]
        if cfg.r1_gamma > 0:
            self.phases.append(("Dreg", "D"))
        self._map_cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def _fake_maps(self, fake: torch.Tensor, sm: torch.Tensor | None) -> torch.Tensor | None:
        """Maps of generated images; a predicted map is reused when the same images come back
        (``Dmain`` then ``Gmain`` see identical fakes: G is not stepped in between)."""
        if sm is not None or self.provider.mode != "predicted":
            return sm
        x = fake.detach()
        hit = self._map_cache
        if hit is not None and hit[0].shape == x.shape and torch.equal(hit[0], x):
            return hit[1]
        maps = self.provider.fake_maps(x, None)
        self._map_cache = (x, maps)
        return maps

    def _mix_history(self, fake: torch.Tensor, sm: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Replace a share of the fakes (and their direct maps, carried as one extra channel so
        an old image keeps its own map) with earlier ones from the history pool."""
        if self.history is None:
            return fake, sm
        if sm is None:
            return self.history.mix(fake), None
        both = self.history.mix(torch.cat([fake, sm.to(fake.dtype)], dim=1))
        c = fake.shape[1]
        return both[:, :c], both[:, c:]

    def _weights(self, sm: torch.Tensor | None) -> torch.Tensor | None:
        if sm is None or self.alpha is None:
            return None
        return L.saliency_weights(sm, self.alpha)

    def accumulate_gradients(self, phase: str, batch: Batch) -> dict[str, float]:
        """Compute the loss of ``phase`` on ``batch``, call ``backward``, return its terms."""
        red = self.cfg.reduction
        pw = self.cfg.pixel_weight
        terms: dict[str, torch.Tensor] = {}
        if phase == "Gmain":
            fake = self.G(batch["z"])
            w_fake = self._weights(self._fake_maps(fake, batch["sm_fake"]))
            xf, (w_fake,) = diff_augment(fake, self.gen, self.policy, maps=[w_fake])
            img, pix = self.D(xf)
            terms["G/eq1"] = L.generator_loss_eq1(img, red)
            if w_fake is None:
                terms["G/eq9a"] = pw * L.generator_pixel_loss_eq9a(pix, red)
            else:
                terms["G/eq9b"] = pw * L.generator_pixel_loss_eq9b(pix, w_fake, red)
            for term in self.extra_generator_terms:
                terms.update({f"G/{k}": v for k, v in term(fake, batch).items()})
        elif phase == "Dmain":
            with torch.no_grad():
                fake = self.G(batch["z"])
            fake, sm_fake = self._mix_history(fake, batch["sm_fake"])
            real = batch["real"]
            w_real = self._weights(batch["sm_real"])
            w_fake = self._weights(self._fake_maps(fake, sm_fake))
            if (w_real is None) != (w_fake is None):  # one side observed only: the other unweighted
                w_real = torch.ones_like(real[:, :1]) if w_real is None else w_real
                w_fake = torch.ones_like(fake[:, :1]) if w_fake is None else w_fake
            xr, (w_real,) = diff_augment(real, self.gen, self.policy, maps=[w_real])
            xf, (w_fake,) = diff_augment(fake, self.gen, self.policy, maps=[w_fake])
            n = xr.shape[0]
            use_mix = self.cfg.cutmix_prob > 0 and float(torch.rand(1, generator=self.gen)) < self.cfg.cutmix_prob
            parts = [xr, xf]
            if use_mix:
                mixed, mask = cutmix(xr, xf, self.gen)
                parts.append(mixed)
            img, pix = self.D(torch.cat(parts))
            terms["D/eq2"] = L.discriminator_loss_eq2(img[:n], img[n : 2 * n], red)
            if w_real is None:
                terms["D/eq10a"] = pw * L.discriminator_pixel_loss_eq10a(pix[:n], pix[n : 2 * n], red)
            else:
                terms["D/eq10b"] = pw * L.discriminator_pixel_loss_eq10b(pix[:n], pix[n : 2 * n], w_real, w_fake, red)
            if use_mix:
                w_mix = None if w_real is None else mask * w_real + (1 - mask) * w_fake
                terms["D/cutmix"] = pw * L.discriminator_cutmix_loss(pix[2 * n :], mask, w_mix, red)
                terms["D/consistency"] = self.cfg.consistency_weight * L.cutmix_consistency_loss(
                    pix[2 * n :], pix[:n], pix[n : 2 * n], mask, red
                )
        elif phase == "Dreg":
            real = batch["real"].detach().requires_grad_(True)
            img, _ = self.D(real)
            (grad,) = torch.autograd.grad(img.sum(), real, create_graph=True)
            terms["D/r1"] = 0.5 * self.cfg.r1_gamma * grad.pow(2).sum(dim=(1, 2, 3)).mean()
        else:
            raise ValueError(f"unknown phase {phase!r}; this loss has {[p for p, _ in self.phases]}")
        total = sum(terms.values())
        total.backward()
        return {k: float(v.detach()) for k, v in terms.items()}


def sample_batch(provider: MapProvider, images: torch.Tensor, batch: int, gen: torch.Generator) -> Batch:
    """Draw one training batch: real images (+ maps) and latents (+ maps) from ``provider``."""
    real, sm_real = provider.sample_real(images, batch, gen)
    z, sm_fake = provider.sample_latents(batch, gen)
    return {"real": real, "sm_real": sm_real, "z": z, "sm_fake": sm_fake}


def train_step(loss: GazeGANLoss, opts: dict[str, torch.optim.Optimizer], ema: EMA | None, batch: Batch) -> dict[str, float]:
    """One optimisation step: every phase of ``loss`` in order, each followed by a step of its
    optimiser (``opts[name]``); the EMA follows each generator step.  Returns the loss terms."""
    stats: dict[str, float] = {}
    for phase, opt_name in loss.phases:
        opt = opts[opt_name]
        opt.zero_grad(set_to_none=True)
        stats.update(loss.accumulate_gradients(phase, batch))
        opt.step()
        if opt_name == "G" and ema is not None:
            ema.update(loss.G)
    return stats


class _HistoryItems:
    """The history pool as a checkpoint "module" (``state_dict() -> {"items": (K, C, H, W)}``)."""

    def __init__(self, history: HistoryBuffer):
        self.history = history

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"items": self.history.state_dict()["items"]}


class _Run:
    """State of one run: networks, optimisers, EMA, RNG, step; saving and restoring it."""

    def __init__(self, cfg: TrainConfig, G: nn.Module, D: nn.Module, G_ema: nn.Module | None, out_dir: Path):
        self.cfg, self.out = cfg, out_dir
        self.device = torch.device(cfg.device)
        self.G, self.D = G.to(self.device).train(), D.to(self.device).train()
        self.ema = EMA(self.G, ema_beta(cfg.batch, cfg.ema_half_life))
        if G_ema is not None:
            self.ema.model.load_state_dict(G_ema.state_dict())
        betas = (cfg.beta1, cfg.beta2)
        self.opts = {
            "G": torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas),
            "D": torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas),
        }
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.history = (HistoryBuffer(cfg.history_capacity, cfg.history_share, seed=cfg.seed + 2)
                        if cfg.history_share > 0 else None)
        self.step = 0
        self.version_prefix = out_dir.name

    def generator_version(self) -> str:
        return f"{self.version_prefix}@{self.step}"

    def save(self) -> None:
        meta = {
            "step": str(self.step),
            "generator_version": self.generator_version(),
            "generator_config": json.dumps(self.G.config()),
            "discriminator_config": json.dumps(self.D.config()),
            "train_config": json.dumps(dataclasses.asdict(self.cfg)),
        }
        modules: dict = {"G": self.G, "D": self.D, "G_ema": self.ema.model}
        rng = {"loop": self.gen.get_state(), "torch": torch.get_rng_state()}
        if self.history is not None and len(self.history):
            modules["history"] = _HistoryItems(self.history)
            rng["history"] = self.history.state_dict()["rng"]
        write_checkpoint(
            self.out / CHECKPOINT,
            modules=modules,
            optimizers={f"opt_{k}": o for k, o in self.opts.items()},
            rng=rng,
            metadata=meta,
        )

    def restore(self, path: Path) -> None:
        ck = read_checkpoint(path)
        self.G.load_state_dict(ck.state_dict("G"))
        self.D.load_state_dict(ck.state_dict("D"))
        self.ema.model.load_state_dict(ck.state_dict("G_ema"))
        for k, o in self.opts.items():
            ck.load_optimizer(f"opt_{k}", o)
        self.gen.set_state(ck.rng("loop"))
        torch.set_rng_state(ck.rng("torch"))
        self.step = int(ck.metadata["step"])
        if self.history is not None and ck.has("history"):
            self.history.load_state_dict({"capacity": self.cfg.history_capacity, "share": self.cfg.history_share,
                                          "items": ck.state_dict("history")["items"], "rng": ck.rng("history")})

    @torch.no_grad()
    def samples(self) -> None:
        z = latents_from_seeds(range(self.cfg.n_samples), check_generator(self.ema.model)).to(self.device)
        imgs = self.ema.model(z).cpu()
        save_image_grid(imgs, self.out / f"samples_{self.step:06d}.png", nrow=max(1, math.ceil(math.sqrt(len(imgs)))))


def _check_images(images: torch.Tensor | np.ndarray, cfg: TrainConfig) -> torch.Tensor:
    x = torch.as_tensor(images, dtype=torch.float32)
    if x.ndim != 4 or x.shape[1] != cfg.channels or x.shape[2] != cfg.size or x.shape[3] != cfg.size:
        raise ValueError(
            f"images must have shape (N, {cfg.channels}, {cfg.size}, {cfg.size}) to match the config "
            f"(size, channels); got {tuple(x.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError("no training images")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0001 or hi > 1.0001:
        raise ValueError(f"images must be scaled to [-1, 1]; got values in [{lo:.3g}, {hi:.3g}]")
    return x.to(cfg.device)


def _loop(
    run: _Run,
    images: torch.Tensor,
    provider: MapProvider,
    extra_generator_terms: Sequence[GeneratorTerm],
    progress: bool,
    hooks: Sequence[Callable[[int, dict], None]],
) -> Path:
    cfg = run.cfg
    loss = GazeGANLoss(run.G, run.D, cfg, provider, run.gen, extra_generator_terms, history=run.history)
    log_path = run.out / "log.jsonl"
    t0 = time.perf_counter()

    def write_log(entry: dict) -> None:
        with log_path.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress,
    )
    with bar:
        task = bar.add_task(run.out.name, total=cfg.steps, completed=run.step, info="")
        while run.step < cfg.steps:
            stats = train_step(loss, run.opts, run.ema, sample_batch(provider, images, cfg.batch, run.gen))
            for term in extra_generator_terms:  # e.g. the human model's P(real) on the fakes (eq 12)
                stats.update(getattr(term, "logged", dict)())
            run.step += 1
            last = run.step == cfg.steps
            if (cfg.log_every and run.step % cfg.log_every == 0) or last:
                write_log({"step": run.step, "wall_s": round(time.perf_counter() - t0, 4), **stats})
                bar.update(task, info=" ".join(f"{k}={v:.3f}" for k, v in stats.items() if k.endswith(("eq1", "eq2"))))
            if (cfg.sample_every and run.step % cfg.sample_every == 0) or last:
                run.samples()
            if (cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0) or last:
                run.save()
            bar.update(task, completed=run.step)
            for hook in hooks:
                hook(run.step, stats)
    return run.out / CHECKPOINT


def _start(cfg: TrainConfig, out_dir: str | Path, resume: bool) -> tuple[Path, Path | None]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ck = out / CHECKPOINT
    if ck.exists() and not resume:
        raise FileExistsError(f"{out} already holds a run ({CHECKPOINT}); pass resume=True (--resume) or a new --out")
    save_config(cfg, out / "config.toml")
    return out, (ck if ck.exists() else None)


def pretrain(
    cfg: TrainConfig,
    images: torch.Tensor | np.ndarray,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    hooks: Sequence[Callable[[int, dict], None]] = (),
) -> Path:
    """Train a GAN from scratch with the image-level (eq 1-2) and per-pixel (eq 9a/10a) losses.

    Parameters
    ----------
    cfg
        Settings; written to ``out_dir/config.toml``.
    images
        ``(N, C, H, W)`` float32 in [-1, 1] with ``C = cfg.channels`` and ``H = W = cfg.size``.
    out_dir
        Run directory (created).
    resume
        Continue from ``out_dir/checkpoint.safetensors`` up to ``cfg.steps``.
    progress
        Show a Rich progress bar.
    hooks
        Called as ``hook(step, stats)`` after each step (after any checkpoint of that step).

    Returns
    -------
    Path
        The checkpoint file.
    """
    x = _check_images(images, cfg)
    out, ck = _start(cfg, out_dir, resume)
    torch.manual_seed(cfg.seed)
    G = DCGANGenerator(cfg.z_dim, cfg.size, cfg.channels, cfg.g_width)
    D = UNetDiscriminator(cfg.size, cfg.channels, cfg.d_width, spectral=cfg.spectral_norm)
    run = _Run(cfg, G, D, None, out)
    if ck is not None:
        run.restore(ck)
    provider = MapProvider("none")
    provider.bind([str(k) for k in range(len(x))], (cfg.size, cfg.size), cfg.z_dim, cfg.device)
    return _loop(run, x, provider, (), progress, hooks)


def tune(
    cfg: TuneConfig,
    images: torch.Tensor | np.ndarray,
    map_provider: MapProvider,
    out_dir: str | Path,
    init_checkpoint: str | Path | None = None,
    names: Sequence[str] | None = None,
    resume: bool = False,
    progress: bool = True,
    extra_generator_terms: Sequence[GeneratorTerm] = (),
    hooks: Sequence[Callable[[int, dict], None]] = (),
) -> Path:
    """Fine-tune a pretrained GAN with saliency-weighted per-pixel losses (eq 9b/10b, FIG. 4).

    Parameters
    ----------
    cfg
        Settings.  The network fields (``size``, ``channels``, ``z_dim``, widths, ``spectral_norm``)
        are taken from the initial checkpoint; the resolved config goes to ``config.toml``.
    images
        ``(N, C, H, W)`` float32 real images in [-1, 1].
    map_provider
        Source of maps (direct / predicted / auto / none); bound here to ``names``.
    out_dir
        Run directory.
    init_checkpoint
        A :func:`pretrain` checkpoint (file or run directory) to start from; not read when resuming.
    names
        Names of the images (matched against the real maps); default ``"0", "1", ...``.
    resume, progress, hooks
        As in :func:`pretrain`.
    extra_generator_terms
        Extra generator objectives, see :class:`GazeGANLoss`.

    Returns
    -------
    Path
        The checkpoint file.
    """
    out = Path(out_dir)
    resuming = resume and (out / CHECKPOINT).exists()
    src = out / CHECKPOINT if resuming else init_checkpoint
    if src is None:
        raise ValueError("tune needs init_checkpoint (a pretrained run) unless resuming a tuning run")
    src = Path(src)
    if src.is_dir():
        src = src / CHECKPOINT
    ck = read_checkpoint(src)
    gcfg = json.loads(ck.metadata["generator_config"])
    dcfg = json.loads(ck.metadata["discriminator_config"])
    cfg = dataclasses.replace(
        cfg, size=gcfg["size"], channels=gcfg["channels"], z_dim=gcfg["z_dim"], g_width=gcfg["width"],
        d_width=dcfg["width"], spectral_norm=bool(dcfg.get("spectral", False)),
    )
    x = _check_images(images, cfg)
    out, _ = _start(cfg, out, resume)
    G = DCGANGenerator(**gcfg)
    D = UNetDiscriminator(**dcfg)
    G.load_state_dict(ck.state_dict("G"))
    D.load_state_dict(ck.state_dict("D"))
    G_ema = DCGANGenerator(**gcfg)
    G_ema.load_state_dict(ck.state_dict("G_ema"))
    run = _Run(cfg, G, D, G_ema, out)
    if resuming:
        run.restore(src)
    log_path = out / "log.jsonl"
    user_log = map_provider.log

    def log(info: dict) -> None:  # the map-mode decision goes to log.jsonl and to the caller's log
        with log_path.open("a") as fh:
            fh.write(json.dumps({"step": run.step, **info}) + "\n")
        user_log(info)

    map_provider.log = log
    names = [str(k) for k in range(len(x))] if names is None else [str(n) for n in names]
    if len(names) != len(x):
        raise ValueError(f"got {len(names)} names for {len(x)} images")
    map_provider.bind(names, (cfg.size, cfg.size), cfg.z_dim, cfg.device)
    return _loop(run, x, map_provider, extra_generator_terms, progress, hooks)


def load_run_config(run_dir: str | Path, kind: type = TrainConfig):
    """The config a run was started with (``run_dir/config.toml``)."""
    return load_config(kind, Path(run_dir) / "config.toml")
