"""Canonical gaze samples of one trial (DESIGN.md "Gaze samples").

Every capture path (webcam, mouse, lab tracker, simulated observers, file importers) produces
this record; everything downstream (fixation detection, maps) consumes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

import numpy as np

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
