"""The second discriminator: how well does the model of the human judge (FIG. 5) predict new people
on images of a generator it never saw, and does CYBORG help?

Everything runs on the built-in faces (scikit-image's 100 LFW faces, grey, 32 px), so the bench
needs no shared data.  The "people" are simulated observers (:mod:`gazetune.observers`, a test
instrument): their answer comes from a realism critic read where they looked, so the numbers show
what the machinery does on this instrument, not what it would do with people.

Design (all seeded)
-------------------
1. **Two generators** (:func:`gazetune.tune.train.pretrain` on all 100 faces, batch 32):
   **A** = DCGAN G width 16 / D width 8, z 64, 400 steps, seed 0;
   **B** = another architecture and version: G width 24 / D width 12, z 32, 300 steps, seed 1.
   Samples come from the EMA generator at fixed latent seeds
   (:func:`gazetune.demo.sample_run`) and are named ``synthetic/<version>/<seed>``.
2. **Real faces** are split in two disjoint halves: half 1 is shown in the training study, half 2
   in the test study.  No image appears in both studies.
3. **Training study**: panel ``P_train`` (``n_train_observers`` lab observers, panel seed 0)
   judges a blinded mix of half-1 faces and ``n_synthetic`` samples of A (latent seeds
   ``0..n_synthetic-1``).  **Test study**: panel ``P_test`` (``n_test_observers`` *other*
   observers: panel seed 101, ids prefixed ``test-``) judges half-2 faces, ``n_synthetic``
   *fresh* samples of A (latent seeds from 500 000) and ``n_synthetic`` samples of B (latent seeds
   from 700 000) in one blinded session.  Both panels read the same realism critic
   (:class:`PatchRealismCritic` fitted on all 100 faces: a shared "visual system", individual
   thresholds, gains and scanpaths).  Fixations are detected from the 60 Hz samples with I-VT
   (:func:`gazetune.demo.detect_simulated`), as in the demo.
4. **Human-response model** (:func:`gazetune.human.train.train_from_trials` on the training
   study): width 12, depth 2, ``human_steps`` Adam steps of batch 32, heatmap targets with sigma
   = 1 degree (``size / image_deg`` px), pooled per image over training participants; a quarter of
   the training participants held out.  Four arms: variant ``joint`` (eq 11) or ``separate``
   (eq 14-15) x ``cyborg_weight`` 0 (plain cross-entropy, "CE") or 0.5 ("CE+CYBORG": the label
   term becomes ``0.5 CE + 0.5 D(CAM of the answered class, gaze map)``).  Both variants support
   CYBORG: the joint model's CAM is that of its GAP label head on the shared encoder, the separate
   model's that of ``M_h-label`` on the predicted map.  In the separate variant ``M_gaze`` is
   trained by eq 14 alone (the map is detached before eq 15), so its gaze scores are the same
   with and without CYBORG.
5. **Seeds**: ``--seeds`` repetitions of step 4 with ``HumanTrainConfig.seed = 0..seeds-1``
   (initial weights, batches and which training participants are held out).  Generators and
   studies stay fixed, so the t-interval over seeds measures the training randomness; the
   participant bootstrap measures the sampling of test observers.

Defaults: 12 training and 12 test observers, 50 real faces per study, 60 samples per generator per
study (1320 training trials, 2040 test trials), 400 steps per model, 5 seeds (20 models).
``--quick``: 4 + 3 observers, 16 + 16 images, generators of 40 / 30 steps, 40 steps per model,
2 seeds -- a smoke run of every stage, its numbers mean nothing.

Numbers (all AUCs are the Mann-Whitney area under the ROC curve of the model's P(real), in [0, 1],
0.5 = chance)
------------------------------------------------------------------------------------------------
* ``AUC A held-out``: against the answers of the held-out *training-study* participants, on the
  training-study images (new people, images seen in training: the report of ``train_from_trials``).
* ``AUC A fresh``: against the test panel's answers on half-2 faces + fresh A samples (new
  people, new images, same generator).
* ``AUC B``: against the test panel's answers on half-2 faces + B samples (new people, new
  images, **another generator**: the CYBORG transfer question).  ``boot CI`` is the participant
  bootstrap 95 % interval (:func:`gazetune.human.train.auc_bootstrap_ci`, 500 resamples of
  whole test observers, as :func:`evaluate_human_model` reports it), its bounds averaged over seeds.
* ``truth B``: AUC of P(real) as a detector of real vs synthetic on the B subset.
* ``NSS B`` / ``CC B``: the gaze head on the B subset against the test panel's gaze, per image
  (NSS at the detected fixations, in standard deviations of the predicted map; CC against the
  pooled heatmap), averaged over images.  ``centre NSS B``: a Gaussian centre bias fitted to the
  training study's fixations, same NSS.
* References from the simulator's internals (no model): ``image oracle``, the AUC against each
  answer of the other test observers' mean simulated P(real) on the same image (roughly what an
  image-only predictor could reach: the rest is observer noise and where this observer looked);
  ``observer's own P(real)``, the AUC of the answering observer's own P(real) for that trial
  (knows the trial's fixations; the answer's logistic noise is all that is left).  Also the
  panel's fool rates (share of synthetic trials answered "real") and real-called-real rate, and
  the majority accuracy (always answering the majority answer) next to the model's accuracy
  ``acc B`` at P = 0.5.
* Paired difference CE+CYBORG minus CE (same seed, same test trials): mean and 95 % t-interval
  over seeds, and a participant-bootstrap 95 % interval of the seed-mean difference (1000
  resamples of whole test observers, the same resample for both arms).  Verdict: CYBORG
  "improves transfer AUC by more than its CI" only when *both* intervals lie above 0.

Every cell "m [lo, hi]" is the mean over seeds and its 95 % t-interval (Student t, ``seeds - 1``
degrees of freedom).  Output: the tables on stdout, ``OUT/results.json`` (configuration, per-seed
values, summaries, timings); the pretrained generators in ``OUT`` are reused when the command is
run again with the same settings.

    nice -n 19 .venv/bin/python bench/human_model.py --out bench_out/human_model            # ~15 min on 2 busy cores
    nice -n 19 .venv/bin/python bench/human_model.py --quick --out /tmp/human_model_quick   # smoke run, ~1 min
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

VARIANTS = ("joint", "separate")
ARMS = tuple((v, cyborg) for v in VARIANTS for cyborg in (False, True))  # (variant, CYBORG on)
FRESH_A_SEED0 = 500_000  # latent seeds of the test study's fresh A samples
B_SEED0 = 700_000  # latent seeds of the test study's B samples
TEST_PANEL_SEED = 101
_T0 = time.perf_counter()


@dataclass
class HumanBenchConfig:
    """Settings; sizes in px, durations in ms, angles in degrees (module docstring)."""

    out: str = "bench_out/human_model"
    seeds: int = 5
    device: str = "cpu"
    threads: int = 1
    size: int = 32
    # the two generators (pretrain settings: G width, D width, z size, steps, seed)
    gen_a: dict = field(default_factory=lambda: dict(g_width=16, d_width=8, z_dim=64, steps=400, seed=0))
    gen_b: dict = field(default_factory=lambda: dict(g_width=24, d_width=12, z_dim=32, steps=300, seed=1))
    gan_batch: int = 32
    n_train_observers: int = 12
    n_test_observers: int = 12
    n_real: int = 50  # real faces per study (two disjoint halves of the 100)
    n_synthetic: int = 60  # samples per generator per study
    image_deg: float = 10.0
    sigma_deg: float = 1.0
    display_ms: float = 3000.0
    human_steps: int = 400
    human_width: int = 12
    batch_size: int = 32
    holdout_fraction: float = 0.25
    cyborg_weight: float = 0.5
    n_boot_diff: int = 1000

    @classmethod
    def smoke(cls, **kw: Any) -> "HumanBenchConfig":
        small = cls(seeds=2, gan_batch=16, n_train_observers=4, n_test_observers=3, n_real=16, n_synthetic=16,
                    human_steps=40, n_boot_diff=200)
        small.gen_a["steps"], small.gen_b["steps"] = 40, 30
        return replace(small, **kw)

    @property
    def sigma_px(self) -> float:
        return self.size / self.image_deg * self.sigma_deg


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} +{time.perf_counter() - _T0:6.0f}s] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------
# generators and studies


def generator(cfg: HumanBenchConfig, out: Path, name: str, faces) -> tuple[Path, str, float]:
    """Pretrain generator ``name`` ("a" or "b") once; returns (run dir, version, wall seconds)."""
    from gazetune.demo import checkpoint_version
    from gazetune.tune.train import TrainConfig, pretrain

    arch = cfg.gen_a if name == "a" else cfg.gen_b
    settings = {**arch, "size": cfg.size, "batch": cfg.gan_batch}
    run = out / f"gen_{name}"
    marker = run / "done.json"
    if marker.exists() and json.loads(marker.read_text()).get("settings") == settings:
        log(f"generator {name.upper()}: reusing {run}")
        return run, checkpoint_version(run), float(json.loads(marker.read_text())["seconds"])
    if run.exists():
        import shutil

        shutil.rmtree(run)
    log(f"generator {name.upper()}: pretrain {arch}")
    t0 = time.perf_counter()
    tcfg = TrainConfig(size=cfg.size, channels=1, batch=cfg.gan_batch, device=cfg.device, log_every=50,
                       sample_every=0, checkpoint_every=max(100, arch["steps"]), n_samples=16,
                       ema_half_life=500.0, **arch)
    pretrain(tcfg, faces.images, run, progress=False)
    seconds = time.perf_counter() - t0
    marker.write_text(json.dumps({"settings": settings, "seconds": seconds}))
    return run, checkpoint_version(run), seconds


def samples(cfg: HumanBenchConfig, run: Path, version: str, seed0: int) -> list:
    """``n_synthetic`` panel items of generator ``run`` at latent seeds ``seed0, seed0 + 1, ...``."""
    from gazetune.demo import sample_run
    from gazetune.observers import PanelItem
    from gazetune.tune.maps import synthetic_image_name

    seeds = list(range(seed0, seed0 + cfg.n_synthetic))
    images = sample_run(run, seeds, cfg.device)
    return [PanelItem(images[k], "synthetic", synthetic_image_name(version, s), s) for k, s in enumerate(seeds)]


def study(cfg: HumanBenchConfig, items: list, critic, n_obs: int, panel_seed: int, prefix: str) -> dict[str, Any]:
    """One blinded study: a lab panel of ``n_obs`` observers judges ``items``; fixations by I-VT.

    Returns the trial table (:class:`HumanTrials`, participants ``prefix + observer id``), the
    images by name, and each trial's simulated P(real) (the observer's own, for reference)."""
    from gazetune.demo import detect_simulated
    from gazetune.observers import ObserverPanel, run_panel
    from gazetune.human.train import trials_from_simulated

    panel = ObserverPanel.lab(n_obs, seed=panel_seed, observer={"image_deg": cfg.image_deg})
    sim = run_panel(panel, items, critic=critic, seed=panel_seed + 1, display_ms=cfg.display_ms)
    detected = detect_simulated(sim, f"fixations ({prefix[:-1]})")
    rows = [dict(participant=prefix + t.observer_id, image=t.image_id, answer=float(t.answer_real), rt_ms=t.rt_ms,
                 fixations=f.as_array(), kind=t.kind) for t, f in zip(sim, detected)]
    return {
        "trials": trials_from_simulated(rows),
        "images": {it.image_id: it.image for it in items},
        "observer_p": np.array([t.p_real for t in sim]),
    }


# ----------------------------------------------------------------------------------------------
# scores


def view(trials, images: dict[str, np.ndarray], rows: np.ndarray, cfg: HumanBenchConfig) -> dict[str, Any]:
    """The arrays :func:`evaluate_human_model` reads, for trial ``rows`` of a study."""
    from gazetune.human.train import trial_maps

    sub = trials.subset(rows)
    x = np.stack([images[name] for name in sub.image]).astype(np.float32)
    return dict(trials=sub, x=x, maps=trial_maps(sub, (cfg.size, cfg.size), cfg.sigma_px))


def score(model, v: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray]:
    """Held-out label and gaze scores of ``model`` on view ``v``, and its P(real) per trial."""
    from gazetune.human.predict import predict
    from gazetune.human.train import evaluate_human_model

    t = v["trials"]
    res = evaluate_human_model(model, v["x"], v["maps"], labels=t.answer, participants=t.participant,
                               image_ids=t.image, fixations=t.fixations, truth=t.kind)
    return res, predict(model, v["x"])[0]


def centre_nss(train_trials, v: dict[str, Any], cfg: HumanBenchConfig) -> float:
    """NSS of a Gaussian centre bias fitted to the training study's fixations, per test image."""
    from gazetune.saliency.baselines import gaussian_center_bias
    from gazetune.saliency.metrics import nss

    centre = gaussian_center_bias([f[:, :2] for f in train_trials.fixations if len(f)], (cfg.size, cfg.size))
    t = v["trials"]
    per_image = []
    for name in sorted(set(t.image)):
        xy = np.concatenate([f[:, :2] for f, im in zip(t.fixations, t.image) if im == name])
        ok = np.all((xy > -0.5) & (xy < cfg.size - 0.5), axis=1)
        if ok.any():
            per_image.append(nss(centre, xy[ok]))
    return float(np.mean(per_image)) if per_image else math.nan


