"""Eq 12 in use: a generator step against the human model raises its P(real) on fresh samples;
the plug-in works through the GAN loop's ``extra_generator_terms`` hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gazetune.nets.generator import DCGANGenerator
from gazetune.human.model import save_human_model
from gazetune.nets.latent import latents_from_seeds
from gazetune.human.losses import HumanModelTerm
from gazetune.human.train import HumanTrainConfig, train_human_model
from test_human_train import one_thread  # noqa: F401  (autouse: tiny models run on one thread)

SIZE = 25


@pytest.fixture(scope="module")
def human_model():
    """A joint human model whose observers call bright images (mean > .3) real, the rest fake."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    n = 96
    level = rng.uniform(-0.8, 0.8, n).astype(np.float32)
    images = np.clip(level[:, None, None, None] + rng.normal(0, 0.15, (n, 1, SIZE, SIZE)), -1, 1).astype(np.float32)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    centre = np.exp(-((xx - 12) ** 2 + (yy - 12) ** 2) / (2 * 3.0**2)).astype(np.float32)
    maps = np.repeat(centre[None], n, axis=0)
    answers = (level + rng.normal(0, 0.2, n) > 0.3).astype(float)  # only bright images pass
    participants = [f"p{i % 4}" for i in range(n)]
    cfg = HumanTrainConfig(steps=60, width=4, batch_size=16, holdout_fraction=0.25, flip=False)
    model, report = train_human_model(images, maps, answers, participants, None, cfg)
    assert report.holdout["label_auc"] > 0.8, report.holdout
    return model


def test_generator_step_with_eq12_raises_p_real_on_fresh_samples(human_model):
    torch.manual_seed(0)
    G = DCGANGenerator(z_dim=8, size=SIZE, channels=1, width=8)
    term = HumanModelTerm(human_model, weight=1.0)
    before_params = [p.clone() for p in human_model.parameters()]
    fresh = latents_from_seeds(range(10_000, 10_064), 8)  # never used for training
    with torch.no_grad():
        p_before = float(torch.sigmoid(human_model(G(fresh))[0]).mean())
    opt = torch.optim.Adam(G.parameters(), lr=5e-3, betas=(0.0, 0.99))
    gen = torch.Generator().manual_seed(1)
    for _ in range(8):
        z = torch.randn(32, 8, generator=gen)
        loss = term(G(z))["eq12_human"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        p_after = float(torch.sigmoid(human_model(G(fresh))[0]).mean())
    assert p_after > p_before + 0.1, (p_before, p_after)
    # the human model is frozen: no gradients, no change
    assert all(p.grad is None for p in human_model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before_params, human_model.parameters()))
    log = term.logged()
    assert set(log) == {"human/eq12", "human/p_real", "human/weight"} and 0 < log["human/p_real"] < 1


def test_term_through_gan_loss_hook(human_model, tmp_path):
    from gazetune.nets.discriminator import UNetDiscriminator
    from gazetune.tune.maps import MapProvider
    from gazetune.tune.train import GazeGANLoss, TrainConfig

    path = save_human_model(human_model, tmp_path / "human.safetensors")
    term = HumanModelTerm.load(path, weight=0.5)
    torch.manual_seed(0)
    cfg = TrainConfig(size=SIZE, channels=1, z_dim=8, g_width=8, d_width=8, batch=4, diffaug="", cutmix_prob=0.0)
    G, D = DCGANGenerator(z_dim=8, size=SIZE, channels=1, width=8), UNetDiscriminator(size=SIZE, channels=1, width=8)
    loss = GazeGANLoss(G, D, cfg, MapProvider("none"), torch.Generator().manual_seed(0), [term])
    batch = {"real": torch.zeros(4, 1, SIZE, SIZE), "sm_real": None, "z": torch.randn(4, 8), "sm_fake": None}
    terms = loss.accumulate_gradients("Gmain", batch)
    assert terms["G/eq12_human"] == pytest.approx(0.5 * term.logged()["human/eq12"], rel=1e-5)
    assert any(p.grad is not None for p in G.parameters())


def test_term_adapts_channels_and_size(human_model):
    term = HumanModelTerm(human_model, weight=2.0)
    rgb = torch.zeros(3, 3, 32, 32, requires_grad=True)  # RGB and 32 px into a grey 25 px model
    value = term.generator_loss(rgb)
    value.backward()
    assert rgb.grad is not None and torch.isfinite(value)
    with pytest.raises(ValueError, match=">= 0"):
        HumanModelTerm(human_model, weight=-1.0)
