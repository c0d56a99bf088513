"""Does a gaze-weighted refiner make a generator's saved outputs more realistic? (issue 10, part 5)

The "generator" is one whose outputs we can only take as files: real faces64 crops (EyeCrowd,
Jiang et al. ECCV 2014) damaged by a typical generator flaw (``--flaw``: a Gaussian blur that
loses fine detail plus additive pixel noise), written as PNGs.  Because each damaged image has a
clean original, the table can also say how far refinement moves it back toward the truth.

Split by source photo (no person in two sets): ``--n-real`` real training images for the
refiner's discriminator, ``--n-fake`` images damaged into the "generated" folder, ``--n-eval``
held-out real images that every set is scored against.  The gaze maps are the real eye
fixations of 16 observers on each crop (``face_fixations.csv``, sigma ``--sigma`` px), pooled per
image into a map set (``gazetune gan map-set`` format) whose names are the file names.

Arms, each trained and applied through the command line on the saved files:

* ``maps``    -- ``gazetune refine train --maps MAPS.npz`` (eq 9b/10b patch weights, a = ``--alpha``)
* ``no maps`` -- the same without maps (plain SimGAN): the control.

Scores against the held-out real set (lower is better except realism):

* SWD (x 1e3, Laplacian-pyramid patches; :func:`gazetune.evaluate.distances.swd`) over the whole
  image and its salient variant (patches drawn where the pooled real gaze map of faces64 puts its mass);
* KID (x 1e3, TF-Inception; the ``fid`` extra) of whole images and of salient crops (half side);
* the core issue's judge (:func:`gazetune.stages.fit_judge`, a
  :class:`~gazetune.observers.judge.RealismJudge`): learnt on half of the refiner's real training
  images against *damaged copies of the other half* (the same flaw, another noise draw; never the
  images it scores), its threshold calibrated on that other half.  It knows the flaw's kind, so it
  measures whether the flaw is still there, not general realism.  Per set: ``called real`` (the
  observers' mean P(real) = sigmoid(gain (score - threshold))), the same weighted by each image's
  gaze map, and ``judge AUC`` of held-out real faces against the set (0.5 = it cannot tell them
  apart; the verdict on a refiner counts only where the AUC against the input is >= 0.7);
* ``|R(x) - x|``: mean absolute change from the input (8-bit levels), over the image and
  gaze-weighted; ``PSNR clean``: PSNR in dB against the undamaged originals.

    nice -n 10 .venv/bin/python bench/refine.py --data ../shared/data --out bench/out/refine
    nice -n 10 .venv/bin/python bench/refine.py --data ../shared/data --quick   # a smoke run
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def split_faces(root: Path, n_real: int, n_fake: int, n_eval: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """Three disjoint lists of crop file names, split by source photo."""
    by_photo: dict[str, list[str]] = {}
    with (root / "faces.csv").open(newline="") as fh:
        for row in csv.DictReader(fh):
            by_photo.setdefault(row["source_image"], []).append(row["file"])
    photos = sorted(by_photo)
    order = np.random.default_rng(seed).permutation(len(photos))
    sets: list[list[str]] = [[], [], []]
    wants = (n_real, n_fake, n_eval)
    k = 0
    for i in order:
        while k < 3 and len(sets[k]) >= wants[k]:
            k += 1
        if k == 3:
            break
        sets[k].extend(by_photo[photos[i]])
    if any(len(s) < w for s, w in zip(sets, wants)):
        raise SystemExit(f"faces64 has too few images for {wants}; got {[len(s) for s in sets]}")
    return sets[0][:n_real], sets[1][:n_fake], sets[2][:n_eval]


def _blur(x, sigma: float):
    import torch
    from torch.nn import functional as F

    r = max(1, int(round(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def make_flawed(images: np.ndarray, blur: float, noise: float, seed: int) -> np.ndarray:
    import torch

    x = torch.from_numpy(images)
    if blur > 0:
        x = _blur(x, blur)
    g = torch.Generator().manual_seed(seed)
    x = x + noise * torch.randn(x.shape, generator=g)
    return x.clamp(-1, 1).numpy()


def maps_for(root: Path, names: list[str], size: int, sigma: float) -> dict[str, np.ndarray]:
    """Pooled fixation maps (max 1) of the named crops, in ``size`` px."""
    from gazetune.gaze.fixation_table import read_fixation_table
    from gazetune.gaze.heatmap import pooled_heatmap

    table = read_fixation_table(root / "face_fixations.csv")
    scale = size / 64.0
    out = {}
    for name in names:
        per_obs = [np.array(f, dtype=np.float64) for f in table.for_image(name).values()]
        for f in per_obs:
            f[:, :2] *= scale
        out[name] = pooled_heatmap(per_obs, (size, size), sigma * scale, normalize="max")
    return out


def run_cli(args: list[str], log) -> float:
    t0 = time.perf_counter()
    exe = Path(sys.executable).parent / "gazetune"
    res = subprocess.run([str(exe), *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"gazetune {' '.join(args)} failed:\n{res.stdout}\n{res.stderr}")
    log(f"$ gazetune {' '.join(args)}\n{res.stdout.strip()}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.environ.get("GAZETUNE_SHARED_DATA", "../shared/data"))
    ap.add_argument("--out", default="bench/out/refine")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--n-real", type=int, default=1000)
    ap.add_argument("--n-fake", type=int, default=500)
    ap.add_argument("--n-eval", type=int, default=500)
    ap.add_argument("--blur", type=float, default=1.0, help="flaw: Gaussian blur sigma in px (at 64 px)")
    ap.add_argument("--noise", type=float, default=0.06, help="flaw: pixel noise std in [-1, 1] units")
    ap.add_argument("--sigma", type=float, default=4.0, help="gaze map sigma in px at 64 px")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--reg-weight", type=float, default=1.0)
    ap.add_argument("--width", type=int, default=16, help="refiner width (RefineConfig.width)")
    ap.add_argument("--blocks", type=int, default=3, help="refiner residual blocks")
    ap.add_argument("--d-width", type=int, default=16, help="local discriminator width")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3, help="refiner and discriminator learning rate")
    ap.add_argument("--arms", default="maps,nomaps")
    ap.add_argument("--no-kid", action="store_true", help="skip KID (needs the fid extra and takes most of the time)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="smoke run: small sets, 30 steps, no KID")
    args = ap.parse_args()
    if args.quick:
        args.n_real, args.n_fake, args.n_eval, args.steps, args.no_kid = 100, 60, 60, 30, True
    root = Path(args.data) / "faces64"
    if not (root / "faces.csv").exists():
        raise SystemExit(f"faces64 not found under {args.data} (pass --data ../shared/data)")
    import torch

    torch.set_num_threads(args.threads)
    from gazetune.evaluate.distances import kernel_distance, salient_crops, swd
    from gazetune.images import ImageSet, load_image_set, save_image_folder
    from gazetune.stages import fit_judge, roc_auc
    from gazetune.tune.maps import MapSet

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_lines: list[str] = []

    def log(msg: str) -> None:
        print(msg, flush=True)
        log_lines.append(msg)

    t_start = time.perf_counter()
    real_names, fake_names, eval_names = split_faces(root, args.n_real, args.n_fake, args.n_eval, args.seed)
    faces = load_image_set(str(root / "images"), size=args.size)
    pick = lambda names: faces.subset([faces.index(n) for n in names])  # noqa: E731
    real, clean, held_out = pick(real_names), pick(fake_names), pick(eval_names)
    flawed = ImageSet(make_flawed(clean.images, args.blur * args.size / 64, args.noise, args.seed), clean.names)
    save_image_folder(real, out / "real")
    save_image_folder(flawed, out / "fake")
    flawed = load_image_set(str(out / "fake"))  # the saved 8-bit outputs are what the refiner sees
    clean = clean.subset([clean.index(n) for n in flawed.names])  # the folder comes back in sorted order
    maps = maps_for(root, real_names + fake_names, args.size, args.sigma)
    MapSet(real=maps).save(out / "maps.npz")
    pooled = maps_for(root, eval_names, args.size, args.sigma)
    shared = np.mean(np.stack(list(pooled.values())), axis=0)  # where people look on faces64
    log(f"{len(real)} real, {len(flawed)} generated (blur {args.blur} px, noise {args.noise}), {len(held_out)} held-out real, "
        f"{args.size} px; split by source photo, seed {args.seed}")

    from gazetune.config import save_config

    save_config({"width": args.width, "blocks": args.blocks, "d_width": args.d_width, "batch": args.batch,
                 "lr": args.lr, "d_lr": args.lr},
                out / "refine.toml")  # the rest comes from the command line
    arms = {"generated (input)": flawed.images}
    times = {}
    for arm in args.arms.split(","):
        run = out / f"run_{arm}"
        if not (run / "checkpoint.safetensors").exists():
            cmd = ["refine", "train", "--fake", str(out / "fake"), "--images", str(out / "real"), "--out", str(run),
                   "--steps", str(args.steps), "--alpha", str(args.alpha), "--reg-weight", str(args.reg_weight),
                   "--seed", str(args.seed), "--config", str(out / "refine.toml")]
            if arm == "maps":
                cmd += ["--maps", str(out / "maps.npz")]
            times[arm] = run_cli(cmd, log)
        run_cli(["refine", "apply", "--model", str(run), "--images", str(out / "fake"), "--out", str(out / f"refined_{arm}")], log)
        refined = load_image_set(str(out / f"refined_{arm}"))
        assert refined.names == flawed.names
        arms[f"refined, {'gaze maps' if arm == 'maps' else 'no maps (control)'}"] = refined.images
    arms["clean originals (ceiling)"] = clean.images

    half = len(real) // 2
    t0 = time.perf_counter()
    judge = fit_judge(real.images[half:], make_flawed(real.images[:half], args.blur * args.size / 64, args.noise, args.seed + 101),
                      calibration_real=real.images[:half], seed=args.seed)
    real_scores = judge.judge.scores(held_out.images)
    log(f"judge fitted on {len(real) - half} real against {half} damaged copies of other real faces in "
        f"{time.perf_counter() - t0:.0f} s; threshold {judge.threshold:.3f}")
    w_fake = np.stack([maps[n] for n in flawed.names])
    mean = w_fake.mean(axis=(1, 2), keepdims=True)
    w_fake = np.where(mean > 0, w_fake / np.maximum(mean, 1e-12), 1.0)  # unseen crops weigh 1 everywhere
    def features(imgs: np.ndarray, salient: bool, seed: int) -> np.ndarray:
        from gazetune.evaluate.inception import inception_features

        x = salient_crops(imgs, shared, 0.5, 1, seed) if salient else imgs
        return inception_features(x, batch_size=50)

    if not args.no_kid:
        real_feats = {sal: features(held_out.images, sal, args.seed) for sal in (False, True)}
    rows = []
    for label, imgs in arms.items():
        t0 = time.perf_counter()
        row = {"set": label}
        row["swd"] = swd(held_out.images, imgs, seed=args.seed).mean
        row["swd_salient"] = swd(held_out.images, imgs, real_maps=shared, seed=args.seed).mean
        if not args.no_kid:
            for key, sal in (("kid", False), ("kid_salient", True)):
                fake_feats = features(imgs, sal, args.seed + 1)
                row[key] = 1e3 * kernel_distance(real_feats[sal], fake_feats, n_subsets=50, seed=args.seed)[0]
        realism = judge.judge.realism_maps(imgs)  # (N, H, W) in [0, 1]
        p_real = lambda r: 1.0 / (1.0 + np.exp(-judge.gain * (r - judge.threshold)))  # noqa: E731
        row["called_real"] = float(np.mean(p_real(realism.mean(axis=(1, 2)))))
        row["called_real_gaze"] = float(np.mean(p_real((realism * w_fake).mean(axis=(1, 2)))))
        row["judge_auc"] = roc_auc(real_scores, realism.mean(axis=(1, 2)))
        diff = np.abs(imgs - flawed.images).mean(axis=1) * 127.5  # 8-bit levels
        row["change"] = float(diff.mean())
        row["change_gaze"] = float((diff * w_fake).mean())
        mse = float(((imgs - clean.images) ** 2).mean())
        row["psnr_clean"] = 10 * np.log10(4.0 / max(mse, 1e-12))
        rows.append(row)
        log(f"scored {label} in {time.perf_counter() - t0:.0f} s")

    kid_cols = "" if args.no_kid else " KID x1e3 | salient KID x1e3 |"
    kid_rule = "" if args.no_kid else " ---: | ---: |"
    table = [
        f"| set | SWD x1e3 | salient SWD x1e3 |{kid_cols} called real | gaze-weighted called real | judge AUC | change from input | gaze-weighted change | PSNR clean (dB) |",
        f"| --- | ---: | ---: |{kid_rule} ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        kid_vals = "" if args.no_kid else f" {r['kid']:.2f} | {r['kid_salient']:.2f} |"
        table.append(
            f"| {r['set']} | {r['swd']:.1f} | {r['swd_salient']:.1f} |{kid_vals} {r['called_real']:.3f} | {r['called_real_gaze']:.3f} | "
            f"{r['judge_auc']:.3f} | "
            f"{r['change']:.2f} | {r['change_gaze']:.2f} | {r['psnr_clean']:.2f} |"
        )
    log("\n" + "\n".join(table))
    auc_in = rows[0]["judge_auc"]
    log(f"judge check: AUC of held-out real against the input {auc_in:.3f} "
        + ("(>= 0.7: its columns count)" if auc_in >= 0.7 else "(below 0.7: it cannot see the flaw; its columns are not evidence)"))
    log("training wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f"; total {time.perf_counter() - t_start:.0f} s")
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows, "train_s": times}, indent=1))
    (out / "report.md").write_text("\n".join(log_lines) + "\n")


if __name__ == "__main__":
    main()
