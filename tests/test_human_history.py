"""SimGAN history buffer: share of each batch from earlier fakes, bounded capacity, off by default."""

from __future__ import annotations

import pytest
import torch

from gazetune.tune.history import HistoryBuffer


def _batch(start: int, n: int = 8) -> torch.Tensor:
    # image i is filled with the value start + i, so every image is identifiable
    return (torch.arange(start, start + n, dtype=torch.float32)[:, None, None, None]).expand(n, 1, 2, 2).clone()


def _ids(batch: torch.Tensor) -> list[int]:
    return [int(v) for v in batch[:, 0, 0, 0]]


def test_history_mixes_the_stated_share():
    buf = HistoryBuffer(capacity=10, share=0.5, seed=1)
    first = _batch(0)
    out1 = buf.mix(first)
    assert torch.equal(out1, first)  # empty history: nothing to draw yet
    assert len(buf) == 4  # round(.5 * 8) new fakes stored
    second = _batch(100)
    out2 = buf.mix(second)
    assert out2.shape == second.shape
    assert _ids(out2)[:4] == [100, 101, 102, 103]  # current fakes first, in order
    old = _ids(out2)[4:]
    assert len(set(old)) == 4 and all(0 <= v < 8 for v in old)  # 4 = share * 8 from the first batch
    assert len(buf) == 8


def test_history_capacity_and_off_by_default():
    off = HistoryBuffer()
    b = _batch(0)
    assert off.mix(b) is b and len(off) == 0 and not off.enabled
    buf = HistoryBuffer(capacity=6, share=0.25, seed=0)
    for k in range(10):
        buf.mix(_batch(10 * k))
    assert len(buf) == 6
    state = buf.state_dict()
    clone = HistoryBuffer(capacity=1, share=0.1)
    clone.load_state_dict(state)
    assert len(clone) == 6 and clone.share == 0.25
    assert torch.equal(clone.mix(_batch(500)), buf.mix(_batch(500)))  # same contents and RNG state


def test_history_keeps_graph_of_current_fakes():
    buf = HistoryBuffer(capacity=8, share=0.5)
    w = torch.ones(1, requires_grad=True)
    buf.mix(_batch(0) * w)
    out = buf.mix(_batch(10) * w)
    out.sum().backward()
    assert float(w.grad) == pytest.approx(sum(range(10, 14)) * 4)  # only the 4 current images


def test_history_validates():
    with pytest.raises(ValueError, match="share"):
        HistoryBuffer(share=1.0)
    with pytest.raises(ValueError, match="capacity"):
        HistoryBuffer(capacity=0)
