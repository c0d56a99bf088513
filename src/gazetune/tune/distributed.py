"""Data-parallel GAN training under ``torchrun`` (README "Several GPUs / processes").

``torchrun --nproc_per_node N -m gazetune gan pretrain|tune ...`` starts N copies of the command
with ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; :func:`setup` then joins the
process group (``gloo`` for ``device="cpu"``, ``nccl`` for ``"cuda"``, one GPU per local rank).
Without those variables nothing here does anything and training is the single-process loop,
bit for bit.

Design (why not ``DistributedDataParallel``)
--------------------------------------------
G and D train in turn: ``Dmain`` backpropagates through D only, ``Gmain`` through D into G but
steps G only, the warm-up never steps G.  DDP expects every wrapped parameter to get a gradient in
every backward (else "Expected to have finished reduction in the prior iteration" unless
``find_unused_parameters``, which costs a graph walk per step and still trips on D's gradients in
``Gmain``).  So no wrapper: after a phase's ``backward`` :meth:`Dist.sync` all-reduces the
gradients of the network that phase steps, in one flat buffer, and averages them over the ranks
(summed for ``reduction="sum"``, whose loss is a sum over the global batch; the R1 penalty is a
mean in either case).  Floating-point buffers of that network (``w_avg`` of the style generator,
BatchNorm statistics) are averaged in the same call, so every rank holds the same networks after
every optimiser step.  Parameters no rank has a gradient for stay ``None`` (Adam skips them, as in
one process).  BatchNorm layers normalise with their rank's share of the batch (no SyncBatchNorm;
the default networks have none).

Data
----
``batch`` is the **global** batch: each rank trains on ``batch / world`` images (``batch`` must
divide evenly).  Every rank draws the global batch's image indices and latents from the run's
sampling generator, seeded identically on every rank (so its state is one and the same
everywhere), and keeps its own slice (:func:`shard`): the images and latents an N-process run
trains on are exactly those of a one-process run with the same global batch.  Augmentation
(DiffAugment, CutMix), the history pool and so on draw from a per-rank generator seeded from
``(seed, rank)`` (:func:`rank_seed`); one process keeps the run's single generator for everything.

Resuming
--------
The checkpoint holds the plain networks and optimisers, the shared sampling generator and every
rank's augmentation generator.  A run resumes on any number of processes; on the same number it
continues bit-identically, on another number each rank's augmentation generator is re-derived from
``(seed, rank, step)`` (and the history pool, if on, is rank 0's on every rank).  The run
directory must be visible to every process (a shared filesystem across nodes).

Known limits: the style generator's private draws (``rng_state``: style mixing, fresh noise) are
the same on every rank, so the ranks' slices share those draws; in ``hybrid`` mode the observed
latents of a batch (its first rows) fall to the first ranks.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass, fields, replace
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def launched() -> bool:
    """Whether this process was started by ``torchrun`` (its environment has a world size)."""
    return all(k in os.environ for k in ENV)


def env_rank() -> int:
    """This process's rank from the environment (0 outside ``torchrun``), before :func:`setup`."""
    return int(os.environ.get("RANK", "0")) if launched() else 0


def env_world() -> int:
    """The number of processes from the environment (1 outside ``torchrun``), before :func:`setup`."""
    return int(os.environ.get("WORLD_SIZE", "1")) if launched() else 1


