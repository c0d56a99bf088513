"""Benchmark: M_saliency trained from scratch on 80 % of OSIE, evaluated on the held-out 20 %.

OSIE (Xu, Jiang, Wang, Kankanhalli, Zhao, "Predicting human gaze beyond pixels", Journal of Vision
2014): 700 natural images (800 x 600) with the fixations of 15 observers.  The same as

    gazetune saliency train --images DATA/osie/stimuli --fixations DATA/osie/fixations.csv \
        --out OUT/model.safetensors --size 80 --epochs 24 --split 0.8 --seed 0 --threads 1
    gazetune saliency eval --checkpoint OUT/model.safetensors --images DATA/osie/stimuli \
        --fixations DATA/osie/fixations.csv --json OUT/eval.json

Usage::

    nice python bench/saliency_osie.py --data ../shared/data [--out bench/out/saliency_osie] [--reuse]

Prints a Rich table (model, centre bias, leave-one-observer-out consistency) and the same as
Markdown; writes the checkpoint, ``config.toml`` and ``eval.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console

from gazetune.saliency.cli import markdown_table, results_table, run_eval, run_train
from gazetune.saliency.train import SaliencyTrainConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("GAZETUNE_SHARED_DATA", "../shared/data")))
    p.add_argument("--out", type=Path, default=Path("bench/out/saliency_osie"))
    p.add_argument("--size", type=int, default=80, help="working width (80 -> 80x60)")
    p.add_argument("--epochs", type=int, default=24)
    p.add_argument("--loss", default=SaliencyTrainConfig.loss)
    p.add_argument("--density", default=SaliencyTrainConfig.density)
    p.add_argument("--blur", type=float, default=0.0, help="blur of the predictions at evaluation (pixels)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reuse", action="store_true", help="evaluate an existing checkpoint under --out")
    args = p.parse_args(argv)

    stimuli, fixations = args.data / "osie" / "stimuli", args.data / "osie" / "fixations.csv"
    if not fixations.exists():
        print(f"OSIE not found under {args.data} (expected osie/fixations.csv); pass --data", file=sys.stderr)
        return 2
    console = Console()
    weights = args.out / "model.safetensors"
    if not (args.reuse and weights.exists()):
        cfg = SaliencyTrainConfig(epochs=args.epochs, loss=args.loss, density=args.density, seed=args.seed, threads=args.threads)
        t0 = time.process_time()
        weights, history = run_train(stimuli, fixations, args.out, size=args.size, split=0.8, eval_blur=args.blur, cfg=cfg)
        console.print(f"trained in {time.process_time() - t0:.0f} CPU-s, final loss {history['loss'][-1]:.4f}")
    result = run_eval(weights, stimuli, fixations, subset="test", blur=args.blur)
    (args.out / "eval.json").write_text(json.dumps(result, indent=1, default=float))
    h, w = result["size"]
    console.print(results_table(result, f"OSIE, {len(result['images'])} held-out images at {w}x{h}; IG over centre bias in bits/fixation"))
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
