"""``gazetune demo``: the whole method end to end on the built-in faces, without people.

The steps follow the data flow of the patent (FIG. 2-4):

1. **pretrain** a small GAN on scikit-image's 100 LFW faces (eq 1-2, 9a/10a);
2. **study**: a panel of simulated observers (:mod:`gazetune.observers`, a test instrument)
   judges a blinded random mix of real faces and samples of that generator; each trial records
   60 Hz gaze samples, the answer and the reaction time;
3. **gaze**: samples -> fixations (pymovements I-VT, eq 3) -> pooled duration-weighted heatmaps
   per image (¶58, ¶80); real images by name, synthetic images by (generator version, latent seed);
4. **saliency**: M_saliency (eq 4-8) is trained on 80 % of the observed images and scored on the
   other 20 % against the centre bias and the inter-observer consistency;
5. **tune** the generator with the maps (eq 9b/10b, FIG. 4) -- and, as a control, for the same
   number of steps without maps;
6. **evaluate**: the same panel judges fresh samples of the base, control and gaze-tuned
   generators mixed with real faces; fool rates with bootstrap confidence intervals;
7. write ``report.html``;
8. run the same cycle as two nodes over HTTP (:mod:`gazetune.loop`): a real study server on
   loopback, simulated participants taking part through its API, and the trainer pulling their
   responses, tuning and publishing a new generator version twice.

Stages 1-7 are seeded and repeat exactly.  Stage 8 does not: its simulated participants join the
server concurrently, so their server ids and trial assignment follow arrival order, and its fool
rates vary from run to run within their intervals.  ``--quick`` shrinks every stage so the run
takes well under two minutes on two CPU cores (used by the test suite).

The stage helpers (:func:`sample_run`, :func:`checkpoint_version`, :func:`detect_simulated`,
:func:`simulated_fixation_table`, :func:`simulated_human_trials`, :func:`train_saliency_stage`,
:func:`train_human_stage`) are public: ``bench/gaze_benefit.py`` and ``bench/human_model.py`` run
the same stages on other data.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import typer
from rich.console import Console
from rich.progress import track
from rich.table import Table

console = Console()

#: generator EMA half-life (images) of the base GAN and of every tuning arm: one horizon for all,
#: so an arm is compared with the base on equal terms
BASE_EMA_HALF_LIFE = 500.0


@dataclass
class DemoConfig:
    """Settings of the demo (``--quick`` uses :meth:`quick_settings`).

    Sizes are in pixels, durations in ms, ``sigma_deg`` in degrees of visual angle (the simulated
    image spans ``image_deg`` degrees).
    """

    out: Path = Path("demo_out")
    seed: int = 0
    device: str = "cpu"
    size: int = 32
    pretrain_steps: int = 400
    tune_steps: int = 80
    batch: int = 32
    g_width: int = 16
    d_width: int = 8  # the group-norm U-Net D costs 0.58 s a step at width 8 on one CPU thread, 1.14 s at 16
    n_observers: int = 8
    n_real_shown: int = 50
    n_synthetic_shown: int = 50
    n_eval_real: int = 50
    n_eval_synthetic: int = 40
    display_ms: float = 3000.0
    image_deg: float = 10.0
    sigma_deg: float = 1.0
    alpha: float = 1.0
    beta: float = 0.5
    judge_target_rate: float = 0.9
    judge_gain: float = 10.0
    judge_fakes: int = 40
    saliency_epochs: int = 40
    saliency_width: int = 16
    min_observed_direct: int = 32
    human_model: bool = True
    human_epochs: int = 20
    human_weight: float = 0.5
    threads: int = 1  # torch intra-op threads: more than 1 slows these small nets down on a busy machine
    loop: bool = True
    loop_cycles: int = 1
    loop_settings: dict = field(default_factory=lambda: {"participants": 6, "trials": 16, "tune_steps": 40, "pretrain_steps": 100})

    @classmethod
    def quick_settings(cls, **kw: Any) -> "DemoConfig":
        base = dict(
            pretrain_steps=120, tune_steps=20, batch=16, n_observers=4, n_real_shown=16,
            n_synthetic_shown=16, n_eval_real=16, n_eval_synthetic=12, saliency_epochs=6,
            saliency_width=8, min_observed_direct=16, human_epochs=4, judge_fakes=16,
            loop_settings={"pretrain_steps": 40, "tune_steps": 12},  # below LoopDemoConfig's 60 / 20: --quick stays under 2 min
        )
        base.update(kw)
        return cls(**base)


# ----------------------------------------------------------------------------------------------
# stages


def _step(title: str) -> None:
    console.rule(f"[bold cyan]{title}")


def checkpoint_version(run_dir: Path) -> str:
    from gazetune.checkpoint import read_checkpoint

    return read_checkpoint(run_dir / "checkpoint.safetensors").metadata["generator_version"]


def sample_run(run_dir: Path, seeds: list[int], device: str) -> np.ndarray:
    """EMA generator of ``run_dir`` at latent ``seeds`` -> (N, C, H, W) float32 in [-1, 1]
    (:func:`gazetune.stages.render`)."""
    from gazetune.stages import render

    return render(run_dir, seeds, device)


def detect_simulated(trials: list, desc: str) -> list:
    """Fixations (pymovements I-VT, eq 3) of every simulated trial, with a progress bar."""
    from gazetune.stages import fixations_from_trials

    return fixations_from_trials(trials, size=10**9, desc=desc)[1]


def simulated_fixation_table(trials: list, fixations: list, size: int):
    """Fixation table of the detected fixations; fixations centred off the image (tracker noise
    near the border) are left out and counted (:func:`gazetune.stages.fixation_table`)."""
    from gazetune.stages import fixation_table

    return fixation_table(trials, fixations, size)


def simulated_human_trials(trials: list, versions: dict[str, str]):
    """Simulated trials -> :class:`gazetune.evaluate.human.Trial` records."""
    from gazetune.evaluate.human import Trial

    out = []
    for t in trials:
        gen = versions.get(t.image_id) if t.kind == "synthetic" else None
        out.append(Trial(t.observer_id, t.image_id, t.kind, gen, bool(t.answer_real), float(t.rt_ms)))
    return out


def run_demo(cfg: DemoConfig) -> Path:
    """Run every stage; returns the path of ``report.html``.  Files go to ``cfg.out``."""
    from gazetune.config import save_config
    from gazetune.evaluate.human import fool_rate
    from gazetune.gaze.fixation_table import write_fixation_table
    from gazetune.images import load_image_set, save_image_grid, split_indices
    from gazetune.nets.generator import DCGANGenerator
    from gazetune.observers import ObserverPanel, PanelItem
    from gazetune.stages import build_maps, copy_snapshot, fit_judge, fixations_from_trials, judge, judge_auc, render
    from gazetune.tune.maps import MapProvider, synthetic_image_name
    from gazetune.tune.train import TrainConfig, TuneConfig, pretrain, read_health, tune

    t_start = time.perf_counter()
    out = Path(cfg.out)
    if (out / "pretrain" / "checkpoint.safetensors").exists():
        raise FileExistsError(f"{out} already holds a demo run; choose another --out or delete it")
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "demo_config.toml")
    timings: dict[str, float] = {}
    results: dict[str, Any] = {"config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}}

    # 1. data and base GAN ---------------------------------------------------------------------
    _step("1/8 pretrain the base GAN on the built-in faces")
    t0 = time.perf_counter()
    faces = load_image_set("builtin:faces", size=cfg.size, channels=1)
    save_image_grid(faces.images[:64], out / "real_faces.png", nrow=8)
    pcfg = TrainConfig(
        size=cfg.size, channels=1, batch=cfg.batch, steps=cfg.pretrain_steps, g_width=cfg.g_width, d_width=cfg.d_width, seed=cfg.seed, device=cfg.device,
        log_every=10, sample_every=0, checkpoint_every=max(1, cfg.pretrain_steps // 4), n_samples=64,
        ema_half_life=BASE_EMA_HALF_LIFE,
    )
    snap_dir = out / "snapshots"
    snap_dir.mkdir(exist_ok=True)
    snap_steps = {max(1, cfg.pretrain_steps // 4): "judge_study", max(2, cfg.pretrain_steps // 2): "judge_fresh"}

    def keep_snapshot(step: int, _stats: dict) -> None:  # generators no arm is tuned from, for the judges
        if step in snap_steps:
            copy_snapshot(out / "pretrain", snap_dir / f"{snap_steps[step]}_step{step}.safetensors")

    pretrain(pcfg, faces.images, out / "pretrain", hooks=[keep_snapshot])
    base_version = checkpoint_version(out / "pretrain")
    results["health"] = {"pretrain": read_health(out / "pretrain")}
    timings["pretrain"] = time.perf_counter() - t0

    # 2. study round with simulated observers ------------------------------------------------------
    _step("2/8 simulated observers judge a blinded mix of real and synthetic faces")
    t0 = time.perf_counter()
    # Two judges that share nothing but the network they read: the study panel's judge is fitted on
    # half A of the real faces and an early snapshot; the fresh evaluation panel's judge on half B
    # and a later snapshot.  Each panel is shown the real faces its judge never saw.
    order = np.random.default_rng([cfg.seed, 0x7D6E]).permutation(len(faces))
    half_a, half_b = order[: len(order) // 2], order[len(order) // 2:]
    snaps = {name: next(snap_dir.glob(f"{name}_step*.safetensors")) for name in snap_steps.values()}
    n_fit = max(2, int(0.8 * len(half_a)))
    judges = {}
    for name, half, k in (("judge_study", half_a, 1), ("judge_fresh", half_b, 2)):
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed + 100 * k)
            untrained = DCGANGenerator(pcfg.z_dim, cfg.size, 1, cfg.g_width).eval()
        seeds_k = range(10_000 * k, 10_000 * k + cfg.judge_fakes)
        fakes_k = np.concatenate([render(untrained, seeds_k), render(snaps[name], seeds_k)])
        judges[name] = fit_judge(faces.images[half[:n_fit]], fakes_k, faces.images[half[n_fit:]], seed=cfg.seed + k,
                                 target_rate=cfg.judge_target_rate, gain=cfg.judge_gain, device=cfg.device)
    observer = {"image_deg": cfg.image_deg, "beta": cfg.beta}
    panel = ObserverPanel.lab(cfg.n_observers, seed=cfg.seed, observer=judges["judge_study"].observer(**observer))
    rng = np.random.default_rng(cfg.seed)
    real_idx = np.sort(rng.choice(half_b, size=min(cfg.n_real_shown, len(half_b)), replace=False))
    seeds = list(range(cfg.n_synthetic_shown))
    fakes = render(out / "pretrain", seeds, cfg.device)
    syn_names = [synthetic_image_name(base_version, s) for s in seeds]
    items = [PanelItem(faces.images[i], "real", faces.names[i]) for i in real_idx]
    items += [PanelItem(fakes[k], "synthetic", syn_names[k], s) for k, s in enumerate(seeds)]
    trials = judge(panel, items, judges["judge_study"], seed=cfg.seed, display_ms=cfg.display_ms)
    results["judge"] = {
        "study": {"threshold": judges["judge_study"].threshold, "gain": cfg.judge_gain, "beta": cfg.beta,
                  "auc_real_vs_base": judge_auc(trials, syn_names),
                  "real_called_real": float(np.mean([t.answer_real for t in trials if t.kind == "real"])),
                  "base_called_real": float(np.mean([t.answer_real for t in trials if t.kind == "synthetic"]))},
    }
    timings["study"] = time.perf_counter() - t0

    # 3. gaze -> fixations -> maps -----------------------------------------------------------------
    _step("3/8 gaze samples -> fixations (I-VT) -> pooled heatmaps")
    t0 = time.perf_counter()
    table, fixations, n_outside = fixations_from_trials(trials, cfg.size)
    write_fixation_table(table, out / "fixations.csv")
    sigma_px = cfg.size / cfg.image_deg * cfg.sigma_deg
    maps = build_maps(table, sigma_px, cfg.size)
    maps.save(out / "maps.npz")
    n_true = sum(len(t.fixations.x) for t in trials)
    n_found = sum(len(f.x) for f in fixations)
    results["gaze"] = {
        "trials": len(trials), "true_fixations": n_true, "detected_fixations": n_found,
        "fixations_off_image_left_out": n_outside,
        "sigma_px": sigma_px, "maps_real": len(maps.real), "maps_synthetic": len(maps.synthetic),
    }
    timings["gaze"] = time.perf_counter() - t0

    # 4. saliency model ----------------------------------------------------------------------------
    _step("4/8 train M_saliency on 80 % of the observed images, score it on the rest")
    t0 = time.perf_counter()
    saliency_model, saliency_results = train_saliency_stage(cfg, out, faces, fakes, real_idx, syn_names, table, maps, sigma_px)
    results["saliency"] = saliency_results
    timings["saliency"] = time.perf_counter() - t0

    # 5. human-response model (FIG. 5) -------------------------------------------------------------
    human_term = None
    if cfg.human_model:
        _step("5/8 train the human-response model (FIG. 5, eq 11) on the panel's answers and gaze")
        t0 = time.perf_counter()
        human_term, results["human_model"] = train_human_stage(cfg, out, faces, fakes, real_idx, syn_names, trials, fixations)
        timings["human_model"] = time.perf_counter() - t0
    else:
        _step("5/8 human-response model skipped (--no-human-model)")

    # 6. tuning: gaze maps vs control ------------------------------------------------------------
    _step("6/8 tune the generator with gaze maps (eq 9b/10b) and a no-gaze control")
    t0 = time.perf_counter()
    tcfg = TuneConfig(
        batch=cfg.batch, steps=cfg.tune_steps, seed=cfg.seed + 1, device=cfg.device, alpha=cfg.alpha,
        mode="auto", min_observed=cfg.min_observed_direct, log_every=5, sample_every=0,
        # the base's EMA horizon (500 images): with a shorter one an arm scores worse than the base
        # for that reason alone (docs/benchmarks.md, gaze_benefit)
        checkpoint_every=max(50, cfg.tune_steps // 2), n_samples=64, ema_half_life=BASE_EMA_HALF_LIFE,
    )
    arms: dict[str, Path] = {}
    provider = MapProvider(
        "auto", maps=maps, saliency_model=saliency_model, generator_version=base_version,
        min_observed=cfg.min_observed_direct,
    )
    tune(tcfg, faces.images, provider, out / "tune_gaze", init_checkpoint=out / "pretrain", names=faces.names)
    arms["gaze (FIG. 4)"] = out / "tune_gaze"
    control = TuneConfig(**{**asdict(tcfg), "alpha": 0.0, "mode": "none"})
    tune(control, faces.images, MapProvider("none"), out / "tune_control", init_checkpoint=out / "pretrain",
         names=faces.names)
    arms["no gaze (control)"] = out / "tune_control"
    if human_term is not None:
        tune(tcfg, faces.images, MapProvider(
            "auto", maps=maps, saliency_model=saliency_model, generator_version=base_version,
            min_observed=cfg.min_observed_direct,
        ), out / "tune_gaze_human", init_checkpoint=out / "pretrain", names=faces.names,
            extra_generator_terms=[human_term])
        arms["gaze + human model (FIG. 4 + 5)"] = out / "tune_gaze_human"
    results["health"].update({arm: read_health(run) for arm, run in arms.items()})
    timings["tune"] = time.perf_counter() - t0

    # 7. evaluation round ---------------------------------------------------------------------
    _step("7/8 the panel judges fresh samples of every generator; fool rates")
    t0 = time.perf_counter()
    eval_seeds = list(range(100_000, 100_000 + cfg.n_eval_synthetic))
    eval_real = np.sort(np.random.default_rng(cfg.seed + 7).choice(half_a, min(cfg.n_eval_real, len(half_a)), replace=False))
    eval_items = [PanelItem(faces.images[i], "real", faces.names[i]) for i in eval_real]
    versions: dict[str, str] = {}
    arm_runs = {"base (pretrained)": out / "pretrain", **arms}
    arm_samples: dict[str, np.ndarray] = {}
    arm_version: dict[str, str] = {}
    for arm, run in arm_runs.items():
        version = f"{arm}|{checkpoint_version(run)}"
        arm_version[arm] = version
        imgs = render(run, eval_seeds, cfg.device)
        arm_samples[arm] = imgs
        save_image_grid(imgs[:64], out / f"samples_{run.name}.png", nrow=8)
        for k, s in enumerate(eval_seeds):
            name = synthetic_image_name(version, s)
            versions[name] = version
            eval_items.append(PanelItem(imgs[k], "synthetic", name, s))
    # a fresh panel (other observers) with the fresh judge, independent of everything used in training
    eval_panel = ObserverPanel.lab(cfg.n_observers, seed=cfg.seed + 500, observer=judges["judge_fresh"].observer(**observer))
    eval_trials = judge(eval_panel, eval_items, judges["judge_fresh"], seed=cfg.seed + 1000, display_ms=cfg.display_ms)
    human = simulated_human_trials(eval_trials, versions)
    rates = {}
    for arm in arm_runs:
        est = fool_rate(human, generator=arm_version[arm], n_boot=1000, seed=cfg.seed)
        rates[arm] = est.as_dict()
    real_called_real = float(np.mean([t.answer_real for t in eval_trials if t.kind == "real"]))
    results["fool_rates"] = rates
    results["real_called_real"] = real_called_real
    arm_ids = {arm: [it.image_id for it in eval_items if versions.get(it.image_id) == arm_version[arm]] for arm in arm_runs}
    results["judge"]["fresh"] = {
        "threshold": judges["judge_fresh"].threshold, "gain": cfg.judge_gain, "beta": cfg.beta,
        "auc_real_vs": {arm: judge_auc(eval_trials, ids) for arm, ids in arm_ids.items()},
        "mean_realism": {**{arm: float(judges["judge_fresh"].judge.scores(imgs).mean()) for arm, imgs in arm_samples.items()},
                         "real faces": float(judges["judge_fresh"].judge.scores(faces.images[eval_real]).mean())},
    }
    results["judge"]["fresh"]["verdicts_count"] = results["judge"]["fresh"]["auc_real_vs"]["base (pretrained)"] >= 0.7
    if human_term is not None:
        with torch.no_grad():
            m = human_term.model
            results["human_model"]["p_real_fresh_samples"] = {
                arm: float(m.p_real(m.prepare(torch.as_tensor(imgs))).mean()) for arm, imgs in arm_samples.items()
            }
    timings["evaluate"] = time.perf_counter() - t0

    table_out = Table(title="Observers' fool rate (synthetic called real), 95 % bootstrap CI")
    for col in ("generator", "fool rate", "95 % CI", "trials"):
        table_out.add_column(col)
    for arm, r in rates.items():
        table_out.add_row(arm, f"{r['rate']:.3f}", f"[{r['lo']:.3f}, {r['hi']:.3f}]", str(r["n"]))
    console.print(table_out)

    # 8. the same method as two nodes over HTTP ----------------------------------------------------
    if cfg.loop:
        _step(f"8/8 two nodes over HTTP: study server on loopback, simulated participants, trainer x{cfg.loop_cycles}")
        t0 = time.perf_counter()
        from gazetune.loop.demo import run_loop_demo

        loop = run_loop_demo(out / "loop", cycles=cfg.loop_cycles, log=lambda m: console.print(f"  {m}"),
                             seed=cfg.seed, device=cfg.device, **cfg.loop_settings)
        results["loop"] = {"rates": loop["rates"], "versions": loop.get("versions"), "seconds": loop.get("seconds")}
        timings["loop"] = time.perf_counter() - t0

    timings["total"] = time.perf_counter() - t_start
    results["timings_s"] = timings
    _write_json(out / "results.json", results)
    from gazetune.demo_report import write_report

    report = write_report(out, cfg, results, trials, fixations, faces, fakes, real_idx, syn_names, maps,
                          saliency_model, arm_runs, arm_samples, human_term)
    console.print(f"[green]report written to {report}  ({timings['total']:.0f} s)")
    return report


def _write_json(path: Path, results: dict) -> None:
    """results.json: arrays (the held-out predicted maps) stay out; they are in the report."""

    def default(o: Any) -> Any:
        if isinstance(o, np.ndarray):
            return o.tolist() if o.size <= 16 else f"<array {o.shape}>"
        if isinstance(o, (np.floating, np.integer)):
            return o.item()
        return str(o)

    from gazetune.atomic import atomic_write_text

    atomic_write_text(path, json.dumps(results, indent=2, default=default))


def train_saliency_stage(cfg, out, faces, fakes, real_idx, syn_names, table, maps, sigma_px):
    """Train M_saliency on observed images and score it on held-out ones (metrics vs baselines)."""
    from gazetune.images import split_indices
    from gazetune.saliency.baselines import gaussian_center_bias
    from gazetune.saliency.model import save_saliency_model
    from gazetune.saliency.train import FixationDataset, SaliencyTrainConfig, evaluate_saliency, predict_maps, train_saliency

    names = [faces.names[i] for i in real_idx] + list(syn_names)
    images = np.concatenate([faces.images[real_idx], fakes])
    target = np.stack([maps.real[n] if n in maps.real else _synthetic_map(maps, n) for n in names])
    train_i, test_i = split_indices(len(names), 0.2, seed=cfg.seed)
    scfg = SaliencyTrainConfig(
        epochs=cfg.saliency_epochs, batch_size=16, width=cfg.saliency_width, depth=2, bias_grid=[4, 4],
        seed=cfg.seed, progress=True,
    )
    model, history = train_saliency(images[train_i], target[train_i], scfg, images[test_i], target[test_i])
    save_saliency_model(model, out / "saliency_model.safetensors")
    per_subject = [
        {s: f[:, :2] for s, f in table.for_image(names[i]).items() if len(f)} for i in range(len(names))
    ]
    dataset = FixationDataset(
        names=[names[i] for i in test_i], images=images[test_i], maps=target[test_i],
        fixations=[per_subject[i] for i in test_i], sigma=sigma_px,
    )
    train_xy = [f for i in train_i for f in per_subject[i].values()]
    baseline = gaussian_center_bias(train_xy, (cfg.size, cfg.size))
    predictions = predict_maps(model, images[test_i])
    scores = evaluate_saliency(predictions, dataset, baseline, inter_observer=True)
    return model, {
        "history": history,
        "n_train": len(train_i),
        "n_test": len(test_i),
        "metrics": {row: vals["mean"] for row, vals in scores["rows"].items()},
        "test_names": dataset.names,
        "test_predictions": predictions,
    }


def _synthetic_map(maps, name: str) -> np.ndarray:
    from gazetune.tune.maps import parse_synthetic_name

    return maps.synthetic[parse_synthetic_name(name)]


def train_human_stage(cfg, out, faces, fakes, real_idx, syn_names, trials, fixations):
    """FIG. 5: train the joint human-response model (eq 11) on the panel's answers and *detected*
    fixations, held out by participant, and wrap it as the eq 12 generator term."""
    from gazetune.human.losses import HumanModelTerm
    from gazetune.human.model import save_human_model
    from gazetune.human.train import HumanTrainConfig, train_from_trials, trials_from_simulated

    records = [
        {"participant": t.observer_id, "image": t.image_id, "answer": float(t.answer_real), "rt_ms": t.rt_ms,
         "fixations": f.as_array(), "kind": t.kind}
        for t, f in zip(trials, fixations)
    ]
    names = [faces.names[i] for i in real_idx] + list(syn_names)
    images = np.concatenate([faces.images[real_idx], fakes])
    hcfg = HumanTrainConfig(
        variant="joint", width=12, depth=2, sigma_px=cfg.size / cfg.image_deg * cfg.sigma_deg,
        steps=cfg.human_epochs * 10, batch_size=32, holdout_fraction=0.25, seed=cfg.seed, device=cfg.device,
    )
    model, report = train_from_trials(images, names, trials_from_simulated(records), hcfg, progress=True)
    save_human_model(model, out / "human_model.safetensors")
    info = report.as_dict()
    return HumanModelTerm(model, weight=cfg.human_weight), {
        "holdout": info["holdout"], "n_train_trials": info["n_train_trials"],
        "n_holdout_trials": info["n_holdout_trials"], "holdout_participants": info["holdout_participants"],
    }


# ----------------------------------------------------------------------------------------------
# command line


def demo_command(
    out: Path = typer.Option(Path("demo_out"), help="Output folder (report.html and every run's files)."),
    quick: bool = typer.Option(False, "--quick", help="Tiny settings: well under 2 minutes on 2 CPU cores."),
    device: str = typer.Option("cpu", help="torch device: cpu or cuda."),
    seed: int = typer.Option(0, help="Seed of the whole demo."),
    threads: int = typer.Option(1, help="torch CPU threads (1 is fastest for these small nets on 2 busy cores)."),
    human_model: bool = typer.Option(True, "--human-model/--no-human-model", help="Also run FIG. 5."),
    loop: bool = typer.Option(True, "--loop/--no-loop", help="Also run the two-node loop over HTTP (stage 8)."),
    pretrain_steps: Optional[int] = typer.Option(None, help="Override the GAN pretraining steps."),
    tune_steps: Optional[int] = typer.Option(None, help="Override the tuning steps."),
    beta: Optional[float] = typer.Option(None, min=0.0, help="How strongly simulated observers look where an image looks wrong to them (0 = free viewing; default 0.5)."),
) -> None:
    """The whole method on the built-in faces: pretrain, simulated study, maps, M_saliency,
    gaze-weighted tuning, evaluation, report.html."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise typer.BadParameter("CUDA is not available on this machine", param_hint="--device")
    kw: dict[str, Any] = dict(out=out, device=device, seed=seed, human_model=human_model, loop=loop, threads=threads)
    if pretrain_steps is not None:
        kw["pretrain_steps"] = pretrain_steps
    if tune_steps is not None:
        kw["tune_steps"] = tune_steps
    if beta is not None:
        kw["beta"] = beta
    cfg = DemoConfig.quick_settings(**kw) if quick else DemoConfig(**kw)
    torch.set_num_threads(max(1, threads))  # the command sets the process's threads; the library never does
    try:
        run_demo(cfg)
    except FileExistsError as e:
        console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(code=2)