def image_oracle_auc(t, p_observer: np.ndarray) -> float:
    """AUC against each answer of the *other* observers' mean simulated P(real) on the same image:
    the simulator's own image-level answer probability, a reference for image-only predictors
    (the left-out observer's answer noise does not enter it)."""
    from gazetune.human.train import auc

    image = np.asarray(t.image)
    p = np.asarray(p_observer, dtype=np.float64)
    others = np.empty_like(p)
    for name in np.unique(image):
        rows = np.flatnonzero(image == name)
        others[rows] = (p[rows].sum() - p[rows]) / max(len(rows) - 1, 1)
    return auc(others, np.asarray(t.answer) > 0.5)


def t_interval(values: list[float]) -> dict[str, float]:
    """Mean and 95 % Student-t interval of ``values`` (NaN bounds with fewer than 2)."""
    from scipy import stats

    arr = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    out = {"mean": float(arr.mean()) if arr.size else math.nan, "lo": math.nan, "hi": math.nan, "n": int(arr.size)}
    if arr.size >= 2:
        sem = float(arr.std(ddof=1) / math.sqrt(arr.size))
        lo, hi = stats.t.interval(0.95, arr.size - 1, loc=out["mean"], scale=sem) if sem > 0 else (out["mean"],) * 2
        out.update(lo=float(lo), hi=float(hi))
    return out


