"""gazetune.saliency.losses: eq 5-8 and KL against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gazetune.saliency.losses import bce_loss, cc_loss, center_weight, kl_loss, log_density, nss_loss, weighted_bce_loss


def _bce(y: float, p: float) -> float:
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_bce_matches_eq5_by_hand():
    logits = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])  # (1, 1, 2, 2)
    target = torch.tensor([[[1.0, 0.5], [0.0, 0.2]]])  # (1, 2, 2)
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    want = [_bce(1.0, sig(0.0)), _bce(0.5, sig(2.0)), _bce(0.0, sig(-1.0)), _bce(0.2, sig(3.0))]
    assert bce_loss(logits, target).item() == pytest.approx(np.mean(want), rel=1e-6)
    assert bce_loss(logits, target, reduction="sum").item() == pytest.approx(np.sum(want), rel=1e-6)  # eq 6
    assert bce_loss(logits, target, reduction="none").shape == (1, 2, 2)
    # stable for large logits where log(sigmoid) would underflow
    assert torch.isfinite(bce_loss(torch.full((1, 1, 1, 1), 200.0), torch.zeros(1, 1, 1))).all()


def test_bce_rejects_bad_targets():
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        bce_loss(torch.zeros(1, 1, 2, 2), torch.full((1, 2, 2), 2.0))
    with pytest.raises(ValueError, match="same size"):
        bce_loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 3, 2))


def test_center_weight_eq8_by_hand():
    w = center_weight(3, 5, k=1.0, sigma=2.0)
    assert w.shape == (3, 5)
    # centre (1, 2): 1 - 1/2 = 0.5; corner (0, 0): d^2 = 1 + 4
    assert w[1, 2].item() == pytest.approx(0.5)
    assert w[0, 0].item() == pytest.approx(1 - 0.5 * math.exp(-5 / 8), rel=1e-6)
    # larger k -> flatter (closer to 1 everywhere)
    assert torch.all(center_weight(3, 5, k=9.0, sigma=2.0) >= w)
    assert center_weight(4, 4, k=3.0, sigma=1.0)[1, 1].item() == pytest.approx(1 - 0.25 * math.exp(-0.25), rel=1e-6)
    for bad in ({"k": 0.0, "sigma": 1.0}, {"k": -1.0, "sigma": 1.0}, {"k": 1.0, "sigma": 0.0}):
        with pytest.raises(ValueError, match="k must|sigma must"):
            center_weight(3, 3, **bad)


def test_weighted_bce_is_eq7():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 5, 7)
    target = torch.rand(2, 5, 7)
    w = center_weight(5, 7, k=0.5, sigma=1.5)
    per_pixel = bce_loss(logits, target, reduction="none")
    assert weighted_bce_loss(logits, target, k=0.5, sigma=1.5, reduction="sum").item() == pytest.approx(
        (w * per_pixel).sum().item(), rel=1e-6
    )
    # the centre counts less than the plain BCE
    assert weighted_bce_loss(logits, target, k=0.5, sigma=1.5).item() < bce_loss(logits, target).item()


def test_kl_by_hand_and_minimum():
    # two pixels, sigmoid density from logits (0, 0) is (0.5, 0.5); target (1, 3) -> (0.25, 0.75)
    logits = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[1.0, 3.0]]])
    want = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert kl_loss(logits, target).item() == pytest.approx(want, rel=1e-6)
    # softmax density of logits (0, log 3) equals the target: KL 0
    exact = torch.tensor([[[[0.0, math.log(3.0)]]]])
    assert kl_loss(exact, target, density="softmax").item() == pytest.approx(0.0, abs=1e-6)
    # zeros in the target contribute nothing (no NaN)
    assert math.isfinite(kl_loss(logits, torch.tensor([[[0.0, 1.0]]])).item())
    with pytest.raises(ValueError, match="all zeros"):
        kl_loss(logits, torch.zeros(1, 1, 2))


def test_log_density_sums_to_one_and_cc_loss():
    torch.manual_seed(1)
    logits = torch.randn(3, 1, 6, 4)
    for density in ("sigmoid", "softmax"):
        assert torch.allclose(log_density(logits, density).exp().sum(dim=(1, 2)), torch.ones(3), atol=1e-6)
    target = torch.sigmoid(logits[:, 0])
    assert cc_loss(logits, target).item() == pytest.approx(0.0, abs=1e-5)  # density proportional to target
    assert cc_loss(logits, 1 - target).item() > 1.5


def test_nss_loss_by_hand_and_equals_the_metric_on_impulse_targets():
    # softmax density of logits log([1, 2, 3, 2]) on a 2x2 map: p = [1, 2, 3, 2] / 8
    logits = torch.log(torch.tensor([[[1.0, 2.0], [3.0, 2.0]]]))
    p = np.array([1, 2, 3, 2]) / 8
    z = (p - p.mean()) / p.std()  # population std, as the NSS metric
    # target: all mass on the pixel of value 3 (row 1, col 0) -> loss = -z[2]
    target = torch.tensor([[[0.0, 0.0], [1.0, 0.0]]])
    assert nss_loss(logits, target, density="softmax").item() == pytest.approx(-z[2], rel=1e-5)
    # two impulses of equal weight: minus the mean of their z values, which is the NSS metric
    from gazetune.saliency.metrics import nss

    target2 = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    fixations = np.array([[0.0, 0.0], [0.0, 1.0]])  # (x, y) of the pixels (row 0, col 0) and (row 1, col 0)
    expected = nss(p.reshape(2, 2), fixations)
    assert expected == pytest.approx((z[0] + z[2]) / 2, rel=1e-6)
    assert nss_loss(logits, target2, density="softmax").item() == pytest.approx(-expected, rel=1e-5)
    # a gradient step on -NSS raises the density where the target is
    lg = logits.clone().requires_grad_(True)
    nss_loss(lg, target, density="softmax").backward()
    assert lg.grad[0, 1, 0] < 0
