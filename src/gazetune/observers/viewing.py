"""Where simulated observers look, and what their eye tracker records.

A test instrument, not a model of human vision: simple, documented rules with parameters in
familiar units, so tests and benchmarks know what the "truth" is.

- **Priority map** (:func:`priority_map`): a mixture of a central Gaussian (centre bias, sd a
  quarter of the image side) and a content saliency (:func:`content_saliency`) built from local
  contrast, edge strength and dark blobs (on faces: eyes, nostrils, mouth), each computed at about
  half a degree of visual angle.
- **Scanpath** (:func:`sample_scanpath`, true fixations as a
  :class:`gazetune.gaze.fixations.Fixations`): the first fixation is near the centre (where the
  fixation cross was); each next target is drawn from the priority map after inhibition of return
  (every earlier fixation multiplies the map by ``1 - ior_strength * gaussian(ior_deg)``), so
  refixations of one spot are rare.  Durations are gamma distributed (default mean 250 ms, shape
  9, clipped to [120, 600] ms); saccades take ``21 + 2.2 * amplitude_deg`` ms (the main sequence)
  during which the eye moves on a smooth minimum-jerk profile.
- **Samples** (:func:`render_samples`): the eye position at ``rate_hz``, plus tracker noise
  (independent Gaussian per axis, sd ``noise_deg`` converted to pixels), plus track loss
  (NaN runs of 80-400 ms at random places, on average the requested share of samples).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.ndimage import gaussian_filter, gaussian_gradient_magnitude

from gazetune.gaze.fixations import Fixations
from gazetune.gaze.samples import GazeSamples


def _norm01(a: np.ndarray) -> np.ndarray:
    top = float(a.max()) if a.size else 0.0
    return a / top if top > 0 else np.zeros_like(a)


def content_saliency(image: np.ndarray, px_per_deg: float) -> np.ndarray:
    """Image-driven part of where observers look: float32 ``(H, W)`` in [0, 1].

    The mean of three maps, each scaled to max 1: local contrast (standard deviation of luminance
    in a Gaussian window of 0.5 deg), edge strength (gradient magnitude at 0.5 deg) and dark blobs
    counted twice (how much darker a spot at 0.25 deg is than its 1 deg surround).  A flat image
    gives all zeros.

    Parameters
    ----------
    image
        ``(C, H, W)`` in [-1, 1].
    px_per_deg
        Image pixels per degree of visual angle.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 3:
        raise ValueError(f"content_saliency: image must be (C, H, W); got shape {img.shape}")
    lum = (img.mean(axis=0) + 1.0) / 2.0
    s = max(0.5 * px_per_deg, 0.5)
    mean = gaussian_filter(lum, s, mode="nearest")
    contrast = np.sqrt(np.maximum(gaussian_filter(lum * lum, s, mode="nearest") - mean * mean, 0.0))
    edges = gaussian_gradient_magnitude(lum, s, mode="nearest")
    dark = np.maximum(gaussian_filter(lum, 2 * s, mode="nearest") - gaussian_filter(lum, s / 2, mode="nearest"), 0.0)
    sal = (_norm01(contrast) + _norm01(edges) + 2.0 * _norm01(dark)) / 4.0
    return sal.astype(np.float32)


