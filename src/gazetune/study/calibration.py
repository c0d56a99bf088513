"""Screen geometry and gaze validation quality (accuracy and precision, pixels and degrees).

Definitions (Holmqvist et al., *Eye Tracking*, 2011, ch. 2):

* **accuracy** of one target: distance between the target and the mean gaze position on it;
  the validation's accuracy is the mean over targets;
* **precision**: root mean square of the distances between successive samples (RMS-S2S) on a
  target, averaged over targets.

Pixels become degrees of visual angle through the screen's CSS pixels per millimetre (from the
card-size calibration) and the viewing distance (from the blind-spot test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

DEFAULT_PX_PER_MM = 96 / 25.4
"""CSS pixels per millimetre assumed when the participant skipped the card calibration."""
DEFAULT_DISTANCE_MM = 600.0
"""Viewing distance assumed when the blind-spot test was skipped, millimetres."""
CARD_WIDTH_MM = 85.60
"""Width of an ISO/IEC 7810 ID-1 card (credit card), millimetres."""
BLIND_SPOT_DEG = 13.5
"""Horizontal eccentricity of the blind spot's centre, degrees (used by the blind-spot test)."""


def px_to_deg(px: float, px_per_mm: float | None, distance_mm: float | None) -> float:
    """Visual angle (degrees) subtended by a distance of ``px`` CSS pixels at the screen centre."""
    ppm = px_per_mm or DEFAULT_PX_PER_MM
    d = distance_mm or DEFAULT_DISTANCE_MM
    return math.degrees(2.0 * math.atan((px / ppm) / (2.0 * d)))


def distance_from_blind_spot(offset_px: float, px_per_mm: float) -> float:
    """Viewing distance (mm) from the horizontal distance (CSS px) between the fixation mark and
    the point where the moving dot vanished into the blind spot."""
    return (offset_px / px_per_mm) / math.tan(math.radians(BLIND_SPOT_DEG))


@dataclass
class ValidationResult:
    """Quality of one validation (or drift check)."""

    accuracy_px: float
    precision_px: float
    accuracy_deg: float
    precision_deg: float
    points: list[dict]

    def passed(self, max_deg: float) -> bool:
        return bool(np.isfinite(self.accuracy_deg) and self.accuracy_deg <= max_deg)


def validation_quality(points: list[dict], px_per_mm: float | None,
                       distance_mm: float | None) -> ValidationResult:
    """Accuracy and precision from validation targets.

    Parameters
    ----------
    points : list of dict
        Each ``{"target": [x, y], "x": [...], "y": [...]}``: the target and the gaze samples
        recorded on it, CSS pixels of the viewport; ``None`` marks a lost sample.
    px_per_mm, distance_mm : float or None
        Screen geometry; defaults (:data:`DEFAULT_PX_PER_MM`, :data:`DEFAULT_DISTANCE_MM`) are
        used when ``None``.

    Returns
    -------
    ValidationResult
        ``accuracy_*`` is ``inf`` when no target got a valid sample; ``precision_*`` is ``nan``
        when no target got two.
    """
    errs, rms, out = [], [], []
    for p in points:
        tx, ty = (float(v) for v in p["target"])
        x = np.array([np.nan if v is None else v for v in p["x"]], dtype=np.float64)
        y = np.array([np.nan if v is None else v for v in p["y"]], dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(y)
        x, y = x[ok], y[ok]
        rec: dict = {"target": [tx, ty], "n": int(ok.sum()), "n_lost": int((~ok).sum())}
        if len(x):
            mx, my = float(x.mean()), float(y.mean())
            e = math.hypot(mx - tx, my - ty)
            errs.append(e)
            rec.update(mean=[mx, my], error_px=e)
        if len(x) >= 2:
            rms.append(float(np.sqrt(np.mean(np.diff(x) ** 2 + np.diff(y) ** 2))))
        out.append(rec)
    acc = float(np.mean(errs)) if errs else math.inf
    prec = float(np.mean(rms)) if rms else math.nan
    return ValidationResult(
        accuracy_px=acc,
        precision_px=prec,
        accuracy_deg=px_to_deg(acc, px_per_mm, distance_mm) if math.isfinite(acc) else math.inf,
        precision_deg=px_to_deg(prec, px_per_mm, distance_mm) if math.isfinite(prec) else math.nan,
        points=out,
    )
