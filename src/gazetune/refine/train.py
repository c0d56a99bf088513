"""Train a gaze-weighted refiner on a folder of generated images, and apply it.

For generators that cannot be tuned (a closed model, a diffusion pipeline, images someone else
made): the refiner (SimGAN) learns, from unpaired real images, to change generated images
locally so that a local discriminator can no longer tell their patches from real ones, weighted
toward where people look, while a self-regularisation term keeps each refined image close to its
input (see :mod:`gazetune.refine.losses`).

One training step (SimGAN's algorithm 1 with ``K_d = 1``, ``K_g = r_steps``):

1. **D phase**: refine a batch of fakes (no gradient); replace ``history_share`` of them by
   earlier refined images from a :class:`gazetune.tune.history.HistoryBuffer` (their maps travel
   with them as an extra channel); ``L_D`` (eq 10b on patch logits) against a batch of real images.
2. **R phase** (``r_steps`` times): ``L_R = L_adv + reg_weight * L_reg`` on a fresh fake batch.

Maps come from a map set (``gazetune gan map-set``; looked up by image name), from a saliency model
(``SM_pred = sigmoid(M_saliency(x))``, computed once per input image), or not at all (plain
SimGAN, the no-maps control).  A run directory holds ``config.toml`` (the resolved settings),
``log.jsonl`` (losses and discriminator health), ``samples.png`` (inputs above their refined
versions) and ``checkpoint.safetensors`` (written atomically).
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from gazetune.config import save_config
from gazetune.images import ImageSet, load_image_set, save_image_folder, save_image_grid
from gazetune.refine.losses import local_discriminator_loss, patch_weights, refiner_adversarial_loss, self_regularization_loss
from gazetune.refine.model import LocalDiscriminator, Refiner
from gazetune.tune.checkpoint import read_checkpoint, write_checkpoint
from gazetune.tune.history import HistoryBuffer

CHECKPOINT = "checkpoint.safetensors"
MAP_MODES = ("direct", "predicted", "none")


@dataclass
class RefineConfig:
    """Settings of a refiner run (written to ``config.toml``; empty strings / 0 mean "not set").

    Attributes
    ----------
    fake, real
        Folders (or ``.npz``) of the generated images to refine and of unpaired real images.
    maps, saliency_model
        Map set ``.npz`` (direct maps, by image name) or saliency model file; at most one.
    map_mode
        Resolved from the two above: ``direct``, ``predicted`` or ``none``.
    size, channels
        Working size in pixels and channels; 0 = those of the fake images (real ones are resized).
    steps, batch
        Optimisation steps and images per batch.
    lr, d_lr
        Adam learning rates of the refiner and the discriminator.
    reg_weight
        ``lambda`` of the self-regularisation term (SimGAN tunes it per task).
    alpha
        Saliency weight ``a`` in [0, 1] of ``(1 - a) + a SM / mean(SM)``.
    r_steps
        Refiner updates per discriminator update (SimGAN: 2).
    history_share, history_capacity
        Share of each fake batch shown to D drawn from earlier refined images (SimGAN: 0.5), and
        the pool size.
    width, blocks, residual_scale, d_width
        Refiner width, residual blocks and residual scale (:class:`Refiner`); discriminator width.
    seed, device, log_every, checkpoint_every
        Reproducibility and bookkeeping.
    """

    fake: str = ""
    real: str = ""
    maps: str = ""
    saliency_model: str = ""
    map_mode: str = "none"
    size: int = 0
    channels: int = 0
    steps: int = 1000
    batch: int = 16
    lr: float = 2e-4
    d_lr: float = 2e-4
    reg_weight: float = 1.0
    alpha: float = 1.0
    r_steps: int = 1
    history_share: float = 0.5
    history_capacity: int = 512
    width: int = 32
    blocks: int = 4
    residual_scale: float = 0.1
    d_width: int = 32
    seed: int = 0
    device: str = "cpu"
    log_every: int = 25
    checkpoint_every: int = 250

    def validate(self) -> None:
        if self.map_mode not in MAP_MODES:
            raise ValueError(f"map_mode must be one of {MAP_MODES}; got {self.map_mode!r}")
        if self.steps < 1 or self.batch < 1 or self.r_steps < 1:
            raise ValueError(f"steps, batch and r_steps must be >= 1; got {self.steps}, {self.batch}, {self.r_steps}")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1]; got {self.alpha}")
        if self.reg_weight < 0:
            raise ValueError(f"reg_weight must be >= 0; got {self.reg_weight}")
        if not 0.0 <= self.history_share < 1.0 or self.history_capacity < 1:
            raise ValueError(
                f"history_share must be in [0, 1) and history_capacity >= 1; got {self.history_share}, {self.history_capacity}"
            )


# ------------------------------------------------------------------------------------------------
# inputs


def load_images(source: str | Path, what: str, size: int | None = None, channels: int | None = None) -> ImageSet:
    """Images of a folder or ``.npz`` with a clear error naming ``what`` (``--fake``, ``--images``, ...)."""
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{what}: not found: {path}")
    try:
        return load_image_set(str(path), size=size, channels=channels)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{what}: {e}") from None
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def load_pair(fake: str | Path, real: str | Path, size: int = 0, channels: int = 0) -> tuple[ImageSet, ImageSet]:
    """The fake set (at ``size`` or its own size) and the real set resized to it (centre square)."""
    fakes = load_images(fake, "--fake", size or None, channels or None)
    h, w = fakes.size
    if h != w:
        raise ValueError(f"--fake: the images are {w}x{h} (not square); pass --size to crop and resize them all to a square")
    reals = load_images(real, "--images", h, fakes.channels)
    return fakes, reals


def _name_keys(name: str) -> list[str]:
    """Names a map may be stored under: the name, without its extension, and its file name."""
    p = PurePosixPath(name)
    return list(dict.fromkeys([name, str(p.with_suffix("")), p.name, p.stem]))


def maps_by_name(map_set, names: Sequence[str], hw: tuple[int, int]) -> tuple[torch.Tensor, int]:
    """Maps ``(N, 1, H, W)`` of the named images from a :class:`gazetune.tune.maps.MapSet`.

    A name matches a real map stored under the name, the name without extension, or the bare file
    name, and a synthetic map when it reads ``synthetic/<version>/<seed>[.png]``.  Images without
    a map get a uniform map (weight 1 everywhere).  Returns the maps and the number matched.
    """
    from gazetune.tune.maps import parse_synthetic_name

    out = torch.ones(len(names), 1, *hw)
    found = 0
    for i, name in enumerate(names):
        m = next((map_set.real[k] for k in _name_keys(name) if k in map_set.real), None)
        if m is None and name.startswith("synthetic/"):
            key = parse_synthetic_name(str(PurePosixPath(name).with_suffix("")))
            m = map_set.synthetic.get(key)
        if m is not None:
            t = torch.as_tensor(np.asarray(m, dtype=np.float32))[None, None]
            out[i] = F.interpolate(t, size=hw, mode="bilinear", align_corners=False)[0].clamp_min(0)
            found += 1
    return out, found


def load_saliency(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """A saliency model: a :class:`gazetune.saliency.model.SaliencyUNet` checkpoint or TorchScript."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"--saliency-model: not found: {path}")
    with open(path, "rb") as fh:
        scripted = fh.read(2) == b"PK"
    if scripted:
        return torch.jit.load(str(path), map_location=device).eval()
    from gazetune.saliency.model import load_saliency_model

    return load_saliency_model(path, device=device)