def centre_bias(shape: tuple[int, int], sd_frac: float = 0.25) -> np.ndarray:
    """Gaussian centred on the image, sd ``sd_frac`` of each side: float32 ``(H, W)``, max 1."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    g = np.exp(-0.5 * (((xx - (w - 1) / 2) / (sd_frac * w)) ** 2 + ((yy - (h - 1) / 2) / (sd_frac * h)) ** 2))
    return g.astype(np.float32)


def priority_map(
    image: np.ndarray,
    px_per_deg: float,
    centre_weight: float = 0.3,
    contrast_power: float = 2.0,
    prior: Optional[np.ndarray] = None,
    prior_weight: float = 0.0,
    suspicion: Optional[np.ndarray] = None,
    beta: float = 0.0,
) -> np.ndarray:
    """Probability of each pixel being the next fixation target (before inhibition of return).

    The base map is ``(1 - centre_weight) * content + centre_weight * centre``, both normalised to
    sum 1, where content is :func:`content_saliency` raised to ``contrast_power`` (sharper peaks);
    a flat image gives the centre bias alone.  Then, each part normalised to sum 1:

    ``P = ((1 - prior_weight) * base + prior_weight * prior + beta * suspicion) / (1 + beta)``

    - ``prior``: a fixation prior of people on this kind of image (e.g. the pooled real
      fixations on faces), weighted by ``prior_weight`` in [0, 1];
    - ``suspicion``: where the image looks wrong to the observer (e.g. ``1 - realism map`` of its
      judge); ``beta >= 0`` is how strongly a judging observer seeks out flaws (patent ¶88: the
      maps come from gaze *during* the real/fake task).  ``beta = 0`` ignores it.

    Returns float64 ``(H, W)`` summing to 1.
    """
    if not 0.0 <= centre_weight <= 1.0:
        raise ValueError(f"centre_weight must be in [0, 1]; got {centre_weight}")
    if not 0.0 <= prior_weight <= 1.0 or beta < 0:
        raise ValueError(f"prior_weight must be in [0, 1] and beta >= 0; got {prior_weight}, {beta}")
    content = content_saliency(image, px_per_deg).astype(np.float64) ** contrast_power
    centre = centre_bias(content.shape).astype(np.float64)
    centre /= centre.sum()
    total = content.sum()
    base = centre if total <= 0 else (1.0 - centre_weight) * content / total + centre_weight * centre
    parts = [(1.0 - prior_weight, base)]
    for name, extra, w in (("prior", prior, prior_weight), ("suspicion", suspicion, beta)):
        if extra is None or w == 0:
            continue
        extra = np.asarray(extra, dtype=np.float64)
        if extra.shape != base.shape:
            raise ValueError(f"priority_map: {name} has shape {extra.shape}, the image is {base.shape}")
        if np.any(extra < 0) or not np.all(np.isfinite(extra)):
            raise ValueError(f"priority_map: {name} must be finite and non-negative")
        mass = extra.sum()
        parts.append((w, extra / mass if mass > 0 else base))
    out = sum(w * m for w, m in parts)
    return out / out.sum()


def saccade_ms(amplitude_deg: float | np.ndarray) -> float | np.ndarray:
    """Saccade duration from its amplitude (main sequence): ``21 + 2.2 * amplitude_deg`` ms."""
    return 21.0 + 2.2 * np.asarray(amplitude_deg)


def sample_scanpath(
    priority: np.ndarray,
    rng: np.random.Generator,
    px_per_deg: float,
    display_ms: float = 3000.0,
    fixation_ms_mean: float = 250.0,
    fixation_shape: float = 9.0,
    fixation_ms_range: tuple[float, float] = (120.0, 600.0),
    ior_strength: float = 0.85,
    ior_deg: float = 1.0,
) -> Fixations:
    """Draw fixations over ``display_ms`` from a priority map (see the module docstring).

    The result's ``onset_ms`` count from image onset; the last fixation is cut at ``display_ms``.

    Parameters
    ----------
    priority
        ``(H, W)`` non-negative weights (e.g. :func:`priority_map`).
    rng
        Source of randomness.
    px_per_deg
        Image pixels per degree (saccade durations, inhibition of return).
    display_ms
        How long the image is shown, ms.
    fixation_ms_mean, fixation_shape, fixation_ms_range
        Gamma distribution of fixation durations (mean in ms, shape) and its clipping range in ms.
    ior_strength, ior_deg
        Inhibition of return: depth in [0, 1] and sd in degrees.
    """
    pri = np.asarray(priority, dtype=np.float64)
    if pri.ndim != 2 or np.any(pri < 0) or not np.isfinite(pri).all() or pri.sum() <= 0:
        raise ValueError("sample_scanpath: priority must be a finite, non-negative (H, W) map with a positive sum")
    h, w = pri.shape
    yy, xx = np.mgrid[0:h, 0:w]
    ior_px = max(ior_deg * px_per_deg, 0.5)
    lo, hi = fixation_ms_range
    scale = fixation_ms_mean / fixation_shape
    # start near the centre, where the fixation cross was
    x, y = (w - 1) / 2 + rng.normal(0, 0.3 * px_per_deg), (h - 1) / 2 + rng.normal(0, 0.3 * px_per_deg)
    xs, ys, durs, onsets = [], [], [], []
    t = 0.0
    weights = pri.copy()
    while t < display_ms:
        dur = float(np.clip(rng.gamma(fixation_shape, scale), lo, hi))
        xs.append(x)
        ys.append(y)
        onsets.append(t)
        durs.append(min(dur, display_ms - t))
        t += dur
        weights *= 1.0 - ior_strength * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * ior_px**2))
        p = weights.ravel() / weights.sum()
        k = int(rng.choice(p.size, p=p))
        nx, ny = k % w + rng.uniform(-0.5, 0.5), k // w + rng.uniform(-0.5, 0.5)
        t += float(saccade_ms(np.hypot(nx - x, ny - y) / px_per_deg))
        x, y = nx, ny
    return Fixations(np.array(xs), np.array(ys), np.array(durs), np.array(onsets))


def eye_position(scan: Fixations, t_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True eye position at times ``t_ms``: on the fixation, or on the minimum-jerk saccade between two.

    After the last fixation ends the eye stays on it.  Returns float64 ``x, y`` arrays like ``t_ms``.
    """
    t = np.asarray(t_ms, dtype=np.float64)
    ends = scan.onset_ms + scan.duration_ms
    i = np.clip(np.searchsorted(scan.onset_ms, t, side="right") - 1, 0, len(scan) - 1)
    x, y = scan.x[i].copy(), scan.y[i].copy()
    nxt = np.minimum(i + 1, len(scan) - 1)
    moving = (t >= ends[i]) & (nxt > i)
    if np.any(moving):
        span = scan.onset_ms[nxt] - ends[i]
        s = np.clip((t - ends[i]) / np.maximum(span, 1e-9), 0.0, 1.0)[moving]
        prof = 10 * s**3 - 15 * s**4 + 6 * s**5  # minimum-jerk position profile
        x[moving] += (scan.x[nxt] - scan.x[i])[moving] * prof
        y[moving] += (scan.y[nxt] - scan.y[i])[moving] * prof
    return x, y


