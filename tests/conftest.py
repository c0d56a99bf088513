"""Shared pytest fixtures.

Unit tests never need ``../shared``; tests that check against the real data in
``../shared/data`` (or ``$GAZETUNE_SHARED_DATA``) skip with a clear reason when it is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# One thread: on 2 shared cores, torch's intra-op threads fight each other and the tests slow
# down many times over for these tiny models.
torch.set_num_threads(1)


def _shared_data_dir() -> Path:
    env = os.environ.get("GAZETUNE_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real data (OSIE, faces64); skips the test when it is not on this machine."""
    path = _shared_data_dir()
    if not (path / "osie" / "fixations.csv").exists():
        pytest.skip(f"real data not found at {path} (set GAZETUNE_SHARED_DATA)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
