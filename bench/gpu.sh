#!/usr/bin/env bash
# GPU throughput of the GAN training step (issue 10, part 4): images per second and peak GPU memory
# for pretraining (DCGAN and style-based generator) and each tuning pipeline (direct maps,
# predicted maps, hybrid, predicted + D feature matching) at 64, 128 and 256 px on one GPU.
#
#   bench/gpu.sh                  # the whole table, well under 10 minutes on one recent GPU
#   STEPS=5 SIZES=64 bench/gpu.sh # shorter
#   PRECISIONS=fp32 bench/gpu.sh  # fp32 rows only (default: fp32 and bf16 rows)
#   CHANNELS_LAST=1 bench/gpu.sh  # G, D and batches in channels_last (TrainConfig.channels_last)
#
# A row times full training steps of the library's loop pieces (tune.train.train_step: Dmain +
# Gmain with every term, optimiser steps, EMA), real images (the built-in faces, resized, RGB) and
# the default networks (TrainConfig widths, U-Net D), after 3 warm-up steps; img/s counts the
# real images of a step (batch = tune.train.default_batch on CUDA: 256 / 128 / 64 at 64 / 128 /
# 256 px).  Peak memory is torch.cuda.max_memory_allocated over the timed steps.  Each pipeline
# gets a row per precision (TrainConfig.precision: fp32, and bf16 autocast where the GPU has
# bfloat16).  Not run in CI: without CUDA it stops at once and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
export STEPS="${STEPS:-10}" SIZES="${SIZES:-64,128,256}" PRECISIONS="${PRECISIONS:-fp32,bf16}"
export CHANNELS_LAST="${CHANNELS_LAST:-0}"
if ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "bench/gpu.sh: needs a CUDA GPU (torch.cuda.is_available() is False here); nothing measured" >&2
  exit 2
fi
exec timeout 590 "$PY" - <<'PY'
import os, statistics, time

import numpy as np
import torch

from gazetune.images import load_image_set
from gazetune.nets.discriminator import DISCRIMINATORS
from gazetune.saliency.model import SaliencyUNet
from gazetune.tune.ema import EMA, ema_beta
from gazetune.tune.maps import MapProvider, MapSet
from gazetune.tune.terms import FeatureMatchingTerm
from gazetune.tune.train import (GazeGANLoss, TrainConfig, TuneConfig, build_optimizers, builtin_generator,
                                 default_batch, memory_format, sample_batch, train_step)

dev = "cuda"
steps, sizes = int(os.environ["STEPS"]), [int(s) for s in os.environ["SIZES"].split(",")]
precisions = [p.strip() for p in os.environ["PRECISIONS"].split(",") if p.strip()]
channels_last = os.environ["CHANNELS_LAST"] not in ("", "0", "false", "no")
if "bf16" in precisions and not torch.cuda.is_bf16_supported():
    print(f"{torch.cuda.get_device_name()} has no bfloat16: fp32 rows only\n")
    precisions = [p for p in precisions if p != "bf16"]
torch.backends.cudnn.benchmark = True
faces = load_image_set(None, size=256, channels=3)  # resized per row below
PIPELINES = ["pretrain dcgan", "pretrain style", "tune direct", "tune predicted", "tune hybrid",
             "tune predicted + feature matching"]


def blobs(n: int, size: int, seed: int) -> list[np.ndarray]:
    """Stand-in gaze maps: one Gaussian blob per image."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    return [np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.02).astype(np.float32)
            for cx, cy in rng.uniform(0.3, 0.7, (n, 2))]


def row(pipeline: str, size: int, precision: str) -> dict:
    batch = default_batch(size, dev)
    kind = TrainConfig if pipeline.startswith("pretrain") else TuneConfig
    cfg = kind(size=size, channels=3, batch=batch, device=dev, g_arch="style" if "style" in pipeline else "dcgan",
               precision=precision, channels_last=channels_last)
    fmt = memory_format(cfg)
    x = torch.nn.functional.interpolate(torch.as_tensor(faces.images), size=(size, size), mode="area").to(dev)
    x = x.contiguous(memory_format=fmt)
    names = [str(k) for k in range(len(x))]
    maps = MapSet(real=dict(zip(names, blobs(len(names), size, 0))),
                  synthetic={("bench", s): m for s, m in enumerate(blobs(256, size, 1))})
    sal = lambda: SaliencyUNet(in_channels=3).to(dev).eval()
    provider = {
        "direct": lambda: MapProvider("direct", maps=maps, generator_version="bench"),
        "predicted": lambda: MapProvider("predicted", saliency_model=sal()),
        "hybrid": lambda: MapProvider("hybrid", maps=maps, saliency_model=sal(), generator_version="bench",
                                      observed_share=0.5),
    }.get(pipeline.split()[1], lambda: MapProvider("none"))()
    torch.manual_seed(0)
    G = builtin_generator(cfg).to(dev, memory_format=fmt).train()
    D = DISCRIMINATORS[cfg.d_arch](size, 3, cfg.d_width, spectral=cfg.spectral_norm, norm=cfg.d_norm)
    D = D.to(dev, memory_format=fmt).train()
    provider.bind(names, (size, size), cfg.z_dim, dev)
    gen = torch.Generator().manual_seed(1)
    terms = [FeatureMatchingTerm(1.0, alpha=cfg.alpha)] if "feature" in pipeline else []
    loss = GazeGANLoss(G, D, cfg, provider, gen, terms)
    opts, ema = build_optimizers(loss, cfg), EMA(G, ema_beta(batch, cfg.ema_half_life))
    times = []
    for i in range(3 + steps):
        if i == 3:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        train_step(loss, opts, ema, sample_batch(provider, x, batch, gen), i)
        torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    ms = statistics.median(times)
    return {"batch": batch, "ms": 1e3 * ms, "img_s": batch / ms, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}


print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, median of {steps} steps after 3 warm-up steps, "
      f"{'channels_last' if channels_last else 'default memory format'}\n")
print("| pipeline | size | precision | batch | ms / step | img/s | peak GiB |")
print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
for size in sizes:
    for p in PIPELINES:
        for prec in precisions:
            try:
                r = row(p, size, prec)
                print(f"| {p} | {size} | {prec} | {r['batch']} | {r['ms']:.0f} | {r['img_s']:.0f} | {r['peak_gib']:.2f} |",
                      flush=True)
            except torch.cuda.OutOfMemoryError:
                print(f"| {p} | {size} | {prec} | {default_batch(size, dev)} | out of memory | | |", flush=True)
            except RuntimeError as e:  # e.g. an op without bfloat16 support: the other rows still run
                msg = str(e).splitlines()[0][:80].replace("|", "/")
                print(f"| {p} | {size} | {prec} | {default_batch(size, dev)} | failed: {msg} | | |", flush=True)
            torch.cuda.empty_cache()
PY
