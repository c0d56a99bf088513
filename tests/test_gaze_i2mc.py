"""I2MC (Hessels et al. 2017) through detect_fixations, checked against the i2mc package itself
and against recordings with planted fixations; and the per-source default method."""

import numpy as np
import pandas as pd
import pytest
from I2MC import I2MC as package_i2mc

from gazetune.gaze import GazeSamples, ScreenGeometry, detect_fixations
from gazetune.gaze.fixations import DEFAULT_METHOD, default_method, i2mc_options_for
from gazetune.gaze.simulate import simulate_webcam_trial

GEOM = ScreenGeometry()
# image 400 x 300 shown twice as large, off centre: every conversion is visible in the numbers
RECT = (300.0, 200.0, 800.0, 600.0)
SIZE = (400, 300)
PLANTED = [(50.0, 60.0, 400.0), (300.0, 100.0, 300.0), (200.0, 250.0, 500.0), (350.0, 200.0, 350.0)]


def planted_recording(rate_hz=60.0, noise_px=4.0, saccade_ms=40.0, seed=0, source="webcam"):
    """Screen-pixel samples dwelling on PLANTED (image px, ms), linear saccades, Gaussian noise."""
    rng = np.random.default_rng(seed)
    step = 1000.0 / rate_hz
    sx, sy, t, now = [], [], [], 0.0
    scale = RECT[2] / SIZE[0]
    screen = [(RECT[0] + x * scale, RECT[1] + y * scale) for x, y, _ in PLANTED]
    for i, (_, _, dur) in enumerate(PLANTED):
        for _ in range(int(round(dur / step))):
            t.append(now)
            sx.append(screen[i][0] + rng.normal(0, noise_px))
            sy.append(screen[i][1] + rng.normal(0, noise_px))
            now += step
        if i + 1 < len(PLANTED):
            m = int(round(saccade_ms / step))
            for k in range(1, m + 1):
                t.append(now)
                sx.append(screen[i][0] + (screen[i + 1][0] - screen[i][0]) * k / (m + 1))
                sy.append(screen[i][1] + (screen[i + 1][1] - screen[i][1]) * k / (m + 1))
                now += step
    return GazeSamples.from_screen(np.array(t), np.array(sx), np.array(sy), RECT, SIZE, source=source)


def test_i2mc_finds_planted_fixations_in_image_pixels():
    fix = detect_fixations(planted_recording(), GEOM, method="i2mc", resample_hz=60.0)
    assert len(fix) == 4
    # positions: medians of screen samples mapped back to image pixels (scale 2, offset RECT)
    np.testing.assert_allclose(fix.x, [p[0] for p in PLANTED], atol=2.0)
    np.testing.assert_allclose(fix.y, [p[1] for p in PLANTED], atol=2.0)
    # durations in ms: within two samples (33 ms) of the planted dwell
    np.testing.assert_allclose(fix.duration_ms, [p[2] for p in PLANTED], atol=34.0)
    assert np.all(np.diff(fix.onset_ms) > 0)


