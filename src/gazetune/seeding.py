"""Seeded blocks that leave the caller's random state and thread settings alone.

Library code never calls ``torch.manual_seed``, ``torch.set_num_threads`` or ``np.random.seed``
for good: it draws from local generators (``torch.Generator``, ``np.random.default_rng``) and,
where a third-party step only reads torch's global RNG (a network's weight initialisation), runs
that step inside :func:`seeded`.  Only command-line entry points set the process's threads.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch


@contextmanager
def seeded(seed: int, threads: int = 0) -> Iterator[None]:
    """Run a block with torch's global CPU RNG seeded with ``seed`` and, when ``threads`` > 0,
    ``threads`` intra-op CPU threads; afterwards both are as they were.

    >>> before = torch.initial_seed(), torch.get_num_threads()
    >>> with seeded(3):
    ...     a = torch.rand(2)
    >>> with seeded(3):
    ...     b = torch.rand(2)
    >>> bool((a == b).all()), (torch.initial_seed(), torch.get_num_threads()) == before
    (True, True)
    """
    before = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        if threads:
            torch.set_num_threads(int(threads))
        try:
            yield
        finally:
            if threads:
                torch.set_num_threads(before)
