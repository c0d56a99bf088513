"""Seconds per gaze-tuning step: unweighted (eq 9a/10a) vs direct maps vs predicted maps (eq 9b/10b).

One step = a D phase (eq 2 + eq 10a/10b + CutMix) and a G phase (eq 1 + eq 9a/9b) on a batch of
real images and generated images, with DiffAugment.  The three variants differ only in where the
maps come from:

* ``unweighted``: no maps (MapProvider mode ``none``),
* ``direct``: observed maps looked up by image name / latent seed (MapProvider ``direct``),
* ``predicted``: ``SM_pred = sigmoid(M_saliency(x))`` of :class:`gazetune.saliency.model.SaliencyUNet`
  computed on every batch without gradients (real-image maps cached).

Timing runs the variants round-robin (so load from other processes hits all of them alike) and
reports, per variant, the median wall time and the fastest CPU (process) time of its steps: on a
shared machine the minimum CPU time is the estimate least disturbed by other processes.  Targets: direct <= 1.05x, predicted <= 1.25x the unweighted step.

    nice .venv/bin/python bench/tune_step.py              # 64 px, batch 32, CPU
    .venv/bin/python bench/tune_step.py --device cuda --rounds 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from gazetune.nets import DCGANGenerator, UNetDiscriminator
from gazetune.tune.ema import EMA
from gazetune.tune.maps import MapProvider, MapSet
from gazetune.tune.train import GazeGANLoss, TuneConfig, sample_batch, train_step


def saliency_model(channels: int) -> torch.nn.Module:
    try:
        from gazetune.saliency.model import SaliencyUNet

        return SaliencyUNet(in_channels=channels)
    except ImportError:  # stand-in of similar size: a small U-Net
        return UNetDiscriminator(size=64, channels=channels, width=16)


def build(mode: str, cfg: TuneConfig, images: torch.Tensor, names: list[str], maps: MapSet, device: str):
    torch.manual_seed(0)
    G = DCGANGenerator(cfg.z_dim, cfg.size, cfg.channels, cfg.g_width).to(device)
    D = UNetDiscriminator(cfg.size, cfg.channels, cfg.d_width).to(device)
    provider = {
        "unweighted": lambda: MapProvider("none"),
        "direct": lambda: MapProvider("direct", maps=maps),
        "predicted": lambda: MapProvider("predicted", saliency_model=saliency_model(cfg.channels).to(device)),
    }[mode]()
    provider.bind(names, (cfg.size, cfg.size), cfg.z_dim, device)
    gen = torch.Generator().manual_seed(1)
    loss = GazeGANLoss(G, D, cfg, provider, gen)
    opts = {
        "G": torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2)),
        "D": torch.optim.Adam(D.parameters(), lr=cfg.resolved().lr_d, betas=(cfg.beta1, cfg.beta2)),
    }
    ema = EMA(G, 0.999)

    def step() -> tuple[float, float]:
        batch = sample_batch(provider, images, cfg.batch, gen)
        if device == "cuda":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        train_step(loss, opts, ema, batch)
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t, time.process_time() - c

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=6, help="timed steps per variant")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = TuneConfig(size=args.size, channels=args.channels, batch=args.batch, alpha=1.0, device=args.device)
    rng = np.random.default_rng(0)
    n = 256
    names = [f"img{k:04d}.png" for k in range(n)]
    images = torch.from_numpy(rng.uniform(-1, 1, (n, args.channels, args.size, args.size)).astype(np.float32)).to(args.device)
    maps = MapSet(
        real={nm: rng.random((args.size, args.size), dtype=np.float32) for nm in names},
        synthetic={("v", s): rng.random((args.size, args.size), dtype=np.float32) for s in range(128)},
    )
    modes = ["unweighted", "direct", "predicted"]
    steps = {m: build(m, cfg, images, names, maps, args.device) for m in modes}
    for m in modes:  # warm-up (allocator, caches, predicted real-map cache)
        steps[m]()
        steps[m]()
    wall: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.rounds):
        for m in modes:
            w, c = steps[m]()
            wall[m].append(w)
            cpu[m].append(c)
    base_w, base_c = statistics.median(wall["unweighted"]), min(cpu["unweighted"])
    dev = args.device if args.device != "cuda" else torch.cuda.get_device_name()
    print(f"tuning step, {args.size} px, batch {args.batch}, {args.channels} ch, {dev}, {torch.get_num_threads()} threads, "
          f"{args.rounds} steps each; wall = median, CPU = min process time")
    print(f"{'variant':<12} {'wall s':>8} {'ratio':>7} {'CPU s':>8} {'ratio':>7}  target")
    targets = {"unweighted": "", "direct": "<= 1.05", "predicted": "<= 1.25"}
    for m in modes:
        w, c = statistics.median(wall[m]), min(cpu[m])
        print(f"{m:<12} {w:8.3f} {w / base_w:7.3f} {c:8.3f} {c / base_c:7.3f}  {targets[m]}")


if __name__ == "__main__":
    main()
