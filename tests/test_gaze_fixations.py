import numpy as np
import pymovements as pm
import pytest
from pymovements.events import idt, ivt
from pymovements.transforms.numpy import pos2vel

from gazetune.gaze import Fixations, GazeSamples, ScreenGeometry, detect_fixations
from gazetune.gaze.fixations import prepare_samples

PLANTED = [(100.0, 100.0, 300.0), (400.0, 300.0, 252.0), (700.0, 500.0, 400.0), (200.0, 450.0, 200.0)]
GEOM = ScreenGeometry()


def synth(rate_hz=250.0, noise_px=1.5, jitter_ms=0.0, saccade_ms=36.0, seed=0):
    """Samples that dwell on PLANTED (x, y, duration) with Gaussian noise and linear saccades."""
    rng = np.random.default_rng(seed)
    step = 1000.0 / rate_hz
    t, x, y = [], [], []
    now = 0.0
    for i, (px, py, dur) in enumerate(PLANTED):
        for _ in range(int(round(dur / step))):
            t.append(now)
            x.append(px + rng.normal(0, noise_px))
            y.append(py + rng.normal(0, noise_px))
            now += step
        if i + 1 < len(PLANTED):
            nx, ny, _ = PLANTED[i + 1]
            m = int(round(saccade_ms / step))
            for k in range(1, m + 1):
                t.append(now)
                x.append(px + (nx - px) * k / (m + 1))
                y.append(py + (ny - py) * k / (m + 1))
                now += step
    t = np.array(t)
    if jitter_ms:
        t = t + rng.uniform(-jitter_ms, jitter_ms, t.size)
        t = np.maximum.accumulate(t + np.arange(t.size) * 1e-6)
    return GazeSamples(t, np.array(x), np.array(y), image_size=(800, 600), source="simulated")


def _planted_array():
    return np.array(PLANTED)


def test_ivt_finds_planted_fixations():
    fix = detect_fixations(synth(), GEOM, method="ivt", velocity_threshold_deg_s=30, min_duration_ms=100)
    assert isinstance(fix, Fixations) and len(fix) == 4
    np.testing.assert_allclose(fix.as_array()[:, :2], _planted_array()[:, :2], atol=1.5)
    # duration = offset - onset: at most the planted dwell, lose at most 2 samples per side
    assert np.all(fix.duration_ms <= _planted_array()[:, 2]) and np.all(fix.duration_ms >= _planted_array()[:, 2] - 24)
    assert np.all(np.diff(fix.onset_ms) > 0)
    np.testing.assert_allclose(fix.offset_ms, fix.onset_ms + fix.duration_ms)


def test_ivt_equals_pymovements_called_directly():
    s = synth()
    fix = detect_fixations(s, GEOM, method="ivt", velocity_threshold_deg_s=30, min_duration_ms=100)
    # the same pipeline written out with pymovements' functions
    rect = GEOM.centered_rect((800, 600))
    deg = pm.transforms.numpy.pix2deg(
        np.stack([s.x + rect[0], s.y + rect[1]], axis=1).astype(np.float64),
        screen_px=(1920, 1080),
        screen_cm=(53.1, 29.9),
        distance_cm=60.0,
        origin="upper left",
    )
    ev = ivt(pos2vel(deg, sampling_rate=250, method="smooth"), timesteps=s.t_ms, minimum_duration=100, velocity_threshold=30)
    np.testing.assert_allclose(fix.onset_ms, ev.frame["onset"].to_numpy())
    np.testing.assert_allclose(fix.duration_ms, ev.frame["duration"].to_numpy())
    # and with pymovements' Gaze API (polars pipeline, its own location measure): interior
    # fixations agree exactly; at the trial's ends its 5-point velocity is undefined
    exp = pm.Experiment(1920, 1080, 53.1, 29.9, distance_cm=60.0, origin="upper left", sampling_rate=250)
    gaze = pm.gaze.from_numpy(time=s.t_ms, pixel=np.stack([s.x + rect[0], s.y + rect[1]]), experiment=exp)
    gaze.pix2deg()
    gaze.pos2vel(method="fivepoint")
    gaze.detect("ivt", minimum_duration=100, velocity_threshold=30.0)
    gaze.compute_event_properties(("location", {"method": "mean", "position_column": "pixel"}))
    frame = gaze.events.frame
    assert frame.height == 4
    np.testing.assert_allclose(fix.onset_ms[1:], frame["onset"].to_numpy()[1:])
    np.testing.assert_allclose(fix.offset_ms[:-1], frame["offset"].to_numpy()[:-1])
    loc = np.array(frame["location"].to_list())[1:3] - rect[:2]
    np.testing.assert_allclose(fix.as_array()[1:3, :2], loc, atol=1e-3)


