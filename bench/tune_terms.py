"""Do seed 004's generator terms help?  Feature matching and a Gram style loss at equal steps.

From one base GAN (a ``bench/gan_quality.py`` run directory, ``--base``), tune on faces64 for
``--steps`` steps per arm and seed with the default recipe plus:

===========  ==================================================================
plain        no extra term (the control)
fm           D feature matching, weight ``--fm-weight`` (saliency-unweighted: no maps)
style        Gram style loss on Inception mixed_2 (75 px), weight ``--style-weight``
===========  ==================================================================

Scores from ``--n-eval`` samples against held-out faces (the split of ``bench/gan_quality.py``):
SWD (x 1e3) and KID (x 1e3).  The style arm reads the Inception network KID reads, so its KID is
not an independent measure: judge it by SWD.  Per arm: mean and the paired difference to
``plain`` with a 95 % t-interval over seeds.

    python bench/tune_terms.py --data ../shared/data --base bench/out/gan_quality/default
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--base", required=True, help="pretrained run directory (e.g. from bench/gan_quality.py)")
    ap.add_argument("--out", default="bench/out/tune_terms")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n-eval", type=int, default=200)
    ap.add_argument("--fm-weight", type=float, default=1.0)
    ap.add_argument("--style-weight", type=float, default=10.0)
    ap.add_argument("--arms", default="plain,fm,style")
    args = ap.parse_args()
    torch.set_num_threads(1)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from gan_quality import load_faces
    from gaze_mechanism import interval

    from gazetune.evaluate.distances import kernel_distance, swd
    from gazetune.evaluate.inception import inception_features
    from gazetune.stages import render
    from gazetune.tune.maps import MapProvider
    from gazetune.tune.terms import FeatureMatchingTerm, StyleTerm
    from gazetune.tune.train import TuneConfig, load_run_config, tune

    base_cfg = load_run_config(args.base)
    train, held = load_faces(args.data, base_cfg.size, base_cfg.channels, args.n_eval, base_cfg.seed)
    real_feats = inception_features(torch.as_tensor(held), batch_size=50)
    seeds = list(range(3_000_000, 3_000_000 + args.n_eval))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def scores(imgs):
        ff = inception_features(torch.as_tensor(imgs), batch_size=50)
        return {"swd": swd(held, imgs, seed=0).mean,
                "kid": 1e3 * kernel_distance(real_feats, ff, subset_size=min(100, len(ff) // 2), n_subsets=50)[0]}

    results = {"args": vars(args), "base": scores(render(args.base, seeds)), "arms": {}}
    print("base:", results["base"], flush=True)
    for arm in [a.strip() for a in args.arms.split(",") if a.strip()]:
        results["arms"][arm] = []
        for seed in range(args.seeds):
            run = out / f"{arm}_seed{seed}"
            if run.exists():
                import shutil

                shutil.rmtree(run)
            terms = {"plain": [], "fm": [FeatureMatchingTerm(args.fm_weight, alpha=0.0)],
                     "style": [StyleTerm(train, args.style_weight, alpha=0.0)]}[arm]
            cfg = TuneConfig(batch=base_cfg.batch, steps=args.steps, seed=seed, alpha=0.0, mode="none", log_every=10,
                             sample_every=0, checkpoint_every=args.steps, n_samples=64)
            tune(cfg, train, MapProvider("none"), run, init_checkpoint=args.base, progress=False, extra_generator_terms=terms)
            results["arms"][arm].append(scores(render(run, seeds)))
            print(arm, seed, results["arms"][arm][-1], flush=True)
    table = {}
    for arm, rows in results["arms"].items():
        table[arm] = {k: interval([r[k] for r in rows]) for k in ("swd", "kid")}
        if arm != "plain" and "plain" in results["arms"]:
            for k in ("swd", "kid"):
                table[arm][f"{k}_minus_plain"] = interval([a[k] - b[k] for a, b in zip(rows, results["arms"]["plain"])])
    results["table"] = table
    (out / "results.json").write_text(json.dumps(results, indent=2))
    fmt = lambda v: f"{v[0]:.2f} [{v[1]:.2f}, {v[2]:.2f}]"  # noqa: E731
    print(f"\nbase: SWD {results['base']['swd']:.2f}, KID x1e3 {results['base']['kid']:.2f}; {args.steps} steps, {args.seeds} seeds")
    print("| arm | SWD x1e3 | KID x1e3 | SWD - plain | KID - plain |")
    print("|---|---|---|---|---|")
    for arm, row in table.items():
        print(f"| {arm} | {fmt(row['swd'])} | {fmt(row['kid'])} | "
              + " | ".join(fmt(row[k]) if k in row else "-" for k in ("swd_minus_plain", "kid_minus_plain")) + " |")


if __name__ == "__main__":
    main()
