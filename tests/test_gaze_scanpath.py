import numpy as np
import pytest

from gazetune.gaze import Fixations, ScreenGeometry, scanpath, scanpath_vector


def test_saccade_amplitudes_directions_durations_hand_computed():
    fix = Fixations(x=[100, 130, 130, 90], y=[200, 160, 260, 260], duration_ms=[200, 100, 300, 50], onset_ms=[0, 250, 400, 720])
    sp = scanpath(fix)
    np.testing.assert_allclose(sp.amplitude_px, [50.0, 100.0, 40.0])
    # up-right (dx=30, dy=-40), straight down, straight left
    np.testing.assert_allclose(sp.direction_deg, [np.degrees(np.arctan2(40, 30)), -90.0, 180.0])
    np.testing.assert_allclose(sp.saccade_duration_ms, [50.0, 50.0, 20.0])
    assert np.all(np.isnan(sp.amplitude_deg))
    np.testing.assert_allclose(sp.fixation_duration_ms, [200, 100, 300, 50])


def test_amplitude_in_degrees_matches_geometry():
    g = ScreenGeometry()
    half = g.deg_to_px(2.0) / 2  # a 2 degree saccade centred on the screen
    c = np.array([399.5, 299.5])
    sp = scanpath([[c[0] - half, c[1], 200], [c[0] + half, c[1], 200]], geometry=g, image_size=(800, 600))
    assert sp.amplitude_deg[0] == pytest.approx(2.0, abs=1e-6)
    assert sp.amplitude_px[0] == pytest.approx(g.deg_to_px(2.0))
    # shown at half size the same image-pixel saccade is half as many screen px
    sp2 = scanpath([[c[0] - half, c[1], 200], [c[0] + half, c[1], 200]], g, (800, 600), g.centered_rect((400, 300)))
    assert sp2.amplitude_deg[0] == pytest.approx(g.px_to_deg(half), rel=1e-3)
    with pytest.raises(ValueError, match="image_size"):
        scanpath([[0, 0, 1], [1, 1, 1]], geometry=g)


def test_single_and_empty_scanpaths():
    assert len(scanpath([[1, 2, 3]]).amplitude_px) == 0
    assert len(scanpath(np.zeros((0, 3)))) == 0
    assert not scanpath_vector(np.zeros((0, 3)), 5, (10, 10)).any()


def test_scanpath_vector_time_resampling_hand_computed():
    # 300 ms at (10, 20), then 100 ms at (50, 60); k=4 -> instants 50, 150, 250, 350 ms
    v = scanpath_vector([[10, 20, 300], [50, 60, 100]], 4, (100, 200))
    assert v.shape == (4, 3) and v.dtype == np.float32
    np.testing.assert_allclose(v, [[0.1, 0.1, 0.3]] * 3 + [[0.5, 0.3, 0.1]], rtol=1e-6)


def test_scanpath_vector_index_pads_with_last_position():
    v = scanpath_vector([[10, 20, 300], [50, 60, 100]], 3, (100, 100), method="index")
    np.testing.assert_allclose(v, [[0.1, 0.2, 0.3], [0.5, 0.6, 0.1], [0.5, 0.6, 0.0]], rtol=1e-6)
    v = scanpath_vector([[i, i, 100] for i in range(10)], 3, (10, 10), method="index")
    np.testing.assert_allclose(v[:, 0], [0.0, 0.1, 0.2], atol=1e-7)
    with pytest.raises(ValueError, match="k must be"):
        scanpath_vector([[1, 1, 1]], 0, (10, 10))
    with pytest.raises(ValueError, match="method"):
        scanpath_vector([[1, 1, 1]], 2, (10, 10), method="nearest")


def test_scanpath_vector_on_real_osie_scanpath(shared_data):
    from gazetune.gaze import read_fixation_table

    table = read_fixation_table(shared_data / "osie" / "fixations.csv")
    image = table.images()[0]
    subj = table.subjects(image)[0]
    fix = table.for_image(image)[subj]
    v = scanpath_vector(fix, 16, (800, 600))
    assert np.all((v[:, :2] >= 0) & (v[:, :2] < 1))
    # every fixation appears, in order, and dwell time decides its share of the 16 rows
    first = (fix[0, 0] / 800, fix[0, 1] / 600)
    np.testing.assert_allclose(v[0, :2], first, rtol=1e-6)
    sp = scanpath(fix, ScreenGeometry(), (800, 600))
    assert len(sp.amplitude_deg) == len(fix) - 1 and np.all(sp.amplitude_deg >= 0)
