"""Does weighting the losses by maps repair a flaw where the maps point?  (The mechanism of FIG. 4.)

Setup:

1. **A base GAN with a known flaw.**  The training faces (``DATA/faces64``, resized to
   ``--size``) are damaged inside a region R (``--flaw-mask PNG``, white = R, any shape, resized to
   the image size; default: the eye band, rows 28-52 % of the height) by ``--flaw-kind``: ``blur``
   (Gaussian, sigma 1.5 px) or ``noise`` (Gaussian, sd 0.35).  The base GAN is pretrained on the
   damaged faces, so its samples carry the flaw in R.
2. **Tuning on the clean faces**, from that one base checkpoint, with four kinds of map at equal
   compute (same steps, batch, alpha, seeds ``0..--seeds-1``):

   ==========  ==============================================================================
   none        no maps (plain continuation: eq 9a/10a)
   on_R        maps that cover R (the mask blurred by 1 px), given to real and generated images
   off_R       the same maps rolled by half the image height: the same weights, wrong place
   inverted    ``1 - on_R``: weight everywhere but R
   ==========  ==============================================================================

   The maps reach the loss as ``M_saliency`` predictions (a constant "model" returning the map
   for every image, mode ``predicted``), with ``w = (1 - alpha) + alpha * SM / mean(SM)``.
   Variants of the method: ``--alpha``, ``--pixel-weight`` (per-pixel losses against the image
   level ones) and ``--weight-side d|g`` (only D's eq 10b or only G's eq 9b weighted).  The base
   and the arms share one EMA horizon (``--ema-half-life``, default 200 images), so the base's
   scores are comparable with the arms' (with the base at 2,000 and the arms at 200, "outside R"
   rose after tuning in every arm, an artefact of the horizon).
3. **Scores** along the tuning steps (every ``--eval-every``) against clean held-out faces, from
   ``--n-eval`` samples at fixed latent seeds: **region SWD** inside R and outside R (Laplacian
   pyramid patches drawn only where the region's mask is, x 1e3; lower = closer to real).

Verdict: per arm, the paired per-seed difference of inside-R SWD to ``none``, ``off_R`` and
``inverted`` at the last step, mean and 95 % t-interval.  "Maps on R repair R faster" holds when
``on_R`` beats all three with intervals below zero.

Output: a table on stdout and ``--json OUT`` (per arm, seed and step: both region scores; the
verdict).  ``--quick``: 2 seeds, short runs, for a smoke test.

Command used for docs/benchmarks.md (2 CPU cores)::

    python bench/gaze_mechanism.py --data ../shared/data --json bench/out/gaze_mechanism.json
"""

from __future__ import annotations

import argparse
import math
import json
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from scipy.stats import t as student_t
from torch import nn

ARMS = ("none", "on_R", "off_R", "inverted")


class ConstantMap(nn.Module):
    """A stand-in ``M_saliency`` that returns one fixed map for every image (logits of it)."""

    def __init__(self, sm: np.ndarray):
        super().__init__()
        m = np.clip(sm.astype(np.float32), 1e-3, 1 - 1e-3)
        self.register_buffer("logit", torch.as_tensor(np.log(m / (1 - m)))[None, None])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logit.expand(x.shape[0], 1, *self.logit.shape[-2:])


def region_mask(size: int, path: str | None) -> np.ndarray:
    """R as a float32 ``(size, size)`` mask in [0, 1] (1 = R)."""
    if path:
        from PIL import Image

        img = Image.open(path).convert("L").resize((size, size), Image.BILINEAR)
        m = np.asarray(img, dtype=np.float32) / 255.0
        if m.max() <= 0:
            sys.exit(f"gaze_mechanism: {path} has no white pixels: R would be empty")
        return m
    m = np.zeros((size, size), np.float32)
    m[int(round(0.28 * size)) : int(round(0.52 * size)), int(round(0.12 * size)) : int(round(0.88 * size))] = 1.0
    return m


