"""Style-based generator: contract, determinism, style mixing, truncation, gradients, a fit."""

from __future__ import annotations

import pytest
import torch

from gazetune.nets import DCGANGenerator, latents_from_seeds
from gazetune.nets.generator import check_generator
from gazetune.nets.style_generator import StyleGenerator, build_generator


def small(**kw) -> StyleGenerator:
    torch.manual_seed(0)
    args = dict(z_dim=16, size=32, channels=3, width=8, mapping_layers=2)
    args.update(kw)
    return StyleGenerator(**args)


@pytest.mark.parametrize("size,channels", [(32, 3), (64, 1), (48, 3)])
def test_shapes_and_range(size, channels):
    g = small(size=size, channels=channels)
    assert check_generator(g) == 16
    x = g.eval()(torch.randn(3, 16) * 5)
    assert x.shape == (3, channels, size, size)
    assert float(x.abs().max()) <= 1.0
    assert g.num_ws == 2 * len(g.sizes)
    # not saturated at initialisation (tanh in its linear range)
    assert float((x.abs() > 0.95).float().mean()) < 0.05


def test_eval_is_deterministic_and_batch_independent():
    g = small().eval()
    z = latents_from_seeds([1, 2, 3], 16)
    torch.testing.assert_close(g(z), g(z), rtol=0, atol=0)
    torch.testing.assert_close(g(z[1:2]), g(z)[1:2])
    # the fixed noise comes from the seed, not torch's global RNG: a rebuilt copy draws the same image
    torch.manual_seed(123)
    h = StyleGenerator(**g.config())
    h.load_state_dict(g.state_dict())
    torch.testing.assert_close(h.eval()(z), g(z))
    # training draws never move torch's global RNG
    before = torch.get_rng_state()
    g.train()(z)
    assert torch.equal(before, torch.get_rng_state())


def test_train_mode_draws_are_reproducible_from_the_state_dict():
    g = small().train()
    z = latents_from_seeds([4, 5], 16)
    state = {k: v.clone() for k, v in g.state_dict().items()}
    a = g(z)
    b = g(z)  # the private generator moved on: fresh noise and mixing
    assert not torch.allclose(a, b)
    g.load_state_dict(state)
    torch.testing.assert_close(g(z), a)


def test_noise_modes():
    z = latents_from_seeds([7], 16)
    g = small(noise_mode="const", mixing_prob=0.0)
    with torch.no_grad():
        for blk in g.blocks:
            blk.layer0.noise_strength.fill_(0.5)
            blk.layer1.noise_strength.fill_(0.5)
    train_img = g.train()(z)
    torch.testing.assert_close(train_img, g.eval()(z))  # const noise, no mixing: train == eval image
    g.noise_mode = "none"
    assert not torch.allclose(g(z), train_img)
    with pytest.raises(ValueError, match="noise_mode"):
        small(noise_mode="loud")


def test_style_mixing_changes_the_output():
    g = small().eval()
    z1, z2 = latents_from_seeds([10], 16), latents_from_seeds([11], 16)
    plain = g(z1)
    torch.testing.assert_close(g.mix(z1, z2, g.num_ws), plain)  # crossover after the last layer
    torch.testing.assert_close(g.mix(z1, z2, 0), g(z2))
    coarse_from_z1 = g.mix(z1, z2, 2)
    assert (coarse_from_z1 - plain).abs().mean() > 1e-3
    assert (coarse_from_z1 - g(z2)).abs().mean() > 1e-3
    # in training, mixing_prob switches it on and off
    on, off = small(mixing_prob=1.0, noise_mode="const").train(), small(mixing_prob=0.0, noise_mode="const").train()
    off.load_state_dict(on.state_dict())
    z = latents_from_seeds([1, 2, 3, 4], 16)
    assert (on(z) - off(z)).abs().mean() > 1e-3


def test_truncation_psi_zero_gives_the_mean_image():
    g = small(w_avg_beta=0.5).train()
    with torch.no_grad():
        for _ in range(3):
            g(torch.randn(8, 16))
    assert float(g.w_avg.abs().sum()) > 0  # the running mean moved
    g.eval()
    z = latents_from_seeds([1, 2, 3], 16)
    mean_img = g(z, psi=0.0)
    torch.testing.assert_close(mean_img, mean_img[:1].expand_as(mean_img))
    ws = g.w_avg[None, None].expand(1, g.num_ws, -1)
    torch.testing.assert_close(mean_img[:1], g.synthesize(ws, g.fixed_noise(1)))
    half = g(z, psi=0.5)
    full = g(z)
    assert float((half - mean_img).abs().mean()) < float((full - mean_img).abs().mean())
    g.truncation_psi = 0.0  # the eval default
    torch.testing.assert_close(g(z), mean_img)


def test_gradients_reach_every_parameter():
    g = small(noise_mode="random", mixing_prob=0.5).train()
    g(torch.randn(4, 16)).square().mean().backward()
    missing = [n for n, p in g.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    assert float(g.mapping.fcs[0].weight.grad.abs().sum()) > 0


def test_regression_fit_reduces_the_loss():
    g = small(size=32, channels=1, width=4, mixing_prob=0.0, noise_mode="const")
    z = latents_from_seeds([0, 1, 2, 3], 16)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    target = torch.stack([xx, yy, -xx * yy, (xx**2 + yy**2) - 0.7])[:, None] * 0.8
    opt = torch.optim.Adam(g.parameters(), lr=1e-2, betas=(0.0, 0.99))
    losses = []
    for _ in range(80):
        loss = (g(z) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.1 * losses[0]


def test_scriptable_and_traceable(tmp_path):
    g = small().eval()
    z = latents_from_seeds([3, 4], 16)
    s = torch.jit.script(g)
    assert s.z_dim == 16
    torch.testing.assert_close(s(z), g(z))
    path = tmp_path / "g.pt"
    s.save(str(path))
    torch.testing.assert_close(torch.jit.load(str(path))(z), g(z))
    t = torch.jit.trace(g, z, check_trace=False)
    torch.testing.assert_close(t(latents_from_seeds([5, 6], 16)), g(latents_from_seeds([5, 6], 16)))


def test_build_generator_and_config_round_trip():
    g = build_generator("style", z_dim=16, size=32, channels=1, width=8, mixing_prob=0.3)
    assert isinstance(g, StyleGenerator)
    h = build_generator("style", **g.config())
    assert h.config() == g.config()
    assert isinstance(build_generator("dcgan", z_dim=8, size=32, channels=1, width=4), DCGANGenerator)
    with pytest.raises(ValueError, match="unknown generator kind"):
        build_generator("vqgan")
    with pytest.raises(ValueError, match="channels"):
        StyleGenerator(channels=2)
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        g(torch.zeros(2, 5))
