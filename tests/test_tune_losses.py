"""Patent eq 1-2, 9a-10b and the CutMix terms on 2x2 tensors with hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from gazetune.tune import losses as L

LOG2 = math.log(2.0)


def sp(v: float) -> float:  # softplus by hand
    return math.log1p(math.exp(v))


def test_eq1_and_eq2_on_hand_values():
    lf = torch.tensor([0.0, 2.0])
    lr = torch.tensor([1.0, -1.0])
    # eq 1: -log sigmoid(l) = softplus(-l)
    assert L.generator_loss_eq1(lf, "sum").item() == pytest.approx(LOG2 + sp(-2.0))
    assert L.generator_loss_eq1(lf).item() == pytest.approx((LOG2 + sp(-2.0)) / 2)
    # eq 2: -log D(x) - log(1 - D(G(z)))
    want = sp(-1.0) + sp(1.0) + LOG2 + sp(2.0)
    assert L.discriminator_loss_eq2(lr, lf, "sum").item() == pytest.approx(want)
    assert L.discriminator_loss_eq2(lr, lf).item() == pytest.approx(want / 2)
    # probability form agrees: D = 0.5 at logit 0
    d = torch.sigmoid(torch.tensor(2.0))
    assert L.generator_loss_eq1(torch.tensor([2.0]), "sum").item() == pytest.approx(-math.log(d), rel=1e-6)


def test_logit_forms_are_stable():
    big = torch.tensor([-200.0, 200.0])
    assert torch.isfinite(L.generator_loss_eq1(big)).all()
    assert L.generator_loss_eq1(torch.tensor([-200.0]), "sum").item() == pytest.approx(200.0)
    assert L.discriminator_loss_eq2(big, big).item() == pytest.approx((200 + 200) / 2)


def test_pixel_equations_2x2():
    pf = torch.tensor([[[[0.0, 1.0], [-1.0, 2.0]]]])  # (1, 1, 2, 2)
    pr = torch.tensor([[[[3.0, 0.0], [0.0, -2.0]]]])
    g9a = LOG2 + sp(-1) + sp(1) + sp(-2)
    assert L.generator_pixel_loss_eq9a(pf, "sum").item() == pytest.approx(g9a)
    assert L.generator_pixel_loss_eq9a(pf).item() == pytest.approx(g9a / 4)
    d10a = (sp(-3) + LOG2 + LOG2 + sp(2)) + (LOG2 + sp(1) + sp(-1) + sp(2))
    assert L.discriminator_pixel_loss_eq10a(pr, pf, "sum").item() == pytest.approx(d10a)
    sm_f = torch.tensor([[[[0.0, 1.0], [0.5, 2.0]]]])
    sm_r = torch.tensor([[[1.0, 0.0], [0.0, 3.0]]])  # (N, H, W) accepted
    g9b = 0 * LOG2 + 1 * sp(-1) + 0.5 * sp(1) + 2 * sp(-2)
    assert L.generator_pixel_loss_eq9b(pf, sm_f, "sum").item() == pytest.approx(g9b)
    d10b = (1 * sp(-3) + 3 * sp(2)) + (0 * LOG2 + 1 * sp(1) + 0.5 * sp(-1) + 2 * sp(2))
    assert L.discriminator_pixel_loss_eq10b(pr, pf, sm_r, sm_f, "sum").item() == pytest.approx(d10b)
    assert L.discriminator_pixel_loss_eq10b(pr, pf, sm_r, sm_f).item() == pytest.approx(d10b / 4)
    # all-ones weights reduce eq 9b/10b to eq 9a/10a
    ones = torch.ones_like(pf)
    assert L.generator_pixel_loss_eq9b(pf, ones).item() == pytest.approx(L.generator_pixel_loss_eq9a(pf).item())
    with pytest.raises(ValueError, match="sm_fake"):
        L.generator_pixel_loss_eq9b(pf, torch.ones(1, 1, 3, 3))
    with pytest.raises(ValueError, match="reduction"):
        L.generator_pixel_loss_eq9a(pf, "max")


def test_saliency_weights_hand_values():
    sm = torch.tensor([[[[0.0, 1.0], [1.0, 2.0]]], [[[0.0, 0.0], [0.0, 0.0]]]])  # mean 1; empty
    w = L.saliency_weights(sm, 0.5)
    assert w[0, 0].tolist() == [[0.5, 1.0], [1.0, 1.5]]
    assert w[1, 0].tolist() == [[1.0, 1.0], [1.0, 1.0]]  # nobody looked: uniform
    w1 = L.saliency_weights(sm * 4, 1.0)  # scale-free: SM / mean(SM)
    assert w1[0, 0].tolist() == [[0.0, 1.0], [1.0, 2.0]]
    assert torch.equal(L.saliency_weights(sm, 0.0), torch.ones_like(sm))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        L.saliency_weights(sm, 1.5)
    with pytest.raises(ValueError, match="non-negative"):
        L.saliency_weights(-sm - 1, 0.5)


def test_weighted_gradient_differs_only_where_weight_is_not_one():
    torch.manual_seed(0)
    sm = torch.tensor([[[[0.0, 1.0], [1.0, 2.0]]]])  # weights at a=0.5: 0.5, 1, 1, 1.5
    w = L.saliency_weights(sm, 0.5)
    la = torch.randn(1, 1, 2, 2, requires_grad=True)
    lb = la.detach().clone().requires_grad_(True)
    L.generator_pixel_loss_eq9b(la, w).backward()
    L.generator_pixel_loss_eq9a(lb).backward()
    diff = (la.grad - lb.grad)[0, 0]
    assert diff[0, 1].item() == 0.0 and diff[1, 0].item() == 0.0
    assert diff[0, 0].item() != 0.0 and diff[1, 1].item() != 0.0
    # d/dl softplus(-l) = -sigmoid(-l); weighted by (w - 1) / 4 in the mean
    want = (w - 1)[0, 0] * -torch.sigmoid(-la.detach()[0, 0]) / 4
    torch.testing.assert_close(diff, want)
    # same for the discriminator (real side and fake side)
    r = torch.randn(1, 1, 2, 2, requires_grad=True)
    f = torch.randn(1, 1, 2, 2, requires_grad=True)
    L.discriminator_pixel_loss_eq10b(r, f, w, w).backward()
    gr, gf = r.grad.clone(), f.grad.clone()
    r.grad = f.grad = None
    L.discriminator_pixel_loss_eq10a(r, f).backward()
    assert ((gr - r.grad)[0, 0][w[0, 0] == 1] == 0).all() and ((gf - f.grad)[0, 0][w[0, 0] == 1] == 0).all()
    assert ((gr - r.grad)[0, 0][w[0, 0] != 1] != 0).all()


def test_cutmix_losses_hand_values():
    mask = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    lm = torch.tensor([[[[2.0, 2.0], [0.0, -1.0]]]])
    # real pixels (mask 1): softplus(-l); fake pixels: softplus(l)
    want = sp(-2) + sp(2) + LOG2 + sp(1)
    assert L.discriminator_cutmix_loss(lm, mask, reduction="sum").item() == pytest.approx(want)
    w = torch.tensor([[[[2.0, 0.0], [1.0, 1.0]]]])
    want_w = 2 * sp(-2) + 0 + LOG2 + sp(1)
    assert L.discriminator_cutmix_loss(lm, mask, w, "sum").item() == pytest.approx(want_w)
    lr = torch.tensor([[[[1.0, 5.0], [5.0, 0.0]]]])
    lf = torch.tensor([[[[9.0, 1.0], [-1.0, 9.0]]]])
    # target = [[1, 1], [-1, 0]]; (l_mix - target)^2 = 1, 1, 1, 1
    assert L.cutmix_consistency_loss(lm, lr, lf, mask).item() == pytest.approx(1.0)
    assert L.cutmix_consistency_loss(lm, lr, lf, mask, "sum").item() == pytest.approx(4.0)