def damage(images: np.ndarray, mask: np.ndarray, kind: str, seed: int) -> np.ndarray:
    if kind == "blur":
        bad = gaussian_filter(images, (0, 0, 1.5, 1.5), mode="reflect")
    elif kind == "noise":
        bad = images + np.random.default_rng(seed).normal(0, 0.35, images.shape).astype(np.float32)
    else:
        sys.exit(f"gaze_mechanism: unknown --flaw-kind {kind!r}; use blur or noise")
    return np.clip(mask * bad + (1 - mask) * images, -1, 1).astype(np.float32)


def interval(values: list[float]) -> tuple[float, float, float]:
    v = np.asarray(values, np.float64)
    if len(v) < 2:
        return float(v.mean()), float("nan"), float("nan")
    h = student_t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(v.mean() - h), float(v.mean() + h)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="shared data folder holding faces64/")
    ap.add_argument("--flaw-mask", default=None, help="PNG, white = R (default: the eye band)")
    ap.add_argument("--flaw-kind", default="blur", choices=["blur", "noise"])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--pretrain-steps", type=int, default=800)
    ap.add_argument("--tune-steps", type=int, default=100)
    ap.add_argument("--eval-steps", default="25,50,100",
                    help="comma-separated tuning steps at which both region scores are taken")
    ap.add_argument("--eval-every", type=int, default=None, help="(old) evaluate every N steps instead of --eval-steps")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--pixel-weight", type=float, default=1.0)
    ap.add_argument("--weight-side", default="both", choices=["both", "d", "g"],
                    help="which losses the maps weigh: both (eq 9b and 10b), d (eq 10b only) or g (eq 9b only)")
    ap.add_argument("--ema-half-life", type=float, default=200.0,
                    help="generator EMA half-life in images, of the base and of every arm (the same horizon, "
                         "so the base is comparable with the tuned arms)")
    ap.add_argument("--base", default=None,
                    help="reuse this pretrained base run (pretrained by this bench with the same flaw, size and "
                         "--ema-half-life) instead of OUT/base")
    ap.add_argument("--n-eval", type=int, default=300)
    ap.add_argument("--n-train", type=int, default=1500)
    ap.add_argument("--out", default="bench/out/gaze_mechanism")
    ap.add_argument("--json", default=None, help="write per-arm, per-seed, per-step scores and the verdict here")
    ap.add_argument("--arms", default=",".join(ARMS), help=f"comma-separated subset of {','.join(ARMS)}")
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if args.quick:
        args.pretrain_steps, args.tune_steps, args.eval_steps, args.seeds, args.n_eval, args.n_train = 200, 60, "30,60", 2, 150, 600
    if args.eval_every:
        args.eval_steps = ",".join(str(s) for s in range(args.eval_every, args.tune_steps + 1, args.eval_every))
    eval_steps = sorted({int(s) for s in str(args.eval_steps).split(",") if s.strip()} | {args.tune_steps})
    if eval_steps[0] < 1 or eval_steps[-1] > args.tune_steps:
        sys.exit(f"gaze_mechanism: --eval-steps {args.eval_steps} must lie in 1..--tune-steps ({args.tune_steps})")
    torch.set_num_threads(1)

    from gazetune.evaluate.distances import swd
    from gazetune.images import load_image_set
    from gazetune.stages import render
    from gazetune.tune.maps import MapProvider
    from gazetune.tune.train import TrainConfig, TuneConfig, pretrain, read_health, tune

    root = Path(args.data) / "faces64" / "images"
    if not root.is_dir():
        sys.exit(f"gaze_mechanism: {root} not found; pass --data pointing at the folder that holds faces64/")
    faces = load_image_set(root, size=args.size, channels=args.channels).images
    order = np.random.default_rng(0).permutation(len(faces))
    held = faces[order[: args.n_eval]]
    train = faces[order[args.n_eval : args.n_eval + args.n_train]]
    mask = region_mask(args.size, args.flaw_mask)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    damaged = damage(train, mask, args.flaw_kind, seed=1)
    common = dict(size=args.size, channels=args.channels, batch=32, g_width=16, d_width=16, log_every=10,
                  sample_every=0, n_samples=64, pixel_weight=args.pixel_weight, ema_half_life=args.ema_half_life)
    base = Path(args.base) if args.base else out / "base"
    if args.base and not (base / "checkpoint.safetensors").exists():
        sys.exit(f"gaze_mechanism: --base {args.base} holds no checkpoint.safetensors")
    if not (base / "checkpoint.safetensors").exists():
        print(f"pretraining the base GAN on faces damaged in R ({args.flaw_kind}), {args.pretrain_steps} steps")
        pretrain(TrainConfig(**common, steps=args.pretrain_steps, checkpoint_every=args.pretrain_steps), damaged, base)
    on_r = np.clip(gaussian_filter(mask, 1.0), 0, 1)
    maps = {"on_R": on_r, "off_R": np.roll(on_r, args.size // 2, axis=0), "inverted": 1.0 - on_r}
    eval_seeds = list(range(2_000_000, 2_000_000 + args.n_eval))
    inside, outside = mask[None], (1.0 - mask)[None]

    def region_scores(imgs: np.ndarray) -> dict:
        n = len(imgs)
        return {"swd_in_R": swd(held, imgs, real_maps=np.repeat(inside, len(held), 0), fake_maps=np.repeat(inside, n, 0), seed=0).mean,
                "swd_out_R": swd(held, imgs, real_maps=np.repeat(outside, len(held), 0), fake_maps=np.repeat(outside, n, 0), seed=0).mean}

    results = {"args": vars(args), "base": {"scores": region_scores(render(base, eval_seeds)),
                                            "health": read_health(base)},
               "clean_train_vs_heldout": region_scores(train[: args.n_eval]), "arms": {}}
    print("base:", results["base"]["scores"], "| floor (clean training faces):", results["clean_train_vs_heldout"])
    chosen = [a.strip() for a in args.arms.split(",") if a.strip()]
    bad = [a for a in chosen if a not in ARMS]
    if bad:
        sys.exit(f"gaze_mechanism: unknown arm(s) {bad}; choose from {list(ARMS)}")
    for arm in [a for a in ARMS if a in chosen]:
        results["arms"][arm] = {}
        for seed in range(args.seeds):
            run = out / f"{arm}_seed{seed}"
            rows: list[dict] = []

            def evaluate(step: int, _stats: dict, run=run, rows=rows) -> None:
                if step in eval_steps:
                    rows.append({"step": step, **region_scores(render(run, eval_seeds))})

            if arm == "none":
                provider, alpha, mode = MapProvider("none"), 0.0, "none"
            else:
                provider = MapProvider("predicted", saliency_model=ConstantMap(maps[arm]))
                alpha, mode = args.alpha, "predicted"
            cfg = TuneConfig(**common, steps=args.tune_steps, seed=seed, alpha=alpha, mode=mode,
                             checkpoint_every=math.gcd(*eval_steps),
                             weight_side=args.weight_side if arm != "none" else "both")
            done = run / "evals.json"  # a finished run of these settings is reused on restart
            key = {"eval_steps": eval_steps, "cfg": {k: v for k, v in vars(cfg).items() if not k.startswith("_")}}
            if done.exists() and json.loads(done.read_text()).get("key") == json.loads(json.dumps(key, default=str)):
                rows[:] = json.loads(done.read_text())["evals"]
            else:
                if run.exists():
                    import shutil

                    shutil.rmtree(run)
                tune(cfg, train, provider, run, init_checkpoint=base, progress=False, hooks=[evaluate])
                done.write_text(json.dumps({"key": key, "evals": rows}, default=str))
            results["arms"][arm][seed] = {"evals": rows, "healthy": read_health(run)["healthy"]}
            print(f"{arm} seed {seed}: " + "; ".join(f"step {r['step']}: in R {r['swd_in_R']:.1f}, out {r['swd_out_R']:.1f}" for r in rows), flush=True)

    arms = [a for a in ARMS if a in results["arms"]]
    # Primary score: inside-R SWD averaged over the evaluation steps (the area under the repair
    # curve: "repairs faster" = lower area); secondary: inside-R SWD at the last step.
    score = {arm: {"area_in_R": [float(np.mean([e["swd_in_R"] for e in results["arms"][arm][s]["evals"]])) for s in range(args.seeds)],
                   "last_in_R": [results["arms"][arm][s]["evals"][-1]["swd_in_R"] for s in range(args.seeds)],
                   # inside minus outside R: the flaw's own share, free of the whole image's swings
                   "area_gap": [float(np.mean([e["swd_in_R"] - e["swd_out_R"] for e in results["arms"][arm][s]["evals"]]))
                                for s in range(args.seeds)],
                   "last_out_R": [results["arms"][arm][s]["evals"][-1]["swd_out_R"] for s in range(args.seeds)]}
             for arm in arms}
    table = {}
    for arm in arms:
        row = {k: interval(v) for k, v in score[arm].items()}
        for ctrl in arms:
            if ctrl != arm:
                for k in ("area_in_R", "last_in_R", "area_gap"):
                    row[f"{k}_minus_{ctrl}"] = interval([a - b for a, b in zip(score[arm][k], score[ctrl][k])])
        table[arm] = row
    controls = [c for c in ("none", "off_R", "inverted") if c in arms]
    repaired = "on_R" in arms and bool(controls) and all(table["on_R"][f"area_in_R_minus_{c}"][2] < 0 for c in controls)
    results["table"] = table
    results["verdict"] = (f"maps on R repair R faster than {', '.join(controls)} (95 % CI of the paired area difference below 0)"
                          if repaired else f"maps on R do NOT repair R faster than all of {', '.join(controls)} (95 % CI)")
    print(f"\nregion SWD x1e3, mean [95 % CI] over {args.seeds} seeds; area = mean over steps {eval_steps} "
          f"(base: in R {results['base']['scores']['swd_in_R']:.1f}, out {results['base']['scores']['swd_out_R']:.1f})")
    print("| arm | in R, area | in R, last step | outside R, last step | in R - outside, area | area: arm - none | arm - off_R | arm - inverted | gap area: arm - none | arm - off_R | arm - inverted |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    fmt = lambda v: f"{v[0]:.1f} [{v[1]:.1f}, {v[2]:.1f}]"  # noqa: E731
    for arm, row in table.items():
        cells = [fmt(row[k]) if k in row else "-" for k in ("area_in_R_minus_none", "area_in_R_minus_off_R", "area_in_R_minus_inverted",
                                                             "area_gap_minus_none", "area_gap_minus_off_R", "area_gap_minus_inverted")]
        print(f"| {arm} | {fmt(row['area_in_R'])} | {fmt(row['last_in_R'])} | {fmt(row['last_out_R'])} | {fmt(row['area_gap'])} | "
              + " | ".join(cells) + " |")
    print("\nper step, mean over seeds (in R / outside R):")
    for arm in arms:
        steps = [e["step"] for e in results["arms"][arm][0]["evals"]]
        cells = []
        for i, st in enumerate(steps):
            vi = np.mean([results["arms"][arm][s]["evals"][i]["swd_in_R"] for s in range(args.seeds)])
            vo = np.mean([results["arms"][arm][s]["evals"][i]["swd_out_R"] for s in range(args.seeds)])
            cells.append(f"{st}: {vi:.1f} / {vo:.1f}")
        print(f"  {arm}: " + "; ".join(cells))
    print("verdict:", results["verdict"])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2, default=float))


if __name__ == "__main__":
    main()