def paired_participant_bootstrap(p_new: list[np.ndarray], p_old: list[np.ndarray], answers: np.ndarray,
                                 groups: list[str], n_boot: int, seed: int = 0) -> tuple[float, float]:
    """95 % percentile interval of mean over seeds of AUC(p_new[s]) - AUC(p_old[s]), resampling
    whole participants (one resample shared by both arms and all seeds)."""
    from gazetune.human.train import auc

    g = np.asarray(groups)
    members = [np.flatnonzero(g == u) for u in np.unique(g)]
    pos = np.asarray(answers) > 0.5
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        rows = np.concatenate([members[k] for k in rng.integers(0, len(members), len(members))])
        d = [auc(a[rows], pos[rows]) - auc(b[rows], pos[rows]) for a, b in zip(p_new, p_old)]
        if np.all(np.isfinite(d)):
            diffs.append(float(np.mean(d)))
    if not diffs:
        return math.nan, math.nan
    lo, hi = np.quantile(diffs, [0.025, 0.975])
    return float(lo), float(hi)


# ----------------------------------------------------------------------------------------------
# the benchmark


def arm_name(variant: str, cyborg: bool) -> str:
    return f"{variant} {'CE+CYBORG' if cyborg else 'CE'}"


def run_bench(cfg: HumanBenchConfig) -> dict[str, Any]:
    from gazetune.images import load_image_set
    from gazetune.observers import PanelItem, PatchRealismCritic
    from gazetune.human.train import HumanTrainConfig, train_from_trials

    torch.set_num_threads(max(1, cfg.threads))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    log(f"config: {asdict(cfg)}")

    faces = load_image_set("builtin:faces", size=cfg.size, channels=1)
    if 2 * cfg.n_real > len(faces):
        sys.exit(f"human_model: n_real={cfg.n_real} per study needs {2 * cfg.n_real} faces; there are {len(faces)}")
    order = np.random.default_rng(0).permutation(len(faces))
    half1, half2 = np.sort(order[: cfg.n_real]), np.sort(order[cfg.n_real: 2 * cfg.n_real])

    run_a, version_a, timings["pretrain_a"] = generator(cfg, out, "a", faces)
    run_b, version_b, timings["pretrain_b"] = generator(cfg, out, "b", faces)

    t0 = time.perf_counter()
    critic = PatchRealismCritic(seed=0).fit(faces.images)
    train_items = [PanelItem(faces.images[i], "real", faces.names[i]) for i in half1]
    train_items += samples(cfg, run_a, version_a, 0)
    test_real = [PanelItem(faces.images[i], "real", faces.names[i]) for i in half2]
    fresh_a = samples(cfg, run_a, version_a, FRESH_A_SEED0)
    from_b = samples(cfg, run_b, version_b, B_SEED0)
    train = study(cfg, train_items, critic, cfg.n_train_observers, 0, "train-")
    test = study(cfg, test_real + fresh_a + from_b, critic, cfg.n_test_observers, TEST_PANEL_SEED, "test-")
    timings["studies"] = time.perf_counter() - t0
    tt = test["trials"]
    names_a = {it.image_id for it in fresh_a}
    names_b = {it.image_id for it in from_b}
    is_real = np.array([k == "real" for k in tt.kind])
    rows_a = np.flatnonzero(is_real | np.isin(tt.image, list(names_a)))
    rows_b = np.flatnonzero(is_real | np.isin(tt.image, list(names_b)))
    subsets = (("A_fresh", rows_a), ("B", rows_b))
    views = {k: view(tt, test["images"], r, cfg) for k, r in subsets}

    def called_real(trials, names) -> float:
        return float(np.mean([a for a, im in zip(trials.answer, trials.image) if im in names]))

    train_t = train["trials"]
    context = {
        "train_trials": len(train_t), "test_trials": len(tt),
        "train_fool_rate_A": called_real(train_t, {it.image_id for it in train_items[len(half1):]}),
        "train_real_called_real": called_real(train_t, {faces.names[i] for i in half1}),
        "test_fool_rate_A_fresh": called_real(tt, names_a), "test_fool_rate_B": called_real(tt, names_b),
        "test_real_called_real": called_real(tt, {faces.names[i] for i in half2}),
        "image_oracle_auc": {k: image_oracle_auc(views[k]["trials"], test["observer_p"][r]) for k, r in subsets},
        "observer_own_p_auc": {k: _auc_of(test["observer_p"][r], tt.answer[r]) for k, r in subsets},
        "centre_nss": {k: centre_nss(train_t, v, cfg) for k, v in views.items()},
        "versions": {"A": version_a, "B": version_b},
    }
    log(f"studies: {len(train_t)} training trials ({cfg.n_train_observers} observers), {len(tt)} test trials "
        f"({cfg.n_test_observers} other observers); fool rate A {context['train_fool_rate_A']:.2f} (train), "
        f"A fresh {context['test_fool_rate_A_fresh']:.2f}, B {context['test_fool_rate_B']:.2f} (test); "
        f"real called real {context['test_real_called_real']:.2f}")

    train_images = np.stack([it.image for it in train_items])
    train_names = [it.image_id for it in train_items]
    per_seed: list[dict[str, Any]] = []
    p_real: dict[str, dict[str, list[np.ndarray]]] = {k: {arm_name(*a): [] for a in ARMS} for k in views}
    t0 = time.perf_counter()
    for seed in range(cfg.seeds):
        row: dict[str, Any] = {"seed": seed}
        for variant, cyborg in ARMS:
            arm = arm_name(variant, cyborg)
            hcfg = HumanTrainConfig(
                variant=variant, width=cfg.human_width, depth=2, sigma_px=cfg.sigma_px, steps=cfg.human_steps,
                batch_size=cfg.batch_size, holdout_fraction=cfg.holdout_fraction, seed=seed, device=cfg.device,
                cyborg_weight=cfg.cyborg_weight if cyborg else 0.0,
            )
            ta = time.perf_counter()
            model, report = train_from_trials(train_images, train_names, train_t, hcfg)
            got: dict[str, Any] = {"A_holdout": report.holdout, "train_s": time.perf_counter() - ta,
                                   "final_losses": report.final_losses}
            for key, v in views.items():
                got[key], p = score(model, v)
                p_real[key][arm].append(p)
            row[arm] = got
            log(f"seed {seed} {arm:>20}: AUC A held-out {report.holdout['label_auc']:.3f}, A fresh "
                f"{got['A_fresh']['label_auc']:.3f}, B {got['B']['label_auc']:.3f} (truth {got['B']['truth_auc']:.3f}), "
                f"NSS B {got['B']['gaze_nss']:.2f} ({got['train_s']:.0f} s)")
        per_seed.append(row)
    timings["human_models"] = time.perf_counter() - t0

    summary = summarise(cfg, per_seed, p_real, views)
    timings["total"] = time.perf_counter() - _T0
    results = {"config": asdict(cfg), "context": context, "per_seed": per_seed, "summary": summary,
               "timings_s": timings}
    write_json(out / "results.json", results)
    print_tables(cfg, summary, context, timings)
    log(f"results written to {out / 'results.json'}")
    return results


