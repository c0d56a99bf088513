"""Scanpaths: fixations in order with the saccades between them (patent ¶81), and the
fixed-length scanpath vector used as an MSE target for the human-response model (¶112, eq 11).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from gazetune.gaze.fixations import Fixations, as_fixations
from gazetune.gaze.geometry import Rect, ScreenGeometry


@dataclass
class Scanpath:
    """One observer's scanpath on one image.

    Attributes
    ----------
    fixations : Fixations
        ``n`` fixations in time order (image pixels, ms).
    amplitude_px : float64 (n - 1,)
        Length of saccade ``i`` (fixation ``i`` -> ``i + 1``) in image pixels.
    amplitude_deg : float64 (n - 1,)
        The same in degrees of visual angle (Euclidean distance of the two fixations' angular
        positions, as pymovements measures saccade amplitude); NaN without a geometry.
    direction_deg : float64 (n - 1,)
        Direction in degrees in ``(-180, 180]``: 0 = rightwards, 90 = upwards on screen
        (``atan2(-dy, dx)`` because image ``y`` grows downwards).
    saccade_duration_ms : float64 (n - 1,)
        Time from the end of fixation ``i`` to the onset of ``i + 1``; NaN where onsets are unknown.
    """

    fixations: Fixations
    amplitude_px: np.ndarray
    amplitude_deg: np.ndarray
    direction_deg: np.ndarray
    saccade_duration_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.fixations)

    @property
    def fixation_duration_ms(self) -> np.ndarray:
        return self.fixations.duration_ms


def scanpath(
    fixations: Fixations | np.ndarray,
    geometry: Optional[ScreenGeometry] = None,
    image_size: Optional[tuple[int, int]] = None,
    image_rect: Optional[Rect] = None,
) -> Scanpath:
    """Saccades between consecutive fixations (¶81).

    Parameters
    ----------
    fixations : Fixations or (n, 3) array of x, y, duration_ms
        In scanpath order, image pixels.
    geometry : ScreenGeometry, optional
        Needed for ``amplitude_deg`` (NaN without it).
    image_size : (width, height), optional
        Image size in its own pixels; needed with ``geometry``.
    image_rect : (left, top, width, height), optional
        Where the image was shown; default centred at native size.

    Returns
    -------
    Scanpath

    Examples
    --------
    >>> sp = scanpath([[0, 0, 200], [3, -4, 300]])
    >>> float(sp.amplitude_px[0]), float(sp.direction_deg[0])
    (5.0, 53.13010235415598)
    """
    fix = as_fixations(fixations)
    dx = np.diff(fix.x)
    dy = np.diff(fix.y)
    amp_px = np.hypot(dx, dy)
    direction = np.degrees(np.arctan2(0.0 - dy, dx))  # 0.0 - dy: no -0.0, so leftwards is +180
    direction[direction <= -180.0] = 180.0
    if geometry is not None:
        if image_size is None:
            raise ValueError("scanpath: image_size (width, height) is needed to convert amplitudes to degrees")
        deg = geometry.image_to_deg(fix.x, fix.y, image_size, image_rect)
        amp_deg = np.hypot(*np.diff(deg, axis=0).T) if len(fix) > 1 else np.zeros(0)
    else:
        amp_deg = np.full(amp_px.shape, np.nan)
    sacc_ms = fix.onset_ms[1:] - fix.offset_ms[:-1]
    return Scanpath(fix, amp_px, amp_deg, direction, sacc_ms)


def scanpath_vector(
    fixations: Fixations | np.ndarray,
    k: int,
    image_size: tuple[int, int],
    method: Literal["time", "index"] = "time",
) -> np.ndarray:
    """Fixed-length scanpath representation: ``(k, 3)`` rows of ``x / W, y / H, duration_s``.

    A scanpath has a variable number of fixations; the MSE loss of eq 11 (¶112) needs a fixed
    shape.  Two resamplings:

    ``"time"`` (default)
        Row ``j`` describes where the observer was looking at the middle of the ``j``-th of ``k``
        equal slices of the total fixation time: the fixation covering the instant
        ``(j + 0.5) / k * sum(duration)`` (fixations laid end to end).  Long fixations fill more
        rows, so the vector weighs positions by dwell time like the heatmap does.
    ``"index"``
        The first ``k`` fixations in order; a shorter scanpath is padded by repeating its last
        position with duration 0.

    Parameters
    ----------
    fixations : Fixations or (n, 3) array of x, y, duration_ms
    k : int
        Number of rows (>= 1).
    image_size : (width, height)
        Divides ``x`` and ``y`` so they are in [0, 1) inside the image.
    method : {"time", "index"}

    Returns
    -------
    numpy.ndarray
        float32 ``(k, 3)``: normalised ``x``, ``y`` and the covering fixation's duration in
        seconds.  All zeros for an empty scanpath (or zero total duration with ``"time"``).

    Examples
    --------
    >>> scanpath_vector([[10, 20, 300], [50, 60, 100]], 4, (100, 100)).tolist()[2]
    [0.10000000149011612, 0.20000000298023224, 0.30000001192092896]
    """
    if int(k) != k or k < 1:
        raise ValueError(f"scanpath_vector: k must be an integer >= 1; got {k!r}")
    if method not in ("time", "index"):
        raise ValueError(f"scanpath_vector: method must be 'time' or 'index'; got {method!r}")
    w, h = image_size
    if not (w > 0 and h > 0):
        raise ValueError(f"scanpath_vector: image_size must be (width > 0, height > 0); got {image_size}")
    fix = as_fixations(fixations)
    k = int(k)
    out = np.zeros((k, 3), np.float64)
    n = len(fix)
    if n == 0:
        return out.astype(np.float32)
    if method == "index":
        idx = np.minimum(np.arange(k), n - 1)
        out[:, 0] = fix.x[idx] / w
        out[:, 1] = fix.y[idx] / h
        out[:, 2] = np.where(np.arange(k) < n, fix.duration_ms[idx] / 1000.0, 0.0)
        return out.astype(np.float32)
    ends = np.cumsum(fix.duration_ms)
    total = ends[-1]
    if total <= 0:
        return out.astype(np.float32)
    instants = (np.arange(k) + 0.5) / k * total
    idx = np.minimum(np.searchsorted(ends, instants, side="right"), n - 1)
    out[:, 0] = fix.x[idx] / w
    out[:, 1] = fix.y[idx] / h
    out[:, 2] = fix.duration_ms[idx] / 1000.0
    return out.astype(np.float32)
