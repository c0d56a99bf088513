"""gazetune.saliency.metrics: hand-computed values and pysaliency as the oracle."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gazetune.gaze import heatmap
from gazetune.saliency import metrics as M

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    pysaliency = pytest.importorskip("pysaliency")


@pytest.fixture(autouse=True)
def _numpy_trapz(monkeypatch):
    """pysaliency calls ``np.trapz``, which NumPy 2.4 removed; give it the renamed function."""
    if not hasattr(np, "trapz"):
        monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)


# ---------------------------------------------------------------- hand-computed values


def test_nss_by_hand():
    m = np.array([[0.0, 1.0], [2.0, 3.0]])  # mean 1.5, population std sqrt(1.25)
    fix = np.array([[1.0, 1.0], [0.0, 1.0]])  # pixels (1, 1) = 3 and (1, 0) = 2
    want = ((3 - 1.5) + (2 - 1.5)) / 2 / np.sqrt(1.25)
    assert M.nss(m, fix) == pytest.approx(want)
    assert M.nss(np.ones((3, 3)), fix) == 0.0


def test_fixation_rounding_and_bounds():
    rows, cols = M.fixation_pixels(np.array([[0.49, 1.5], [2.4, 0.0]]), (3, 3))
    assert rows.tolist() == [2, 0] and cols.tolist() == [0, 2]
    with pytest.raises(ValueError, match="outside"):
        M.nss(np.ones((3, 3)), np.array([[2.6, 0.0]]))
    with pytest.raises(ValueError, match="no fixations"):
        M.nss(np.ones((3, 3)), np.zeros((0, 2)))


def test_auc_by_hand():
    # 4 pixels with values 0..3; fixation on the 3 -> every negative is below: AUC 1
    m = np.array([[0.0, 1.0], [2.0, 3.0]])
    assert M.auc_judd(m, np.array([[1.0, 1.0]]), jitter=False) == pytest.approx(1.0)
    # fixation on the 1, negatives {0, 2, 3}: at threshold 1 TPR = 1 and FPR = 2/3, so the ROC runs
    # (0, 0) -> (2/3, 1) -> (1, 1): area = 0.5 * 2/3 * 1 + 1/3 * 1 = 2/3
    assert M.auc_judd(m, np.array([[1.0, 0.0]]), jitter=False) == pytest.approx(2 / 3)
    # shuffled: positive 2 against negatives {0, 2, 3}: (1 + 0.5) / 3
    assert M.shuffled_auc(m, np.array([[0.0, 1.0]]), np.array([[0, 0], [0, 1], [1, 1]])) == pytest.approx(0.5)


def test_cc_sim_kld_ig_by_hand():
    a = np.array([[1.0, 3.0]])
    b = np.array([[2.0, 2.0]])
    assert M.cc(a, 2 * a + 1) == pytest.approx(1.0)
    assert M.cc(a, -a) == pytest.approx(-1.0)
    assert M.cc(a, b) == 0.0  # constant map
    assert M.sim(a, b) == pytest.approx(0.25 + 0.5)
    assert M.kld(a, a) == pytest.approx(0.0, abs=1e-12)
    # target (0.5, 0.5) vs prediction (0.25, 0.75)
    assert M.kld(a, b) == pytest.approx(0.5 * np.log(0.5 / 0.25) + 0.5 * np.log(0.5 / 0.75))
    # IG over uniform at the pixel with density 0.75: log2(0.75 / 0.5)
    assert M.information_gain(a, b, np.array([[1.0, 0.0]])) == pytest.approx(np.log2(1.5))


# ---------------------------------------------------------------- pysaliency as the oracle


class _ArrayModel(pysaliency.SaliencyMapModel):
    """Returns the n-th given map for stimulus n (stimulus n is an image filled with n)."""

    def __init__(self, maps):
        super().__init__(caching=False)
        self.maps = maps

    def _saliency_map(self, stimulus):
        return self.maps[int(np.asarray(stimulus).flat[0])]


class _DensityModel(pysaliency.Model):
    def __init__(self, densities):
        super().__init__(caching=False)
        self.densities = densities

    def _log_density(self, stimulus):
        return np.log(self.densities[int(np.asarray(stimulus).flat[0])])


def _pysaliency_data(shape, fixations_per_image):
    stimuli = pysaliency.Stimuli([np.full(shape, n, dtype=np.uint8) for n in range(len(fixations_per_image))])
    xs = np.concatenate([f[:, 0] for f in fixations_per_image]) + 0.5  # pysaliency: pixel centres at +0.5
    ys = np.concatenate([f[:, 1] for f in fixations_per_image]) + 0.5
    ns = np.concatenate([np.full(len(f), n) for n, f in enumerate(fixations_per_image)])
    return stimuli, pysaliency.Fixations.create_without_history(xs, ys, ns)


def _compare_with_pysaliency(maps, fixations_per_image, targets):
    shape = maps[0].shape
    stimuli, fix = _pysaliency_data(shape, fixations_per_image)
    model = _ArrayModel(maps)
    # per image AUC-Judd (pysaliency averages over images), without and with tie-breaking noise
    ours_judd = np.mean([M.auc_judd(m, f, jitter=False) for m, f in zip(maps, fixations_per_image)])
    assert ours_judd == pytest.approx(model.AUC_Judd(stimuli, fix, jitter=False), abs=1e-12)
    # pysaliency draws the noise of image n after that of images 0..n-1: compare on image 0 alone
    first = _pysaliency_data(shape, fixations_per_image[:1])
    assert M.auc_judd(maps[0], fixations_per_image[0]) == pytest.approx(model.AUC_Judd(*first), abs=1e-12)
    # NSS and sAUC per fixation
    ours_nss = np.concatenate([[M.nss(m, f[i : i + 1]) for i in range(len(f))] for m, f in zip(maps, fixations_per_image)])
    np.testing.assert_allclose(ours_nss, model.NSSs(stimuli, fix), rtol=1e-9, atol=1e-12)
    ours_sauc = []
    for n, (m, f) in enumerate(zip(maps, fixations_per_image)):
        others = np.concatenate([g for k, g in enumerate(fixations_per_image) if k != n])
        ours_sauc.extend([M.shuffled_auc(m, f[i : i + 1], others) for i in range(len(f))])
    np.testing.assert_allclose(ours_sauc, model.sAUCs(stimuli, fix), atol=1e-12)
    for m, t in zip(maps, targets):
        assert M.cc(m, t) == pytest.approx(pysaliency.metrics.CC(m, t), abs=1e-12)
        assert M.sim(m, t) == pytest.approx(pysaliency.metrics.SIM(m, t), abs=1e-12)
        assert M.kld(m, t) == pytest.approx(pysaliency.metrics.image_based_kl_divergence(m, t), rel=1e-9)
    # information gain of densities over a baseline density
    dens = [M.to_density(m) for m in maps]
    base = M.to_density(np.exp(-((np.indices(shape) - np.array(shape)[:, None, None] / 2) ** 2).sum(0) / 50.0))
    ig = _DensityModel(dens).information_gain(stimuli, fix, baseline_model=_DensityModel([base] * len(maps)))
    n_fix = np.array([len(f) for f in fixations_per_image])
    ours_ig = np.sum([M.information_gain(d, base, f) * k for d, f, k in zip(dens, fixations_per_image, n_fix)]) / n_fix.sum()
    assert ours_ig == pytest.approx(ig, rel=1e-9)


def test_metrics_match_pysaliency_on_random_maps(rng):
    shape = (25, 32)
    maps, fixes, targets = [], [], []
    for _ in range(3):
        maps.append(rng.random(shape) ** 3 + 1e-3)
        f = np.stack([rng.integers(0, shape[1], 12), rng.integers(0, shape[0], 12)], axis=1).astype(float)
        fixes.append(f)
        targets.append(heatmap(f, shape, 2.0, normalize="sum").astype(np.float64))
    # a map with ties (quantised) exercises the tie handling of both AUCs
    maps[2] = np.round(maps[2] * 4) / 4 + 0.01
    _compare_with_pysaliency(maps, fixes, targets)


def test_metrics_match_pysaliency_on_osie_maps(shared_data):
    from gazetune.saliency.train import load_fixation_dataset

    ds = load_fixation_dataset(
        shared_data / "osie" / "stimuli", shared_data / "osie" / "fixations.csv", width=40,
        names=["1001.jpg", "1002.jpg", "1003.jpg"],
    )
    # prediction: the pooled map of the first 7 observers blurred; fixations of the others scored
    maps, fixes, targets = [], [], []
    for target, per_subject in zip(ds.maps, ds.fixations):
        subjects = sorted(per_subject)
        maps.append(heatmap(np.concatenate([per_subject[s] for s in subjects[:7]]), ds.shape, 3.0).astype(np.float64) + 1e-4)
        fixes.append(np.concatenate([per_subject[s] for s in subjects[7:]]))
        targets.append(target.astype(np.float64))
    _compare_with_pysaliency(maps, fixes, targets)
    # a sensible prediction beats chance clearly on every image
    assert all(M.auc_judd(m, f) > 0.75 and M.nss(m, f) > 1.0 for m, f in zip(maps, fixes))
