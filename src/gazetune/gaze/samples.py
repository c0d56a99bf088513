"""Canonical gaze samples of one trial (docs/architecture.md "Gaze samples").

Every capture path (webcam, mouse, lab tracker, simulated observers, file importers) produces
this record; everything downstream (fixation detection, maps) consumes it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

Rect = tuple[float, float, float, float]
Source = Literal["webcam", "mouse", "tracker", "simulated"]
SOURCES = ("webcam", "mouse", "tracker", "simulated")


@dataclass
class GazeSamples:
    """Gaze samples of one trial.

    Attributes
    ----------
    t_ms : float64 (n,)
        Time stamps in milliseconds, strictly increasing (any origin).
    x, y : float32 (n,)
        Gaze position in pixels of the displayed image (x right, y down); NaN where tracking was
        lost.
    source : str
        One of ``webcam``, ``mouse``, ``tracker``, ``simulated``.
    image_rect : (left, top, width, height)
        The image's rectangle on screen in screen pixels; image pixel = (screen - (left, top))
        scaled by (image size / rect size).  ``None`` when samples were recorded in image pixels.
    image_size : (width, height)
        Size of the image in its own pixels (the coordinate frame of ``x``, ``y``).
    screen_x, screen_y : float32 (n,), optional
        The raw screen coordinates, kept so nothing is lost by the conversion.
    pupil, confidence : float32 (n,), optional
    """

    t_ms: np.ndarray
    x: np.ndarray
    y: np.ndarray
    source: Source = "simulated"
    image_size: Optional[tuple[int, int]] = None
    image_rect: Optional[tuple[float, float, float, float]] = None
    screen_x: Optional[np.ndarray] = None
    screen_y: Optional[np.ndarray] = None
    pupil: Optional[np.ndarray] = None
    confidence: Optional[np.ndarray] = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.t_ms = np.asarray(self.t_ms, dtype=np.float64)
        self.x = np.asarray(self.x, dtype=np.float32)
        self.y = np.asarray(self.y, dtype=np.float32)
        n = len(self.t_ms)
        for name in ("x", "y", "screen_x", "screen_y", "pupil", "confidence"):
            v = getattr(self, name)
            if v is None:
                continue
            v = np.asarray(v, dtype=np.float32)
            if v.shape != (n,):
                raise ValueError(f"gaze samples: {name} has shape {v.shape}, expected ({n},) like t_ms")
            setattr(self, name, v)
        if self.source not in SOURCES:
            raise ValueError(f"gaze samples: source must be one of {SOURCES}; got {self.source!r}")

    def __len__(self) -> int:
        return len(self.t_ms)

    # ------------------------------------------------------------------ helpers
    @property
    def duration_ms(self) -> float:
        """Time from the first to the last sample in ms (0 for fewer than two samples)."""
        return float(self.t_ms[-1] - self.t_ms[0]) if len(self.t_ms) > 1 else 0.0

    @property
    def valid(self) -> np.ndarray:
        """Boolean (n,) mask of samples with finite ``x`` and ``y``."""
        return np.isfinite(self.x) & np.isfinite(self.y)

    def replace(self, **changes) -> "GazeSamples":
        """A copy with some fields changed (``dataclasses.replace``; arrays are not copied)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_screen(
        cls,
        t_ms: np.ndarray,
        screen_x: np.ndarray,
        screen_y: np.ndarray,
        image_rect: Rect,
        image_size: tuple[int, int],
        source: Source = "tracker",
        pupil: Optional[np.ndarray] = None,
        confidence: Optional[np.ndarray] = None,
        meta: Optional[dict] = None,
    ) -> "GazeSamples":
        """Samples recorded in screen pixels of an image shown at ``image_rect``.

        ``x, y`` are computed with :func:`screen_to_image`; ``screen_x, screen_y`` keep the raw
        coordinates.
        """
        x, y = screen_to_image(screen_x, screen_y, image_rect, image_size)
        return cls(
            t_ms=t_ms,
            x=x,
            y=y,
            source=source,
            image_size=(int(image_size[0]), int(image_size[1])),
            image_rect=tuple(float(v) for v in image_rect),  # type: ignore[arg-type]
            screen_x=screen_x,
            screen_y=screen_y,
            pupil=pupil,
            confidence=confidence,
            meta=dict(meta or {}),
        )


