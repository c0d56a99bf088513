"""Cost of each pipeline: images per second of pretrain and tune steps, and peak memory (issue 5).

Pipelines (one optimisation step = a D phase and a G phase, DiffAugment and CutMix on, as in
:func:`gazetune.tune.train.train_step`):

* ``pretrain``   -- from-scratch step (eq 1-2, 9a/10a; :class:`TrainConfig`, no maps),
* ``unweighted`` -- tune step without maps (eq 9a/10a),
* ``direct``     -- tune step with observed maps looked up by name / latent seed (eq 9b/10b),
* ``predicted``  -- tune step with ``M_saliency`` maps computed on each batch (eq 4, 9b/10b),
* ``human``      -- tune step with the eq 12 human-model term (FIG. 5), no maps,
* ``both``       -- direct maps + eq 12 term (FIG. 4 + FIG. 5),
* ``probe``      -- ``pretrain`` with the training-health probe on every step
  (``health_probe_every=1``: D scores its batch again after its step, ``health/d_step_gain``);
  runs probe every 4th step, so a quarter of the difference to ``pretrain`` is their cost.
  The other pipelines do not probe.

The networks have the gaze benchmark's sizes (G width 24, D width 16, M_saliency width 16 depth 2,
human model width 12 depth 2) with random weights: cost does not depend on what they learned.
Images are random too.  Images per second = ``batch`` generated images per step / median wall
time of the timed steps.  On a loaded machine the wall time depends on the other processes; the
``CPU s`` column (fastest step's process CPU time, all torch threads together) is the estimate
least disturbed by them, and ``img/CPU-s`` is ``batch`` / that.

Each (size, pipeline) runs in its own child process, so the peak memory is that pipeline's alone:
on CPU the child's peak resident set (``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which includes
Python and torch themselves -- the ``idle`` row is a child that only imports torch and builds the
data); on CUDA ``torch.cuda.max_memory_allocated``.

    nice .venv/bin/python bench/throughput.py                       # 32 and 64 px, batch 32, CPU
    .venv/bin/python bench/throughput.py --device cuda --steps 50
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

PIPELINES = ("pretrain", "unweighted", "direct", "predicted", "human", "both", "probe")
G_WIDTH, D_WIDTH = 24, 16


def one(size: int, pipeline: str, batch: int, steps: int, device: str, threads: int, channels: int) -> dict:
    """Time one pipeline in this process; returns a dict for the parent."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    from gazetune.nets import DCGANGenerator, UNetDiscriminator
    from gazetune.tune.ema import EMA
    from gazetune.tune.maps import MapProvider, MapSet
    from gazetune.tune.train import GazeGANLoss, TrainConfig, TuneConfig, sample_batch, train_step

    rng = np.random.default_rng(0)
    n = 256
    names = [f"img{k:04d}.png" for k in range(n)]
    images = torch.from_numpy(rng.uniform(-1, 1, (n, channels, size, size)).astype(np.float32)).to(device)
    maps = MapSet(real={nm: rng.random((size, size), dtype=np.float32) for nm in names},
                  synthetic={("v", s): rng.random((size, size), dtype=np.float32) for s in range(128)})
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if pipeline == "idle":
        return {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    torch.manual_seed(0)
    if pipeline in ("pretrain", "probe"):
        cfg: TrainConfig = TrainConfig(size=size, channels=channels, batch=batch, g_width=G_WIDTH, d_width=D_WIDTH,
                                       device=device, health_probe_every=1 if pipeline == "probe" else 0)
    else:
        cfg = TuneConfig(size=size, channels=channels, batch=batch, g_width=G_WIDTH, d_width=D_WIDTH, device=device,
                         alpha=1.0 if pipeline in ("direct", "predicted", "both") else 0.0, health_probe_every=0)
    G = DCGANGenerator(cfg.z_dim, size, channels, cfg.g_width).to(device)
    D = UNetDiscriminator(size, channels, cfg.d_width).to(device)
    if pipeline in ("direct", "both"):
        provider = MapProvider("direct", maps=maps)
    elif pipeline == "predicted":
        from gazetune.saliency.model import SaliencyUNet

        provider = MapProvider("predicted", saliency_model=SaliencyUNet(in_channels=channels, width=16, depth=2).to(device))
    else:
        provider = MapProvider("none")
    extra = []
    if pipeline in ("human", "both"):
        from gazetune.human.losses import HumanModelTerm
        from gazetune.human.model import HumanModelConfig, build_human_model

        hm = build_human_model(HumanModelConfig(in_channels=channels, image_size=(size, size), width=12, depth=2))
        extra = [HumanModelTerm(hm.to(device), weight=0.5)]
    provider.bind(names, (size, size), cfg.z_dim, device)
    gen = torch.Generator().manual_seed(1)
    loss = GazeGANLoss(G, D, cfg, provider, gen, extra_generator_terms=extra)
    opts = {"G": torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2)),
            "D": torch.optim.Adam(D.parameters(), lr=cfg.resolved().lr_d, betas=(cfg.beta1, cfg.beta2))}
    ema = EMA(G, 0.999)
    walls, cpus = [], []
    for k in range(steps + 2):  # 2 warm-up steps
        batch_ = sample_batch(provider, images, cfg.batch, gen)
        if device == "cuda":
            torch.cuda.synchronize()
        t, c = time.perf_counter(), time.process_time()
        train_step(loss, opts, ema, batch_, step=k)
        if device == "cuda":
            torch.cuda.synchronize()
        if k >= 2:
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
    med = statistics.median(walls)
    out = {"step_s": med, "best_step_s": min(walls), "img_per_s": batch / med, "cpu_step_s": min(cpus),
           "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if device == "cuda":
        out["cuda_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="32,64", help="image sides in px, comma-separated")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per pipeline (after 2 warm-up steps)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--pipelines", default=",".join(PIPELINES))
    ap.add_argument("--one", default="", help=argparse.SUPPRESS)  # child mode: SIZE:PIPELINE
    args = ap.parse_args()
    if args.one:
        size, pipeline = args.one.split(":")
        print(json.dumps(one(int(size), pipeline, args.batch, args.steps, args.device, args.threads, args.channels)))
        return
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("throughput: --device cuda but CUDA is not available")
    dev = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {args.threads} torch thread(s)"
    sizes = [int(s) for s in args.sizes.split(",") if s]
    pipes = [p for p in args.pipelines.split(",") if p]
    bad = [p for p in pipes if p not in PIPELINES]
    if bad:
        sys.exit(f"throughput: unknown pipeline(s) {bad}; choose from {PIPELINES}")
    mem_col = "CUDA peak MiB" if args.device == "cuda" else "peak RSS MiB"
    print(f"throughput: batch {args.batch}, {args.channels} ch, {dev}, {args.steps} timed steps per pipeline; "
          f"img/s = batch / median step wall time")
    print(f"| px | pipeline | step s (median) | step s (best) | img/s | CPU s (min) | img/CPU-s | vs unweighted (CPU) | {mem_col} |")
    print("|---|---|---|---|---|---|---|---|---|")
    results = {}
    for size in sizes:
        for pipeline in ["idle"] + pipes:
            cmd = [sys.executable, __file__, "--one", f"{size}:{pipeline}", "--batch", str(args.batch),
                   "--steps", str(args.steps), "--device", args.device, "--threads", str(args.threads),
                   "--channels", str(args.channels)]
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["?"])[-1]
                print(f"| {size} | {pipeline} | failed: {last} | | | | | | |", flush=True)
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            results[(size, pipeline)] = r
            if pipeline == "idle":
                print(f"| {size} | idle (torch + data) | - | - | - | - | - | - | {r['rss_mib']:.0f} |", flush=True)
                continue
            base = results.get((size, "unweighted"))
            ratio = f"{r['cpu_step_s'] / base['cpu_step_s']:.2f}x" if base and pipeline != "pretrain" else "-"
            mem = r.get("cuda_peak_mib", r["rss_mib"])
            print(f"| {size} | {pipeline} | {r['step_s']:.3f} | {r['best_step_s']:.3f} | {r['img_per_s']:.1f} | "
                  f"{r['cpu_step_s']:.3f} | {args.batch / r['cpu_step_s']:.1f} | {ratio} | {mem:.0f} |", flush=True)


if __name__ == "__main__":
    main()
