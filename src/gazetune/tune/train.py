"""GAN training loop with phases: pretraining (eq 1-2, 9a-10a) and gaze tuning (eq 9b/10b).

The loop knows nothing about individual loss terms.  As in StyleGAN2-ADA, a *loss object*
(a :class:`Loss` subclass) declares the networks it trains (:meth:`Loss.networks`, one optimiser
each) and its phases (:class:`Phase`: name, optimiser, interval in steps), and owns
``accumulate_gradients(phase, batch)``.  :class:`GazeGANLoss` has:

================  ==========  ========  ======================================================
phase             optimiser   interval  terms
================  ==========  ========  ======================================================
``"Dmain"``       ``D``       1         eq 2 + ``pixel_weight`` x eq 10a/10b, CutMix (¶100) +
                                        consistency
``"Gmain"``       ``G``       1         eq 1 + ``pixel_weight`` x eq 9a/9b + every extra
                                        generator term
``"Dreg"``        ``D``       ``r1``    lazy R1 penalty on real images (``r1_gamma > 0``), its
                                        weight multiplied by the interval (StyleGAN2)
================  ==========  ========  ======================================================

New terms plug in without touching the loop: an extra generator objective (e.g. the human-model
discriminator of eq 12) is a :class:`GeneratorTerm` passed as ``extra_generator_terms``; a second
network with its own optimiser is a :class:`Loss` subclass that adds it to :meth:`Loss.networks`
and adds a phase.

**Training health** (:mod:`gazetune.tune.health`): ``Dmain`` measures how well D separates the
real from the fake batch (accuracy on each, the logit gap), :func:`train_step` the gradient norm
of every network, and a :class:`~gazetune.tune.health.HealthMonitor` warns (log, console, the
run's ``health.json``) when D sits at chance or wins outright for long.  A GAN that does not train
otherwise looks like one that does.

Runs write to their directory: ``config.toml`` (the resolved :class:`TrainConfig` /
:class:`TuneConfig`), ``log.jsonl`` (one JSON object per row with ``"kind": "step"`` -- step, wall
time, every loss term and health figure -- or ``"kind": "event"`` -- map-mode decisions, health
warnings), ``health.json`` (the run's health summary), ``samples_XXXXXX.png`` (grid from the EMA
generator with fixed latent seeds ``0..n-1``) and ``checkpoint.safetensors`` (G, D, EMA G,
optimisers, RNG state, step, history buffer; atomic).  A run restarted with ``resume=True``
continues from the checkpoint to the same weights it would have reached without stopping: every
random draw comes from one ``torch.Generator`` whose state is checkpointed.  Library code never
touches torch's global RNG or thread settings: network weights are initialised under a forked RNG
seeded from the run's seed.

**Several processes** (``torchrun --nproc_per_node N -m gazetune gan pretrain|tune ...``):
:mod:`gazetune.tune.distributed` joins the process group, ``train_step`` all-reduces the stepped
network's gradients after each phase, every rank trains on its slice of the same global batch,
and rank 0 alone writes the run directory.  Without ``torchrun`` the loop is one process, as before.

Architecture overview and how to add a loss term: ``docs/architecture.md``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
from torch import nn

from gazetune.config import load_config, save_config
from gazetune.images import save_image_grid
from gazetune.nets.discriminator import DISCRIMINATORS
from gazetune.nets.external import GeneratorSource, ResolvedGenerator, copy_source, export_generator, resolve_generator
from gazetune.nets.generator import check_generator
from gazetune.nets.latent import latents_from_seeds
from gazetune.nets.style_generator import GENERATOR_KINDS, build_generator
from gazetune.tune import losses as L
from gazetune.tune.augment import POLICIES, cutmix, diff_augment
from gazetune.tune.distributed import Dist, rank_seed, setup as setup_distributed, shard
from gazetune.tune.history import HistoryBuffer
from gazetune.checkpoint import atomic_write_text, read_checkpoint, write_checkpoint
from gazetune.tune.ema import EMA, ema_beta
from gazetune.tune.health import (
    HealthMonitor,
    d_separation,
    grad_norm,
    health_warmup,
    read_step_rows,
    sample_diversity,
)
from gazetune.tune.maps import MapProvider

CHECKPOINT = "checkpoint.safetensors"
HEALTH = "health.json"
#: real and as many generated images of a batch that the health probe scores again (health/d_step_gain)
PROBE_IMAGES = 16
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """GAN training settings (pretraining; :class:`TuneConfig` adds the gaze settings).

    Attributes
    ----------
    size, channels : int
        Image side in pixels and channel count (must match the images).
    z_dim, g_width, d_width : int
        Latent size and network widths (the generator, :class:`UNetDiscriminator`).
    g_arch : str
        Built-in generator: ``"dcgan"`` (:class:`~gazetune.nets.generator.DCGANGenerator`, the
        default) or ``"style"`` (:class:`~gazetune.nets.style_generator.StyleGenerator`, seeded by
        ``seed``).  A tuning run of an external generator records its kind here
        (``"torchscript"``, ``"factory"``, ``"stylegan"``).
    spectral_norm : bool
        Spectral normalisation in D.
    d_arch : str
        ``"unet"`` (default: :class:`~gazetune.nets.discriminator.UNetDiscriminator`, image and
        pixel logits) or ``"conv"`` (:class:`~gazetune.nets.discriminator.ConvDiscriminator`,
        image logit only: the per-pixel terms and CutMix are skipped; the reference recipe).
    d_norm : str
        Normalisation inside D's blocks (``"group"``, ``"none"``, ``"batch"``; see
        :mod:`gazetune.nets.discriminator` for why group is the default).
    batch, steps : int
        Images per batch (real and fake each; under ``torchrun`` the global batch, split over the
        processes); total optimisation steps of the run.
    lr_g, lr_d, beta1, beta2 : float
        Adam settings.  ``lr_d = None`` (the default) means :func:`default_lr_d` for the image
        side, resolved when a run starts (:meth:`resolved`; ``config.toml`` holds the number): up
        to 32 px D learns four times faster than G (TTUR, Heusel et al. 2017: with equal rates the
        discriminator fell back to chance on the built-in faces); above 32 px as fast as G (at
        64 px four times killed D).
    ema_half_life : float
        Half-life of the generator EMA in images (0 = no averaging).
    diffaug : str
        Comma-separated DiffAugment policy from ``color, translation, cutout`` ("" = none).
    pixel_weight : float
        Weight of the per-pixel losses (eq 9/10) relative to the image-level ones (eq 1/2).
    cutmix_prob, consistency_weight : float
        Probability of a CutMix term in a D step and the weight of its consistency loss (¶100).
    r1_gamma, r1_interval : float, int
        R1 penalty weight (0 = phase ``Dreg`` off) and its interval in steps (lazy
        regularisation: the penalty is applied every ``r1_interval`` steps with its weight
        multiplied by the interval).
    reduction : str
        ``"mean"`` or ``"sum"`` (see :mod:`gazetune.tune.losses`).
    seed : int
        Seed of the run's random generator (weights, batches, augmentations).
    device : str
        ``"cpu"`` or ``"cuda"``.
    log_every, sample_every, checkpoint_every, n_samples : int
        Intervals in steps (0 = only at the end) and the number of images in a sample grid.
    health_window : int
        Steps over which :class:`~gazetune.tune.health.HealthMonitor` judges whether D sits at
        chance or wins outright (0 = a fifth of the run, at least 50 steps); the first window of
        steps is warm-up and not judged (in a run shorter than two windows, only as much as
        leaves the last window judged).
    health_probe_every : int
        Every this many steps (and on every logged step when ``log_every`` is larger) D scores
        16 real and 16 generated images of its batch again after the optimiser step (one extra
        forward of D, no gradient: ``health/d_step_gain``, the fall of eq 2 that D's own step
        bought; it tells a balanced discriminator from one that does not learn).  0 = never.
        Default 4.
    history_share, history_capacity : float, int
        SimGAN history (:class:`gazetune.tune.history.HistoryBuffer`): the share of each fake
        batch that ``Dmain`` draws from earlier generator outputs (0 = off, the default: it has
        not shown a benefit yet) and the pool size in images.  Direct maps travel with their
        images through the pool; predicted maps are computed on the mixed batch.  The pool is
        saved in the checkpoint, so a resumed run continues identically.
    precision : str
        ``"fp32"`` (default) or ``"bf16"``: the forward passes and losses of every phase run under
        ``torch.autocast(device, torch.bfloat16)`` (see :func:`autocast`); weights, gradients,
        optimiser steps, the EMA and sample grids stay in float32.  No gradient scaler (bfloat16
        has float32's range).  The R1 penalty (``Dreg``) stays in float32 too: in bfloat16 it came
        within 1 % of float32 on a fresh U-Net D (its D gradient at cosine 0.999), but it is a
        gradient of a gradient, shrinks as training settles, and runs only every ``r1_interval``
        steps, so float32 costs little.  For GPUs with bfloat16 units (Ampere and later); it also
        runs on the CPU (slowly, for tests).
    channels_last : bool
        Keep G, D, the EMA generator and the image batches in ``torch.channels_last`` memory
        format (faster convolutions on tensor-core GPUs; harmless on the CPU).  Checkpoints are
        the same either way.
    """

    size: int = 32
    channels: int = 3
    z_dim: int = 64
    g_width: int = 32
    d_width: int = 32
    g_arch: str = "dcgan"
    spectral_norm: bool = False
    d_arch: str = "unet"
    d_norm: str = "group"
    batch: int = 32
    steps: int = 2000
    lr_g: float = 2e-4
    lr_d: float | None = None
    beta1: float = 0.0
    beta2: float = 0.99
    ema_half_life: float = 2000.0
    diffaug: str = "color,translation,cutout"
    pixel_weight: float = 1.0
    cutmix_prob: float = 0.5
    consistency_weight: float = 1.0
    r1_gamma: float = 0.0
    r1_interval: int = 4
    reduction: str = "mean"
    seed: int = 0
    device: str = "cpu"
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    n_samples: int = 16
    health_window: int = 0
    health_probe_every: int = 4
    history_share: float = 0.0
    history_capacity: int = 512
    precision: str = "fp32"
    channels_last: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {list(PRECISIONS)}; got {self.precision!r}")
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be true or false; got {self.channels_last!r}")
        for name in ("lr_g", "lr_d"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and value >= 0):
                raise ValueError(f"{name} must be a number >= 0; got {value!r}")

    def resolved(self):
        """This config with ``lr_d`` filled in (:func:`default_lr_d` of ``size`` and ``lr_g``
        when it is ``None``); the same object when it is already set."""
        if self.lr_d is not None:
            return self
        return dataclasses.replace(self, lr_d=default_lr_d(self.size, self.lr_g))

    def policy(self) -> tuple[str, ...]:
        pol = tuple(p.strip() for p in self.diffaug.split(",") if p.strip())
        bad = [p for p in pol if p not in POLICIES]
        if bad:
            raise ValueError(f"diffaug: unknown policy {bad}; choose from {POLICIES}")
        return pol


#: lr_D / lr_G when a config leaves ``lr_d`` unset: up to this image side (px) ...
TTUR_MAX_SIZE = 32
#: ... D learns this many times faster than G, above it as fast as G
TTUR_RATIO = 4.0


def default_lr_d(size: int, lr_g: float) -> float:
    """D's Adam learning rate when a config leaves ``lr_d`` unset.

    ``TTUR_RATIO`` (4) x ``lr_g`` up to ``TTUR_MAX_SIZE`` (32) px, 1 x ``lr_g`` above.  Measured on
    faces64 (docs/benchmarks.md, "64 px"): at 32 px equal rates left D at chance and 4x trains;
    at 64 px 4x killed D within ~170 steps (every image got the same logit, spread 0.004, and
    its steps gained nothing), while 1x kept it responsive and learning (spread 0.11-0.26, eq 2
    falling by 0.05-0.12 per D step over steps 130-600, no warning).  Untested sizes above 64 px get 1x too.
    """
    return float(lr_g) * (TTUR_RATIO if int(size) <= TTUR_MAX_SIZE else 1.0)


def autocast(cfg: TrainConfig):
    """The autocast context of ``cfg.precision`` on ``cfg.device``: ``torch.autocast(device type,
    torch.bfloat16)`` for ``"bf16"``, a disabled one (float32) for ``"fp32"``.  Wraps forward passes
    and losses only; ``backward`` runs outside it (as torch's AMP docs advise)."""
    return torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def memory_format(cfg: TrainConfig) -> torch.memory_format:
    """``torch.channels_last`` when ``cfg.channels_last``, else ``torch.contiguous_format``."""
    return torch.channels_last if cfg.channels_last else torch.contiguous_format


def default_batch(size: int, device: str, world: int = 1) -> int:
    """The global batch a command gives a run when neither ``--batch`` nor a config sets one.

    32 on the CPU (:class:`TrainConfig`'s default).  On a GPU the networks are small for its
    memory and a batch of 32 leaves it mostly idle: 256 images up to 64 px, halved with every
    doubling of the side (128 at 128 px, 64 at 256 px, at least 16), per GPU, times ``world``
    processes under ``torchrun`` (``--batch`` is the global batch).
    """
    if not str(device).startswith("cuda"):
        return TrainConfig.batch
    per_gpu = max(16, int(256 * min(1.0, 64 / max(1, int(size)))))
    return per_gpu * max(1, int(world))


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
    generator : str
        The generator SPEC the run tuned (:mod:`gazetune.nets.external`: run directory,
        TorchScript file, ``package.module:function`` or StyleGAN ``.pkl``); recorded by :func:`tune`.
    discriminator : str
        A gazetune tuning run whose discriminator is used ("" = the SPEC's run's D, else a fresh one).
    warmup_steps : int
        D warm-up: steps that train D alone against the frozen generator on the real images
        before tuning (``steps`` tuning steps follow); -1 = 100 when D is fresh, 0 when it comes
        from a run.
    truncation_psi, noise_mode : float, str
        Truncation and noise mode of a StyleGAN pickle (``const``, ``random``, ``none``).
    weight_side : str
        Which per-pixel losses the maps weigh: ``"both"`` (default: eq 9b for G and eq 10b for D,
        as the patent), ``"d"`` (eq 10b for D, G keeps the unweighted eq 9a) or ``"g"`` (eq 9b for
        G, D keeps eq 10a).  For finding out which side does the work (bench/gaze_mechanism.py).
    optimizer_state : str
        Where the Adam moments of G and D start: ``"restore"`` (default: from the checkpoint being
        tuned, when it holds them, at this config's learning rates) or ``"fresh"`` (zero moments).
        Fresh moments make Adam's first updates sign-like, about ``lr`` in every weight at once,
        which knocks a trained GAN off its equilibrium (bench/tune_start.py measures this).
    """

    lr_g: float = 1e-4
    lr_d: float | None = None
    steps: int = 500
    alpha: float = 1.0
    mode: str = "auto"
    min_observed: int = 64
    generator: str = ""
    discriminator: str = ""
    warmup_steps: int = -1
    truncation_psi: float = 1.0
    noise_mode: str = "const"
    weight_side: str = "both"
    optimizer_state: str = "restore"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.weight_side not in WEIGHT_SIDES:
            raise ValueError(f"weight_side must be one of {list(WEIGHT_SIDES)}; got {self.weight_side!r}")
        if self.optimizer_state not in OPTIMIZER_STATES:
            raise ValueError(f"optimizer_state must be one of {list(OPTIMIZER_STATES)}; got {self.optimizer_state!r}")


#: values of :attr:`TuneConfig.weight_side`
WEIGHT_SIDES = ("both", "d", "g")
#: values of :attr:`TuneConfig.optimizer_state`
OPTIMIZER_STATES = ("restore", "fresh")


@dataclass
class Batch:
    """One training batch.

    Attributes
    ----------
    real : torch.Tensor
        ``(N, C, H, W)`` real images in [-1, 1].
    z : torch.Tensor
        ``(N, z_dim)`` latents of the fakes.
    sm_real, sm_fake : torch.Tensor or None
        ``(N, 1, H, W)`` saliency maps of the real images and of the fakes ``G(z)`` (direct mode:
        measured on the image people saw), or ``None`` (no maps, or predicted later).
    """

    real: torch.Tensor
    z: torch.Tensor
    sm_real: torch.Tensor | None = None
    sm_fake: torch.Tensor | None = None

    def __getitem__(self, key: str):  # read access by name, for terms written against the old dict
        return getattr(self, key)


@runtime_checkable
class GeneratorTerm(Protocol):
    """An extra generator objective added to ``Gmain`` (e.g. eq 12's human-model term).

    ``term(fake (N, C, H, W), batch) -> {name: scalar loss}``; the names are logged as
    ``G/<name>``.  An optional ``logged() -> {name: float}`` adds figures to the step's log row
    (e.g. the human model's mean P(real) of the fakes).
    """

    def __call__(self, fake: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]: ...


class Phase(NamedTuple):
    """One phase of a training step: its name, the optimiser it steps and its interval in steps
    (the phase runs when ``step % interval == 0``)."""

    name: str
    optimizer: str
    interval: int = 1


class Loss:
    """Base of the loop's loss objects (StyleGAN2-ADA style).

    A subclass sets ``self.phases`` (a list of :class:`Phase`), implements
    :meth:`accumulate_gradients` and, when it trains more than G and D, extends
    :meth:`networks`.  The loop builds one Adam optimiser per entry of :meth:`networks` and never
    needs editing for a new network or term.
    """

    phases: list[Phase]

    def networks(self) -> dict[str, tuple[nn.Module, float]]:
        """``{optimiser name: (module, learning rate)}`` of every network this loss trains."""
        raise NotImplementedError

    def accumulate_gradients(self, phase: str, batch: Batch) -> dict[str, float]:
        """Compute the loss of ``phase`` on ``batch``, call ``backward``, return its terms."""
        raise NotImplementedError

    def logged(self) -> dict[str, float]:
        """Extra figures of the last step for the log row (none by default)."""
        return {}

    #: the run's step (0-based, warm-up included) that :func:`train_step` is running; set by it
    step: int = 0

    def after_step(self, phase: str) -> None:
        """Called by :func:`train_step` after the optimiser step of ``phase`` (nothing by default)."""


class GazeGANLoss(Loss):
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
        :class:`GeneratorTerm` objects added to ``Gmain`` (hook for eq 12: the human-response
        discriminator's generator term).
    history
        SimGAN pool of earlier fakes mixed into ``Dmain``'s fake batch (``None`` = off).

    After every ``Dmain``, :meth:`logged` holds D's separation of that batch's real and fake
    images (:func:`gazetune.tune.health.d_separation`: ``health/acc_real``, ``health/acc_fake``,
    ``health/logit_gap``), measured on the augmented images D was trained on.

    ``cfg.precision == "bf16"`` runs the forward passes and losses of ``Dmain`` and ``Gmain``
    under :func:`autocast` (``Dreg``, the R1 penalty, stays in float32); G's and D's outputs are
    cast back to float32, so the loss terms, maps, augmentation and the history pool see float32
    whatever the precision.  ``cfg.channels_last`` puts each batch's real images in channels-last
    format (the loop converts the networks).
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
        side = getattr(cfg, "weight_side", "both")  # pretraining (a TrainConfig) has no maps at all
        self._weigh_g, self._weigh_d = side in ("both", "g"), side in ("both", "d")
        self.policy = cfg.policy()
        self.extra_generator_terms = list(extra_generator_terms)
        for term in self.extra_generator_terms:  # terms that need the networks (e.g. D's features)
            if hasattr(term, "bind"):
                term.bind(self)
        self.phases = [Phase("Dmain", "D"), Phase("Gmain", "G")]
        if cfg.r1_gamma > 0:
            self.phases.append(Phase("Dreg", "D", max(1, int(cfg.r1_interval))))
        self._map_cache: tuple[torch.Tensor, torch.Tensor] | None = None
        self._health: dict[str, float] = {}
        # a probed Dmain keeps its inputs for after_step (health_probe_every 0: never)
        self.probe_every = max(0, int(getattr(cfg, "health_probe_every", 4)))
        self._probe_due = False
        self._probe: tuple[torch.Tensor, int, float] | None = None

    def networks(self) -> dict[str, tuple[nn.Module, float]]:
        return {"G": (self.G, self.cfg.lr_g), "D": (self.D, self.cfg.resolved().lr_d)}

    def logged(self) -> dict[str, float]:
        out = dict(self._health)
        for term in self.extra_generator_terms:  # e.g. the human model's P(real) on the fakes (eq 12)
            out.update(getattr(term, "logged", dict)())
        return out

    def _fake_maps(self, fake: torch.Tensor, sm: torch.Tensor | None) -> torch.Tensor | None:
        """Maps of generated images; a predicted map is reused when the same images come back
        (``Dmain`` then ``Gmain`` see identical fakes: G is not stepped in between)."""
        mode = self.provider.mode
        if mode not in ("predicted", "hybrid") or (mode == "predicted" and sm is not None):
            return sm
        if mode == "hybrid" and sm is not None and bool(torch.isfinite(sm).all()):
            return sm
        x = fake.detach()
        hit = self._map_cache
        if hit is not None and hit[0].shape == x.shape and torch.equal(hit[0], x):
            return hit[1]
        maps = self.provider.fake_maps(x, sm if mode == "hybrid" else None)
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

    def _generator_terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        red, pw = self.cfg.reduction, self.cfg.pixel_weight
        terms: dict[str, torch.Tensor] = {}
        fake = self._generate(batch.z)
        w_fake = self._weights(self._fake_maps(fake, batch.sm_fake)) if self._weigh_g else None
        xf, (w_fake,) = diff_augment(fake, self.gen, self.policy, maps=[w_fake])
        img, pix = self._discriminate(xf)
        terms["G/eq1"] = L.generator_loss_eq1(img, red)
        if pix is None:  # image-level discriminator: no per-pixel terms
            pass
        elif w_fake is None:
            terms["G/eq9a"] = pw * L.generator_pixel_loss_eq9a(pix, red)
        else:
            terms["G/eq9b"] = pw * L.generator_pixel_loss_eq9b(pix, w_fake, red)
        for term in self.extra_generator_terms:
            terms.update({f"G/{k}": v for k, v in term(fake, batch).items()})
        return terms

    def _discriminator_terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        red, pw = self.cfg.reduction, self.cfg.pixel_weight
        terms: dict[str, torch.Tensor] = {}
        with torch.no_grad():
            generated = self._generate(batch.z)
        fake, sm_fake = self._mix_history(generated, batch.sm_fake)
        real = batch.real
        if self._weigh_d:
            w_real = self._weights(batch.sm_real)
            w_fake = self._weights(self._fake_maps(fake, sm_fake))
        else:  # weight_side "g": D keeps the unweighted eq 10a
            w_real = w_fake = None
        if (w_real is None) != (w_fake is None):  # one side observed only: the other unweighted
            w_real = torch.ones_like(real[:, :1]) if w_real is None else w_real
            w_fake = torch.ones_like(fake[:, :1]) if w_fake is None else w_fake
        xr, (w_real,) = diff_augment(real, self.gen, self.policy, maps=[w_real])
        xf, (w_fake,) = diff_augment(fake, self.gen, self.policy, maps=[w_fake])
        n = xr.shape[0]
        use_mix = (self.cfg.cutmix_prob > 0 and getattr(self.D, "pixel_logits", True)
                   and float(torch.rand(1, generator=self.gen)) < self.cfg.cutmix_prob)
        parts = [xr, xf]
        if use_mix:
            mixed, mask = cutmix(xr, xf, self.gen)
            parts.append(mixed)
        img, pix = self._discriminate(torch.cat(parts))
        self._health = d_separation(img[:n].detach(), img[n : 2 * n].detach())
        # this step's samples only (not the history buffer's), before augmentation: has G collapsed?
        self._health["health/sample_diversity"] = sample_diversity(real, generated)
        if self._probe_due:  # keep D's exact inputs: after_step scores them again (health/d_step_gain)
            k = min(n, PROBE_IMAGES)  # part of the batch is enough: 16 % of a step at batch 32, not 25 %
            self._probe = (torch.cat([xr[:k], xf[:k]]).detach(), k,
                           float(L.discriminator_loss_eq2(img[:k].detach(), img[n : n + k].detach(), "mean")))
        terms["D/eq2"] = L.discriminator_loss_eq2(img[:n], img[n : 2 * n], red)
        if pix is None:  # image-level discriminator: no per-pixel terms
            pass
        elif w_real is None:
            terms["D/eq10a"] = pw * L.discriminator_pixel_loss_eq10a(pix[:n], pix[n : 2 * n], red)
        else:
            terms["D/eq10b"] = pw * L.discriminator_pixel_loss_eq10b(pix[:n], pix[n : 2 * n], w_real, w_fake, red)
        if use_mix:
            w_mix = None if w_real is None else mask * w_real + (1 - mask) * w_fake
            terms["D/cutmix"] = pw * L.discriminator_cutmix_loss(pix[2 * n :], mask, w_mix, red)
            terms["D/consistency"] = self.cfg.consistency_weight * L.cutmix_consistency_loss(
                pix[2 * n :], pix[:n], pix[n : 2 * n], mask, red
            )
        return terms

    def after_step(self, phase: str) -> None:
        """After D's main step: score the batch it was trained on again (``health/d_step_gain``,
        see :mod:`gazetune.tune.health`).  The forward runs as in training, under no gradient;
        D's buffers (spectral-norm vectors, running statistics) are put back afterwards, so the
        probe changes nothing in the run."""
        if phase != "Dmain" or self._probe is None:
            return
        x, n, before = self._probe
        self._probe = None
        saved = [(b, b.detach().clone()) for b in self.D.buffers()]
        with torch.no_grad(), autocast(self.cfg):
            img, _ = self._discriminate(x)
            after = float(L.discriminator_loss_eq2(img[:n], img[n : 2 * n], "mean"))
        with torch.no_grad():
            for b, v in saved:
                b.copy_(v)
        self._health["health/d_step_gain"] = before - after

    def _generate(self, z: torch.Tensor) -> torch.Tensor:
        """``G(z)`` in float32 (under bf16 autocast G computes in bfloat16)."""
        return self.G(z).float()

    def _discriminate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """D's image and pixel logits of ``x`` in float32 (the losses are computed in float32)."""
        img, pix = self.D(x)
        return img.float(), (None if pix is None else pix.float())

    def _r1_terms(self, batch: Batch, interval: int) -> dict[str, torch.Tensor]:
        real = batch.real.detach().requires_grad_(True)
        img, _ = self.D(real)
        (grad,) = torch.autograd.grad(img.sum(), real, create_graph=True)
        # lazy regularisation: applied every `interval` steps, so weighted by the interval
        return {"D/r1": 0.5 * self.cfg.r1_gamma * interval * grad.pow(2).sum(dim=(1, 2, 3)).mean()}

    def accumulate_gradients(self, phase: str, batch: Batch) -> dict[str, float]:
        """Compute the loss of ``phase`` on ``batch``, call ``backward``, return its terms."""
        if isinstance(batch, dict):
            batch = Batch(**batch)
        if self.cfg.channels_last and batch.real.ndim == 4:
            batch = dataclasses.replace(batch, real=batch.real.contiguous(memory_format=torch.channels_last))
        if phase == "Gmain":
            with autocast(self.cfg):
                terms = self._generator_terms(batch)
        elif phase == "Dmain":
            # probe on every `probe_every`-th step, and on every logged step when logs are sparser,
            # so that each row of log.jsonl carries the gain (`gazetune gan health` re-reads them)
            s, every, log_every = self.step + 1, self.probe_every, int(getattr(self.cfg, "log_every", 0) or 0)
            self._probe_due = every > 0 and (s % every == 0 or (log_every >= every and s % log_every == 0))
            with autocast(self.cfg):
                terms = self._discriminator_terms(batch)
        elif phase == "Dreg":  # float32 whatever cfg.precision (see TrainConfig.precision)
            terms = self._r1_terms(batch, next(p.interval for p in self.phases if p.name == "Dreg"))
        else:
            raise ValueError(f"unknown phase {phase!r}; this loss has {[p.name for p in self.phases]}")
        total = sum(terms.values())
        total.backward()  # outside autocast
        return {k: float(v.detach()) for k, v in terms.items()}


def sample_batch(provider: MapProvider, images: torch.Tensor, batch: int, gen: torch.Generator) -> Batch:
    """Draw one training batch: real images (+ maps) and latents (+ maps) from ``provider``."""
    real, sm_real = provider.sample_real(images, batch, gen)
    z, sm_fake = provider.sample_latents(batch, gen)
    return Batch(real=real, z=z, sm_real=sm_real, sm_fake=sm_fake)


def build_optimizers(loss: Loss, cfg: TrainConfig) -> dict[str, torch.optim.Optimizer]:
    """One Adam optimiser (``cfg.beta1, cfg.beta2``) per network :meth:`Loss.networks` declares."""
    betas = (float(cfg.beta1), float(cfg.beta2))
    return {name: torch.optim.Adam(net.parameters(), lr=lr, betas=betas) for name, (net, lr) in loss.networks().items()}


def train_step(loss: Loss, opts: dict[str, torch.optim.Optimizer], ema: EMA | None, batch: Batch,
               step: int = 0, sync: Callable[[str, nn.Module], None] | None = None) -> dict[str, float]:
    """One optimisation step: every phase of ``loss`` due at ``step`` (``step % interval == 0``),
    in order, each followed by a step of its optimiser (``opts[name]``); the EMA follows each
    generator step.  Returns the loss terms, the gradient norm of each stepped network
    (``health/grad_<name>``, before the optimiser step) and :meth:`Loss.logged`.

    ``sync(phase, network)`` runs after each phase's backward, before the norm and the optimiser
    step: under torchrun it all-reduces the gradients of the network the phase steps
    (:meth:`gazetune.tune.distributed.Dist.sync`)."""
    stats: dict[str, float] = {}
    nets = loss.networks()
    loss.step = int(step)
    for phase in loss.phases:
        if step % max(1, phase.interval):
            continue
        opt = opts[phase.optimizer]
        opt.zero_grad(set_to_none=True)
        stats.update(loss.accumulate_gradients(phase.name, batch))
        if sync is not None:
            sync(phase.name, nets[phase.optimizer][0])
        if phase.interval == 1:  # main phases: the norm of the gradient D / G follow each step
            stats[f"health/grad_{phase.optimizer}"] = grad_norm(nets[phase.optimizer][0])
        opt.step()
        loss.after_step(phase.name)
        if phase.optimizer == "G" and ema is not None:
            ema.update(loss.G)
    stats.update(loss.logged())
    return stats


class _HistoryItems:
    """The history pool as a checkpoint "module" (``state_dict() -> {"items": (K, C, H, W)}``)."""

    def __init__(self, history: HistoryBuffer):
        self.history = history

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"items": self.history.state_dict()["items"]}


class _Run:
    """State of one run: networks, optimisers, EMA, RNG, step; saving and restoring it."""

    def __init__(self, cfg: TrainConfig, G: nn.Module, D: nn.Module, G_ema: nn.Module | None, out_dir: Path,
                 source: GeneratorSource | None = None, dist: Dist | None = None):
        self.cfg, self.out = cfg, out_dir
        self.dist = dist if dist is not None else Dist()
        self.source = source if source is not None else GeneratorSource("builtin", "", arch=cfg.g_arch)
        self.export_log: Callable[[dict], None] | None = None
        self.device = torch.device(cfg.device)
        fmt = {"memory_format": torch.channels_last} if cfg.channels_last else {}  # 4-d weights only
        self.G, self.D = G.to(self.device, **fmt).train(), D.to(self.device, **fmt).train()
        self.ema = EMA(self.G, ema_beta(cfg.batch, cfg.ema_half_life))  # a copy: in G's format
        if G_ema is not None:
            self.ema.model.load_state_dict(G_ema.state_dict())
        self.opts: dict[str, torch.optim.Optimizer] = {}
        # batches come from `gen` (the same on every rank: each takes its slice of the global batch);
        # augmentation from `aug_gen`, the same generator in one process, a per-rank one under torchrun
        self.gen = torch.Generator().manual_seed(cfg.seed + 1)
        self.aug_gen = self.gen if not self.dist.active else self._rank_generator(0)
        history_seed = cfg.seed + 2 if not self.dist.active else rank_seed(cfg.seed + 2, self.dist.rank)
        self.history = (HistoryBuffer(cfg.history_capacity, cfg.history_share, seed=history_seed)
                        if cfg.history_share > 0 else None)
        self.step = 0
        self.version_prefix = out_dir.name

    def _rank_generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(rank_seed(self.cfg.seed + 1, self.dist.rank, step))

    def attach(self, loss: Loss) -> None:
        """Build the optimisers of every network ``loss`` trains (before :meth:`restore`)."""
        self.opts = build_optimizers(loss, self.cfg)

    def generator_version(self) -> str:
        return f"{self.version_prefix}@{self.step}"

    def save(self) -> None:
        """Write the checkpoint (rank 0; every rank must call it: their RNG states are gathered)."""
        aug = self.dist.gather(self.aug_gen.get_state()) if self.dist.active else []
        if not self.dist.main:
            return
        meta = {
            "step": str(self.step),
            "generator_version": self.generator_version(),
            "generator_config": json.dumps(self.G.config() if hasattr(self.G, "config") else {}),
            "generator_arch": self.source.arch if not self.source.external else self.source.kind,
            "generator_source": self.source.to_json(),
            "discriminator_config": json.dumps(self.D.config()),
            "train_config": json.dumps(dataclasses.asdict(self.cfg)),
        }
        if self.source.external:  # the tuned generator in the forms that load without gazetune
            info = export_generator(self.ema.model, self.source, self.out)
            if self.export_log is not None:
                self.export_log(info)
        modules: dict = {"G": self.G, "D": self.D, "G_ema": self.ema.model}
        rng = {"loop": self.gen.get_state()}
        if self.dist.active:
            meta["world_size"] = str(self.dist.world)
            rng.update({f"aug_{r}": state for r, state in enumerate(aug)})
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
        self.step = int(ck.metadata["step"])
        if self.dist.active:  # this rank's augmentation draws: saved on the same world size, else re-derived
            same = int(ck.metadata.get("world_size", "1")) == self.dist.world
            key = f"aug_{self.dist.rank}"
            self.aug_gen.set_state(ck.rng(key) if same and f"rng/{key}" in ck.tensors
                                   else self._rank_generator(self.step).get_state())
        if self.history is not None and ck.has("history"):
            self.history.load_state_dict({"capacity": self.cfg.history_capacity, "share": self.cfg.history_share,
                                          "items": ck.state_dict("history")["items"], "rng": ck.rng("history")})

    @torch.no_grad()
    def samples(self) -> None:
        if not self.dist.main:
            return
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


def _replay_health(monitor: HealthMonitor, log_path: Path, upto: int, phase: str | None = None,
                   offset: int = 0) -> None:
    """Feed the step rows already in ``log.jsonl`` (up to step ``upto``) to a fresh monitor, so a
    resumed run judges its health over the whole run.  With ``phase`` only rows of that phase
    (``"warmup"``; ``"tune"`` also takes rows without a phase tag) count, their steps shifted by
    ``-offset`` (rows are read by :func:`gazetune.tune.health.read_step_rows`)."""
    try:
        rows = read_step_rows(log_path, phase=phase)
    except (FileNotFoundError, ValueError):  # no log yet, or no health rows in it: nothing to replay
        return
    say, monitor.say = monitor.say, None
    for row in rows:
        if int(row["step"]) <= upto:
            monitor.update(int(row["step"]) - offset, row)
    monitor.say = say


class _DOnly(Loss):
    """The D phases of a loss alone (the D warm-up against a frozen generator)."""

    def __init__(self, loss: Loss):
        self.loss = loss
        self.phases = [p for p in loss.phases if p.optimizer == "D"]

    def networks(self) -> dict[str, tuple[nn.Module, float]]:
        return self.loss.networks()

    def accumulate_gradients(self, phase: str, batch: Batch) -> dict[str, float]:
        self.loss.step = self.step
        return self.loss.accumulate_gradients(phase, batch)

    def after_step(self, phase: str) -> None:
        self.loss.after_step(phase)

    def logged(self) -> dict[str, float]:
        return self.loss.logged()


def _bar_info(stats: dict, state: str) -> str:
    """The progress bar's health read-out: the image losses, D's accuracy, logit gap and spread,
    G's sample diversity and the monitor's state over its window (``ok``, ``balanced``, ``chance``,
    ``wins``, ``collapsed``)."""
    nan = float("nan")
    acc = 0.5 * (stats.get("health/acc_real", nan) + stats.get("health/acc_fake", nan))
    return " ".join([f"{k}={v:.3f}" for k, v in stats.items() if k.endswith(("eq1", "eq2"))]
                    + [f"D acc={acc:.2f} gap={stats.get('health/logit_gap', nan):+.2f} "
                       f"spread={stats.get('health/logit_spread', nan):.2f} "
                       f"G div={stats.get('health/sample_diversity', nan):.2f} [{state}]"])


def _warmup_report(monitor: HealthMonitor, steps: int) -> dict:
    """The end-of-warm-up event: D's separation over the last window of warm-up steps."""
    summ = monitor.summary()
    state = monitor.state()
    return {"kind": "event", "event": "d_warmup", "phase": "warmup", "step": steps, "state": state,
            "last_window_acc": summ["last_window_acc"], "last_window_logit_gap": summ["last_window_logit_gap"],
            "message": (f"D warm-up ({steps} steps, generator frozen): mean accuracy "
                        f"{summ['last_window_acc']:.2f}, logit gap {summ['last_window_logit_gap']:+.2f} over the "
                        f"last {min(monitor.window, steps)} steps"
                        + {"chance": " - D still cannot tell the generator from the real images",
                           "wins": " - D separates them (ready to tune)"}.get(state, ""))}


def _loop(
    run: _Run,
    loss: Loss,
    images: torch.Tensor,
    provider: MapProvider,
    progress: bool,
    hooks: Sequence[Callable[[int, dict], None]],
) -> Path:
    cfg = run.cfg
    d = run.dist  # under torchrun rank 0 alone writes the run directory and talks
    log_path = run.out / "log.jsonl"
    t0 = time.perf_counter()

    def write_log(entry: dict) -> None:
        if not d.main:
            return
        with log_path.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")

    def sync(phase: str, net: nn.Module) -> None:  # gradients of the stepped network over the ranks
        # a "sum" loss sums over the global batch; R1 is a batch mean whatever the reduction
        d.sync(net, mean=cfg.reduction == "mean" or phase == "Dreg")

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True, quiet=not d.main)
    progress = progress and d.main
    warm = max(0, int(getattr(cfg, "warmup_steps", 0)))
    total = warm + cfg.steps
    window = cfg.health_window or max(50, cfg.steps // 5)
    # the first window of a run is warm-up: a fresh GAN may sit near chance while G starts; a run
    # shorter than two windows (a short tuning run) still gets its last window judged
    monitor = HealthMonitor(window=window, warmup=health_warmup(window, cfg.steps),
                            say=console.print if d.main else None)
    _replay_health(monitor, log_path, run.step, "tune" if warm else None, warm)
    warm_monitor = HealthMonitor(window=max(1, min(warm, 20)), warmup=0, say=None)
    if warm:
        _replay_health(warm_monitor, log_path, min(run.step, warm), "warmup")
    d_only = _DOnly(loss)
    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress,
        console=console,
    )
    with bar:
        task = bar.add_task(run.out.name, total=total, completed=run.step, info="")
        while run.step < total:
            warming = run.step < warm  # D alone against the frozen generator
            if d.active:  # the global batch, drawn alike on every rank; this rank trains on its slice
                batch = shard(sample_batch(provider, images, cfg.batch, run.gen), d)
                stats = d.mean_stats(train_step(d_only if warming else loss, run.opts, run.ema, batch, run.step,
                                                sync=sync))
            else:
                stats = train_step(d_only if warming else loss, run.opts, run.ema,
                                   sample_batch(provider, images, cfg.batch, run.gen), run.step)
            run.step += 1
            last = run.step == total
            tag = {"phase": "warmup" if warming else "tune"} if warm else {}
            if warming:
                warm_monitor.update(run.step, stats)
            else:
                # every step feeds the monitor (not only logged ones): a window is a number of steps
                before = len(monitor.warnings)
                monitor.update(run.step - warm, stats)
                for warning in monitor.warnings[before:]:  # a step may raise two (at chance and frozen)
                    write_log({"kind": "event", "event": "health_warning", "step": run.step, **tag, **warning})
            if (cfg.log_every and run.step % cfg.log_every == 0) or last or (warming and run.step == warm):
                write_log({"kind": "step", "step": run.step, **tag, "wall_s": round(time.perf_counter() - t0, 4),
                           **stats})
                bar.update(task, info=_bar_info(stats, "warm-up" if warming else
                                                      "collapsed" if monitor.collapsed() else monitor.state()))
            if warming and run.step == warm:
                report = _warmup_report(warm_monitor, warm)
                write_log(report)
                console.print(f"[bold]{report['message']}[/]")
            if (cfg.sample_every and run.step % cfg.sample_every == 0) or last:
                run.samples()
            if (cfg.checkpoint_every and run.step % cfg.checkpoint_every == 0) or last:
                run.save()
                summary = monitor.summary()
                if warm:
                    summary["d_warmup"] = warm_monitor.summary()
                if d.main:
                    atomic_write_text(run.out / HEALTH, json.dumps(summary, indent=2))
            bar.update(task, completed=run.step)
            for hook in hooks:
                hook(run.step, stats)
    d.barrier()  # no rank goes on (e.g. to resume the run) before rank 0 has written it
    return run.out / CHECKPOINT


def read_health(run_dir: str | Path) -> dict:
    """The health summary of a run (``run_dir/health.json``, see :class:`HealthMonitor`)."""
    path = Path(run_dir) / HEALTH
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the run has not reached a checkpoint yet (or predates health logs)")
    return json.loads(path.read_text())


def _start(cfg: TrainConfig, out_dir: str | Path, resume: bool, d: Dist | None = None) -> tuple[Path, Path | None]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ck = out / CHECKPOINT
    if ck.exists() and not resume:
        raise FileExistsError(f"{out} already holds a run ({CHECKPOINT}); pass resume=True (--resume) or a new --out")
    if d is None or d.main:
        save_config(cfg, out / "config.toml")
    return out, (ck if ck.exists() else None)


def builtin_generator(cfg: TrainConfig) -> nn.Module:
    """The built-in generator ``cfg.g_arch`` describes (``"dcgan"`` or ``"style"``), fresh weights."""
    if cfg.g_arch not in GENERATOR_KINDS:
        raise ValueError(f"g_arch must be one of {sorted(GENERATOR_KINDS)}; got {cfg.g_arch!r}")
    kw = dict(z_dim=cfg.z_dim, size=cfg.size, channels=cfg.channels, width=cfg.g_width)
    if cfg.g_arch == "style":
        kw["seed"] = cfg.seed  # fixed noise buffers and training draws (its own generator)
    return build_generator(cfg.g_arch, **kw)


def pretrain(
    cfg: TrainConfig,
    images: torch.Tensor | np.ndarray,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    hooks: Sequence[Callable[[int, dict], None]] = (),
    discriminator: nn.Module | None = None,
    generator: nn.Module | None = None,
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
    discriminator
        A discriminator module to train instead of the one ``cfg`` describes (its ``config()``
        goes into the checkpoint); for experiments and tests.
    generator
        A generator module to train instead of the built-in one ``cfg`` describes (the same
        interface: ``G(z (N, z_dim)) -> (N, C, H, W)`` and ``config()``); for experiments and tests.

    Returns
    -------
    Path
        The checkpoint file.
    """
    cfg = cfg.resolved()  # lr_d of the image side, into config.toml
    d = setup_distributed(cfg.device)  # under torchrun: join the process group (else one process)
    d.per_rank_batch(cfg.batch)
    x = _check_images(images, cfg)
    out, ck = _start(cfg, out_dir, resume, d)
    with torch.random.fork_rng(devices=[]):  # seeded weights without touching the caller's RNG
        torch.manual_seed(cfg.seed)
        G = generator if generator is not None else builtin_generator(cfg)
        if cfg.d_arch not in DISCRIMINATORS:
            raise ValueError(f"d_arch must be one of {sorted(DISCRIMINATORS)}; got {cfg.d_arch!r}")
        D = discriminator if discriminator is not None else DISCRIMINATORS[cfg.d_arch](
            cfg.size, cfg.channels, cfg.d_width, spectral=cfg.spectral_norm, norm=cfg.d_norm)
    run = _Run(cfg, G, D, None, out, dist=d)
    provider = MapProvider("none")
    provider.bind([str(k) for k in range(len(x))], (cfg.size, cfg.size), cfg.z_dim, cfg.device)
    loss = GazeGANLoss(run.G, run.D, cfg, provider, run.aug_gen, (), history=run.history)
    run.attach(loss)
    if ck is not None:
        run.restore(ck)
    d.broadcast([run.G, run.D, run.ema.model])
    return _loop(run, loss, x, provider, progress, hooks)


def resolve_for_tuning(spec: str | Path, cfg: TuneConfig) -> ResolvedGenerator:
    """:func:`gazetune.nets.external.resolve_generator` with the run's truncation, noise mode and
    seed; a built-in style generator tunes without style mixing and with its fixed noise, so that a
    latent seed gives the image people saw (direct maps, FIG. 4)."""
    return resolve_generator(spec, psi=cfg.truncation_psi, noise_mode=cfg.noise_mode, device="cpu", seed=cfg.seed,
                             gcfg_override={"mixing_prob": 0.0, "noise_mode": "const"})


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
    generator: str | Path | ResolvedGenerator | None = None,
    discriminator: str | Path | None = None,
) -> Path:
    """Fine-tune a GAN with saliency-weighted per-pixel losses (eq 9b/10b, FIG. 4).

    Parameters
    ----------
    cfg
        Settings.  The network fields (``size``, ``channels``, ``z_dim``, widths, ``spectral_norm``)
        are taken from the generator (and from the discriminator when it comes from a run); the
        resolved config goes to ``config.toml``.
    images
        ``(N, C, H, W)`` float32 real images in [-1, 1], of the generator's size and channels.
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
    generator
        A generator SPEC in place of ``init_checkpoint`` (:func:`gazetune.nets.external.resolve_generator`:
        a run directory, a TorchScript file, ``package.module:function`` or a StyleGAN ``.pkl``),
        or what that function returned.  An external generator gets a fresh discriminator (or
        ``discriminator``'s) and ``cfg.warmup_steps`` of D warm-up; at every checkpoint its EMA
        weights are exported (:func:`gazetune.nets.external.export_generator`).
    discriminator
        A gazetune tuning run of the same generator whose discriminator to start from.

    Returns
    -------
    Path
        The checkpoint file.
    """
    d = setup_distributed(cfg.device)  # under torchrun: join the process group (else one process)
    d.per_rank_batch(cfg.batch)
    out = Path(out_dir)
    resuming = resume and (out / CHECKPOINT).exists()
    spec = generator if generator is not None else init_checkpoint
    if spec is None and not resuming:
        raise ValueError("tune needs a generator (init_checkpoint or generator SPEC) unless resuming a tuning run")

    def resolve(s) -> ResolvedGenerator:
        return s if isinstance(s, ResolvedGenerator) else resolve_for_tuning(s, cfg)

    if resuming:  # the run itself holds every network; the original SPEC is only recorded
        res = resolve(out)
        saved = json.loads(res.checkpoint.metadata["train_config"])
        if cfg.warmup_steps < 0:
            cfg = dataclasses.replace(cfg, warmup_steps=int(saved.get("warmup_steps", 0)))
        spec_text = saved.get("generator", "") or str(spec or "")
        d_text = saved.get("discriminator", "")
    else:
        res = resolve(spec)
        spec_text = res.spec
        d_text = str(discriminator or "")
    G, G_ema, D = res.G, res.G_ema, res.D
    d_res: ResolvedGenerator | None = None
    if discriminator is not None and not resuming:
        d_res = resolve_generator(discriminator, device="cpu") if not isinstance(discriminator, ResolvedGenerator) else discriminator
        if d_res.D is None:
            raise ValueError(f"discriminator {discriminator}: not a gazetune run with a discriminator")
        if (d_res.size, d_res.channels) != (res.size, res.channels):
            raise ValueError(f"discriminator {discriminator}: its run made {d_res.channels}x{d_res.size}px images, "
                             f"the generator makes {res.channels}x{res.size}px")
        D = d_res.D
    src = res.source
    if D is not None:
        dcfg = D.config()
        cfg = dataclasses.replace(cfg, d_width=dcfg["width"], spectral_norm=bool(dcfg.get("spectral", False)),
                                  d_norm=dcfg.get("norm", "none"), d_arch=dcfg.get("arch", "unet"))
    else:
        if cfg.d_arch not in DISCRIMINATORS:
            raise ValueError(f"d_arch must be one of {sorted(DISCRIMINATORS)}; got {cfg.d_arch!r}")
        with torch.random.fork_rng(devices=[]):  # seeded fresh D without touching the caller's RNG
            torch.manual_seed(cfg.seed)
            D = DISCRIMINATORS[cfg.d_arch](res.size, res.channels, cfg.d_width, spectral=cfg.spectral_norm,
                                           norm=cfg.d_norm)
    gcfg = G.config() if hasattr(G, "config") else {}
    cfg = dataclasses.replace(
        cfg, size=res.size, channels=res.channels, z_dim=int(G.z_dim), g_width=int(gcfg.get("width", cfg.g_width)),
        g_arch=src.arch if not src.external else src.kind, generator=spec_text,
        discriminator=d_text,
        warmup_steps=cfg.warmup_steps if cfg.warmup_steps >= 0 else (0 if res.D is not None or discriminator else 100),
        truncation_psi=src.psi if src.kind == "stylegan" else cfg.truncation_psi,
        noise_mode=src.noise_mode if src.kind == "stylegan" else cfg.noise_mode,
    ).resolved()  # lr_d of the generator's image side, into config.toml
    x = _check_images(images, cfg)
    out, _ = _start(cfg, out, resume, d)
    if src.external and not resuming and d.main:
        copy_source(src, out, from_run=res.run_dir)
    run = _Run(cfg, G, D, G_ema, out, source=src, dist=d)
    log_path = out / "log.jsonl"
    user_log = map_provider.log

    def log(info: dict) -> None:  # the map-mode decision goes to log.jsonl and to the caller's log
        if not d.main:
            return
        with log_path.open("a") as fh:
            fh.write(json.dumps({"kind": "event", "step": run.step, **info}) + "\n")
        user_log(info)

    exported: list[dict] = []

    def log_export(info: dict) -> None:  # once per process: which forms the tuned generator is saved in
        if exported and exported[-1] == info:
            return
        exported.append(info)
        row = {"event": "generator_export", **info}
        if info.get("torchscript") is None:
            row["message"] = f"no TorchScript export (torch.jit.script and trace failed: {info.get('reason', '')})"
        with log_path.open("a") as fh:
            fh.write(json.dumps({"kind": "event", "step": run.step, **row}) + "\n")

    run.export_log = log_export
    map_provider.log = log
    names = [str(k) for k in range(len(x))] if names is None else [str(n) for n in names]
    if len(names) != len(x):
        raise ValueError(f"got {len(names)} names for {len(x)} images")
    map_provider.bind(names, (cfg.size, cfg.size), cfg.z_dim, cfg.device)
    loss = GazeGANLoss(run.G, run.D, cfg, map_provider, run.aug_gen, extra_generator_terms, history=run.history)
    run.attach(loss)
    if resuming:
        run.restore(out / CHECKPOINT)
    elif cfg.optimizer_state == "restore":
        restored = _restore_moments(run, res, d_res)
        if restored:
            log({"event": "optimizer_state", "restored": restored,
                 "message": f"Adam moments of {', '.join(restored)} restored from the tuned checkpoint"})
    d.broadcast([run.G, run.D, run.ema.model])
    return _loop(run, loss, x, map_provider, progress, hooks)


def _restore_moments(run: _Run, res: ResolvedGenerator, d_res: ResolvedGenerator | None) -> list[str]:
    """Load the Adam moments of G (from ``res``'s checkpoint) and D (from ``d_res``'s, else
    ``res``'s) into ``run.opts``, keeping the tuning config's learning rates and betas.

    Returns the names of the optimisers restored: none for a generator that does not come from a
    gazetune run, a fresh D, or moments whose shapes do not match the networks (kept fresh)."""
    restored = []
    sources = {"G": res, "D": d_res if d_res is not None else (res if res.D is not None else None)}
    for name, src in sources.items():
        ck = src.checkpoint if src is not None else None
        opt = run.opts.get(name)
        if ck is None or opt is None or f"opt_{name}/param_groups" not in ck.metadata:
            continue
        fresh = opt.state_dict()
        try:
            ck.load_optimizer(f"opt_{name}", opt)
            ok = all(st["exp_avg"].shape == p.shape for g in opt.param_groups for p in g["params"]
                     if (st := opt.state.get(p)) is not None and "exp_avg" in st)
        except (ValueError, KeyError, RuntimeError):
            ok = False
        if not ok:  # another parameter layout: keep fresh moments
            opt.load_state_dict(fresh)
            continue
        for g, saved in zip(opt.param_groups, fresh["param_groups"]):  # the tuning lr and betas
            for key in ("lr", "betas", "eps", "weight_decay"):
                g[key] = saved[key]
        restored.append(name)
    return restored


def load_run_config(run_dir: str | Path, kind: type = TrainConfig):
    """The config a run was started with (``run_dir/config.toml``)."""
    return load_config(kind, Path(run_dir) / "config.toml")
