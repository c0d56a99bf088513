"""DiffAugment, CutMix and the EMA on small hand-checked cases."""

from __future__ import annotations

import pytest
import torch

from gazetune.tune.augment import cutmix, cutout_mask, diff_augment, translate
from gazetune.tune.ema import EMA, ema_beta


def test_translate_moves_pixels_with_zero_fill():
    x = torch.arange(1.0, 10.0).view(1, 1, 3, 3)
    out = translate(x, torch.tensor([[1, -1]]))  # down 1, left 1
    assert out[0, 0].tolist() == [[0, 0, 0], [2, 3, 0], [5, 6, 0]]
    big = translate(x, torch.tensor([[5, 0]]))  # shifted entirely out
    assert float(big.abs().sum()) == 0.0


def test_translate_is_differentiable():
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    translate(x, torch.tensor([[1, 0], [0, 0]])).sum().backward()
    # image 0 lost its bottom row; image 1 kept everything
    assert float(x.grad[0, :, 3].abs().sum()) == 0.0 and float(x.grad[0, :, :3].min()) == 1.0
    assert float(x.grad[1].min()) == 1.0


def test_maps_follow_translation():
    gen = torch.Generator().manual_seed(3)
    x = torch.zeros(4, 1, 16, 16)
    x[:, :, 8, 8] = 1.0
    m = x.clone()  # map marks the same pixel
    xa, (ma, none) = diff_augment(x, gen, ("translation",), maps=[m, None], translation_ratio=0.5)
    assert none is None
    for k in range(4):
        pos_x = torch.nonzero(xa[k, 0] == 1.0)
        pos_m = torch.nonzero(ma[k, 0] == ma[k, 0].max())
        assert torch.equal(pos_x, pos_m)


def test_diff_augment_reproducible_and_gradient_flows():
    x = torch.rand(3, 3, 8, 8, requires_grad=True)
    a, _ = diff_augment(x, torch.Generator().manual_seed(0))
    b, _ = diff_augment(x, torch.Generator().manual_seed(0))
    torch.testing.assert_close(a, b)
    a.sum().backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    with pytest.raises(ValueError, match="policy"):
        diff_augment(x, torch.Generator(), ("rotate",))


def test_cutout_mask_square_size():
    m = cutout_mask(5, 16, 16, 0.5, torch.Generator().manual_seed(1))
    zeros = (m == 0).sum(dim=(1, 2, 3))
    assert m.shape == (5, 1, 16, 16)
    assert bool((zeros <= 64).all()) and bool((zeros >= 16).all())  # 8x8 clipped at most to 4x4


def test_cutmix_mixes_by_mask():
    real = torch.ones(6, 3, 10, 10)
    fake = -torch.ones(6, 3, 10, 10)
    mixed, mask = cutmix(real, fake, torch.Generator().manual_seed(0))
    assert mask.shape == (6, 1, 10, 10)
    torch.testing.assert_close(mixed, mask * 2 - 1 + torch.zeros_like(real))
    frac_fake = 1 - mask.mean(dim=(1, 2, 3))
    assert bool((frac_fake >= 0).all()) and bool((frac_fake <= 1).all()) and float(frac_fake.std()) > 0


def test_ema():
    assert ema_beta(32, 0) == 0.0
    assert ema_beta(10, 10) == pytest.approx(0.5)
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(net.weight, 0.0)
    ema = EMA(net, beta=0.75)
    torch.nn.init.constant_(net.weight, 4.0)
    ema.update(net)
    assert ema.model.weight.item() == pytest.approx(1.0)  # 0.75 * 0 + 0.25 * 4
    ema.update(net)
    assert ema.model.weight.item() == pytest.approx(1.75)  # 0.75 * 1 + 0.25 * 4
    assert not ema.model.weight.requires_grad
