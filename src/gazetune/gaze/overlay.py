"""Overlays that show gaze on the image: a coloured heatmap (¶80) and a numbered scanpath (¶81).

Drawing is done with Pillow; the colour maps are matplotlib's.  Every function returns an
``(H, W, 3)`` uint8 RGB array; :func:`save_png` writes one atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from gazetune.atomic import atomic_write
from gazetune.gaze.fixations import Fixations, as_fixations


def as_rgb_uint8(image: np.ndarray | Image.Image | str | os.PathLike) -> np.ndarray:
    """An image as ``(H, W, 3)`` uint8 RGB.

    Accepts a path, a PIL image, a grey ``(H, W)`` or ``(H, W, 1|3|4)`` array: uint8 as is,
    floats in [0, 1] (or [-1, 1] when negative values occur, the generator's range).
    """
    if isinstance(image, (str, os.PathLike)):
        with Image.open(image) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)  # (C, H, W) tensors
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise ValueError(f"image must be (H, W), (H, W, 1|3|4) or (1|3, H, W); got shape {arr.shape}")
    arr = arr[:, :, :3]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.dtype != np.uint8:
        f = arr.astype(np.float64)
        if f.min() < 0:
            f = (f + 1.0) / 2.0
        arr = np.clip(np.round(f * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def colorize(map_: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """A map scaled to [0, 1] by its maximum, coloured with a matplotlib colour map: ``(H, W, 3)``
    uint8."""
    import matplotlib

    m = np.asarray(map_, np.float64)
    peak = m.max() if m.size else 0.0
    m = m / peak if peak > 0 else np.zeros_like(m)
    rgba = matplotlib.colormaps[cmap](m)
    return (rgba[..., :3] * 255.0 + 0.5).astype(np.uint8)


def _resize_map(map_: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float map to ``size`` = (width, height)."""
    m = np.asarray(map_, np.float32)
    if (m.shape[1], m.shape[0]) == size:
        return m
    return np.asarray(Image.fromarray(m, mode="F").resize(size, Image.BILINEAR), np.float32)


def heatmap_overlay(
    image: np.ndarray | Image.Image | str | os.PathLike,
    heat: np.ndarray,
    alpha: float = 0.6,
    cmap: str = "jet",
    gamma: float = 0.5,
) -> np.ndarray:
    """Blend a heatmap over an image.

    Each pixel's opacity is ``alpha * (heat / max heat) ** gamma``, so unvisited areas show the
    image untouched and the colour is strongest where people looked longest.

    Parameters
    ----------
    image
        Path, PIL image or array (see :func:`as_rgb_uint8`).
    heat : (h, w) array
        Any non-negative map (resized bilinearly to the image when the sizes differ).
    alpha : float
        Largest opacity of the colour layer, in [0, 1].
    cmap : str
        matplotlib colour map name.
    gamma : float
        Exponent on the normalised map for the opacity (< 1 shows the tails more).

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.
    """
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1]; got {alpha}")
    rgb = as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    heat = np.asarray(heat, np.float64)
    if heat.ndim != 2:
        raise ValueError(f"heat must be an (h, w) map; got shape {heat.shape}")
    if not np.all(np.isfinite(heat)) or (heat.size and heat.min() < 0):
        raise ValueError("heat must be finite and non-negative")
    m = _resize_map(heat, (w, h)).astype(np.float64)
    peak = m.max()
    m = np.clip(m / peak, 0, 1) if peak > 0 else np.zeros_like(m)
    colour = colorize(m, cmap).astype(np.float64)
    a = (alpha * m**gamma)[..., None]
    out = rgb.astype(np.float64) * (1 - a) + colour * a
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def scanpath_overlay(
    image: np.ndarray | Image.Image | str | os.PathLike,
    fixations: Fixations | np.ndarray,
    image_size: Optional[tuple[int, int]] = None,
    color: tuple[int, int, int] = (255, 215, 0),
    line_color: tuple[int, int, int] = (255, 255, 255),
    max_radius: Optional[float] = None,
    numbers: bool = True,
    scale: int = 1,
) -> np.ndarray:
    """Draw a scanpath: lines for saccades, circles for fixations (area proportional to
    duration), numbered in order.

    Parameters
    ----------
    image
        Path, PIL image or array.
    fixations : Fixations or (n, 3) array of x, y, duration_ms
        In the image's pixel coordinates (or those of ``image_size``).
    image_size : (width, height), optional
        Coordinate frame of the fixations when it differs from the image's (e.g. a 64x64 map drawn
        on a 512x512 rendering); default the image's size.
    color, line_color : RGB
        Fill of the circles and colour of the saccade lines.
    max_radius : float, optional
        Radius in output pixels of the longest fixation; default 4 % of the shorter image side.
    numbers : bool
        Write the fixation order inside the circles.
    scale : int
        Upscale the image first (nearest neighbour) so that small images (64x64 faces) stay
        readable.

    Returns
    -------
    numpy.ndarray
        ``(H * scale, W * scale, 3)`` uint8 RGB.
    """
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be an integer >= 1; got {scale}")
    rgb = as_rgb_uint8(image)
    h, w = rgb.shape[:2]
    im = Image.fromarray(rgb)
    if scale > 1:
        im = im.resize((w * scale, h * scale), Image.NEAREST)
    fix = as_fixations(fixations)
    frame_w, frame_h = image_size if image_size is not None else (w, h)
    sx, sy = im.width / frame_w, im.height / frame_h
    xs, ys = fix.x * sx, fix.y * sy
    rmax = max_radius if max_radius is not None else 0.04 * min(im.width, im.height)
    dmax = fix.duration_ms.max() if len(fix) else 0.0
    radii = rmax * np.sqrt(fix.duration_ms / dmax) if dmax > 0 else np.full(len(fix), rmax)
    radii = np.maximum(radii, max(2.0, rmax * 0.25))
    draw = ImageDraw.Draw(im, "RGBA")
    lw = max(1, int(round(rmax / 8)))
    if len(fix) > 1:
        draw.line(list(zip(xs.tolist(), ys.tolist())), fill=(*line_color, 220), width=lw, joint="curve")
    font = _font(max(8, int(rmax)))
    for i, (x, y, r) in enumerate(zip(xs, ys, radii)):
        draw.ellipse([x - r, y - r, x + r, y + r], fill=(*color, 150), outline=(0, 0, 0, 255), width=max(1, lw // 2))
        if numbers:
            draw.text((x, y), str(i + 1), fill=(0, 0, 0, 255), font=font, anchor="mm")
    return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()


def save_png(rgb: np.ndarray, path: str | os.PathLike) -> Path:
    """Write an ``(H, W, 3)`` uint8 array as PNG atomically (temporary file + rename)."""
    path = Path(path)
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"save_png wants an (H, W, 3) uint8 array; got {arr.dtype} {arr.shape}")
    with atomic_write(path, "wb") as fh:
        Image.fromarray(arr).save(fh, format="PNG")
    return path
