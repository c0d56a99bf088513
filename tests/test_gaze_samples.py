import numpy as np
import pytest

from gazetune.gaze import (
    GazeSamples,
    TrialTooShortError,
    image_to_screen,
    resample_samples,
    screen_to_image,
    validate_samples,
)


def _trial(n=100, step=10.0, w=100, h=80):
    t = np.arange(n) * step
    return GazeSamples(t, np.full(n, 50.0), np.full(n, 40.0), image_size=(w, h))


def test_screen_image_roundtrip_hand_values():
    # image 400x300 shown at (560, 240) scaled to 800x600 on screen: 2 screen px per image px
    x, y = screen_to_image([560.0, 960.0, 1360.0, np.nan], [240.0, 540.0, 839.0, 5.0], (560, 240, 800, 600), (400, 300))
    np.testing.assert_allclose(x[:3], [0.0, 200.0, 400.0])
    np.testing.assert_allclose(y[:3], [0.0, 150.0, 299.5])
    assert np.isnan(x[3])
    sx, sy = image_to_screen(x[:3], y[:3], (560, 240, 800, 600), (400, 300))
    np.testing.assert_allclose(sx, [560, 960, 1360])
    np.testing.assert_allclose(sy, [240, 540, 839])
    with pytest.raises(ValueError, match="image_rect"):
        screen_to_image([1.0], [1.0], (0, 0, 0, 10), (10, 10))


def test_from_screen_keeps_raw_coordinates():
    s = GazeSamples.from_screen([0, 5, 10], [100, 150, 200], [50, 50, 50], (100, 50, 200, 100), (100, 50))
    np.testing.assert_allclose(s.x, [0, 25, 50])
    np.testing.assert_allclose(s.y, [0, 0, 0])
    np.testing.assert_allclose(s.screen_x, [100, 150, 200])
    assert s.image_rect == (100.0, 50.0, 200.0, 100.0) and s.source == "tracker"


def test_validate_counts_lost_runs_and_gap():
    s = _trial()
    s.x[20:30] = np.nan  # 10 lost samples: valid at 190 ms and 300 ms -> gap 110 ms
    s.y[60] = np.inf  # one more lost sample (only y broken): both become NaN
    clean, rep = validate_samples(s)
    assert rep.n_lost == 11 and rep.n_lost_runs == 2
    assert rep.longest_gap_ms == pytest.approx(110.0)
    assert rep.n_valid == 89 and rep.n_samples == 100
    assert np.isnan(clean.x[60]) and np.isnan(clean.y[60])
    assert len(clean) == 100  # nothing dropped
    assert rep.lost_fraction == pytest.approx(0.11)


def test_validate_leading_loss_counts_from_trial_start():
    s = _trial()
    s.x[:15] = np.nan
    _, rep = validate_samples(s)
    assert rep.longest_gap_ms == pytest.approx(150.0)  # t[0]=0 to the first valid at 150 ms


@pytest.mark.parametrize("policy,expect_valid,expect_x", [("nan", 97, np.nan), ("clip", 100, 99.0), ("keep", 100, 150.0)])
def test_out_of_image_policies(policy, expect_valid, expect_x):
    s = _trial()
    s.x[[3, 4]] = [150.0, -2.0]
    s.y[5] = 80.0  # y == height is outside [0, 80)
    clean, rep = validate_samples(s, out_of_image=policy)
    assert rep.n_out_of_image == 3 and rep.out_of_image == policy
    assert rep.n_valid == expect_valid
    np.testing.assert_equal(clean.x[3], np.float32(expect_x))
    if policy == "clip":
        assert clean.x[4] == 0 and clean.y[5] == 79
    assert s.x[3] == 150.0  # the input is not modified


def test_non_increasing_time_names_index_and_values():
    s = _trial()
    s.t_ms[42] = s.t_ms[41]
    with pytest.raises(ValueError, match=r"t_ms\[42\] = 410.0 ms is not after t_ms\[41\] = 410.0"):
        validate_samples(s)
    s = _trial()
    s.t_ms[7] = np.nan
    with pytest.raises(ValueError, match=r"t_ms\[7\] = nan is not a finite"):
        validate_samples(s)


def test_too_short_trials_and_confidence():
    with pytest.raises(TrialTooShortError, match="trial too short: 90.0 ms"):
        validate_samples(_trial(n=10), min_duration_ms=100)
    s = _trial()
    s.x[5:] = np.nan
    with pytest.raises(TrialTooShortError, match="too few valid samples: 5 of 100"):
        validate_samples(s, min_valid_samples=10)
    s = _trial()
    s.confidence = np.linspace(0, 1, 100).astype(np.float32)
    clean, rep = validate_samples(s, min_confidence=0.5)
    assert rep.n_low_confidence == 50 and rep.n_valid == 50
    with pytest.raises(ValueError, match="no confidence"):
        validate_samples(_trial(), min_confidence=0.5)


def test_resample_interpolates_short_gaps_only():
    t = np.array([0.0, 10.0, 20.0, 130.0, 140.0])  # 110 ms without samples between 20 and 130
    x = np.array([0.0, 10.0, 20.0, 130.0, 140.0])
    s = GazeSamples(t, x, x * 2, screen_x=x + 100, screen_y=x, pupil=np.ones(5))
    r = resample_samples(s, rate_hz=200.0, max_gap_ms=50.0)  # 5 ms grid
    assert r.meta["rate_hz"] == 200.0
    np.testing.assert_allclose(r.t_ms, np.arange(0, 141, 5.0))
    # linear between 0..20 and 130..140, NaN strictly inside the 110 ms hole
    np.testing.assert_allclose(r.x[:5], [0, 5, 10, 15, 20])
    np.testing.assert_allclose(r.y[:5], [0, 10, 20, 30, 40])
    np.testing.assert_allclose(r.screen_x[:5], [100, 105, 110, 115, 120])
    assert np.all(np.isnan(r.x[5:26])) and np.all(np.isnan(r.pupil[5:26]))
    np.testing.assert_allclose(r.x[26:], [130, 135, 140])
    # a regular recording on the grid is reproduced exactly
    s2 = _trial(n=50, step=4.0)
    r2 = resample_samples(s2, 250.0)
    np.testing.assert_array_equal(r2.t_ms, s2.t_ms)
    np.testing.assert_array_equal(r2.x, s2.x)
    with pytest.raises(ValueError, match="rate_hz"):
        resample_samples(s2, 0)