def test_i2mc_equals_the_package_called_directly():
    """Our wrapper vs the package on the same screen-pixel data with hand-written options."""
    rng = np.random.default_rng(3)
    s, _, _ = simulate_webcam_trial(rng, image_size=SIZE, image_rect=RECT)
    # regular 50 Hz samples so that resampling is the identity
    t = np.arange(0, 2000, 20.0)
    sx = np.interp(t, s.t_ms[s.valid], s.screen_x[s.valid])
    sy = np.interp(t, s.t_ms[s.valid], s.screen_y[s.valid])
    sx[30:37] = np.nan  # 140 ms of track loss
    sy[30:37] = np.nan
    samples = GazeSamples.from_screen(t, sx, sy, RECT, SIZE, source="webcam")
    ours = detect_fixations(samples, GEOM, method="i2mc", resample_hz=50.0, min_duration_ms=60.0)

    options = {
        "xres": 1920.0, "yres": 1080.0, "freq": 50.0, "missingx": np.nan, "missingy": np.nan,
        "scrSz": [53.1, 29.9], "disttoscreen": 60.0, "windowtime": 0.2,
        "downsamples": [2], "downsampFilter": False, "chebyOrder": 8, "minFixDur": 60.0,
        "cutoffstd": 1.5,  # the webcam setting (WEBCAM_I2MC_OPTIONS)
    }
    frame = pd.DataFrame({"time": t, "average_X": sx.astype(np.float64), "average_Y": sy.astype(np.float64)})
    state = np.random.get_state()
    np.random.seed(0)
    try:
        ref, _, _ = package_i2mc(frame, options, logging=False)
    finally:
        np.random.set_state(state)
    assert len(ref["startT"]) >= 3 and len(ours) == len(ref["startT"])
    np.testing.assert_allclose(ours.onset_ms, ref["startT"])
    np.testing.assert_allclose(ours.duration_ms, ref["dur"])
    # the package gives screen pixels; the table holds image pixels
    np.testing.assert_allclose(ours.x, (ref["xpos"] - RECT[0]) * SIZE[0] / RECT[2], atol=1e-3)
    np.testing.assert_allclose(ours.y, (ref["ypos"] - RECT[1]) * SIZE[1] / RECT[3], atol=1e-3)


def test_i2mc_options_follow_the_rate():
    low = i2mc_options_for(25.0, GEOM)
    assert low["downsamples"] == [] and low["downsampFilter"] is False and low["freq"] == 25.0
    assert i2mc_options_for(50.0, GEOM)["downsamples"] == [2]
    assert i2mc_options_for(100.0, GEOM)["downsamples"] == [2, 5]
    lab = i2mc_options_for(250.0, GEOM, min_duration_ms=60.0)
    assert lab["downsamples"] == [2, 5, 10] and lab["downsampFilter"] is True and lab["minFixDur"] == 60.0
    assert (lab["xres"], lab["yres"], lab["disttoscreen"]) == (1920.0, 1080.0, 60.0)


def test_i2mc_repeats_and_leaves_numpy_global_state_alone():
    s = planted_recording(rate_hz=30.0, noise_px=40.0, seed=5)
    np.random.seed(123)
    before = np.random.random()
    np.random.seed(123)
    a = detect_fixations(s, GEOM, method="i2mc")
    after = np.random.random()
    b = detect_fixations(s, GEOM, method="i2mc")
    assert before == after
    np.testing.assert_array_equal(a.as_array(), b.as_array())


def test_i2mc_overrides_reach_the_package():
    s = planted_recording(rate_hz=60.0, noise_px=4.0)
    # merging across 2000 px and 1000 ms joins everything into one fixation
    fix = detect_fixations(s, GEOM, method="i2mc", i2mc_options={"maxMergeDist": 2000.0, "maxMergeTime": 1000.0})
    assert len(fix) == 1


def test_default_method_per_source():
    assert DEFAULT_METHOD["webcam"] == "i2mc" and DEFAULT_METHOD["tracker"] == "ivt"
    webcam = planted_recording(rate_hz=25.0, noise_px=30.0, seed=2)
    auto = detect_fixations(webcam, GEOM)
    # the webcam default is I2MC on data interpolated to at least 50 Hz
    np.testing.assert_array_equal(auto.as_array(), detect_fixations(webcam, GEOM, method="i2mc", resample_hz=50.0).as_array())
    tracker = planted_recording(rate_hz=250.0, noise_px=1.0, source="tracker")
    np.testing.assert_array_equal(detect_fixations(tracker, GEOM).as_array(), detect_fixations(tracker, GEOM, method="ivt").as_array())
    assert len(detect_fixations(tracker, GEOM)) == 4
    with pytest.raises(ValueError, match="no default fixation method"):
        default_method("eeg")
    with pytest.raises(ValueError, match="method must be"):
        detect_fixations(tracker, GEOM, method="hmm")