def rank_seed(seed: int, rank: int, step: int = 0) -> int:
    """A 63-bit seed for rank ``rank``'s own generator, mixed from ``(seed, rank, step)``."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(rank), int(step)]).generate_state(2, np.uint32)
    return int(state[0]) << 31 ^ int(state[1])


@dataclass
class Dist:
    """This process's place in the run: ``rank`` of ``world`` (``world == 1``: one process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the only one that writes the run directory and talks to the console."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def per_rank_batch(self, batch: int) -> int:
        if batch % self.world:
            raise ValueError(f"batch {batch} (the global batch) must divide evenly over {self.world} processes")
        return batch // self.world

    def sync(self, module: nn.Module, mean: bool = True) -> None:
        """All-reduce ``module``'s gradients (average, or sum with ``mean=False``) and average its
        floating-point buffers, in one collective (no-op in one process)."""
        if not self.active:
            return
        import torch.distributed as dist

        params = [p for p in module.parameters() if p.requires_grad]
        bufs = [b for b in module.buffers() if b.is_floating_point()]
        if not params and not bufs:
            return
        dev = (params or bufs)[0].device
        dtype = torch.float32
        flags = torch.tensor([p.grad is not None for p in params], dtype=dtype, device=dev)
        parts = [p.grad.reshape(-1).to(dtype) if p.grad is not None else torch.zeros(p.numel(), dtype=dtype, device=dev)
                 for p in params]
        parts += [b.reshape(-1).to(dtype) for b in bufs]
        flat = torch.cat(parts + [flags])
        dist.all_reduce(flat)
        had = flat[flat.numel() - len(params):] > 0  # some rank has a gradient for it
        offset = 0
        for p, any_grad in zip(params, had.tolist()):
            n = p.numel()
            if any_grad:
                g = flat[offset : offset + n].view_as(p)
                # empty_like: the gradient keeps the parameter's memory format (channels_last)
                p.grad = torch.empty_like(p).copy_(g / self.world if mean else g)
            offset += n
        with torch.no_grad():
            for b in bufs:
                n = b.numel()
                b.copy_((flat[offset : offset + n] / self.world).view_as(b).to(b.dtype))
                offset += n

    def broadcast(self, modules: Sequence[nn.Module]) -> None:
        """Give every rank rank 0's parameters and buffers (the start of a run)."""
        if not self.active:
            return
        import torch.distributed as dist

        with torch.no_grad():
            for m in modules:
                for t in list(m.parameters()) + list(m.buffers()):
                    dist.broadcast(t.data, src=0)

    def mean_stats(self, stats: dict[str, float]) -> dict[str, float]:
        """Each figure averaged over the ranks that have it (rank 0 logs the global batch's)."""
        if not self.active:
            return stats
        import torch.distributed as dist

        every: list[Any] = [None] * self.world
        dist.all_gather_object(every, stats)
        out: dict[str, float] = {}
        for key in stats.keys() | {k for s in every for k in s}:
            vals = [float(s[key]) for s in every if key in s]
            out[key] = sum(vals) / len(vals)
        return {k: out[k] for k in [*stats, *sorted(set(out) - set(stats))]}

    def barrier(self) -> None:
        """Wait for every rank (e.g. until rank 0 has written the checkpoint)."""
        if self.active:
            import torch.distributed as dist

            dist.barrier()

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (``[obj]`` in one process)."""
        if not self.active:
            return [obj]
        import torch.distributed as dist

        every: list[Any] = [None] * self.world
        dist.all_gather_object(every, obj)
        return every


def shard(batch: Any, d: Dist) -> Any:
    """Rank ``d.rank``'s contiguous slice of every tensor field of a dataclass batch (the whole
    batch in one process)."""
    if not d.active:
        return batch
    n = None
    out = {}
    for f in fields(batch):
        v = getattr(batch, f.name)
        if isinstance(v, torch.Tensor):
            n = d.per_rank_batch(v.shape[0]) if n is None else n
            v = v[d.rank * n : (d.rank + 1) * n]
        out[f.name] = v
    return replace(batch, **out)


def setup(device: str = "cpu") -> Dist:
    """Join the ``torchrun`` process group once (``gloo`` on CPU, ``nccl`` on CUDA, this process's
    GPU chosen by ``LOCAL_RANK``) and return this process's :class:`Dist`; outside ``torchrun``
    a one-process :class:`Dist` and nothing else."""
    if not launched():
        return Dist()
    import torch.distributed as dist

    rank, world, local = (int(os.environ[k]) for k in ENV)
    cuda = str(device).startswith("cuda")
    if cuda:
        if not torch.cuda.is_available():
            raise RuntimeError("device cuda under torchrun, but CUDA is not available")
        torch.cuda.set_device(local)  # "cuda" now means this rank's GPU
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo", init_method="env://")
        atexit.register(shutdown)
    return Dist(rank=dist.get_rank(), world=dist.get_world_size(), local_rank=local)


def shutdown() -> None:
    """Leave the process group (called at exit; safe to call twice)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