def _auc_of(scores: np.ndarray, answers: np.ndarray) -> float:
    from gazetune.human.train import auc

    return auc(np.asarray(scores), np.asarray(answers) > 0.5)


def summarise(cfg: HumanBenchConfig, per_seed: list[dict], p_real: dict, views: dict) -> dict[str, Any]:
    """Per arm: mean and t-interval over seeds of every score; per variant: the paired difference."""
    arms = [arm_name(v, c) for v, c in ARMS]
    pick = {
        "auc_A_holdout": ("A_holdout", "label_auc"), "auc_A_fresh": ("A_fresh", "label_auc"),
        "auc_B": ("B", "label_auc"), "truth_auc_B": ("B", "truth_auc"), "acc_B": ("B", "label_accuracy"),
        "nss_B": ("B", "gaze_nss"), "cc_B": ("B", "gaze_cc"), "train_s": (None, "train_s"),
    }
    table: dict[str, dict[str, Any]] = {}
    for arm in arms:
        table[arm] = {name: t_interval([r[arm][k] if src is None else r[arm][src][k] for r in per_seed])
                      for name, (src, k) in pick.items()}
        boots = np.array([r[arm]["B"]["label_auc_ci95"] for r in per_seed], dtype=np.float64)
        table[arm]["boot_ci_B"] = [float(np.nanmean(boots[:, 0])), float(np.nanmean(boots[:, 1]))]
        table[arm]["majority_acc_B"] = float(per_seed[0][arm]["B"]["majority_accuracy"])
    paired: dict[str, Any] = {}
    for variant in VARIANTS:
        new, old = arm_name(variant, True), arm_name(variant, False)
        paired[variant] = {}
        for key, subset in (("auc_B", "B"), ("auc_A_fresh", "A_fresh"), ("auc_A_holdout", "A_holdout")):
            diff = t_interval([r[new][subset]["label_auc"] - r[old][subset]["label_auc"] for r in per_seed])
            if subset in views:
                t = views[subset]["trials"]
                diff["boot"] = list(paired_participant_bootstrap(
                    p_real[subset][new], p_real[subset][old], t.answer, t.participant, cfg.n_boot_diff))
            paired[variant][key] = diff
        d = paired[variant]["auc_B"]
        boot_lo = d.get("boot", [math.nan])[0]
        paired[variant]["improves_transfer"] = bool(d["lo"] > 0 and boot_lo > 0)
    return {"arms": table, "paired": paired}


