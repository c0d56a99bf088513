"""Eq 11, 12, 14, 15 and CYBORG against values computed by hand; label/RT target helpers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gazetune.human import losses as HL

LN2 = math.log(2.0)


def test_label_loss_eq15_hand_values():
    # BCE(s, t) = softplus(s) - t s:  (s=0, t=1) -> ln 2;  (s=2, t=0) -> ln(1 + e^2) = 2.126928
    s, t = torch.tensor([0.0, 2.0]), torch.tensor([1.0, 0.0])
    assert float(HL.label_loss_eq15(s, t)) == pytest.approx((LN2 + 2.126928) / 2, abs=1e-5)
    # weights 1 and 3: (ln2 + 3 * 2.126928) / 4
    w = torch.tensor([1.0, 3.0])
    assert float(HL.label_loss_eq15(s, t, weight=w)) == pytest.approx((LN2 + 3 * 2.126928) / 4, abs=1e-5)


def test_gaze_loss_eq14_heatmap_hand_values():
    # pixels: (s=0, t=.5) -> ln 2; (s=ln 3, t=1) -> ln 4 - ln 3 = ln(4/3)
    s = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 1, 2)
    t = torch.tensor([0.5, 1.0]).view(1, 1, 1, 2)
    assert float(HL.gaze_loss_eq14(s, t)) == pytest.approx((LN2 + math.log(4 / 3)) / 2, abs=1e-6)


def test_gaze_loss_eq14_scanpath_mse_with_mask():
    pred = torch.tensor([[[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]])
    tgt = torch.tensor([[[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]])
    # row 1: (0 + 0 + .25) / 3 ; row 2: 1
    assert float(HL.gaze_loss_eq14(pred, tgt, "scanpath")) == pytest.approx((0.25 / 3 + 1) / 2)
    valid = torch.tensor([[True, False]])
    assert float(HL.gaze_loss_eq14(pred, tgt, "scanpath", valid=valid)) == pytest.approx(0.25 / 3)


def test_human_model_loss_eq11_is_gaze_plus_label():
    s_gaze = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 1, 2)
    t_gaze = torch.tensor([0.5, 1.0]).view(1, 1, 1, 2)
    total, parts = HL.human_model_loss_eq11(torch.tensor([0.0]), s_gaze, torch.tensor([1.0]), t_gaze)
    expected = (LN2 + math.log(4 / 3)) / 2 + LN2
    assert float(total) == pytest.approx(expected, abs=1e-6)
    assert parts["label"] == pytest.approx(LN2, abs=1e-6)
    # gaze_coef scales only the gaze term
    total2, _ = HL.human_model_loss_eq11(torch.tensor([0.0]), s_gaze, torch.tensor([1.0]), t_gaze, gaze_coef=0.0)
    assert float(total2) == pytest.approx(LN2, abs=1e-6)


def test_generator_human_term_eq12_hand_values_and_stability():
    s = torch.tensor([0.0, math.log(3.0)])  # sigmoid = .5, .75
    assert float(HL.generator_human_term_eq12(s, "sum")) == pytest.approx(LN2 + math.log(4 / 3), abs=1e-6)
    assert float(HL.generator_human_term_eq12(s)) == pytest.approx((LN2 + math.log(4 / 3)) / 2, abs=1e-6)
    far = torch.tensor([-200.0, 200.0], requires_grad=True)
    v = HL.generator_human_term_eq12(far, "sum")
    v.backward()
    assert float(v.detach()) == pytest.approx(200.0, rel=1e-6)  # -log sigmoid(-200) = 200, no inf
    assert torch.all(torch.isfinite(far.grad)) and float(far.grad[0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="reduction"):
        HL.generator_human_term_eq12(s, "max")


def test_label_targets_binary_and_likert():
    assert HL.label_targets([0, 1, 1]).tolist() == [0.0, 1.0, 1.0]
    assert HL.label_targets([1, 2, 3, 4, 5], "likert5").tolist() == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert HL.label_targets([1, 4, 7], "1-7", real_end="low").tolist() == [1.0, 0.5, 0.0]
    with pytest.raises(ValueError, match=r"answer 2 at index 1 is not on the binary scale"):
        HL.label_targets([0, 2])
    with pytest.raises(ValueError, match=r"not on the 1-5 scale \(1..5\)"):
        HL.label_targets([0], "likert5")


def test_rt_confidence_weights():
    # median of (500, 1000, 2000, 8000) = 1500 -> 1, 1, .75, .25 (floor)
    w = HL.rt_confidence_weights([500, 1000, 2000, 8000])
    assert w.tolist() == pytest.approx([1.0, 1.0, 0.75, 0.25])
    assert HL.rt_confidence_weights([500, np.nan], "none").tolist() == [1.0, 1.0]
    assert HL.rt_confidence_weights([np.nan, 1000.0], reference_ms=500).tolist() == [1.0, 0.5]
    with pytest.raises(ValueError, match="> 0 ms"):
        HL.rt_confidence_weights([0.0, 10.0])


def test_scanpath_target():
    tgt, valid = HL.scanpath_target([[0, 24, 500], [12, 12, 3000]], 3, (25, 25), max_duration_ms=1000)
    np.testing.assert_allclose(tgt, [[0, 1, 0.5], [0.5, 0.5, 1.0], [0, 0, 0]], atol=1e-7)
    assert valid.tolist() == [True, True, False]


def test_cyborg_zero_when_cam_equals_human_map():
    g = torch.Generator().manual_seed(0)
    human = torch.rand(3, 7, 7, generator=g)
    ce = torch.tensor(0.8)
    loss, d = HL.cyborg_loss(human.clone(), human, ce, weight=0.5)
    assert float(d) == pytest.approx(0.0, abs=1e-6)
    assert float(loss) == pytest.approx(0.4, abs=1e-6)  # (1 - .5) * ce
    # invariant to a positive affine change of the CAM (raw CAM units are arbitrary)
    _, d2 = HL.cyborg_loss(3.0 * human + 1.0, human[:, None], ce, weight=0.5)
    assert float(d2) == pytest.approx(0.0, abs=1e-6)


def test_cyborg_hand_value_and_validation():
    cam = torch.tensor([[[0.0, 1.0]]])
    human = torch.tensor([[[1.0, 0.0]]])
    loss, d = HL.cyborg_loss(cam, human, torch.tensor(2.0), weight=0.5)
    assert float(d) == pytest.approx(1.0)  # normalised maps (0, 1) vs (1, 0): mean |diff| = 1
    assert float(loss) == pytest.approx(0.5 * 2.0 + 0.5 * 1.0)
    loss0, _ = HL.cyborg_loss(cam, human, torch.tensor(2.0), weight=0.0)
    assert float(loss0) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="CYBORG weight"):
        HL.cyborg_loss(cam, human, torch.tensor(2.0), weight=1.5)


def test_shape_mismatch_errors_name_the_problem():
    with pytest.raises(ValueError, match="differ in shape"):
        HL.label_loss_eq15(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="differ in shape"):
        HL.gaze_loss_eq14(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 5))