def test_idt_equals_pymovements_and_planted():
    s = synth(noise_px=3.0, seed=1)
    fix = detect_fixations(s, GEOM, method="idt", dispersion_threshold_deg=1.0, min_duration_ms=100)
    deg = GEOM.image_to_deg(s.x, s.y, (800, 600))
    ev = idt(deg, timesteps=s.t_ms.astype(int), minimum_duration=100, dispersion_threshold=1.0)
    np.testing.assert_allclose(fix.onset_ms, ev.frame["onset"].to_numpy())
    np.testing.assert_allclose(fix.duration_ms, ev.frame["duration"].to_numpy())
    assert len(fix) == 4
    np.testing.assert_allclose(fix.as_array()[:, :2], _planted_array()[:, :2], atol=2.0)


def test_long_track_loss_splits_a_fixation_short_one_is_bridged():
    s = synth()
    # 3rd fixation covers samples [~154, ~254); lose 200 ms (50 samples) in its middle
    third = np.flatnonzero((np.abs(s.x - 700) < 10) & (np.abs(s.y - 500) < 10))
    mid = third[len(third) // 2]
    lost = s.replace(x=s.x.copy(), y=s.y.copy())
    lost.x[mid - 10 : mid + 10] = np.nan  # 80 ms > max_gap_ms: stays NaN, splits the fixation
    fix = detect_fixations(lost, GEOM, min_duration_ms=60, max_gap_ms=75)
    assert len(fix) == 5
    assert np.sum(np.abs(fix.x - 700) < 3) == 2
    short = s.replace(x=s.x.copy(), y=s.y.copy())
    short.x[mid - 3 : mid + 3] = np.nan  # 24 ms: interpolated across
    fix2 = detect_fixations(short, GEOM, min_duration_ms=60, max_gap_ms=75)
    assert len(fix2) == 4


def test_irregular_webcam_samples_are_resampled():
    s = synth(rate_hz=30.0, noise_px=4.0, jitter_ms=8.0, saccade_ms=66.0, seed=3)
    assert np.ptp(np.diff(s.t_ms)) > 5  # really irregular
    reg = prepare_samples(s, resample_hz=60.0)
    assert reg.meta["rate_hz"] == 60.0 and np.allclose(np.diff(reg.t_ms), 1000 / 60)
    fix = detect_fixations(s, GEOM, method="idt", dispersion_threshold_deg=1.5, min_duration_ms=100, resample_hz=60)
    assert len(fix) == 4
    # a 1.5 deg window may take in the first/last saccade frame: within a quarter degree (~9.5 px)
    np.testing.assert_allclose(fix.as_array()[:, :2], _planted_array()[:, :2], atol=9.5)


def test_screen_coordinates_are_used_when_present():
    s = synth()
    rect = (0.0, 0.0, 1600.0, 1200.0)  # the image shown at twice its size in the corner
    sx = rect[0] + s.x * 2
    sy = rect[1] + s.y * 2
    s2 = GazeSamples.from_screen(s.t_ms, sx, sy, rect, (800, 600))
    # twice the on-screen size: saccades are twice as fast in deg/s, fixations still found
    fix = detect_fixations(s2, GEOM, velocity_threshold_deg_s=30)
    np.testing.assert_allclose(fix.as_array()[:, :2], _planted_array()[:, :2], atol=1.5)


def test_bad_arguments():
    s = synth()
    with pytest.raises(ValueError, match="method"):
        detect_fixations(s, method="dbscan")
    with pytest.raises(ValueError, match="velocity_threshold_deg_s"):
        detect_fixations(s, velocity_threshold_deg_s=0)
    with pytest.raises(ValueError, match="at least 6 samples"):
        detect_fixations(GazeSamples(np.arange(3.0), np.zeros(3), np.zeros(3)))
    with pytest.raises(ValueError, match="negative"):
        Fixations([1.0], [1.0], [-1.0])


def test_samples_without_image_frame_are_screen_pixels():
    s = synth()
    bare = GazeSamples(s.t_ms, s.x, s.y)  # no image_size: x, y are screen pixels
    fix = detect_fixations(bare, GEOM)
    np.testing.assert_allclose(fix.as_array()[:, :2], _planted_array()[:, :2], atol=1.5)
    deg = GEOM.positions_to_deg(s.x, s.y)
    ev = ivt(pos2vel(deg, sampling_rate=250, method="smooth"), timesteps=s.t_ms, minimum_duration=100, velocity_threshold=30)
    np.testing.assert_allclose(fix.onset_ms, ev.frame["onset"].to_numpy())
