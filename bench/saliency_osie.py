"""Benchmark: M_saliency on 80 % of OSIE, evaluated on the held-out 20 %, with or without a pretrained backbone.

OSIE (Xu, Jiang, Wang, Kankanhalli, Zhao, "Predicting human gaze beyond pixels", Journal of Vision
2014): 700 natural images (800 x 600) with the fixations of 15 observers.  ``--backbone inception``
(the default) trains the readout on frozen TF-Inception taps (computed once per image and cached
under ``--cache``), ``--backbone none`` the U-Net from scratch.  The same as

    gazetune saliency train --images DATA/osie/stimuli --fixations DATA/osie/fixations.csv \
        --out OUT --size 80 --split 0.8 --seed 0 --threads 1 [--backbone none --epochs 24]
    gazetune saliency eval --checkpoint OUT --images DATA/osie/stimuli \
        --fixations DATA/osie/fixations.csv --json OUT/eval.json

Usage::

    nice python bench/saliency_osie.py --data ../shared/data [--backbone inception|none] [--out DIR] [--reuse]

Prints a Rich table (model, centre bias, leave-one-observer-out consistency) and the same as
Markdown, and the cost (CPU seconds of the taps and of the training); writes the checkpoint,
``config.toml`` and ``eval.json`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from rich.console import Console

import torch

from gazetune.saliency.cli import BACKBONE_DEFAULTS, BACKBONES, markdown_table, results_table, run_eval, run_train
from gazetune.saliency.model import read_checkpoint_info
from gazetune.saliency.train import SaliencyTrainConfig


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("GAZETUNE_SHARED_DATA", "../shared/data")))
    p.add_argument("--out", type=Path, default=None, help="default bench/out/saliency_osie_<backbone>")
    p.add_argument("--backbone", choices=BACKBONES, default="inception")
    p.add_argument("--size", type=int, default=80, help="working width (80 -> 80x60)")
    p.add_argument("--epochs", type=int, default=None, help="default: the CLI's for the backbone")
    p.add_argument("--loss", default=None, help="default: the CLI's for the backbone")
    p.add_argument("--lr", type=float, default=None, help="default: the CLI's for the backbone")
    p.add_argument("--feature-width", type=int, default=SaliencyTrainConfig.feature_width)
    p.add_argument("--readout", default=None, help="readout channels, e.g. 64,32 (default: the CLI's)")
    p.add_argument("--dropout", type=float, default=SaliencyTrainConfig.dropout, help="channel dropout on the taps")
    p.add_argument("--sigma-frac", type=float, default=0.03, help="target Gaussian sigma as a fraction of the working width")
    p.add_argument("--no-flip", action="store_true", help="no mirror augmentation (halves the tap computation)")
    p.add_argument("--cache", default=None, help="folder caching the Inception taps")
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
    out = args.out or Path(f"bench/out/saliency_osie_{args.backbone}")
    weights = out / "model.safetensors"
    if not (args.reuse and weights.exists()):
        epochs, loss, lr = BACKBONE_DEFAULTS[args.backbone]
        cfg = SaliencyTrainConfig(
            epochs=args.epochs or epochs, loss=args.loss or loss, lr=args.lr or lr, density=args.density, seed=args.seed,
            threads=args.threads, backbone=args.backbone, feature_width=args.feature_width, flip=not args.no_flip,
            dropout=args.dropout, **({"readout": [int(c) for c in args.readout.split(",")]} if args.readout else {}),
        )  # fmt: skip
        torch.set_num_threads(args.threads)
        t0 = time.process_time()
        weights, history = run_train(stimuli, fixations, out, size=args.size, sigma_frac=args.sigma_frac, split=0.8, eval_blur=args.blur, cfg=cfg, cache_dir=args.cache)
        info = read_checkpoint_info(weights)["extra"]
        console.print(
            f"trained in {time.process_time() - t0:.0f} CPU-s (wall: taps {info['taps_seconds']:.0f} s, "
            f"training {info['train_seconds'] - info['taps_seconds']:.0f} s), final loss {history['loss'][-1]:.4f}"
        )
    t0 = time.process_time()
    result = run_eval(weights, stimuli, fixations, subset="test", blur=args.blur, cache_dir=args.cache)
    console.print(f"evaluated in {time.process_time() - t0:.0f} CPU-s")
    args.out = out
    (args.out / "eval.json").write_text(json.dumps(result, indent=1, default=float))
    h, w = result["size"]
    console.print(results_table(result, f"OSIE, {len(result['images'])} held-out images at {w}x{h}; IG over centre bias in bits/fixation"))
    print(markdown_table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
