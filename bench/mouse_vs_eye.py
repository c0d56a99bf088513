"""Benchmark: how well do mouse-tracking maps stand in for eye tracking?  (OSIE, issue 5 item 3)

OSIE (Xu, Jiang, Wang, Kankanhalli, Zhao, "Predicting human gaze beyond pixels", Journal of Vision
2014) has, for its 700 images (800 x 600), the eye fixations of 15 observers and mouse traces
recorded in the lab and crowdsourced (the SALICON protocol: Jiang, Huang, Duan, Zhao, "SALICON:
Saliency in Context", CVPR 2015).  For every image we build

* **eye, leave-one-observer-out**: the pooled map of the other eye observers (the inter-observer
  ceiling: how well people predict one more person);
* **mouse lab / mouse AMT**: the pooled map of all mouse traces (every sample a point, each
  participant's map a density before pooling; the first sample of each trace is dropped: the
  interface puts the cursor there);
* **centre bias**: a Gaussian at the centre (sigma = a quarter of the image side), the floor;

and score each map against every eye observer's fixations, one held-out observer at a time, so
all rows are on the same footing: NSS and shuffled AUC at the observer's fixations (negatives:
fixations from other images), CC against the observer's own fixation map.  ``CC vs all eyes`` is
the CC with the pooled map of all eye observers (not available for the leave-one-out row).
Maps are computed at a working width (default 200 px: 200 x 150) with Gaussians of ``sigma`` =
0.03 x the width (about one degree of visual angle); fixations count once each (no duration
weights), as in the usual saliency benchmarks and in :func:`gazetune.saliency.baselines.leave_one_out_maps`.

Usage::

    nice python bench/mouse_vs_eye.py --data ../shared/data [--images 700] [--width 200] [--json OUT]

Prints a table (mean and 95% CI over images) and the same as Markdown.  For reference, SALICON
reports shuffled AUC 0.86 for mouse maps vs 0.89 for eye tracking on OSIE (their own sAUC protocol).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
from rich.console import Console
from rich.table import Table

from gazetune.gaze.fixation_table import read_fixation_table
from gazetune.gaze.heatmap import pooled_heatmap
from gazetune.saliency.baselines import leave_one_out_maps
from gazetune.saliency.metrics import cc, nss, shuffled_auc

OSIE_SIZE = (600, 800)  # H, W of every OSIE stimulus
ROWS = ("eye, leave-one-observer-out", "mouse lab", "mouse AMT", "centre bias")


def read_mouse(path: Path, images: set[str]) -> dict[str, list[np.ndarray]]:
    """``{image: [ (n, 2) x, y per participant ]}`` from a mouse CSV (``image, subject, order, x, y``),
    in trace order, first sample of each trace dropped."""
    df = (pl.read_csv(path, columns=["image", "subject", "order", "x", "y"])
          .filter(pl.col("image").is_in(sorted(images)))
          .sort(["image", "subject", "order"]))
    out: dict[str, list[np.ndarray]] = {}
    for (image, _), part in df.group_by(["image", "subject"], maintain_order=True):
        xy = part.select("x", "y").to_numpy().astype(np.float64)[1:]
        if len(xy):
            out.setdefault(str(image), []).append(xy)
    return out


def _to_work(xy: np.ndarray, scale: float, shape: tuple[int, int]) -> np.ndarray:
    """Image pixels -> working pixels, clipped inside the map."""
    w = np.asarray(xy, dtype=np.float64).copy()
    w[:, :2] *= scale
    w[:, 0] = np.clip(w[:, 0], 0, shape[1] - 1)
    w[:, 1] = np.clip(w[:, 1], 0, shape[0] - 1)
    return w


def _mean_ci(values: list[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return float(v.mean()), float(1.96 * v.std(ddof=1) / np.sqrt(len(v))) if len(v) > 1 else float("nan")


def run(data: Path, n_images: int, width: int, n_negatives: int, seed: int, progress=None) -> dict:
    osie = data / "osie"
    table = read_fixation_table(osie / "fixations.csv")
    names = table.images()[:n_images] if n_images else table.images()
    scale = width / OSIE_SIZE[1]
    shape = (int(round(OSIE_SIZE[0] * scale)), width)
    sigma = 0.03 * width
    mouse = {"mouse lab": read_mouse(osie / "mouse_lab.csv.gz", set(names)),
             "mouse AMT": read_mouse(osie / "mouse_amt.csv.gz", set(names))}
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    centre = np.exp(-0.5 * (((xx - (shape[1] - 1) / 2) / (shape[1] / 4)) ** 2 + ((yy - (shape[0] - 1) / 2) / (shape[0] / 4)) ** 2))
    # negatives for shuffled AUC: fixations of all other images
    all_fix = {im: _to_work(table.all_fixations(im)[:, :2], scale, shape) for im in table.images()}
    rng = np.random.default_rng(seed)
    scores = {r: {"cc": [], "nss": [], "sauc": [], "cc_all": []} for r in ROWS}
    counts = {k: [] for k in mouse}
    for k, image in enumerate(names):
        subjects = {s: _to_work(f, scale, shape) for s, f in table.for_image(image).items() if len(f)}
        others = np.concatenate([all_fix[o] for o in table.images() if o != image])
        negatives = others[rng.choice(len(others), min(n_negatives, len(others)), replace=False)]
        eye_all = pooled_heatmap([f[:, :2] for f in subjects.values()], shape, sigma, "sum")
        maps = {"centre bias": centre}
        for name, per_image in mouse.items():
            traces = [_to_work(t, scale, shape) for t in per_image.get(image, [])]
            counts[name].append(len(traces))
            maps[name] = pooled_heatmap(traces, shape, sigma, "sum") if traces else None
        per_obs = {r: {"cc": [], "nss": [], "sauc": []} for r in ROWS}
        loo = leave_one_out_maps({s: f[:, :2] for s, f in subjects.items()}, shape, sigma, prior_weight=0.0)
        for _, others_map, held, own in loo:
            for r in ROWS:
                m = others_map if r == ROWS[0] else maps[r]
                if m is None:
                    continue
                per_obs[r]["cc"].append(cc(m, own))
                per_obs[r]["nss"].append(nss(m, held))
                per_obs[r]["sauc"].append(shuffled_auc(m, held, negatives))
        for r in ROWS:
            for metric, vals in per_obs[r].items():
                if vals:
                    scores[r][metric].append(float(np.mean(vals)))
            if r != ROWS[0] and maps[r] is not None:
                scores[r]["cc_all"].append(cc(maps[r], eye_all))
        if progress:
            progress(k + 1, len(names))
    summary = {r: {m: _mean_ci(v) for m, v in d.items() if v} for r, d in scores.items()}
    return {"images": len(names), "working_shape": list(shape), "sigma_px": sigma, "n_negatives": n_negatives,
            "mouse_participants_per_image": {k: float(np.mean(v)) for k, v in counts.items()},
            "eye_observers_per_image": float(np.mean([len(table.for_image(im)) for im in names])),
            "summary": summary}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("GAZETUNE_SHARED_DATA", "../shared/data")))
    p.add_argument("--images", type=int, default=0, help="first N images in name order (0 = all 700)")
    p.add_argument("--width", type=int, default=200, help="working width in pixels (height follows 4:3)")
    p.add_argument("--negatives", type=int, default=2000, help="other-image fixations per image for sAUC")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if not (args.data / "osie" / "fixations.csv").exists():
        print(f"OSIE not found under {args.data} (expected osie/fixations.csv); pass --data", file=sys.stderr)
        return 2
    console = Console()
    t0 = time.perf_counter()
    with console.status("scoring maps") as status:
        res = run(args.data, args.images, args.width, args.negatives, args.seed,
                  progress=lambda k, n: status.update(f"scoring maps: image {k}/{n}"))
    res["seconds"] = time.perf_counter() - t0
    cols = (("cc", "CC"), ("nss", "NSS"), ("sauc", "sAUC"), ("cc_all", "CC vs all eyes"))
    t = Table(title=f"OSIE, {res['images']} images: maps vs held-out eye observers (mean ± 95% CI over images)")
    t.add_column("map")
    for _, label in cols:
        t.add_column(label, justify="right")
    md = ["| map | " + " | ".join(label for _, label in cols) + " |", "|---|" + "---:|" * len(cols)]
    for r, d in res["summary"].items():
        cells = [f"{d[m][0]:.3f} ± {d[m][1]:.3f}" if m in d else "–" for m, _ in cols]
        t.add_row(r, *cells)
        md.append(f"| {r} | " + " | ".join(cells) + " |")
    console.print(t)
    console.print(f"eye observers/image {res['eye_observers_per_image']:.1f}; mouse participants/image "
                  + ", ".join(f"{k} {v:.1f}" for k, v in res["mouse_participants_per_image"].items())
                  + f"; working {res['working_shape'][1]}x{res['working_shape'][0]} px, sigma {res['sigma_px']:.1f} px; "
                  f"{res['seconds']:.0f} s")
    print("\n".join(md))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
