"""Direct, hybrid, predicted and no maps, tuned from one finished demo run (issue 9 item 5).

Reads a ``gazetune demo --out DIR`` folder (its ``pretrain`` run, ``maps.npz`` and
``saliency_model.safetensors``) and tunes the base GAN for ``--steps`` steps in each map mode with
the demo's tuning settings (alpha 1; ``none`` with alpha 0 is the control).  Prints, per mode, the
run's health summary (last-window D accuracy, logit gap, healthy) and SWD x 1e3 of ``--n-eval``
samples against the built-in faces.

    .venv/bin/python bench/map_modes.py --demo demo_out --out bench/out/map_modes --seeds 1
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--demo", required=True, help="a finished `gazetune demo` output folder")
    ap.add_argument("--out", default="bench/out/map_modes")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--n-eval", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)

    from gazetune.demo import checkpoint_version
    from gazetune.evaluate.distances import swd
    from gazetune.images import load_image_set
    from gazetune.saliency.model import load_saliency_model
    from gazetune.stages import render
    from gazetune.tune.maps import MapProvider, MapSet
    from gazetune.tune.train import TuneConfig, read_health, tune

    demo, out = Path(args.demo), Path(args.out)
    need = [demo / "pretrain" / "checkpoint.safetensors", demo / "maps.npz", demo / "saliency_model.safetensors"]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        sys.exit(f"map_modes: {', '.join(missing)} not found; pass --demo pointing at a finished `gazetune demo` folder")
    faces = load_image_set("builtin:faces", size=32, channels=1)
    maps, sal = MapSet.load(demo / "maps.npz"), load_saliency_model(demo / "saliency_model.safetensors")
    version = checkpoint_version(demo / "pretrain")
    eval_seeds = list(range(100_000, 100_000 + args.n_eval))
    modes = (("none", 0.0), ("direct", 0.0), ("hybrid", 0.0), ("hybrid", 0.25), ("predicted", 0.0))
    results: dict[str, dict] = {}
    for seed in range(1, args.seeds + 1):
        for mode, share in modes:
            name = f"{mode}{share:g}_s{seed}" if mode == "hybrid" else f"{mode}_s{seed}"
            kw: dict = {} if mode == "none" else dict(maps=maps, saliency_model=sal, generator_version=version)
            if mode == "hybrid":
                kw["observed_share"] = share
            if mode == "predicted":
                kw.pop("maps")
            cfg = TuneConfig(batch=32, steps=args.steps, seed=seed, alpha=0.0 if mode == "none" else 1.0, mode=mode,
                             min_observed=32, log_every=5, sample_every=0, checkpoint_every=args.steps, n_samples=16,
                             ema_half_life=200.0)
            t0 = time.perf_counter()
            if not (out / name / "health.json").exists():
                tune(cfg, faces.images, MapProvider(mode, **kw), out / name, init_checkpoint=demo / "pretrain",
                     names=faces.names, progress=False)
            h = read_health(out / name)
            results[name] = {"acc": h["last_window_acc"], "gap": h["last_window_logit_gap"], "healthy": h["healthy"],
                             "swd": swd(faces.images, render(out / name, eval_seeds), seed=0).mean,
                             "wall_s": time.perf_counter() - t0}
            r = results[name]
            print(f"| {name} | {r['acc']:.2f} | {r['gap']:+.2f} | {'healthy' if r['healthy'] else 'WARNING'} | {r['swd']:.1f} |",
                  flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
