"""Library training calls leave the process's random state and thread settings as they were
(docs/architecture.md: no global RNG or thread changes in library code), and stay seeded."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gazetune.seeding import seeded


def _global_state():
    return (torch.initial_seed(), torch.get_num_threads(), torch.get_rng_state().clone(),
            np.random.get_state()[1].copy())


def _assert_unchanged(before, after):
    assert after[0] == before[0], "torch.initial_seed() changed"
    assert after[1] == before[1], "torch.get_num_threads() changed"
    assert torch.equal(after[2], before[2]), "torch's global RNG state changed"
    assert np.array_equal(after[3], before[3]), "NumPy's global RNG state changed"


@pytest.fixture
def caller_state():
    """A caller with its own seed and two threads, restored after the test."""
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1234)
        torch.set_num_threads(2)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def _saliency_data(n: int = 6, size: int = 16):
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (n, 3, size, size)).astype(np.float32)
    maps = rng.uniform(0, 1, (n, size, size)).astype(np.float32)
    return images, maps


def test_saliency_training_keeps_global_rng_and_threads(caller_state):
    from gazetune.saliency.train import SaliencyTrainConfig, train_saliency

    images, maps = _saliency_data()
    cfg = SaliencyTrainConfig(epochs=1, batch_size=4, width=4, depth=1, threads=1, seed=3, progress=False)
    before = _global_state()
    m1, _ = train_saliency(images, maps, cfg)
    _assert_unchanged(before, _global_state())
    # still seeded: the same seed gives the same weights, whatever the caller's RNG did meanwhile
    torch.rand(5)
    m2, _ = train_saliency(images, maps, cfg)
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)


def test_human_model_training_keeps_global_rng(caller_state):
    from gazetune.human.train import HumanTrainConfig, train_from_trials, trials_from_simulated

    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (4, 1, 12, 12)).astype(np.float32)
    names = [f"i{k}.png" for k in range(4)]
    raw = [{"participant": f"p{p}", "image_index": i, "answer": int((p + i) % 2), "rt_ms": 800.0,
            "fixations": np.array([[6.0, 6.0, 200.0]]), "kind": "real" if i % 2 else "synthetic"}
           for p in range(4) for i in range(4)]
    cfg = HumanTrainConfig(steps=2, width=4, batch_size=4, holdout_fraction=0.25, seed=0)
    before = _global_state()
    train_from_trials(images, names, trials_from_simulated(raw, names), cfg)
    _assert_unchanged(before, _global_state())


def test_seeded_restores_state_and_repeats(caller_state):
    before = _global_state()
    with seeded(7, threads=1):
        assert torch.get_num_threads() == 1
        a = torch.rand(3)
    _assert_unchanged(before, _global_state())
    with seeded(7):
        b = torch.rand(3)
    assert torch.equal(a, b)
