"""Fixation detection: gaze samples -> fixation points ``(x_i, y_i, dur_i)`` (patent eq 3, ¶75, ¶80).

Three methods; I-VT and I-DT are pymovements' (Salvucci & Goldberg 2000), I2MC is its authors'
package:

* **I-VT** (:func:`pymovements.events.ivt`): a sample belongs to a fixation when its gaze velocity
  (pymovements ``pos2vel``, in deg/s) is below ``velocity_threshold_deg_s``;
* **I-DT** (:func:`pymovements.events.idt`): a window of samples is a fixation while its
  dispersion ``(max x - min x) + (max y - min y)`` in degrees stays below
  ``dispersion_threshold_deg``;
* **I2MC** (Hessels, Niehorster, Kemner & Hooge 2017, *Behavior Research Methods* 49, 1802-1823;
  PyPI ``i2mc``, called as is): 2-means clustering in a moving window at several down-sampling
  levels gives every sample a weight (how often a window split there); samples below
  ``mean + cutoffstd * sd`` of the weights are fixation, then fixations close in time and space
  are merged.  Made for noisy, low-rate data with track loss such as webcam gaze.

Before that, samples are resampled to a constant rate (webcams deliver irregular frames;
:func:`gazetune.gaze.samples.resample_samples`, linear, never across track loss longer than
``max_gap_ms``) and converted from image pixels to degrees of visual angle with a
:class:`~gazetune.gaze.geometry.ScreenGeometry` (I2MC works in screen pixels instead).  A
fixation's position is the mean of its samples in image pixels (I2MC: the median); its duration
follows pymovements (offset time minus onset time) or I2MC (end of the last sample minus start of
the first).

``method="auto"`` (the default) picks the method by the samples' ``source``
(:data:`DEFAULT_METHOD`): I2MC for webcam gaze, I-VT otherwise.  The choice rests on
``bench/webcam_fixations.py`` (docs/benchmarks.md): on simulated WebGazer-like recordings
(about 25 Hz, 150-500 px error) I-VT at 30 deg/s finds 3 of 8 fixations, I2MC at 50 Hz 7 of 8
with the steadiest counts across noise levels; I-DT at 5 deg is about as good there.
"""

from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Literal, Optional

import numpy as np

from gazetune.gaze.geometry import ScreenGeometry
from gazetune.gaze.samples import (
    GazeSamples,
    check_time_stamps,
    estimate_rate_hz,
    image_to_screen,
    resample_samples,
    screen_to_image,
)

Method = Literal["auto", "ivt", "idt", "i2mc"]
METHODS = ("ivt", "idt", "i2mc")

#: The method ``method="auto"`` uses for each gaze ``source`` (see the module notes).
DEFAULT_METHOD: dict[str, str] = {"webcam": "i2mc", "tracker": "ivt", "mouse": "ivt", "simulated": "ivt"}


