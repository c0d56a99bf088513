import matplotlib
import numpy as np
import pytest
from PIL import Image

from gazetune.gaze.overlay import as_rgb_uint8, colorize, heatmap_overlay, save_png, scanpath_overlay


def _grey(h=40, w=60, v=100):
    return np.full((h, w, 3), v, np.uint8)


def test_heatmap_overlay_blends_by_value():
    img = _grey()
    heat = np.zeros((40, 60))
    heat[10, 20] = 2.0
    heat[30, 50] = 0.5
    out = heatmap_overlay(img, heat, alpha=1.0, cmap="viridis", gamma=1.0)
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    # peak: pure colour-map top colour; zero heat: image untouched
    top = np.round(np.array(matplotlib.colormaps["viridis"](1.0)[:3]) * 255)
    np.testing.assert_allclose(out[10, 20], top, atol=1)
    np.testing.assert_array_equal(out[0, 0], [100, 100, 100])
    # a quarter of the peak at alpha 1, gamma 1: 25 % colour, 75 % image
    col = np.array(matplotlib.colormaps["viridis"](0.25)[:3]) * 255
    np.testing.assert_allclose(out[30, 50], 0.75 * 100 + 0.25 * col, atol=1.5)


def test_heatmap_overlay_resizes_small_maps_and_rejects_bad_maps():
    out = heatmap_overlay(_grey(64, 64), np.ones((8, 8)), alpha=0.5)
    assert out.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="non-negative"):
        heatmap_overlay(_grey(), -np.ones((40, 60)))
    with pytest.raises(ValueError, match="alpha"):
        heatmap_overlay(_grey(), np.ones((40, 60)), alpha=2)


def test_scanpath_overlay_draws_at_fixations_only():
    img = _grey(100, 100, 0)
    fix = np.array([[20.0, 20.0, 300.0], [80.0, 70.0, 100.0]])
    out = scanpath_overlay(img, fix, numbers=False)
    assert out[20, 20].sum() > 0 and out[70, 80].sum() > 0  # circles
    assert out[45, 50].sum() > 0  # on the saccade line from (20,20) to (80,70)
    assert out[90, 5].sum() == 0  # far away: untouched
    big = scanpath_overlay(img, fix, scale=4)
    assert big.shape == (400, 400, 3) and big[80, 90].sum() > 0  # centre holds the black "1"
    # fixations given in a 50x50 frame land at the same place on the 100x100 image
    half = scanpath_overlay(img, fix / [2, 2, 1], image_size=(50, 50), numbers=False)
    np.testing.assert_array_equal(half, out)


def test_as_rgb_and_colorize_conventions():
    np.testing.assert_array_equal(as_rgb_uint8(np.array([[-1.0, 1.0]]))[0, :, 0], [0, 255])
    np.testing.assert_array_equal(as_rgb_uint8(np.ones((3, 2, 2)))[..., 0], 255 * np.ones((2, 2)))
    assert colorize(np.zeros((2, 2))).shape == (2, 2, 3)


def test_save_png_atomic_roundtrip(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (7, 9, 3), dtype=np.uint8)
    p = save_png(rgb, tmp_path / "sub" / "o.png")
    np.testing.assert_array_equal(np.asarray(Image.open(p)), rgb)
    assert [q.name for q in p.parent.iterdir()] == ["o.png"]  # no temporary file left
    with pytest.raises(ValueError, match="uint8"):
        save_png(rgb.astype(float), tmp_path / "x.png")
