"""Benchmark: gaze guidance (seed 001) on held-out OSIE images, measured by independent saliency models.

OSIE (Xu, Jiang, Wang, Kankanhalli, Zhao, JoV 2014) is split once (seed ``--split-seed``) into
three disjoint parts of the 700 images: **A** trains the *optimised* saliency model (Inception
readout, seed 1), **B** trains the *judges* (an Inception readout with seed 2 and a U-Net without
backbone with seed 3), **C** is held out from all of them.  On the first ``--n`` images of C:

* the region is the least salient of nine boxes (40 % x 40 % of the image on a 3 x 3 grid) by
  the optimised model's own prediction, the hard case: drawing gaze to where it does not go;
* **per-image** guidance (``--steps`` Adam steps on the colour field) and, when ``--net-steps``
  > 0, the **feed-forward network** trained on part A with random regions;
* scores: probability mass in the region by each judge before and after (and by the optimised
  model, which is not evidence), PSNR at 800 x 600, and a **patch-realism score**: a fresh patch
  discriminator trained on half of the (original, guided) pairs, accuracy on the other half's
  patches (0.5: guided patches cannot be told from original ones).

Usage::

    nice python bench/guidance.py --data ../shared/data [--out bench/out/guidance] [--n 12] [--steps 30] [--net-steps 150]

Writes ``results.json`` and the guided PNGs under ``--out`` and prints the table as Markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from gazetune.gaze import read_fixation_table
from gazetune.guide.core import GuideConfig, guide_image, guide_with_net, in_region, load_image, load_judge, measure, save_image
from gazetune.guide.losses import PatchDiscriminator
from gazetune.guide.train import GuideTrainConfig, load_images_at, save_guide_net, train_guide_net
from gazetune.saliency.backbone import cached_taps, train_backbone_saliency
from gazetune.saliency.model import save_saliency_model
from gazetune.saliency.train import SaliencyTrainConfig, load_fixation_dataset, train_saliency

BOXES = [(0.3 * i, 0.3 * j, 0.4, 0.4) for j in range(3) for i in range(3)]


def split_three(names: list[str], seed: int, n_c: int) -> tuple[list[str], list[str], list[str]]:
    perm = np.random.default_rng(seed).permutation(len(names))
    c = sorted(names[i] for i in perm[:n_c])
    rest = [names[i] for i in perm[n_c:]]
    half = len(rest) // 2
    return sorted(rest[:half]), sorted(rest[half:]), c


def train_model(stimuli, table, names, out: Path, seed: int, backbone: str, feature_width: int, cache, size: int = 80) -> Path:
    weights = out / "model.safetensors"
    if weights.exists():
        return weights
    data = load_fixation_dataset(stimuli, table, width=size, names=names)
    t0 = time.process_time()
    if backbone == "inception":
        cfg = SaliencyTrainConfig(epochs=30, lr=4e-3, loss="kl+cc", seed=seed, backbone="inception", feature_width=feature_width, progress=False)
        taps = cached_taps([stimuli / n for n in names], cfg.taps, feature_width, cache_dir=cache, progress=False)
        model, _ = train_backbone_saliency(taps, data.maps, cfg)
        density = "softmax"
    else:
        cfg = SaliencyTrainConfig(epochs=24, seed=seed, progress=False)
        model, _ = train_saliency(data.images, data.maps, cfg)
        density = cfg.density
    extra = {"size": list(data.shape), "density": density, "backbone": backbone, "split": {"seed": seed, "train": names},
             "train_cpu_seconds": round(time.process_time() - t0, 1)}  # fmt: skip
    return save_saliency_model(model, weights, extra=extra)


def patch_realism(originals: list[torch.Tensor], guided: list[torch.Tensor], width: int, steps: int = 300, seed: int = 0) -> float:
    """Held-out patch accuracy of a fresh discriminator, original vs guided (0.5: indistinguishable)."""
    from gazetune.guide.core import resize_width

    real = torch.cat([resize_width(x, width) for x in originals])
    fake = torch.cat([resize_width(x, width) for x in guided])
    n = len(real) // 2
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        disc = PatchDiscriminator()
        opt = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
        for _ in range(steps):
            loss = torch.nn.functional.softplus(-disc(real[:n])).mean() + torch.nn.functional.softplus(disc(fake[:n])).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = 0.5 * ((disc(real[n:]) > 0).float().mean() + (disc(fake[n:]) < 0).float().mean())
    return float(acc)


def summarise(rows: list[dict], judge_names: list[str]) -> dict:
    out = {"n": len(rows), "psnr_mean": float(np.mean([r["psnr"] for r in rows])), "psnr_min": float(np.min([r["psnr"] for r in rows]))}
    for name in judge_names + ["optimised_model"]:
        get = (lambda r: r["optimised_model"]) if name == "optimised_model" else (lambda r, n=name: r["judges"][n])
        before = np.array([get(r)["before"] for r in rows])
        after = np.array([get(r)["after"] for r in rows])
        out[name] = {"before": float(before.mean()), "after": float(after.mean()), "ratio_mean": float(np.mean(after / before)),
                     "raised": int((after > before).sum())}  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path(os.environ.get("GAZETUNE_SHARED_DATA", "../shared/data")))
    p.add_argument("--out", type=Path, default=Path("bench/out/guidance"))
    p.add_argument("--cache", default=None, help="folder caching the Inception taps")
    p.add_argument("--n", type=int, default=12, help="held-out images guided")
    p.add_argument("--n-heldout", type=int, default=100, help="images in part C")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--strength", type=float, default=1.0)
    p.add_argument("--net-steps", type=int, default=150, help="training steps of the feed-forward network (0: skip)")
    p.add_argument("--feature-width", type=int, default=224)
    p.add_argument("--split-seed", type=int, default=7)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    stimuli, fixations = args.data / "osie" / "stimuli", args.data / "osie" / "fixations.csv"
    if not fixations.exists():
        print(f"OSIE not found under {args.data} (expected osie/fixations.csv); pass --data", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    table = read_fixation_table(fixations)
    names = sorted(n for n in table.images() if (stimuli / n).exists())
    part_a, part_b, part_c = split_three(names, args.split_seed, args.n_heldout)
    fw = args.feature_width
    t0 = time.process_time()
    opt_path = train_model(stimuli, table, part_a, args.out / "optimised", 1, "inception", fw, args.cache)
    judge_paths = {
        "inception judge": train_model(stimuli, table, part_b, args.out / "judge_inception", 2, "inception", fw, args.cache),
        "U-Net judge": train_model(stimuli, table, part_b, args.out / "judge_unet", 3, "none", fw, args.cache),
    }
    models_cpu = time.process_time() - t0
    opt = load_judge(opt_path, "optimised")
    judges = [load_judge(p, name) for name, p in judge_paths.items()]
    cfg = GuideConfig(steps=args.steps, strength=args.strength)

    net = None
    net_cpu = 0.0
    if args.net_steps > 0:
        t0 = time.process_time()
        x_train = load_images_at([stimuli / n for n in part_a], fw)
        net, _ = train_guide_net(x_train, opt.model, cfg, GuideTrainConfig(steps=args.net_steps, seed=1, progress=False))
        save_guide_net(net, args.out / "guide_net" / "guide_net.safetensors", extra={"images": part_a})
        net_cpu = time.process_time() - t0

    rows: dict[str, list[dict]] = {"per-image": [], "network": []}
    pairs: dict[str, list] = {"per-image": [], "network": []}
    originals = []
    seconds = {"per-image": 0.0, "network": 0.0}
    for name in part_c[: args.n]:
        x = load_image(stimuli / name)
        originals.append(x)
        with torch.no_grad():
            size = (60, 80)
            own = torch.softmax(opt.model(x, out_size=size).flatten(), 0).view(size)
        region = min(BOXES, key=lambda b: in_region(own, b))
        t0 = time.process_time()
        res = guide_image(x, opt.model, cfg, region=region)
        seconds["per-image"] += time.process_time() - t0
        save_image(res.image, args.out / "guided" / f"{Path(name).stem}_per_image.png")
        rows["per-image"].append({"image": name, "region": region, **measure(x, res.image, judges, region, optimised=opt.model)})
        pairs["per-image"].append(res.image)
        if net is not None:
            t0 = time.process_time()
            y = guide_with_net(x, net, opt.model, region)
            seconds["network"] += time.process_time() - t0
            save_image(y, args.out / "guided" / f"{Path(name).stem}_network.png")
            rows["network"].append({"image": name, "region": region, **measure(x, y, judges, region, optimised=opt.model)})
            pairs["network"].append(y)
        print(f"{name}: per-image {rows['per-image'][-1]['judges']}", flush=True)

    judge_names = [j.name for j in judges]
    summary = {}
    for mode in ("per-image", "network"):
        if rows[mode]:
            summary[mode] = summarise(rows[mode], judge_names)
            summary[mode]["patch_realism"] = patch_realism(originals, pairs[mode], fw)
            summary[mode]["cpu_seconds_per_image"] = seconds[mode] / len(rows[mode])
    result = {"args": {k: str(v) for k, v in vars(args).items()}, "models_cpu_seconds": models_cpu, "net_cpu_seconds": net_cpu,
              "parts": {"A": len(part_a), "B": len(part_b), "C": len(part_c)}, "summary": summary, "rows": rows}  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(result, indent=1, default=float))

    print("| guidance | measured by | in region before | after | after / before (mean) | raised | PSNR mean (min) dB | patch realism | CPU s / image |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode, s in summary.items():
        for name in judge_names + ["optimised_model"]:
            label = name if name != "optimised_model" else "optimised model (not evidence)"
            print(f"| {mode} | {label} | {s[name]['before']:.4f} | {s[name]['after']:.4f} | {s[name]['ratio_mean']:.2f} | "
                  f"{s[name]['raised']}/{s['n']} | {s['psnr_mean']:.1f} ({s['psnr_min']:.1f}) | {s['patch_realism']:.2f} | "
                  f"{s['cpu_seconds_per_image']:.1f} |")  # fmt: skip
    print(f"models {models_cpu:.0f} CPU-s, network training {net_cpu:.0f} CPU-s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
