"""Simulated webcam (WebGazer-like) gaze recordings with known fixations.

A test instrument for fixation detection on noisy, low-rate data (``bench/webcam_fixations.py``,
tests): the truth is known, so a method's output can be counted against it.  The recording is
built in four steps, each a property reported for browser webcam trackers such as WebGazer:

1. **Eye**: ``n`` fixations (uniform in ``n_fixations``) at random places on the image, at least
   ``min_step_px`` apart, with durations that fill the trial (gamma-distributed shares, at least
   ``min_fixation_ms``), separated by saccades of ``20 + 2.5 * amplitude_deg`` ms.
2. **Frames**: the camera delivers frames at ``rate_hz`` with Gaussian jitter of the interval
   (``jitter_ms``) and occasional dropped frames.
3. **Error**: a per-trial calibration offset (random direction, magnitude uniform in
   ``offset_px``) plus frame-to-frame noise, AR(1) with correlation ``noise_rho`` (the tracker's
   smoothing) and per-axis sd uniform in ``noise_px``; the tracker also lags the eye by a
   first-order filter (weight ``lag`` on the previous estimate), which smears saccades over
   frames.
4. **Track loss**: each frame is lost (NaN) with probability ``loss_rate``, and with probability
   ``loss_run_prob`` one run of 120-400 ms is lost (face not found, blink).

All positions are screen pixels of :class:`~gazetune.gaze.geometry.ScreenGeometry`; the image is
shown at ``image_rect``.  The samples are :class:`~gazetune.gaze.samples.GazeSamples` with
``source="webcam"`` in image pixels; the truth is a :class:`~gazetune.gaze.fixations.Fixations`
in image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gazetune.gaze.fixations import Fixations
from gazetune.gaze.geometry import ScreenGeometry
from gazetune.gaze.samples import GazeSamples, screen_to_image


@dataclass(frozen=True)
class WebcamNoise:
    """Parameters of :func:`simulate_webcam_trial` (units in the names; ranges are uniform).

    The defaults give a mean error per trial of about 150-450 px and, with I-VT at 30 deg/s, a
    median of 3 fixations per 2 s trial: the figure the project measured on real WebGazer
    recordings (issue 12), so the noise is about as hard as real webcam gaze.
    """

    rate_hz: float = 25.0
    jitter_ms: float = 6.0
    drop_rate: float = 0.03
    offset_px: tuple[float, float] = (130.0, 420.0)
    noise_px: tuple[float, float] = (30.0, 80.0)
    noise_rho: float = 0.7
    lag: float = 0.4
    loss_rate: float = 0.03
    loss_run_prob: float = 0.35


def _fixation_plan(rng: np.random.Generator, duration_ms: float, n: int, min_fix_ms: float, sacc_ms: np.ndarray):
    """Durations (ms) of ``n`` fixations that, with the saccades, fill ``duration_ms``."""
    free = duration_ms - float(sacc_ms.sum()) - n * min_fix_ms
    if free < 0:
        raise ValueError(f"{n} fixations of >= {min_fix_ms} ms do not fit in {duration_ms} ms")
    shares = rng.gamma(3.0, 1.0, n)
    return min_fix_ms + free * shares / shares.sum()


def simulate_webcam_trial(
    rng: np.random.Generator,
    image_size: tuple[int, int] = (512, 512),
    image_rect: tuple[float, float, float, float] = (660.0, 240.0, 600.0, 600.0),
    duration_ms: float = 2000.0,
    n_fixations: tuple[int, int] = (6, 10),
    min_fixation_ms: float = 100.0,
    min_step_px: float = 80.0,
    noise: WebcamNoise = WebcamNoise(),
    geometry: ScreenGeometry = ScreenGeometry(),
) -> tuple[GazeSamples, Fixations, dict]:
    """One simulated webcam trial (see the module notes).

    Parameters
    ----------
    rng : numpy.random.Generator
    image_size : (width, height)
        Image size in its own pixels.
    image_rect : (left, top, width, height)
        The image on screen, screen pixels.
    duration_ms : float
        Trial length, ms.
    n_fixations : (low, high)
        Number of fixations, drawn uniformly from ``low..high`` inclusive.
    min_fixation_ms : float
        Shortest fixation, ms.
    min_step_px : float
        Smallest distance between successive fixations, screen pixels.
    noise : WebcamNoise
    geometry : ScreenGeometry
        For saccade durations (amplitude in degrees).

    Returns
    -------
    (samples, truth, info)
        ``samples``: ``source="webcam"``, image pixels, raw screen coordinates kept; ``truth``:
        the planned fixations (image pixels, ms); ``info``: ``offset_px``, ``noise_px`` and
        ``mean_error_px`` (mean distance of valid samples from the eye, screen pixels).
    """
    left, top, rw, rh = image_rect
    n = int(rng.integers(n_fixations[0], n_fixations[1] + 1))
    pts = [rng.uniform([left, top], [left + rw, top + rh])]
    while len(pts) < n:
        p = rng.uniform([left, top], [left + rw, top + rh])
        if np.hypot(*(p - pts[-1])) >= min_step_px:
            pts.append(p)
    pos = np.array(pts)
    amp_deg = np.array([geometry.px_to_deg(float(np.hypot(*(pos[i + 1] - pos[i])))) for i in range(n - 1)])
    sacc_ms = 20.0 + 2.5 * amp_deg
    fix_ms = _fixation_plan(rng, duration_ms, n, min_fixation_ms, sacc_ms)
    onsets = np.concatenate([[0.0], np.cumsum(fix_ms[:-1] + sacc_ms)])

    def eye(t: np.ndarray) -> np.ndarray:
        """True eye position (screen px) at times ``t``: dwell, then a linear saccade."""
        out = np.empty((t.size, 2))
        k = np.clip(np.searchsorted(onsets, t, side="right") - 1, 0, n - 1)
        into = t - onsets[k]
        for i, (ki, dt) in enumerate(zip(k, into)):
            if dt <= fix_ms[ki] or ki == n - 1:
                out[i] = pos[ki]
            else:
                a = min(1.0, (dt - fix_ms[ki]) / sacc_ms[ki])
                out[i] = pos[ki] + a * (pos[ki + 1] - pos[ki])
        return out

    # camera frames: jittered intervals, a few dropped
    step = 1000.0 / noise.rate_hz
    intervals = np.clip(rng.normal(step, noise.jitter_ms, int(duration_ms / step * 1.5) + 10), step * 0.4, None)
    t = np.cumsum(intervals) - intervals[0]
    t = t[t <= duration_ms]
    t = t[rng.random(t.size) >= noise.drop_rate]
    truth_xy = eye(t)
    # tracker estimate: lagging filter of the eye + calibration offset + AR(1) noise
    est = np.empty_like(truth_xy)
    est[0] = truth_xy[0]
    for i in range(1, t.size):
        est[i] = noise.lag * est[i - 1] + (1.0 - noise.lag) * truth_xy[i]
    angle = rng.uniform(0, 2 * np.pi)
    off_mag = rng.uniform(*noise.offset_px)
    offset = off_mag * np.array([np.cos(angle), np.sin(angle)])
    sd = rng.uniform(*noise.noise_px)
    e = np.empty_like(truth_xy)
    e[0] = rng.normal(0, sd, 2)
    innov = sd * np.sqrt(1.0 - noise.noise_rho**2)
    for i in range(1, t.size):
        e[i] = noise.noise_rho * e[i - 1] + rng.normal(0, innov, 2)
    seen = est + offset + e
    lost = rng.random(t.size) < noise.loss_rate
    if rng.random() < noise.loss_run_prob:
        start = rng.uniform(0, duration_ms)
        lost |= (t >= start) & (t < start + rng.uniform(120.0, 400.0))
    seen[lost] = np.nan
    samples = GazeSamples.from_screen(t, seen[:, 0], seen[:, 1], image_rect, image_size, source="webcam")
    tx, ty = screen_to_image(pos[:, 0], pos[:, 1], image_rect, image_size)
    truth = Fixations(tx, ty, fix_ms, onsets)
    err = np.hypot(*(seen[~lost] - truth_xy[~lost]).T)
    info = {"offset_px": off_mag, "noise_px": sd, "mean_error_px": float(err.mean()) if err.size else float("nan")}
    return samples, truth, info