def _check_rect(image_rect: Rect, image_size: tuple[int, int]) -> None:
    if len(image_rect) != 4 or not all(np.isfinite(image_rect)) or image_rect[2] <= 0 or image_rect[3] <= 0:
        raise ValueError(f"image_rect must be (left, top, width > 0, height > 0) in screen pixels; got {image_rect}")
    if len(image_size) != 2 or image_size[0] <= 0 or image_size[1] <= 0:
        raise ValueError(f"image_size must be (width > 0, height > 0) in image pixels; got {image_size}")


def screen_to_image(
    screen_x: np.ndarray, screen_y: np.ndarray, image_rect: Rect, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Screen pixels -> pixels of the displayed image.

    ``x = (screen_x - left) * image_width / rect_width`` (and the same for ``y``), where
    ``image_rect = (left, top, rect_width, rect_height)`` is the image's rectangle on screen.
    Points outside the rectangle map outside ``[0, width) x [0, height)``; NaN stays NaN.

    Returns
    -------
    (x, y) : float32 arrays (n,)

    Examples
    --------
    >>> x, y = screen_to_image([560.0], [240.0], (560, 240, 800, 600), (400, 300))
    >>> float(x[0]), float(y[0])
    (0.0, 0.0)
    """
    _check_rect(image_rect, image_size)
    left, top, rw, rh = (float(v) for v in image_rect)
    x = (np.asarray(screen_x, np.float64) - left) * (image_size[0] / rw)
    y = (np.asarray(screen_y, np.float64) - top) * (image_size[1] / rh)
    return x.astype(np.float32), y.astype(np.float32)


def image_to_screen(
    x: np.ndarray, y: np.ndarray, image_rect: Rect, image_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`screen_to_image`: image pixels -> screen pixels (float64 arrays)."""
    _check_rect(image_rect, image_size)
    left, top, rw, rh = (float(v) for v in image_rect)
    sx = left + np.asarray(x, np.float64) * (rw / image_size[0])
    sy = top + np.asarray(y, np.float64) * (rh / image_size[1])
    return sx, sy


# ---------------------------------------------------------------------------------- validation
OutOfImage = Literal["nan", "clip", "keep"]


class TrialTooShortError(ValueError):
    """A trial has too little data (duration or valid samples) to be used."""


@dataclass
class ValidationReport:
    """What :func:`validate_samples` found and changed (every removed sample is counted here).

    Attributes
    ----------
    n_samples : int
        Samples in the trial (none are ever removed; bad ones become NaN).
    n_valid : int
        Samples with finite ``x, y`` after cleaning.
    n_lost : int
        Samples without a position in the input (NaN/inf ``x`` or ``y``: track loss).
    n_lost_runs : int
        Number of contiguous runs of lost samples.
    longest_gap_ms : float
        Longest time without a valid sample: between two consecutive valid samples, or from the
        start (end) of the trial to the first (last) valid one.  Covers NaN runs and dropped frames.
    n_low_confidence : int
        Samples set to NaN because ``confidence < min_confidence``.
    n_out_of_image : int
        Valid samples outside ``[0, width) x [0, height)``, handled by ``out_of_image``.
    out_of_image : str
        The policy used: ``"nan"`` (marked lost), ``"clip"`` (moved to the nearest edge pixel)
        or ``"keep"``.
    duration_ms : float
        Time from the first to the last sample.
    """

    n_samples: int
    n_valid: int
    n_lost: int
    n_lost_runs: int
    longest_gap_ms: float
    n_low_confidence: int
    n_out_of_image: int
    out_of_image: str
    duration_ms: float

    @property
    def lost_fraction(self) -> float:
        """Fraction of samples without a usable position after cleaning."""
        return 1.0 - self.n_valid / self.n_samples if self.n_samples else 0.0

    def as_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["lost_fraction"] = self.lost_fraction
        return d


def check_time_stamps(t_ms: np.ndarray, what: str = "t_ms") -> None:
    """Raise ``ValueError`` naming the first index where time stamps are not finite or do not
    increase strictly."""
    t = np.asarray(t_ms, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(t))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{what}[{i}] = {t[i]} is not a finite time stamp")
    if t.size > 1:
        steps = np.diff(t)
        bad = np.flatnonzero(steps <= 0)
        if bad.size:
            i = int(bad[0]) + 1
            raise ValueError(
                f"time stamps must increase strictly: {what}[{i}] = {float(t[i])!r} ms is not after "
                f"{what}[{i - 1}] = {float(t[i - 1])!r} ms ({bad.size} such step(s) in {t.size} samples)"
            )


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges ``[start, stop)`` of consecutive True values in ``mask``."""
    padded = np.concatenate([[False], mask, [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def longest_gap_ms(t_ms: np.ndarray, valid: np.ndarray) -> float:
    """Longest interval (ms) without a valid sample, counting the trial's start and end."""
    t = np.asarray(t_ms, np.float64)
    if t.size == 0:
        return 0.0
    tv = t[np.asarray(valid, bool)]
    if tv.size == 0:
        return float(t[-1] - t[0])
    edges = np.concatenate([[t[0]], tv, [t[-1]]])
    return float(np.max(np.diff(edges)))


def validate_samples(
    samples: GazeSamples,
    *,
    out_of_image: OutOfImage = "nan",
    min_duration_ms: float = 200.0,
    min_valid_samples: int = 10,
    min_confidence: Optional[float] = None,
) -> tuple[GazeSamples, ValidationReport]:
    """Check one trial's samples and return a cleaned copy plus a report of every change.

    Nothing is dropped: samples keep their time stamps; unusable positions become NaN and are
    counted in the :class:`ValidationReport`.

    Parameters
    ----------
    samples : GazeSamples
        One trial.  ``x``, ``y`` in image pixels.
    out_of_image : {"nan", "clip", "keep"}
        What to do with a valid sample outside ``[0, width) x [0, height)`` of
        ``samples.image_size``: mark it lost (``"nan"``, default), move it to the nearest edge
        pixel (``"clip"``, ``x`` into ``[0, width - 1]``) or leave it (``"keep"``).  Ignored (and
        counted as 0) when ``image_size`` is None.
    min_duration_ms : float
        Shortest acceptable trial (last minus first time stamp), in ms.
    min_valid_samples : int
        Fewest acceptable samples with a position after cleaning.
    min_confidence : float, optional
        Samples whose ``confidence`` is below this become NaN (e.g. 0.6 for Pupil Labs).

    Returns
    -------
    (GazeSamples, ValidationReport)

    Raises
    ------
    ValueError
        Time stamps not finite or not strictly increasing (names the index and both values);
        unknown ``out_of_image`` policy.
    TrialTooShortError
        Trial shorter than ``min_duration_ms`` or with fewer than ``min_valid_samples`` valid
        samples after cleaning.
    """
    if out_of_image not in ("nan", "clip", "keep"):
        raise ValueError(f"out_of_image must be 'nan', 'clip' or 'keep'; got {out_of_image!r}")
    check_time_stamps(samples.t_ms)
    n = len(samples)
    x = samples.x.astype(np.float32, copy=True)
    y = samples.y.astype(np.float32, copy=True)
    lost = ~(np.isfinite(x) & np.isfinite(y))
    x[lost] = np.nan
    y[lost] = np.nan
    n_lost = int(lost.sum())
    n_lost_runs = len(_runs(lost))

    n_low = 0
    if min_confidence is not None:
        if samples.confidence is None:
            raise ValueError("min_confidence given but the samples have no confidence values")
        low = ~lost & ~(samples.confidence >= min_confidence)
        n_low = int(low.sum())
        x[low] = np.nan
        y[low] = np.nan

    n_out = 0
    if samples.image_size is not None:
        w, h = samples.image_size
        ok = np.isfinite(x)
        outside = ok & ~((x >= 0) & (x < w) & (y >= 0) & (y < h))
        n_out = int(outside.sum())
        if out_of_image == "nan":
            x[outside] = np.nan
            y[outside] = np.nan
        elif out_of_image == "clip":
            x[outside] = np.clip(x[outside], 0, w - 1)
            y[outside] = np.clip(y[outside], 0, h - 1)

    valid = np.isfinite(x)
    duration = samples.duration_ms
    report = ValidationReport(
        n_samples=n,
        n_valid=int(valid.sum()),
        n_lost=n_lost,
        n_lost_runs=n_lost_runs,
        longest_gap_ms=longest_gap_ms(samples.t_ms, valid),
        n_low_confidence=n_low,
        n_out_of_image=n_out,
        out_of_image=out_of_image,
        duration_ms=duration,
    )
    if duration < min_duration_ms:
        raise TrialTooShortError(
            f"trial too short: {duration:.1f} ms from first to last sample (< min_duration_ms={min_duration_ms}); "
            f"{n} samples"
        )
    if report.n_valid < min_valid_samples:
        raise TrialTooShortError(
            f"too few valid samples: {report.n_valid} of {n} (< min_valid_samples={min_valid_samples}); "
            f"lost {n_lost}, low confidence {n_low}, out of image {n_out} ({out_of_image})"
        )
    return samples.replace(x=x, y=y), report


# --------------------------------------------------------------------------------- resampling
def resample_samples(samples: GazeSamples, rate_hz: float, max_gap_ms: float = 75.0) -> GazeSamples:
    """Resample to a constant rate by linear interpolation, never across long track loss.

    The new time stamps are ``t_0 + i * 1000 / rate_hz`` up to the last sample.  Each value is
    interpolated linearly between the valid samples around it; where those two samples are more
    than ``max_gap_ms`` apart (track loss, dropped webcam frames) the result is NaN.  Samples
    that already lie on the grid are reproduced exactly (up to float rounding).

    Parameters
    ----------
    samples : GazeSamples
        Time stamps strictly increasing (checked).
    rate_hz : float
        Target sampling rate in Hz (> 0).
    max_gap_ms : float
        Longest interval between two valid samples to interpolate across, in ms.

    Returns
    -------
    GazeSamples
        Same source, image size and rectangle; ``meta["rate_hz"]`` set.  ``screen_x, screen_y``,
        ``pupil`` and ``confidence`` are resampled too where present.
    """
    if not (rate_hz > 0 and np.isfinite(rate_hz)):
        raise ValueError(f"rate_hz must be a finite number > 0; got {rate_hz!r}")
    if not max_gap_ms > 0:
        raise ValueError(f"max_gap_ms must be > 0; got {max_gap_ms!r}")
    check_time_stamps(samples.t_ms)
    t = samples.t_ms
    if len(t) == 0:
        return samples.replace(meta={**samples.meta, "rate_hz": float(rate_hz)})
    step = 1000.0 / rate_hz
    grid = t[0] + step * np.arange(int(np.floor((t[-1] - t[0]) / step + 1e-9)) + 1)
    valid = samples.valid
    tv = t[valid]
    if tv.size == 0:
        mask = np.zeros(grid.shape, bool)
    else:
        # the valid samples just before (or at) and just after each grid time
        hi = np.clip(np.searchsorted(tv, grid, side="left"), 0, tv.size - 1)
        lo = np.clip(np.searchsorted(tv, grid, side="right") - 1, 0, tv.size - 1)
        inside = (grid >= tv[0] - 1e-9) & (grid <= tv[-1] + 1e-9)
        mask = inside & (tv[hi] - tv[lo] <= max_gap_ms)

    def interp(v: Optional[np.ndarray], use: np.ndarray) -> Optional[np.ndarray]:
        if v is None:
            return None
        ok = use & np.isfinite(v)
        if not ok.any():
            return np.full(grid.shape, np.nan, np.float32)
        out = np.interp(grid, t[ok], v[ok].astype(np.float64))
        out[~mask] = np.nan
        return out.astype(np.float32)

    return samples.replace(
        t_ms=grid,
        x=interp(samples.x, valid),
        y=interp(samples.y, valid),
        screen_x=interp(samples.screen_x, valid),
        screen_y=interp(samples.screen_y, valid),
        pupil=interp(samples.pupil, valid),
        confidence=interp(samples.confidence, valid),
        meta={**samples.meta, "rate_hz": float(rate_hz)},
    )


def estimate_rate_hz(t_ms: np.ndarray) -> float:
    """Sampling rate in Hz from the median interval between time stamps (at least 2 samples)."""
    t = np.asarray(t_ms, np.float64)
    if t.size < 2:
        raise ValueError(f"cannot estimate a sampling rate from {t.size} sample(s)")
    return float(1000.0 / np.median(np.diff(t)))
