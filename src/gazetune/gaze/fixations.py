"""Fixation detection: gaze samples -> fixation points ``(x_i, y_i, dur_i)`` (patent eq 3, ¶75, ¶80).

The detection itself is pymovements' (Salvucci & Goldberg 2000):

* **I-VT** (:func:`pymovements.events.ivt`): a sample belongs to a fixation when its gaze velocity
  (pymovements ``pos2vel``, in deg/s) is below ``velocity_threshold_deg_s``;
* **I-DT** (:func:`pymovements.events.idt`): a window of samples is a fixation while its
  dispersion ``(max x - min x) + (max y - min y)`` in degrees stays below
  ``dispersion_threshold_deg``.

Before that, samples are resampled to a constant rate (webcams deliver irregular frames;
:func:`gazetune.gaze.samples.resample_samples`, linear, never across track loss longer than
``max_gap_ms``) and converted from image pixels to degrees of visual angle with a
:class:`~gazetune.gaze.geometry.ScreenGeometry`.  A fixation's position is the mean of its
samples in image pixels; its duration follows pymovements (offset time minus onset time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

from gazetune.gaze.geometry import ScreenGeometry
from gazetune.gaze.samples import GazeSamples, check_time_stamps, estimate_rate_hz, resample_samples

Method = Literal["ivt", "idt"]


@dataclass
class Fixations:
    """Fixations of one trial in scanpath order (eq 3).

    Attributes
    ----------
    x, y : float64 (n,)
        Fixation centres in image pixels.
    duration_ms : float64 (n,)
        Durations in ms (``dur_i`` of eq 3).
    onset_ms : float64 (n,)
        Start times in ms, on the samples' clock (NaN when unknown, e.g. read from a fixation
        table).
    """

    x: np.ndarray
    y: np.ndarray
    duration_ms: np.ndarray
    onset_ms: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.x = np.asarray(self.x, np.float64).reshape(-1)
        n = len(self.x)
        self.y = np.asarray(self.y, np.float64).reshape(-1)
        self.duration_ms = np.asarray(self.duration_ms, np.float64).reshape(-1)
        self.onset_ms = (
            np.full(n, np.nan) if self.onset_ms is None else np.asarray(self.onset_ms, np.float64).reshape(-1)
        )
        for name in ("y", "duration_ms", "onset_ms"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"Fixations: {name} has {len(getattr(self, name))} values, x has {n}")
        if np.any(self.duration_ms < 0):
            i = int(np.argmax(self.duration_ms < 0))
            raise ValueError(f"Fixations: duration_ms[{i}] = {self.duration_ms[i]} is negative")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def offset_ms(self) -> np.ndarray:
        """End times in ms (``onset_ms + duration_ms``)."""
        return self.onset_ms + self.duration_ms

    def as_array(self) -> np.ndarray:
        """``(n, 3)`` float64 array ``x, y, duration_ms``: the fixation points FP of eq 3, the
        input of :func:`gazetune.gaze.heatmap`."""
        return np.stack([self.x, self.y, self.duration_ms], axis=1) if len(self) else np.zeros((0, 3))

    @classmethod
    def from_array(cls, fixations: np.ndarray, onset_ms: Optional[np.ndarray] = None) -> "Fixations":
        """From an ``(n, 3)`` array of ``x, y, duration_ms`` (e.g. a fixation table entry)."""
        arr = np.asarray(fixations, np.float64)
        if arr.size == 0:
            arr = np.zeros((0, 3))
        if arr.ndim != 2 or arr.shape[1] != 3:
            raise ValueError(f"fixations must be an (n, 3) array of x, y, duration_ms; got shape {arr.shape}")
        return cls(arr[:, 0], arr[:, 1], arr[:, 2], onset_ms)


def as_fixations(fixations: "Fixations | np.ndarray") -> Fixations:
    """Accept a :class:`Fixations` record or an ``(n, 3)`` array."""
    return fixations if isinstance(fixations, Fixations) else Fixations.from_array(fixations)


def _sample_positions_deg(samples: GazeSamples, geometry: ScreenGeometry) -> np.ndarray:
    """(n, 2) degrees from the screen centre for each sample."""
    if samples.screen_x is not None and samples.screen_y is not None:
        # raw screen coordinates, but lost where cleaning marked the image position lost
        sx = np.where(np.isfinite(samples.x), samples.screen_x, np.nan)
        sy = np.where(np.isfinite(samples.y), samples.screen_y, np.nan)
        return geometry.positions_to_deg(sx, sy)
    if samples.image_size is None:  # no image frame known: the positions are screen pixels
        return geometry.positions_to_deg(samples.x, samples.y)
    size = samples.image_size
    return geometry.image_to_deg(samples.x, samples.y, size, samples.image_rect)


def prepare_samples(
    samples: GazeSamples, resample_hz: Optional[float] = None, max_gap_ms: float = 75.0
) -> GazeSamples:
    """Resample ``samples`` to a constant rate for detection.

    ``resample_hz=None`` uses the rate of the median interval, rounded to the nearest Hz (already
    regular recordings are reproduced unchanged).
    """
    rate = resample_hz if resample_hz is not None else float(round(estimate_rate_hz(samples.t_ms)))
    return resample_samples(samples, rate, max_gap_ms=max_gap_ms)


def detect_fixations(
    samples: GazeSamples,
    geometry: Optional[ScreenGeometry] = None,
    method: Method = "ivt",
    velocity_threshold_deg_s: float = 30.0,
    dispersion_threshold_deg: float = 1.0,
    min_duration_ms: float = 100.0,
    resample_hz: Optional[float] = None,
    max_gap_ms: float = 75.0,
) -> Fixations:
    """Detect fixations in one trial with pymovements' I-VT or I-DT (eq 3).

    Parameters
    ----------
    samples : GazeSamples
        One trial; ``x, y`` in image pixels, NaN for track loss.  Run
        :func:`gazetune.gaze.validate_samples` first to handle off-image points.
    geometry : ScreenGeometry, optional
        Viewing geometry for pixel -> degree conversion (default :class:`ScreenGeometry()`).
        The image is placed on screen by ``samples.image_rect`` (default: centred at native size);
        raw ``screen_x, screen_y`` are used when present; without ``image_size`` the positions
        are taken as screen pixels.
    method : {"ivt", "idt"}
        Velocity threshold (I-VT) or dispersion threshold (I-DT).
    velocity_threshold_deg_s : float
        I-VT: samples slower than this (deg/s) are fixation candidates.  30 deg/s is the usual
        value for lab trackers; noisy webcam gaze may need more.
    dispersion_threshold_deg : float
        I-DT: largest ``(max x - min x) + (max y - min y)`` of a fixation, in degrees.
    min_duration_ms : float
        Shortest fixation in ms (rounded to whole samples at the resampled rate).
    resample_hz : float, optional
        Constant rate to resample to before detection; default: the median rate of the samples
        rounded to whole Hz.
    max_gap_ms : float
        Longest gap between valid samples that resampling interpolates across; longer track loss
        stays NaN and splits fixations.

    Returns
    -------
    Fixations
        In time order; positions are the mean image-pixel position of each fixation's samples,
        ``duration_ms = offset - onset`` (pymovements' convention: one sample interval shorter
        than the number of samples times the interval).

    Raises
    ------
    ValueError
        Unknown method, non-positive thresholds, time stamps not strictly increasing, or too few
        samples (I-VT needs 6 for its velocity filter).
    """
    from pymovements.events import idt, ivt
    from pymovements.transforms.numpy import pos2vel

    if method not in ("ivt", "idt"):
        raise ValueError(f"method must be 'ivt' or 'idt'; got {method!r}")
    for name, value in (
        ("velocity_threshold_deg_s", velocity_threshold_deg_s),
        ("dispersion_threshold_deg", dispersion_threshold_deg),
        ("min_duration_ms", min_duration_ms),
    ):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number > 0; got {value!r}")
    geometry = geometry or ScreenGeometry()
    check_time_stamps(samples.t_ms)
    if len(samples) < 6:
        raise ValueError(f"fixation detection needs at least 6 samples; got {len(samples)}")
    reg = prepare_samples(samples, resample_hz, max_gap_ms)
    rate = reg.meta["rate_hz"]
    step_ms = 1000.0 / rate
    deg = _sample_positions_deg(reg, geometry)
    min_samples = max(2, int(round(min_duration_ms / step_ms)))
    # sample indices as time steps: I-DT needs integer, evenly spaced steps
    if method == "ivt":
        velocity = pos2vel(deg, sampling_rate=rate, method="smooth")
        events = ivt(velocity, minimum_duration=min_samples, velocity_threshold=velocity_threshold_deg_s)
    else:
        events = idt(deg, minimum_duration=min_samples, dispersion_threshold=dispersion_threshold_deg)
    frame = events.frame
    onsets = frame["onset"].to_numpy().astype(np.int64)
    offsets = frame["offset"].to_numpy().astype(np.int64)
    xs = np.empty(len(onsets))
    ys = np.empty(len(onsets))
    for i, (a, b) in enumerate(zip(onsets, offsets)):
        xs[i] = np.nanmean(reg.x[a : b + 1])
        ys[i] = np.nanmean(reg.y[a : b + 1])
    order = np.argsort(onsets, kind="stable")
    return Fixations(
        x=xs[order],
        y=ys[order],
        duration_ms=((offsets - onsets) * step_ms)[order],
        onset_ms=reg.t_ms[onsets][order],
    )
