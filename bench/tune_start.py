"""Does tuning start where the base GAN left off?  SWD of plain tuning (no maps) against its steps.

`bench/gaze_benefit.py` found every tuning arm, plain continuation included, worse than the base
GAN it started from.  Before any arm can show that gaze helps, tuning without maps must at least
not hurt.  This bench tunes the base with no maps (alpha 0, :func:`gazetune.tune.train.tune`) in
these variants, at equal steps, and scores the EMA generator along the way:

=================  ===========================================================================
fresh_tune_lr      the start before the fix: zero Adam moments, lr_G 1e-4 / lr_D 4e-4
restore_tune_lr    Adam moments of G and D restored from the base checkpoint
                   (``TuneConfig.optimizer_state="restore"``, the default now), same lr
fresh_base_lr      zero moments at the base's pretraining lr (2e-4 / 8e-4)
restore_base_lr    restored moments at the base's lr
continue           the base's own pretraining resumed for the same steps (the control: what
                   more pretraining gives; one run, its RNG comes from the checkpoint)
=================  ===========================================================================

Data and base: faces64 at 32 px RGB split by source photo as in gaze_benefit (half A trains,
``--n-eval`` half-B faces are the reference).  ``--base RUN`` takes a pretraining run of that
split (e.g. gaze_benefit's ``OUT/pretrain``); without it the bench pretrains one with
gaze_benefit's settings (1000 steps, G width 16, D width 8, batch 32, EMA half-life 500 images).

Score: SWD x 1e3 (Laplacian-pyramid patches, :func:`gazetune.evaluate.distances.swd`) of
``--n-eval`` EMA samples at fixed latent seeds against the reference, every ``--eval-every``
steps; mean over ``--seeds`` tuning seeds.  Controls: the base (step 0) and the reference
against half-A faces (the floor).  ``--ema-half-life`` sets every variant's EMA horizon (it starts
from the base's EMA weights); a longer one averages over the GAN's step-to-step oscillation.

    python bench/tune_start.py --data ../shared/data --out bench/out/tune_start [--base RUN] [--quick]

Output: a table on stdout and ``OUT/results.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = {  # name: (optimizer_state, learning rates: "tune" = TuneConfig's, "base" = the base run's)
    "fresh_tune_lr": ("fresh", "tune"),
    "restore_tune_lr": ("restore", "tune"),
    "fresh_base_lr": ("fresh", "base"),
    "restore_base_lr": ("restore", "base"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="shared data folder holding faces64/")
    ap.add_argument("--out", default="bench/out/tune_start")
    ap.add_argument("--base", default="", help="a pretraining run on gaze_benefit's half A (default: pretrain one)")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--eval-every", type=int, default=50)
    ap.add_argument("--n-eval", type=int, default=500)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--ema-half-life", type=float, default=0.0,
                    help="EMA half-life (images) of every variant; 0 = the base's (the EMA starts from the base's)")
    ap.add_argument("--variants", default=",".join(list(VARIANTS) + ["continue"]),
                    help="comma-separated: " + ", ".join(list(VARIANTS) + ["continue"]))
    ap.add_argument("--quick", action="store_true", help="a smoke run: 40 steps, 64 eval images, 1 seed")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.eval_every, args.n_eval, args.seeds = 40, 20, 64, 1
    torch.set_num_threads(1)

    import gaze_benefit as gb
    from gazetune.evaluate.distances import swd
    from gazetune.stages import render
    from gazetune.tune.maps import MapProvider
    from gazetune.tune.train import TrainConfig, TuneConfig, load_run_config, pretrain, tune

    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in VARIANTS and v != "continue"]
    if bad:
        sys.exit(f"tune_start: unknown variant(s) {bad}; choose from {list(VARIANTS) + ['continue']}")
    bcfg = gb.BenchConfig(data=args.data, n_eval=args.n_eval)
    faces, half_a, half_b, _ = gb.load_faces(bcfg)
    train = faces.images[half_a]
    ref = faces.images[gb.eval_reference(bcfg, faces, half_b)]
    eval_seeds = list(range(2_000_000, 2_000_000 + len(ref)))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    base = Path(args.base) if args.base else out / "base"
    if not args.base:
        steps = 120 if args.quick else bcfg.pretrain_steps
        pcfg = TrainConfig(size=bcfg.size, channels=bcfg.channels, batch=bcfg.batch, steps=steps, g_width=bcfg.g_width,
                           d_width=bcfg.d_width, ema_half_life=bcfg.ema_half_life, seed=0, log_every=50,
                           sample_every=0, checkpoint_every=250)
        print(f"pretraining the base ({steps} steps) in {base}", flush=True)
        pretrain(pcfg, train, base, resume=True, progress=True)
    elif not (base / "checkpoint.safetensors").exists():
        sys.exit(f"tune_start: --base {base}: no checkpoint.safetensors there")
    base_cfg = load_run_config(base)
    ema = args.ema_half_life or base_cfg.ema_half_life

    def score(run) -> float:
        return float(swd(ref, render(run, eval_seeds), seed=0).mean)

    results: dict = {"args": vars(args), "base": str(base), "machine": "2 CPU cores, one torch thread",
                     "floor": float(swd(ref, train[: len(ref)], seed=0).mean), "base_swd": score(base), "runs": {}}
    print(f"floor (reference vs half-A faces) {results['floor']:.1f}; base {results['base_swd']:.1f}", flush=True)

    def track(run: Path, rows: list, step0: int = 0):
        def hook(step: int, _stats: dict) -> None:
            if (step - step0) % args.eval_every == 0 or step - step0 == args.steps:
                rows.append({"step": step - step0, "swd": score(run)})
                print(f"  {run.name} step {step - step0}: SWD {rows[-1]['swd']:.1f}", flush=True)
        return hook

    for name in variants:
        seeds = [0] if name == "continue" else list(range(args.seeds))
        for seed in seeds:
            run = out / "runs" / f"{name}_s{seed}"
            done = run / "rows.json"
            if done.exists():
                rows = json.loads(done.read_text())
            else:
                if run.exists():
                    shutil.rmtree(run)
                rows = [{"step": 0, "swd": results["base_swd"]}]
                t0 = time.perf_counter()
                if name == "continue":  # the base's own run, resumed for args.steps more steps
                    shutil.copytree(base, run)
                    ccfg = dataclasses.replace(base_cfg, steps=base_cfg.steps + args.steps,
                                               checkpoint_every=args.eval_every, log_every=10,
                                               ema_half_life=ema)
                    pretrain(ccfg, train, run, resume=True, progress=False,
                             hooks=[track(run, rows, base_cfg.steps)])
                else:
                    state, lr = VARIANTS[name]
                    rates = {} if lr == "tune" else {"lr_g": base_cfg.lr_g, "lr_d": base_cfg.lr_d}
                    tcfg = TuneConfig(batch=bcfg.batch, steps=args.steps, seed=1000 + seed, alpha=0.0, mode="none",
                                      log_every=10, sample_every=0, checkpoint_every=args.eval_every,
                                      ema_half_life=ema, optimizer_state=state, **rates)
                    tune(tcfg, train, MapProvider("none"), run, init_checkpoint=base, progress=False,
                         hooks=[track(run, rows)])
                rows[-1]["wall_s"] = time.perf_counter() - t0
                done.write_text(json.dumps(rows))
            results["runs"].setdefault(name, []).append(rows)
            tmp = out / "results.json.tmp"
            tmp.write_text(json.dumps(results, indent=2))
            tmp.replace(out / "results.json")

    steps = sorted({r["step"] for runs in results["runs"].values() for rows in runs for r in rows})
    print(f"\nSWD x 1e3 of {len(ref)} EMA samples against held-out faces (mean over seeds; base "
          f"{results['base_swd']:.1f}, floor {results['floor']:.1f})")
    print("| variant | seeds | " + " | ".join(f"step {s}" for s in steps) + " |")
    print("|---|---:|" + "---:|" * len(steps))
    for name, runs in results["runs"].items():
        cells = []
        for s in steps:
            vals = [r["swd"] for rows in runs for r in rows if r["step"] == s]
            cells.append(f"{np.mean(vals):.1f}" if vals else "")
        print(f"| {name} | {len(runs)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