# ----------------------------------------------------------------------------------------------
# output


def cell(ci: dict[str, float], digits: int = 3) -> str:
    m, lo, hi = ci["mean"], ci["lo"], ci["hi"]
    if not np.isfinite(m):
        return "n/a"
    return f"{m:.{digits}f}" if not np.isfinite(lo) else f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def print_tables(cfg: HumanBenchConfig, summary: dict, context: dict, timings: dict) -> None:
    arms = summary["arms"]
    print()
    print(f"Human-response model (FIG. 5) on simulated observers: built-in faces {cfg.size} px; train: "
          f"{context['train_trials']} trials of {cfg.n_train_observers} observers on real + generator A "
          f"({context['versions']['A']}); test: {context['test_trials']} trials of {cfg.n_test_observers} other "
          f"observers on other real faces + fresh A + generator B ({context['versions']['B']}); "
          f"{cfg.human_steps} steps per model; mean [95 % t-CI] over {cfg.seeds} seeds")
    print()
    print("| arm | AUC A held-out | AUC A fresh | AUC B | AUC B boot CI | truth AUC B | acc B | NSS B | CC B | s/model |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for arm, r in arms.items():
        lo, hi = r["boot_ci_B"]
        print(f"| {arm} | {cell(r['auc_A_holdout'])} | {cell(r['auc_A_fresh'])} | {cell(r['auc_B'])} | "
              f"[{lo:.3f}, {hi:.3f}] | {cell(r['truth_auc_B'])} | {cell(r['acc_B'])} | {cell(r['nss_B'], 2)} | "
              f"{cell(r['cc_B'])} | {r['train_s']['mean']:.0f} |")
    maj = next(iter(arms.values()))["majority_acc_B"]
    print()
    print(f"reference on the test panel: image oracle (other observers' mean simulated P(real) on the image) AUC "
          f"A fresh {context['image_oracle_auc']['A_fresh']:.3f}, B {context['image_oracle_auc']['B']:.3f}; the "
          f"simulated observer's own P(real) AUC A fresh {context['observer_own_p_auc']['A_fresh']:.3f}, "
          f"B {context['observer_own_p_auc']['B']:.3f}; centre-bias NSS B {context['centre_nss']['B']:.2f}; "
          f"majority accuracy B {maj:.3f}; fool rate A {context['test_fool_rate_A_fresh']:.2f}, "
          f"B {context['test_fool_rate_B']:.2f}, real called real {context['test_real_called_real']:.2f}")
    print()
    print(f"paired difference CE+CYBORG (weight {cfg.cyborg_weight}) minus CE, same seed and trials: "
          "mean [95 % t-CI over seeds] / participant-bootstrap 95 % CI of the seed mean")
    print()
    print("| variant | d AUC B | boot CI | d AUC A fresh | boot CI | d AUC A held-out |")
    print("|---|---|---|---|---|---|")
    for variant, d in summary["paired"].items():
        b, f = d["auc_B"]["boot"], d["auc_A_fresh"]["boot"]
        print(f"| {variant} | {cell(d['auc_B'])} | [{b[0]:.3f}, {b[1]:.3f}] | {cell(d['auc_A_fresh'])} | "
              f"[{f[0]:.3f}, {f[1]:.3f}] | {cell(d['auc_A_holdout'])} |")
    print()
    for variant, d in summary["paired"].items():
        if cfg.seeds < 2:
            verdict = "one seed only: no t-interval, no verdict (use --seeds >= 2)"
        elif d["improves_transfer"]:
            verdict = "CYBORG improves transfer AUC by more than its CI (t-CI over seeds and participant bootstrap)"
        elif d["auc_B"]["hi"] < 0 and d["auc_B"]["boot"][1] < 0:
            verdict = "CYBORG LOWERS transfer AUC by more than its CI (t-CI over seeds and participant bootstrap)"
        else:
            verdict = "CYBORG does NOT improve transfer AUC by more than its CI"
        print(f"VERDICT {variant}: {verdict} (d AUC B = {d['auc_B']['mean']:+.3f})")
    print()
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()))


def write_json(path: Path, results: dict) -> None:
    def plain(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist()
        if isinstance(o, (np.floating, np.integer, np.bool_)):
            return o.item()
        return str(o)

    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(results, indent=2, default=plain))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=HumanBenchConfig.out, help="output folder (results.json, the two generators)")
    ap.add_argument("--seeds", type=int, default=None, help="human-model training seeds (default 5; 2 with --quick)")
    ap.add_argument("--quick", action="store_true", help="tiny settings: a smoke run of every stage in about a minute")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest for these small nets on 2 cores)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("human_model: --device cuda but CUDA is not available")
    kw: dict[str, Any] = dict(out=args.out, device=args.device, threads=args.threads)
    if args.seeds is not None:
        if args.seeds < 1:
            sys.exit("human_model: --seeds must be >= 1")
        kw["seeds"] = args.seeds
    cfg = HumanBenchConfig.smoke(**kw) if args.quick else HumanBenchConfig(**kw)
    run_bench(cfg)


if __name__ == "__main__":
    main()