def default_method(source: str) -> str:
    """The fixation method used for samples from ``source`` when ``method="auto"``."""
    try:
        return DEFAULT_METHOD[source]
    except KeyError:
        raise ValueError(f"no default fixation method for source {source!r}; known: {sorted(DEFAULT_METHOD)}") from None


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
    method: Method = "auto",
    velocity_threshold_deg_s: float = 30.0,
    dispersion_threshold_deg: float = 1.0,
    min_duration_ms: float = 100.0,
    resample_hz: Optional[float] = None,
    max_gap_ms: float = 75.0,
    i2mc_options: Optional[dict] = None,
) -> Fixations:
    """Detect fixations in one trial with pymovements' I-VT or I-DT, or with I2MC (eq 3).

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
    method : {"auto", "ivt", "idt", "i2mc"}
        Velocity threshold (I-VT), dispersion threshold (I-DT), or 2-means clustering (I2MC).
        ``"auto"`` (default): :func:`default_method` of ``samples.source`` (I2MC for webcam, I-VT
        otherwise).
    velocity_threshold_deg_s : float
        I-VT: samples slower than this (deg/s) are fixation candidates.  30 deg/s is the usual
        value for lab trackers; it finds too few fixations in webcam gaze (docs/benchmarks.md).
    dispersion_threshold_deg : float
        I-DT: largest ``(max x - min x) + (max y - min y)`` of a fixation, in degrees.
    min_duration_ms : float
        Shortest fixation in ms (I-VT/I-DT: rounded to whole samples at the resampled rate;
        I2MC: its ``minFixDur``).
    resample_hz : float, optional
        Constant rate to resample to before detection; default: the median rate of the samples
        rounded to whole Hz (I2MC: at least :data:`I2MC_MIN_RATE_HZ`; webcam gaze at 25-30 Hz
        is interpolated to 50 Hz, where I2MC matched 66 % instead of 38 % of the true fixations
        of simulated webcam trials, docs/benchmarks.md).
    max_gap_ms : float
        Longest gap between valid samples that resampling interpolates across; longer track loss
        stays NaN and splits fixations.
    i2mc_options : dict, optional
        I2MC only: options passed to :func:`I2MC.I2MC` over the ones derived here (see
        :func:`i2mc_options_for`, and :data:`WEBCAM_I2MC_OPTIONS` for webcam samples), e.g. ``{"cutoffstd": 2.0, "maxMergeDist": 30.0}`` (pixels,
        seconds and ms as the package states them).

    Returns
    -------
    Fixations
        In time order; positions in image pixels: the mean (I-VT, I-DT) or median (I2MC) of
        each fixation's samples.  ``duration_ms`` for I-VT/I-DT is ``offset - onset``
        (pymovements' convention: one sample interval shorter than the number of samples times
        the interval); for I2MC it runs to the end of the last sample (the package's
        convention).

    Raises
    ------
    ValueError
        Unknown method, non-positive thresholds, time stamps not strictly increasing, too few
        samples (I-VT needs 6 for its velocity filter), or I2MC's clustering gave up.
    """
    if method == "auto":
        method = default_method(samples.source)  # type: ignore[assignment]
    if method not in METHODS:
        raise ValueError(f"method must be 'auto', 'ivt', 'idt' or 'i2mc'; got {method!r}")
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
    if method == "i2mc" and resample_hz is None:
        resample_hz = max(I2MC_MIN_RATE_HZ, float(round(estimate_rate_hz(samples.t_ms))))
    reg = prepare_samples(samples, resample_hz, max_gap_ms)
    if method == "i2mc":
        return _detect_i2mc(reg, geometry, min_duration_ms, i2mc_options)
    return _detect_pymovements(
        reg, geometry, method, velocity_threshold_deg_s, dispersion_threshold_deg, min_duration_ms
    )


def _detect_pymovements(
    reg: GazeSamples,
    geometry: ScreenGeometry,
    method: str,
    velocity_threshold_deg_s: float,
    dispersion_threshold_deg: float,
    min_duration_ms: float,
) -> Fixations:
    """I-VT / I-DT on regularly sampled ``reg`` (see :func:`detect_fixations`)."""
    from pymovements.events import idt, ivt
    from pymovements.transforms.numpy import pos2vel

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


# ------------------------------------------------------------------------------------ I2MC
#: I2MC's own down-sampling factors; :func:`i2mc_options_for` keeps those that suit the rate.
I2MC_DOWNSAMPLES = (2, 5, 10)
#: I2MC options for webcam gaze, over :func:`i2mc_options_for`: a fixation cutoff at mean + 1.5 sd
#: of the clustering weights instead of the package's 2 sd, which merges too much at 25-50 Hz
#: (bench/webcam_fixations.py: 78 % instead of 66 % of true fixations matched on simulated webcam gaze).
WEBCAM_I2MC_OPTIONS: dict = {"cutoffstd": 1.5}
#: I2MC runs on data resampled to at least this rate (Hz) unless ``resample_hz`` says otherwise.
I2MC_MIN_RATE_HZ = 50.0
#: Fewest samples a down-sampled clustering window must keep for its factor to be used.
I2MC_MIN_WINDOW_SAMPLES = 4


