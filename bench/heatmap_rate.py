"""How many fixation heatmaps per second ``gazetune.gaze.heatmap`` makes (eq 3, ¶80).

Prints a Markdown table: maps per wall second and per CPU second for 64x64 and 800x600 maps, with synthetic
scanpaths of ``--fixations`` fixations each and, when ``--data`` points at the shared data folder
(``osie/fixations.csv``), with OSIE's real scanpaths (one observer per map) and pooled maps
(all 15 observers of an image per map, ``pooled_heatmap``).  Each cell runs for about
``--seconds`` seconds of wall time on one process; NumPy's BLAS threads are whatever the
environment sets (``OMP_NUM_THREADS``).

Usage::

    python bench/heatmap_rate.py [--data ../shared/data] [--seconds 1.0] [--fixations 15]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import numpy as np

from gazetune.gaze import ScreenGeometry, heatmap, pooled_heatmap, read_fixation_table


def rate(fn, items: list, seconds: float) -> tuple[float, float]:
    """Call ``fn`` on ``items`` round-robin for about ``seconds`` of wall time.

    Returns ``(maps per wall second, maps per CPU second of this process)``: on a shared machine
    the second is the steadier number.
    """
    fn(items[0])  # warm-up
    n = 0
    start, cpu0 = time.perf_counter(), time.process_time()
    while True:
        fn(items[n % len(items)])
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds and n >= 3:
            return n / elapsed, n / max(time.process_time() - cpu0, 1e-9)


def synthetic(n_maps: int, n_fix: int, width: int, height: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        np.stack([rng.uniform(0, width, n_fix), rng.uniform(0, height, n_fix), rng.uniform(80, 600, n_fix)], axis=1)
        for _ in range(n_maps)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=os.environ.get("GAZETUNE_SHARED_DATA"), help="shared data folder")
    ap.add_argument("--seconds", type=float, default=1.0, help="wall time per cell")
    ap.add_argument("--fixations", type=int, default=15, help="fixations per synthetic map")
    args = ap.parse_args()

    g = ScreenGeometry()
    sizes = {"64x64": (64, 64), "800x600": (800, 600)}
    # sigma = 1 degree: 800x600 shown 1:1, 64x64 shown 256 px wide (the gaze package's defaults)
    sigmas = {"64x64": g.image_px_per_deg((64, 64), (256, 256)), "800x600": g.image_px_per_deg((800, 600))}
    rows: list[tuple[str, str, str, float, float]] = []  # what, size, sigma, maps/s wall, maps/s CPU
    for label, (w, h) in sizes.items():
        items = synthetic(64, args.fixations, w, h)
        r = rate(lambda f: heatmap(f, (h, w), sigmas[label]), items, args.seconds)
        rows.append((f"synthetic, {args.fixations} fixations", label, f"{sigmas[label]:.1f}", *r))

    if args.data is not None and (Path(args.data) / "osie" / "fixations.csv").exists():
        table = read_fixation_table(Path(args.data) / "osie" / "fixations.csv")
        per_obs = [f for img in table.images() for f in table.for_image(img).values()]
        per_img = [list(table.for_image(img).values()) for img in table.images()]
        mean_obs = np.mean([len(f) for f in per_obs])
        mean_img = np.mean([sum(len(f) for f in obs) for obs in per_img])
        for label, (w, h) in sizes.items():
            sx, sy = w / 800, h / 600  # OSIE coordinates are 800x600 image pixels
            scale = np.array([sx, sy, 1.0])
            obs_items = [f * scale for f in per_obs[:500]]
            img_items = [[f * scale for f in obs] for obs in per_img[:100]]
            s = sigmas[label]
            r = rate(lambda f: heatmap(f, (h, w), s), obs_items, args.seconds)
            rows.append((f"OSIE one observer (mean {mean_obs:.1f} fix.)", label, f"{s:.1f}", *r))
            r = rate(lambda obs: pooled_heatmap(obs, (h, w), s), img_items, args.seconds)
            rows.append((f"OSIE pooled, 15 observers (mean {mean_img:.0f} fix.)", label, f"{s:.1f}", *r))
    elif args.data is not None:
        print(f"(no osie/fixations.csv under {args.data}: real-data rows skipped)\n")

    print(f"heatmap rate on {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s), numpy {np.__version__}\n")
    print("| fixations per map | map size | sigma (px) | maps/s (wall) | maps/CPU-s | CPU ms/map |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for what, size, sigma, wall, cpu in rows:
        print(f"| {what} | {size} | {sigma} | {wall:,.0f} | {cpu:,.0f} | {1000 / cpu:.3f} |")


if __name__ == "__main__":
    main()
