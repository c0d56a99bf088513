"""Viewing geometry: screen pixels <-> degrees of visual angle.

Fixation detection thresholds (velocity in deg/s, dispersion in deg) and the heatmap's Gaussian
(sigma about one degree, docs/architecture.md "Maps") are stated in degrees of visual angle; gaze arrives in
pixels.  :class:`ScreenGeometry` holds the few numbers that connect the two: the screen's size in
pixels and centimetres and the eye-to-screen distance.

For a visual angle ``theta`` centred on the line of sight at distance ``D`` (in pixels,
``D = distance_cm * px_per_cm``) the on-screen extent is ``s = 2 D tan(theta / 2)`` and, back,
``theta = 2 atan(s / (2 D))``.  Positions are converted with pymovements' ``pix2deg``
(angle from the screen centre along each axis, ``atan((p - (N - 1) / 2) / D)``).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional

import numpy as np

#: ``(left, top, width, height)`` of an image on screen, in screen pixels.
Rect = tuple[float, float, float, float]


@dataclass(frozen=True)
class ScreenGeometry:
    """Screen size and viewing distance.

    The defaults describe a common desktop set-up for online and webcam studies: a 24-inch
    16:9 monitor (1920 x 1080 px, 53.1 x 29.9 cm) seen from 60 cm, where one degree of visual
    angle is about 37.9 px.

    Parameters
    ----------
    screen_width_px, screen_height_px : int
        Screen resolution in pixels.
    screen_width_cm, screen_height_cm : float
        Visible screen area in centimetres.
    distance_cm : float
        Eye-to-screen distance in centimetres.

    Examples
    --------
    >>> g = ScreenGeometry()
    >>> round(g.deg_to_px(1.0), 1)
    37.9
    >>> round(g.px_to_deg(g.deg_to_px(2.5)), 6)
    2.5
    """

    screen_width_px: int = 1920
    screen_height_px: int = 1080
    screen_width_cm: float = 53.1
    screen_height_cm: float = 29.9
    distance_cm: float = 60.0

    def __post_init__(self) -> None:
        for name in ("screen_width_px", "screen_height_px", "screen_width_cm", "screen_height_cm", "distance_cm"):
            value = getattr(self, name)
            if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
                raise ValueError(f"ScreenGeometry: {name} must be a finite number > 0; got {value!r}")

    # ------------------------------------------------------------------ scalars
    @property
    def px_per_cm(self) -> tuple[float, float]:
        """Pixels per centimetre along x and y."""
        return (self.screen_width_px / self.screen_width_cm, self.screen_height_px / self.screen_height_cm)

    @property
    def distance_px(self) -> float:
        """Eye-to-screen distance in (horizontal) screen pixels."""
        return self.distance_cm * self.px_per_cm[0]

    @property
    def px_per_deg(self) -> float:
        """Screen pixels spanned by one degree centred on the screen (``deg_to_px(1)``)."""
        return float(self.deg_to_px(1.0))

    # ------------------------------------------------------------ conversions
    def deg_to_px(self, deg: float | np.ndarray) -> float | np.ndarray:
        """On-screen extent in pixels of a visual angle centred on the line of sight.

        ``s = 2 D tan(theta / 2)`` with ``D`` = :attr:`distance_px`.

        Parameters
        ----------
        deg : float or array
            Visual angle in degrees (>= 0, < 180).

        Returns
        -------
        float or array
            Extent in screen pixels, same shape as ``deg``.
        """
        arr = np.asarray(deg, dtype=np.float64)
        if np.any(arr < 0) or np.any(arr >= 180):
            raise ValueError(f"deg_to_px: visual angle must be in [0, 180) degrees; got {deg!r}")
        out = 2.0 * self.distance_px * np.tan(np.radians(arr) / 2.0)
        return float(out) if out.ndim == 0 else out

    def px_to_deg(self, px: float | np.ndarray) -> float | np.ndarray:
        """Visual angle in degrees of an on-screen extent of ``px`` pixels centred on the line
        of sight: ``theta = 2 atan(px / (2 D))``.  Inverse of :meth:`deg_to_px`."""
        arr = np.asarray(px, dtype=np.float64)
        if np.any(arr < 0):
            raise ValueError(f"px_to_deg: extent must be >= 0 pixels; got {px!r}")
        out = np.degrees(2.0 * np.arctan(arr / (2.0 * self.distance_px)))
        return float(out) if out.ndim == 0 else out

    def positions_to_deg(self, screen_x: np.ndarray, screen_y: np.ndarray) -> np.ndarray:
        """Screen positions (pixels, origin upper left) -> degrees from the screen centre.

        Delegates to :func:`pymovements.transforms.numpy.pix2deg`.  NaN stays NaN.

        Returns
        -------
        numpy.ndarray
            ``(n, 2)`` float64 array of horizontal and vertical angle in degrees.
        """
        # imported here: pymovements pulls in pandas, polars and matplotlib (seconds), and the study
        # server imports this module without ever converting to degrees at start-up
        from pymovements.transforms.numpy import pix2deg as _pm_pix2deg

        arr = np.stack([np.asarray(screen_x, np.float64), np.asarray(screen_y, np.float64)], axis=1)
        return _pm_pix2deg(
            arr,
            screen_px=(self.screen_width_px, self.screen_height_px),
            screen_cm=(self.screen_width_cm, self.screen_height_cm),
            distance_cm=self.distance_cm,
            origin="upper left",
        )

    def centered_rect(self, display_size: tuple[float, float]) -> Rect:
        """Rectangle ``(left, top, width, height)`` of an image of ``display_size`` (screen
        pixels, width x height) centred on the screen."""
        w, h = float(display_size[0]), float(display_size[1])
        return ((self.screen_width_px - w) / 2.0, (self.screen_height_px - h) / 2.0, w, h)

    def image_to_deg(
        self,
        x: np.ndarray,
        y: np.ndarray,
        image_size: tuple[int, int],
        image_rect: Optional[Rect] = None,
    ) -> np.ndarray:
        """Image-pixel positions -> degrees from the screen centre.

        Parameters
        ----------
        x, y : arrays (n,)
            Positions in image pixels.
        image_size : (width, height)
            Size of the image in its own pixels.
        image_rect : (left, top, width, height), optional
            Where the image was shown, in screen pixels.  Default: centred on the screen at its
            native size (one image pixel = one screen pixel).

        Returns
        -------
        numpy.ndarray
            ``(n, 2)`` degrees (horizontal, vertical).
        """
        rect = image_rect if image_rect is not None else self.centered_rect(image_size)
        sx = rect[0] + np.asarray(x, np.float64) * rect[2] / image_size[0]
        sy = rect[1] + np.asarray(y, np.float64) * rect[3] / image_size[1]
        return self.positions_to_deg(sx, sy)

    def image_px_per_deg(self, image_size: tuple[int, int], display_size: Optional[tuple[float, float]] = None) -> float:
        """How many *image* pixels one degree of visual angle spans.

        ``px_per_deg * image_width / display_width``: an 800 px wide image shown 400 px wide has
        twice as many image pixels per degree as screen pixels per degree.  Use it for the
        heatmap's ``sigma`` (one degree, docs/architecture.md).

        Parameters
        ----------
        image_size : (width, height)
            Image size in its own pixels.
        display_size : (width, height), optional
            On-screen size in screen pixels; default ``image_size`` (shown 1:1).
        """
        if display_size is None:
            display_size = image_size
        if not (image_size[0] > 0 and display_size[0] > 0):
            raise ValueError(
                f"image_px_per_deg: widths must be > 0; got image_size={image_size}, display_size={display_size}"
            )
        return self.px_per_deg * float(image_size[0]) / float(display_size[0])

    def to_pymovements(self):  # -> pymovements.Screen
        """The same geometry as a :class:`pymovements.Screen` (origin upper left)."""
        import pymovements as pm

        return pm.Screen(
            width_px=self.screen_width_px,
            height_px=self.screen_height_px,
            width_cm=self.screen_width_cm,
            height_cm=self.screen_height_cm,
            distance_cm=self.distance_cm,
            origin="upper left",
        )
