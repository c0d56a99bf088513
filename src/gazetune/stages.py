"""The stages of the data flow as typed calls that the demo, the loop and the benchmarks share.

Each function is one box of the picture in ``docs/architecture.md``; it takes arrays and small
records and returns the same, so a caller reads as a sequence of stages:

========================  ===============================================================
stage                     what it does
========================  ===============================================================
:func:`render`            a generator (run directory or file) at latent seeds -> images
:func:`fit_judge`         a simulated observers' judge fitted on real vs generated images,
                          with its threshold calibrated on held-out real images
:func:`judge`             a panel of simulated observers judges a blinded mix -> trials
:func:`judge_auc`         ROC AUC of the judge's realism for real against generated images
:func:`fixations_from_trials`  gaze samples of simulated trials -> fixation table (eq 3)
:func:`build_maps`        fixation table -> pooled duration-weighted heatmaps (¶58)
========================  ===============================================================

Training stages (pretraining, tuning, the saliency and human models) are in
:mod:`gazetune.tune.train`, :mod:`gazetune.saliency.train` and :mod:`gazetune.human.train`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch


@torch.no_grad()
def render(generator: str | os.PathLike | torch.nn.Module, seeds: Sequence[int], device: str = "cpu",
           batch: int = 64) -> np.ndarray:
    """The generator's images at latent ``seeds``: float32 ``(N, C, H, W)`` in [-1, 1].

    ``generator`` is a module or anything :func:`gazetune.nets.load_generator` reads (a run
    directory gives its EMA weights).  Seed ``s`` always gives the same latent
    (:func:`gazetune.nets.latent.latents_from_seeds`), so ``(version, seed)`` names one image.
    """
    from gazetune.nets.generator import check_generator, load_generator
    from gazetune.nets.latent import latents_from_seeds

    g = generator if isinstance(generator, torch.nn.Module) else load_generator(generator, device=device)
    z_dim = check_generator(g)
    seeds = [int(s) for s in seeds]
    out = []
    for i in range(0, len(seeds), batch):
        z = latents_from_seeds(seeds[i : i + batch], z_dim).to(device)
        out.append(g(z).clamp(-1, 1).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0,), np.float32)


@dataclass
class FittedJudge:
    """A judge and the observers' threshold calibrated for it (see :func:`fit_judge`)."""

    judge: Any
    threshold: float
    gain: float
    target_rate: float

    def observer(self, **kw: Any) -> dict:
        """Observer template settings (``ObserverPanel(observer=...)``) for this judge."""
        return {"threshold": self.threshold, "gain": self.gain, **kw}


def fit_judge(real: np.ndarray, fakes: np.ndarray, calibration_real: np.ndarray, seed: int = 0,
              target_rate: float = 0.9, gain: float = 10.0, device: str = "cpu") -> FittedJudge:
    """Fit a :class:`~gazetune.observers.judge.RealismJudge` on ``real`` against ``fakes`` and
    calibrate the observers' threshold on ``calibration_real`` (real images it did not see) so that
    they call those real ``target_rate`` of the time on average.

    ``fakes`` should come from generator snapshots that no evaluated generator is tuned from
    (an untrained generator, early pretraining checkpoints), never from the images to be judged.
    """
    from gazetune.observers.judge import FeatureRealismJudge, RealismJudge, calibrate_threshold

    j = RealismJudge(seed=seed, learned=FeatureRealismJudge(seed=seed, device=device)).fit(real, fakes)
    thr = calibrate_threshold(j.scores(calibration_real), target_rate=target_rate, gain=gain)
    return FittedJudge(j, thr, gain, target_rate)


def judge(panel, items: Sequence[Any], judge_: Any, seed: int = 0, display_ms: float = 3000.0,
          prior: Optional[np.ndarray] = None) -> list:
    """Every observer of ``panel`` judges every item (a blinded random order each); see
    :func:`gazetune.observers.run_panel`.  ``judge_`` has ``realism_maps`` (a fitted judge or a
    :class:`FittedJudge`)."""
    from gazetune.observers import run_panel

    j = judge_.judge if isinstance(judge_, FittedJudge) else judge_
    return run_panel(panel, items, j, seed=seed, display_ms=display_ms, prior=prior)


def roc_auc(positive: Sequence[float], negative: Sequence[float]) -> float:
    """ROC AUC: the probability that a random positive scores above a random negative (ties half).

    >>> roc_auc([0.9, 0.8], [0.1, 0.8])
    0.875
    """
    p, n = np.asarray(positive, np.float64), np.asarray(negative, np.float64)
    if p.size == 0 or n.size == 0:
        raise ValueError(f"roc_auc needs scores of both classes; got {p.size} and {n.size}")
    diff = p[:, None] - n[None, :]
    return float(((diff > 0).sum() + 0.5 * (diff == 0).sum()) / diff.size)


def judge_auc(trials: Sequence[Any], synthetic_ids: Sequence[str]) -> float:
    """AUC of the realism the observers read (per trial) for real images against the synthetic
    images ``synthetic_ids``: 1 = the judge ranks every real trial above every fake one, 0.5 = it
    cannot tell.  A fool-rate verdict about a generator counts only where this is >= 0.7."""
    ids = set(synthetic_ids)
    real = [t.realism_score for t in trials if t.kind == "real"]
    fake = [t.realism_score for t in trials if t.image_id in ids]
    return roc_auc(real, fake)


def fixations_from_trials(trials: Sequence[Any], size: int, desc: str = "fixations"):
    """Fixations (pymovements I-VT, eq 3) of simulated trials -> ``(FixationTable, fixations,
    n_left_out)``; fixations centred off the image are left out and counted."""
    from rich.progress import track

    from gazetune.gaze.fixations import detect_fixations

    fixations = [detect_fixations(t.samples, method="ivt") for t in track(trials, description=desc, transient=True)]
    table, outside = fixation_table(trials, fixations, size)
    return table, fixations, outside


def fixation_table(trials: Sequence[Any], fixations: Sequence[Any], size: int):
    """Fixation table of detected fixations (one ``Fixations`` per trial) on ``size`` px square
    images -> ``(FixationTable, n_left_out)``: fixations centred off the image (tracker noise near
    the border) are left out and counted, never silently dropped."""
    from gazetune.gaze import FixationTable
    from gazetune.gaze.fixation_table import inside_image

    table = FixationTable()
    outside = 0
    for t, f in zip(trials, fixations):
        arr = f.as_array()
        inside = inside_image(arr, (size, size))
        outside += int((~inside).sum())
        table.add(t.image_id, t.observer_id, arr[inside])
    return table, outside


def build_maps(table, sigma_px: float, size: int | tuple[int, int]):
    """Pooled duration-weighted heatmaps of every image of a fixation table -> ``MapSet``.

    ``size`` is the side of square images or their ``(height, width)`` in pixels."""
    from gazetune.tune.maps import MapSet

    shape = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    return MapSet.from_fixations(table, sigma=sigma_px, shape=shape)


def copy_snapshot(run_dir: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Copy a run's current checkpoint to ``dest`` (e.g. from a pretraining hook, to keep a
    generator snapshot for fitting a judge)."""
    import shutil

    dest = Path(dest)
    shutil.copyfile(Path(run_dir) / "checkpoint.safetensors", dest)
    return dest
