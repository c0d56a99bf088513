import math

import numpy as np
import pytest

from gazetune.gaze import ScreenGeometry


def test_defaults_hand_computed():
    g = ScreenGeometry()
    d_px = 60.0 * 1920 / 53.1  # eye-screen distance in pixels
    assert g.distance_px == pytest.approx(d_px)
    assert g.deg_to_px(1.0) == pytest.approx(2 * d_px * math.tan(math.radians(0.5)))
    assert g.px_per_deg == pytest.approx(37.866, abs=1e-3)
    np.testing.assert_allclose(g.px_to_deg(g.deg_to_px(np.array([0.0, 1.0, 10.0]))), [0.0, 1.0, 10.0])


def test_positions_agree_with_pymovements_screen():
    import pymovements as pm

    g = ScreenGeometry(1280, 1024, 38.0, 30.0, 68.0)
    # pymovements' own doctest example: (123, 865) -> (-12.707..., 8.659...)
    np.testing.assert_allclose(g.positions_to_deg([123.0], [865.0]), [[-12.70732231, 8.65963972]], rtol=1e-7)
    screen = g.to_pymovements()
    assert isinstance(screen, pm.Screen) and screen.distance_cm == 68.0
    # half a degree either side of the centre spans deg_to_px(1)
    c = (1280 - 1) / 2
    half = g.deg_to_px(1.0) / 2
    deg = g.positions_to_deg([c - half, c + half], [511.5, 511.5])
    np.testing.assert_allclose(deg[:, 0], [-0.5, 0.5], atol=1e-4)


def test_image_px_per_deg_scales_with_display_size():
    g = ScreenGeometry()
    assert g.image_px_per_deg((800, 600)) == pytest.approx(g.px_per_deg)
    assert g.image_px_per_deg((800, 600), display_size=(400, 300)) == pytest.approx(2 * g.px_per_deg)
    assert g.image_px_per_deg((64, 64), display_size=(512, 512)) == pytest.approx(g.px_per_deg / 8)


def test_image_to_deg_centres_the_image():
    g = ScreenGeometry()
    deg = g.image_to_deg(np.array([399.5]), np.array([299.5]), (800, 600))
    np.testing.assert_allclose(deg, [[0.0, 0.0]], atol=1e-9)
    assert g.centered_rect((800, 600)) == (560.0, 240.0, 800.0, 600.0)


def test_bad_geometry_named():
    with pytest.raises(ValueError, match="distance_cm"):
        ScreenGeometry(distance_cm=0)
    with pytest.raises(ValueError, match="screen_width_cm"):
        ScreenGeometry(screen_width_cm=float("nan"))
    with pytest.raises(ValueError, match=r"\[0, 180\)"):
        ScreenGeometry().deg_to_px(-1.0)