def _sample_positions_screen(samples: GazeSamples, geometry: ScreenGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Screen-pixel positions of each sample (NaN where ``x`` or ``y`` is lost)."""
    lost = ~(np.isfinite(samples.x) & np.isfinite(samples.y))
    if samples.screen_x is not None and samples.screen_y is not None:
        sx, sy = samples.screen_x.astype(np.float64), samples.screen_y.astype(np.float64)
    elif samples.image_size is None:  # no image frame known: the positions are screen pixels
        sx, sy = samples.x.astype(np.float64), samples.y.astype(np.float64)
    else:
        sx, sy = image_to_screen(samples.x, samples.y, _screen_rect(samples, geometry), samples.image_size)
    sx = np.where(lost, np.nan, sx)
    sy = np.where(lost, np.nan, sy)
    return sx, sy


def _screen_rect(samples: GazeSamples, geometry: ScreenGeometry) -> tuple[float, float, float, float]:
    """Where the image was on screen: ``samples.image_rect``, else centred at native size."""
    assert samples.image_size is not None
    return samples.image_rect if samples.image_rect is not None else geometry.centered_rect(samples.image_size)


def i2mc_options_for(rate_hz: float, geometry: ScreenGeometry, min_duration_ms: float = 100.0) -> dict:
    """The I2MC options :func:`detect_fixations` uses for data at ``rate_hz`` (Hz).

    Screen resolution (``xres, yres``, pixels), screen size (cm) and distance (cm) come from
    ``geometry``; ``freq`` is the rate; ``minFixDur`` is ``min_duration_ms``.  The package's
    defaults assume a lab tracker (several hundred Hz): its down-sampling factors 2, 5 and 10
    must divide the rate, and its Chebyshev anti-aliasing filter needs ``3 * chebyOrder + 1``
    samples in the 200 ms clustering window.  Here a factor is kept only where it divides the
    rate and leaves at least :data:`I2MC_MIN_WINDOW_SAMPLES` samples in the window, and the
    filter is on only where the window is long enough for it.  All other options keep the
    package's defaults (200 ms window, 20 ms step, cutoff mean + 2 sd, merging within 30 px
    and 30 ms).
    """
    window_s = 0.2
    n_window = int(window_s * rate_hz)
    downsamples = [d for d in I2MC_DOWNSAMPLES if rate_hz % d == 0 and -(-n_window // d) >= I2MC_MIN_WINDOW_SAMPLES]
    cheby_order = 8
    return {
        "xres": float(geometry.screen_width_px),
        "yres": float(geometry.screen_height_px),
        "freq": float(rate_hz),
        "missingx": math.nan,
        "missingy": math.nan,
        "scrSz": [float(geometry.screen_width_cm), float(geometry.screen_height_cm)],
        "disttoscreen": float(geometry.distance_cm),
        "windowtime": window_s,
        "downsamples": downsamples,
        "downsampFilter": bool(downsamples) and round(window_s * rate_hz) >= 3 * cheby_order + 1,
        "chebyOrder": cheby_order,
        "minFixDur": float(min_duration_ms),
    }


@contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """I2MC draws its k-means++ starts from NumPy's global generator: seed it, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def run_i2mc(t_ms: np.ndarray, screen_x: np.ndarray, screen_y: np.ndarray, options: dict, seed: int = 0) -> dict:
    """Call the ``i2mc`` package on one regularly sampled trial (screen pixels, NaN = lost).

    Returns the package's fixation dict (``startT``, ``endT``, ``dur`` in ms, ``xpos``, ``ypos``
    in screen pixels, ...); an empty dict when the trial has no valid sample.  The package's
    random k-means++ starts are seeded with ``seed`` so runs repeat exactly.
    """
    import pandas as pd
    from I2MC import I2MC as i2mc

    x = np.asarray(screen_x, np.float64)
    y = np.asarray(screen_y, np.float64)
    if not np.any(np.isfinite(x) & np.isfinite(y)):
        return {}
    frame = pd.DataFrame({"time": np.asarray(t_ms, np.float64), "average_X": x, "average_Y": y})
    with _numpy_seed(seed), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # empty-slice means at the trial's edges
        fix, _, _ = i2mc(frame, dict(options), logging=False)
    if fix is False:
        raise ValueError("I2MC: clustering gave up (too many empty clusters); try other i2mc_options")
    return fix


def _detect_i2mc(
    reg: GazeSamples, geometry: ScreenGeometry, min_duration_ms: float, overrides: Optional[dict]
) -> Fixations:
    """I2MC on regularly sampled ``reg``; positions back in image pixels."""
    webcam = WEBCAM_I2MC_OPTIONS if reg.source == "webcam" else {}
    options = {**i2mc_options_for(reg.meta["rate_hz"], geometry, min_duration_ms), **webcam, **(overrides or {})}
    sx, sy = _sample_positions_screen(reg, geometry)
    fix = run_i2mc(reg.t_ms, sx, sy, options)
    if not fix or len(fix["start"]) == 0:
        return Fixations(np.zeros(0), np.zeros(0), np.zeros(0), np.zeros(0))
    fx, fy = np.asarray(fix["xpos"], np.float64), np.asarray(fix["ypos"], np.float64)
    if reg.image_size is not None:
        fx, fy = screen_to_image(fx, fy, _screen_rect(reg, geometry), reg.image_size)
    return Fixations(x=fx, y=fy, duration_ms=np.asarray(fix["dur"], np.float64), onset_ms=np.asarray(fix["startT"], np.float64))
