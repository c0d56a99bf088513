"""Map sets (direct maps from people) and the map provider's modes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gazetune.gaze.fixation_table import FixationTable
from gazetune.nets.latent import latent_from_seed
from gazetune.tune.maps import MapProvider, MapSet, parse_synthetic_name, synthetic_image_name


def test_synthetic_names_round_trip():
    name = synthetic_image_name("pre@2000", 42)
    assert parse_synthetic_name(name) == ("pre@2000", 42)
    assert parse_synthetic_name("face_01.png") is None
    with pytest.raises(ValueError, match="seed"):
        parse_synthetic_name("synthetic/v1/x")


def test_from_fixations_and_npz_round_trip(tmp_path):
    t = FixationTable()
    t.add("a.png", "s1", np.array([[2.0, 1.0, 300.0]]))
    t.add("a.png", "s2", np.array([[2.0, 1.0, 100.0]]))
    t.add(synthetic_image_name("v1", 5), "s1", np.array([[0.0, 0.0, 200.0]]))
    ms = MapSet.from_fixations(t, sigma=1.0, shape=(3, 5))
    assert sorted(ms.real) == ["a.png"] and list(ms.synthetic) == [("v1", 5)]
    # pooled over two observers at the same spot: peak 1 at (row 1, col 2)
    assert ms.real["a.png"][1, 2] == pytest.approx(1.0)
    assert ms.real["a.png"][1, 3] == pytest.approx(np.exp(-0.5))
    assert ms.synthetic[("v1", 5)][0, 0] == pytest.approx(1.0)
    path = tmp_path / "maps.npz"
    ms.save(path)
    back = MapSet.load(path)
    assert back.seeds("v1") == [5] and back.versions() == ["v1"] and len(back) == 2
    np.testing.assert_array_equal(back.real["a.png"], ms.real["a.png"])
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file
    np.savez(tmp_path / "bad.npz", x=np.zeros(2))
    with pytest.raises(ValueError, match="missing array"):
        MapSet.load(tmp_path / "bad.npz")


def _maps() -> MapSet:
    real = {"r1": np.full((4, 4), 1.0, np.float32), "r3": np.full((4, 4), 3.0, np.float32)}
    syn = {("v1", 11): np.full((4, 4), 5.0, np.float32), ("v2", 12): np.full((4, 4), 7.0, np.float32)}
    return MapSet(real=real, synthetic=syn)


def test_direct_mode_draws_observed_images_and_seeds():
    names = ["r0", "r1", "r2", "r3"]
    images = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 1, 4, 4).contiguous()
    logged = []
    p = MapProvider("direct", maps=_maps(), generator_version="v1", log=logged.append)
    info = p.bind(names, (4, 4), z_dim=6)
    assert info["mode"] == "direct" and info["n_real_maps"] == 2 and info["n_synthetic_maps"] == 1
    gen = torch.Generator().manual_seed(0)
    x, sm = p.sample_real(images, 16, gen)
    # only observed images r1, r3; each comes with its own map (value = image index here)
    assert set(x[:, 0, 0, 0].tolist()) <= {1.0, 3.0}
    torch.testing.assert_close(sm, x[:, :1])
    z, smz = p.sample_latents(3, gen)
    torch.testing.assert_close(z, latent_from_seed(11, 6).expand(3, 6))  # only version v1's seed
    assert float(smz.min()) == float(smz.max()) == 5.0
    assert logged == [info]


def test_direct_mode_without_matching_maps_is_an_error():
    p = MapProvider("direct", maps=_maps(), generator_version="v9")
    with pytest.raises(ValueError, match="no observed map matches"):
        p.bind(["a", "b"], (4, 4), z_dim=6)
    with pytest.raises(RuntimeError, match="bind"):
        MapProvider("none").sample_latents(2, torch.Generator())


class CountingSaliency(nn.Module):
    """Stand-in M_saliency: logit = 10 * mean over channels; counts images seen."""

    def __init__(self):
        super().__init__()
        self.seen = 0

    def forward(self, x):
        self.seen += x.shape[0]
        return 10 * x.mean(dim=1, keepdim=True)[:, :, ::2, ::2]  # half size: provider resizes


def test_predicted_mode_uses_model_without_grad_and_caches_real():
    model = CountingSaliency()
    p = MapProvider("predicted", saliency_model=model)
    p.bind(["a", "b", "c"], (4, 4), z_dim=2)
    images = torch.stack([torch.full((1, 4, 4), v) for v in (-1.0, 0.0, 1.0)])
    gen = torch.Generator().manual_seed(1)
    x, sm = p.sample_real(images, 8, gen)
    assert sm.shape == (8, 1, 4, 4)
    torch.testing.assert_close(sm, torch.sigmoid(10 * x))
    seen = model.seen
    assert seen <= 3
    p.sample_real(images, 8, gen)
    assert model.seen <= 3  # real maps come from the cache
    fake = torch.zeros(2, 1, 4, 4, requires_grad=True)
    m = p.fake_maps(fake, None)
    assert not m.requires_grad and torch.allclose(m, torch.full_like(m, 0.5))


def test_auto_mode_threshold():
    names = ["r0", "r1", "r2", "r3"]
    model = CountingSaliency()
    a = MapProvider("auto", maps=_maps(), saliency_model=model, min_observed=4)
    assert a.bind(names, (4, 4), 2)["mode"] == "hybrid"  # 2 real + 2 synthetic = 4 observed, a model to predict
    d = MapProvider("auto", maps=_maps(), min_observed=4)
    assert d.bind(names, (4, 4), 2)["mode"] == "direct"  # enough observed, no model: the seeds people saw
    b = MapProvider("auto", maps=_maps(), saliency_model=model, min_observed=5)
    info = b.bind(names, (4, 4), 2)
    assert info["mode"] == "predicted" and "4 observed" in info["reason"]
    c = MapProvider("auto", maps=_maps(), min_observed=5)
    with pytest.raises(ValueError, match="no saliency model"):
        c.bind(names, (4, 4), 2)


def test_hybrid_mode_measured_real_maps_predicted_fresh_fakes():
    """hybrid: real images keep their measured maps; fakes come from fresh latents with maps
    predicted for the generated image, except an observed share with their measured maps."""
    import torch

    from gazetune.tune.maps import MapProvider

    names = ["r0", "r1", "r2", "r3"]
    model = CountingSaliency()
    p = MapProvider("hybrid", maps=_maps(), saliency_model=model, observed_share=0.5)
    info = p.bind(names, (4, 4), 2)
    assert info["mode"] == "hybrid" and info["observed_share"] == 0.5
    gen = torch.Generator().manual_seed(0)
    z, sm = p.sample_latents(4, gen)
    known = torch.isfinite(sm).all(dim=(1, 2, 3))
    assert known.tolist() == [True, True, False, False]  # half from the observed seeds
    z2, _ = p.sample_latents(4, gen)
    assert not torch.equal(z[2:], z2[2:])  # the rest are fresh latents, not observed seeds
    fake = torch.rand(4, 1, 4, 4, generator=gen)
    maps = p.fake_maps(fake, sm)
    assert torch.isfinite(maps).all()
    assert torch.equal(maps[:2], sm[:2])  # measured maps kept
    assert torch.allclose(maps[2:], p.predict(fake[2:]))  # predicted for the images in the batch
    real, sm_real = p.sample_real(torch.rand(4, 1, 4, 4), 3, gen)
    assert sm_real is not None and torch.isfinite(sm_real).all()
    import pytest

    with pytest.raises(ValueError, match="saliency model"):
        MapProvider("hybrid", maps=_maps())
