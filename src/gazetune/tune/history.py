"""History of earlier generator outputs for the discriminators (SimGAN, Shrivastava et al. 2017,
"Learning from Simulated and Unsupervised Images through Adversarial Training", section 2.3).

A discriminator that only ever sees the current generator's fakes forgets the artefacts of
earlier ones, and the generator can re-introduce them.  :class:`HistoryBuffer` keeps a bounded
pool of earlier fakes; :meth:`HistoryBuffer.mix` replaces a ``share`` of each fake batch shown
to a discriminator (the U-Net D, or the human model if it is trained online) with samples drawn
from the pool, then stores some of the new fakes in the pool.

Used by the training loop through ``TrainConfig.history_share`` / ``history_capacity``
(:mod:`gazetune.tune.train`; ``gazetune gan tune --history-share``): ``Dmain`` mixes its fake
batch, with direct maps carried along as an extra channel, and the pool is checkpointed.
Off by default (``share=0`` returns the batch unchanged) until it shows a benefit.
"""

from __future__ import annotations

import torch


class HistoryBuffer:
    """Pool of at most ``capacity`` earlier fake images.

    Parameters
    ----------
    capacity
        Maximum number of stored images (each (C, H, W)); stored detached, on the device they came on.
    share
        Fraction of each batch drawn from the pool, in [0, 1); SimGAN uses 0.5.  0 disables the
        buffer (``mix`` returns its input and stores nothing).
    seed
        Seed of the buffer's own ``torch.Generator`` (reproducible, leaves the global RNG alone).

    Notes
    -----
    ``mix(fake)`` with a batch of ``N``: ``k = round(share * N)`` images come from the pool (fewer
    while it holds fewer than ``k``); they replace the *last* ``k`` images of the batch, so the
    first ``N - k`` are the current fakes in order.  Then ``k`` (at least 1) randomly chosen
    current fakes are stored: appended while the pool is not full, otherwise overwriting random
    slots (SimGAN's "replace half the buffer's images per step" scaled to ``share``).
    """

    def __init__(self, capacity: int = 512, share: float = 0.0, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"history capacity must be >= 1 image; got {capacity}")
        if not 0.0 <= share < 1.0:
            raise ValueError(f"history share must be in [0, 1); got {share}")
        self.capacity = int(capacity)
        self.share = float(share)
        self._gen = torch.Generator().manual_seed(int(seed))
        self._items: list[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self._items)

    @property
    def enabled(self) -> bool:
        return self.share > 0

    def _randperm(self, n: int) -> torch.Tensor:
        return torch.randperm(n, generator=self._gen)

    def mix(self, fake: torch.Tensor) -> torch.Tensor:
        """Return a batch like ``fake`` (N, C, H, W) whose last ``round(share * N)`` images are
        drawn (without replacement) from the history, then store new fakes (see class notes).

        The returned current fakes keep their autograd graph; history images are detached.
        """
        if not self.enabled:
            return fake
        if fake.ndim < 2 or fake.shape[0] == 0:
            raise ValueError(f"fake batch must be (N, ...) with N >= 1; got shape {tuple(fake.shape)}")
        n = fake.shape[0]
        k = int(round(self.share * n))
        k_hist = min(k, len(self._items))
        if k_hist:
            pick = self._randperm(len(self._items))[:k_hist].tolist()
            old = torch.stack([self._items[i] for i in pick]).to(fake.device, fake.dtype)
            out = torch.cat([fake[: n - k_hist], old], dim=0)
        else:
            out = fake
        self.store(fake, max(k, 1))
        return out

    def store(self, fake: torch.Tensor, count: int | None = None) -> None:
        """Store ``count`` (default all) randomly chosen images of ``fake`` (detached)."""
        n = fake.shape[0]
        count = n if count is None else min(int(count), n)
        chosen = self._randperm(n)[:count].tolist()
        for i in chosen:
            item = fake[i].detach().clone()
            if len(self._items) < self.capacity:
                self._items.append(item)
            else:
                slot = int(torch.randint(self.capacity, (1,), generator=self._gen))
                self._items[slot] = item

    def state_dict(self) -> dict:
        """Buffer contents and RNG state, for checkpoints."""
        stacked = torch.stack(self._items).cpu() if self._items else torch.zeros(0)
        return {"capacity": self.capacity, "share": self.share, "items": stacked, "rng": self._gen.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.capacity = int(state["capacity"])
        self.share = float(state["share"])
        items = state["items"]
        self._items = [items[i] for i in range(items.shape[0])] if items.numel() else []
        self._gen.set_state(state["rng"])