def track_loss_mask(n: int, rate: float, rng: np.random.Generator, rate_hz: float, run_ms: tuple[float, float] = (80.0, 400.0)) -> np.ndarray:
    """Boolean ``(n,)`` mask of lost samples.

    A Poisson number of runs (mean ``rate * n / mean run length``), each of a uniform length in
    ``run_ms`` ms, start at uniform places: on average about ``rate`` of the samples are lost
    (a little less where runs overlap or reach past the end), varying from trial to trial as
    blinks and dropouts do.  ``rate = 0`` loses nothing.
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"track_loss_rate must be in [0, 1); got {rate}")
    lost = np.zeros(n, dtype=bool)
    if rate == 0.0 or n == 0:
        return lost
    lo, hi = (max(1.0, ms * rate_hz / 1000.0) for ms in run_ms)
    n_runs = int(rng.poisson(rate * n / ((lo + hi) / 2.0)))
    for start, length in zip(rng.integers(0, n, n_runs), rng.uniform(lo, hi, n_runs)):
        lost[start : start + int(round(length))] = True
    return lost


def render_samples(
    scan: Fixations,
    image_size: tuple[int, int],
    rng: np.random.Generator,
    px_per_deg: float,
    display_ms: float = 3000.0,
    rate_hz: float = 60.0,
    noise_deg: float = 0.5,
    track_loss_rate: float = 0.0,
    offset_deg: tuple[float, float] = (0.0, 0.0),
    image_rect: Optional[tuple[float, float, float, float]] = None,
) -> GazeSamples:
    """Tracker samples of a scanpath: :class:`GazeSamples` with source ``"simulated"``.

    Parameters
    ----------
    scan
        The true fixations.
    image_size
        ``(width, height)`` of the image in pixels.
    rng
        Source of randomness.
    px_per_deg
        Image pixels per degree, to convert ``noise_deg`` and ``offset_deg``.
    display_ms, rate_hz
        Recording length (ms) and sampling rate (Hz); samples at ``k * 1000 / rate_hz`` ms,
        ``0 <= t < display_ms``.
    noise_deg
        Standard deviation of the independent Gaussian noise on each axis, degrees
        (about 0.5 for a lab tracker, 3-4 for a webcam).
    track_loss_rate
        Share of samples lost (NaN), in runs of 80-400 ms.
    offset_deg
        Constant calibration error ``(dx, dy)`` in degrees added to every sample.
    image_rect
        ``(left, top, width, height)`` in screen pixels where the image was shown, stored in the
        samples so that fixation detection converts image pixels to degrees correctly.
    """
    n = int(np.ceil(display_ms * rate_hz / 1000.0 - 1e-9))
    t = np.arange(n, dtype=np.float64) * (1000.0 / rate_hz)
    x, y = eye_position(scan, t)
    sd = noise_deg * px_per_deg
    x = x + rng.normal(0.0, sd, n) + offset_deg[0] * px_per_deg
    y = y + rng.normal(0.0, sd, n) + offset_deg[1] * px_per_deg
    lost = track_loss_mask(n, track_loss_rate, rng, rate_hz)
    x[lost] = np.nan
    y[lost] = np.nan
    meta = {"rate_hz": rate_hz, "noise_px": sd, "px_per_deg": px_per_deg}
    return GazeSamples(
        t_ms=t, x=x, y=y, source="simulated", image_size=tuple(image_size), image_rect=image_rect, meta=meta
    )