@torch.no_grad()
def predicted_maps(model: torch.nn.Module, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """``sigmoid(M_saliency(x))`` of every image, ``(N, 1, H, W)`` (via :class:`gazetune.tune.maps.MapProvider`)."""
    from gazetune.tune.maps import MapProvider

    provider = MapProvider("predicted", saliency_model=model)
    provider.bind([str(i) for i in range(len(images))], tuple(images.shape[-2:]), z_dim=1, device=images.device)
    return torch.cat([provider.predict(images[i : i + batch]) for i in range(0, len(images), batch)]).cpu()


# ------------------------------------------------------------------------------------------------
# training


def _grid(d: LocalDiscriminator, hw: tuple[int, int]) -> tuple[int, int]:
    with torch.no_grad():
        p = next(d.parameters())
        return tuple(d(torch.zeros(1, d.channels, *hw, device=p.device)).shape[-2:])  # type: ignore[return-value]


def train_refiner(
    cfg: RefineConfig,
    fake: ImageSet,
    real: ImageSet,
    out_dir: str | Path,
    fake_maps: torch.Tensor | None = None,
    real_maps: torch.Tensor | None = None,
    progress: bool = True,
) -> Path:
    """Train a refiner on ``fake`` against ``real`` and write the run to ``out_dir``.

    Parameters
    ----------
    cfg
        Settings (``cfg.map_mode`` should say where the maps came from).
    fake, real
        Image sets of one size and channel count.
    fake_maps, real_maps
        ``(N, 1, H, W)`` non-negative maps of each set, or ``None`` (uniform weights).
    progress
        Show a Rich progress bar.

    Returns
    -------
    pathlib.Path
        The checkpoint file.
    """
    cfg.validate()
    if len(fake) == 0 or len(real) == 0:
        raise ValueError(f"need at least one fake and one real image; got {len(fake)} and {len(real)}")
    if fake.images.shape[1:] != real.images.shape[1:]:
        raise ValueError(
            f"fake and real images differ in (C, H, W): {fake.images.shape[1:]} vs {real.images.shape[1:]}; "
            "load them with load_pair (resizes the real ones)"
        )
    for maps, imgs, what in ((fake_maps, fake, "fake_maps"), (real_maps, real, "real_maps")):
        if maps is not None and tuple(maps.shape) != (len(imgs), 1, *imgs.size):
            raise ValueError(f"{what} must be ({len(imgs)}, 1, {imgs.size[0]}, {imgs.size[1]}); got {tuple(maps.shape)}")
    out = Path(out_dir)
    if (out / CHECKPOINT).exists():
        raise FileExistsError(f"{out} already holds a refiner run ({CHECKPOINT}); choose a new --out")
    out.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.replace(cfg, size=fake.size[0], channels=fake.channels)
    save_config(cfg, out / "config.toml")

    dev = torch.device(cfg.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    init = torch.Generator().manual_seed(cfg.seed + 1)
    with torch.random.fork_rng(devices=[]):  # weight init from the run's seed, global RNG untouched
        torch.manual_seed(int(torch.randint(2**31 - 1, (1,), generator=init)))
        R = Refiner(fake.channels, cfg.width, cfg.blocks, cfg.residual_scale).to(dev)
        D = LocalDiscriminator(fake.channels, cfg.d_width).to(dev)
    opt_r = torch.optim.Adam(R.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.d_lr, betas=(0.5, 0.999))
    history = HistoryBuffer(cfg.history_capacity, cfg.history_share, seed=cfg.seed + 2)
    xs, ys = fake.to_tensor().to(dev), real.to_tensor().to(dev)
    mx = (fake_maps if fake_maps is not None else torch.ones(len(fake), 1, *fake.size)).to(dev)
    my = real_maps.to(dev) if real_maps is not None else None
    grid = _grid(D, fake.size)
    a = cfg.alpha if cfg.map_mode != "none" else 0.0

    def fake_batch() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(xs), (cfg.batch,), generator=gen).to(dev)
        return xs[idx], mx[idx]

    def real_batch() -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.randint(len(ys), (cfg.batch,), generator=gen).to(dev)
        w = patch_weights(my[idx] if my is not None else None, grid, a, cfg.batch)
        return ys[idx], w.to(dev)

    log_path = out / "log.jsonl"
    log_path.write_text("")
    t0 = time.perf_counter()
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]refine"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(), disable=not progress,
    )
    step = 0
    with bar:
        task = bar.add_task("refine", total=cfg.steps, info="")
        while step < cfg.steps:
            # D phase: real patches vs refined ones (some from the history), eq 10b
            x, m = fake_batch()
            with torch.no_grad():
                r = R(x)
            mixed = history.mix(torch.cat([r, m], dim=1))
            r_d, m_d = mixed[:, : fake.channels], mixed[:, fake.channels :]
            y, w_y = real_batch()
            l_real, l_fake = D(y), D(r_d)
            w_f = patch_weights(m_d, grid, a)
            loss_d = local_discriminator_loss(l_real, l_fake, w_y, w_f)
            opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            opt_d.step()
            # R phase: fool the local discriminator where people look, stay close to the input
            for _ in range(cfg.r_steps):
                x, m = fake_batch()
                r = R(x)
                adv = refiner_adversarial_loss(D(r), patch_weights(m, grid, a))
                reg = self_regularization_loss(r, x)
                loss_r = adv + cfg.reg_weight * reg
                opt_r.zero_grad(set_to_none=True)
                loss_r.backward()
                opt_r.step()
            step += 1
            last = step == cfg.steps
            if (cfg.log_every and step % cfg.log_every == 0) or last:
                stats = {
                    "step": step, "wall_s": round(time.perf_counter() - t0, 3),
                    "loss_d": float(loss_d.detach()), "r_adv": float(adv.detach()), "r_reg": float(reg.detach()),
                    # discriminator health: share of real / refined patches it gets right,
                    # weighted like its loss (patches nobody looks at do not count with a = 1)
                    "d_acc_real": _weighted_share(l_real.detach() > 0, w_y),
                    "d_acc_refined": _weighted_share(l_fake.detach() < 0, w_f),
                }
                with log_path.open("a") as fh:
                    fh.write(json.dumps(stats) + "\n")
                bar.update(task, info=f"D={stats['loss_d']:.3f} adv={stats['r_adv']:.3f} reg={stats['r_reg']:.4f}")
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or last:
                _save(out / CHECKPOINT, R, D, opt_r, opt_d, gen, cfg, step)
            bar.update(task, completed=step)
    with torch.no_grad():
        show = xs[: min(8, len(xs))]
        save_image_grid(torch.cat([show, R.eval()(show)]).cpu(), out / "samples.png", nrow=len(show))
    return out / CHECKPOINT


