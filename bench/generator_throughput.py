"""Generator cost: images per second of a forward + backward pass, DCGAN vs style-based (issue 10).

For each size and generator, a batch of ``--batch`` latents goes forward in train mode (style
mixing and fresh noise on, as in training) and the mean of the output goes backward to every
parameter; no discriminator, no optimiser.  ``img/s`` is ``batch`` / the median wall time of the
timed passes; ``img/CPU-s`` is ``batch`` / the median process CPU time (all torch threads
together), the figure least disturbed by other jobs on a shared machine.

    nice -n 10 .venv/bin/python bench/generator_throughput.py                 # 32, 64, 128 px, batch 16
    .venv/bin/python bench/generator_throughput.py --sizes 64,128,256 --device cuda
"""

from __future__ import annotations

import argparse
import statistics
import time


def measure(kind: str, width: int, size: int, batch: int, steps: int, device: str, channels: int) -> dict:
    import torch

    from gazetune.nets.style_generator import build_generator

    torch.manual_seed(0)
    g = build_generator(kind, z_dim=64, size=size, channels=channels, width=width).to(device).train()
    gen = torch.Generator().manual_seed(1)
    walls, cpus = [], []
    for i in range(steps + 2):  # two warm-up passes
        z = torch.randn(batch, 64, generator=gen).to(device)
        if device == "cuda":
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        g.zero_grad(set_to_none=True)
        g(z).mean().backward()
        if device == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    return {
        "generator": f"{kind} (width {width})", "size": size,
        "params_M": sum(p.numel() for p in g.parameters()) / 1e6,
        "img_s": batch / wall, "img_cpu_s": batch / cpu, "ms": 1e3 * wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="32,64,128")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=5, help="timed passes per row (after 2 warm-up passes)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--channels", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--generators", default="dcgan:32,style:32,style:16", help="kind:width,...")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    gens = [(k, int(w)) for k, w in (item.split(":") for item in args.generators.split(","))]
    print(f"device {args.device}, {args.threads} thread(s), batch {args.batch}, {args.channels} channels, "
          f"forward + backward in train mode, median of {args.steps} passes\n")
    print("| generator | size | params (M) | ms / batch | img/s | img/CPU-s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for size in (int(s) for s in args.sizes.split(",")):
        for kind, width in gens:
            r = measure(kind, width, size, args.batch, args.steps, args.device, args.channels)
            print(f"| {r['generator']} | {r['size']} | {r['params_M']:.2f} | {r['ms']:.0f} | {r['img_s']:.1f} | {r['img_cpu_s']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
