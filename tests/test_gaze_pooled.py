"""pooled_heatmap's single-product implementation against its definition: the mean of the
observers' density maps (each made with heatmap(..., normalize="sum"))."""

import numpy as np
import pytest

from gazetune.gaze import heatmap, pooled_heatmap, read_fixation_table


def _reference(observers, shape, sigma, normalize):
    dens = [heatmap(f, shape, sigma, normalize="sum").astype(np.float64) for f in observers if len(f)]
    m = np.mean(dens, axis=0)
    if normalize == "max":
        m = m / m.max()
    elif normalize == "sum":
        m = m / m.sum()
    return m


@pytest.mark.parametrize("normalize", ["max", "sum", "none"])
def test_pooled_equals_mean_of_densities(normalize):
    rng = np.random.default_rng(0)
    observers = [
        np.stack([rng.uniform(-5, 45, n), rng.uniform(0, 30, n), rng.uniform(50, 900, n)], axis=1) for n in (1, 4, 9)
    ]
    observers.append(np.zeros((0, 3)))  # no fixations: skipped
    observers.append(np.array([[10.0, 10.0, 0.0]]))  # zero duration: a zero map that still counts
    got = pooled_heatmap(observers, (30, 40), 2.5, normalize=normalize)
    want = _reference(observers, (30, 40), 2.5, normalize)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-12)


def test_pooled_on_real_osie_image(shared_data):
    table = read_fixation_table(shared_data / "osie" / "fixations.csv")
    obs = list(table.for_image(table.images()[7]).values())
    assert len(obs) == 15
    scaled = [o * [0.25, 0.25, 1.0] for o in obs]  # 800x600 -> 200x150
    got = pooled_heatmap(scaled, (150, 200), 9.5, normalize="sum")
    np.testing.assert_allclose(got, _reference(scaled, (150, 200), 9.5, "sum"), rtol=2e-5, atol=1e-12)