def _weighted_share(right: torch.Tensor, weights: torch.Tensor) -> float:
    w = weights.to(right.device)
    return float((right.float() * w).sum() / w.sum().clamp_min(1e-12))


def _save(path: Path, R, D, opt_r, opt_d, gen: torch.Generator, cfg: RefineConfig, step: int) -> None:
    write_checkpoint(
        path, {"R": R, "D": D}, {"opt_R": opt_r, "opt_D": opt_d}, rng={"train": gen.get_state()},
        metadata={
            "kind": "gazetune-refiner", "step": str(step), "config": json.dumps(dataclasses.asdict(cfg)),
            "refiner_config": json.dumps(R.config()), "discriminator_config": json.dumps(D.config()),
        },
    )


# ------------------------------------------------------------------------------------------------
# using a trained refiner


def load_refiner(path: str | Path, device: str | torch.device = "cpu") -> Refiner:
    """The refiner of a run directory or its ``checkpoint.safetensors``, in eval mode."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"refiner checkpoint not found: {path}")
    ck = read_checkpoint(path)
    if ck.metadata.get("kind") != "gazetune-refiner":
        raise ValueError(f"{path} is not a refiner checkpoint (gazetune refine train writes those)")
    r = Refiner(**json.loads(ck.metadata["refiner_config"]))
    r.load_state_dict(ck.state_dict("R"))
    return r.to(device).eval()


@torch.no_grad()
def refine_images(refiner: Refiner, images: torch.Tensor | np.ndarray, batch: int = 64) -> torch.Tensor:
    """``R(x)`` of ``(N, C, H, W)`` images in [-1, 1], in batches; a CPU tensor."""
    x = torch.as_tensor(images, dtype=torch.float32)
    dev = next(refiner.parameters()).device
    return torch.cat([refiner(x[i : i + batch].to(dev)).cpu() for i in range(0, len(x), batch)])


def apply_refiner(model: str | Path, images: str | Path, out_dir: str | Path, size: int = 0, device: str = "cpu") -> list[Path]:
    """Refine every image of a folder (or ``.npz``) and write PNGs of the same names to ``out_dir``.

    The refiner is fully convolutional: images keep their own size unless ``size`` is given
    (then they are centre-cropped to a square and resized); channels are converted to the
    refiner's.
    """
    refiner = load_refiner(model, device)
    src = load_images(images, "--images", size or None, refiner.channels)
    refined = refine_images(refiner, src.images).numpy()
    return save_image_folder(ImageSet(refined, src.names), out_dir)
