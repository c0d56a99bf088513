"""Writing images: uint8 conversion, PNG grids and folders (all writes atomic)."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from gazetune.atomic import atomic_write
from gazetune.images.dataset import ImageSet


def _as_numpy(images: Any) -> np.ndarray:
    if hasattr(images, "detach"):  # torch.Tensor without importing torch
        images = images.detach().cpu().float().numpy()
    return np.asarray(images, dtype=np.float32)


def to_uint8(images: Any) -> np.ndarray:
    """Map float images in [-1, 1] to uint8 [0, 255], channels last.

    Parameters
    ----------
    images
        ``(N, C, H, W)`` or one ``(C, H, W)`` image (numpy array or torch tensor), values in
        [-1, 1] (values outside are clipped; NaN becomes 0).

    Returns
    -------
    numpy.ndarray
        uint8 ``(N, H, W, C)`` or ``(H, W, C)``; ``-1 -> 0``, ``1 -> 255``, rounded to nearest.
    """
    arr = _as_numpy(images)
    if arr.ndim not in (3, 4):
        raise ValueError(f"to_uint8: expected (N, C, H, W) or (C, H, W) images; got shape {arr.shape}")
    arr = np.nan_to_num(arr, nan=-1.0)
    out = np.rint((np.clip(arr, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)
    return np.moveaxis(out, -3, -1)


def _pil_from_hwc(arr: np.ndarray) -> Image.Image:
    if arr.shape[-1] == 1:
        return Image.fromarray(arr[..., 0])  # mode L
    if arr.shape[-1] == 3:
        return Image.fromarray(arr)  # mode RGB
    raise ValueError(f"cannot write an image with {arr.shape[-1]} channels; expected 1 or 3")


def _save_png_atomic(im: Image.Image, path: Path) -> None:
    """Write ``im`` as PNG, atomically (:func:`gazetune.atomic.atomic_write`)."""
    with atomic_write(path, "wb") as fh:
        im.save(fh, format="PNG")


def image_grid(images: Any, nrow: int = 8, padding: int = 1, pad_value: float = 1.0) -> np.ndarray:
    """Tile ``(N, C, H, W)`` images in [-1, 1] into one uint8 ``(H', W', C)`` array.

    ``nrow`` images per row, rows filled left to right, top to bottom; ``padding`` pixels of
    ``pad_value`` (in [-1, 1], default white) between and around the tiles.
    """
    arr = _as_numpy(images)
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or arr.shape[0] == 0:
        raise ValueError(f"image_grid: expected a non-empty (N, C, H, W) batch; got shape {arr.shape}")
    if nrow < 1 or padding < 0:
        raise ValueError(f"image_grid: nrow must be >= 1 and padding >= 0; got nrow={nrow}, padding={padding}")
    tiles = to_uint8(arr)
    n, h, w, c = tiles.shape
    cols = min(int(nrow), n)
    rows = -(-n // cols)
    fill = to_uint8(np.full((c, 1, 1), pad_value, dtype=np.float32))[0, 0]
    grid = np.empty((rows * (h + padding) + padding, cols * (w + padding) + padding, c), dtype=np.uint8)
    grid[...] = fill
    for i in range(n):
        r, k = divmod(i, cols)
        top, left = padding + r * (h + padding), padding + k * (w + padding)
        grid[top : top + h, left : left + w] = tiles[i]
    return grid


def save_image_grid(images: Any, path: str | os.PathLike, nrow: int = 8, padding: int = 1, pad_value: float = 1.0) -> Path:
    """Save a grid of images (see :func:`image_grid`) as a PNG, atomically.  Returns the path."""
    path = Path(path)
    _save_png_atomic(_pil_from_hwc(image_grid(images, nrow, padding, pad_value)), path)
    return path


def _safe_relative(name: str) -> PurePosixPath:
    rel = PurePosixPath(name.replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts or not rel.parts or name.strip() == "":
        raise ValueError(f"image name {name!r} cannot be used as a file path below the output folder")
    return rel


def save_image_folder(image_set: ImageSet, directory: str | os.PathLike) -> list[Path]:
    """Write every image of ``image_set`` as a lossless PNG below ``directory``.

    The file of image ``name`` is ``directory / name`` with its suffix replaced by ``.png``
    (sub-folders in names are created), so :func:`load_image_set` on ``directory`` gives the same
    pixels (to 8-bit precision) in the same order; names that already end in ``.png`` come back
    unchanged.  Each file is written atomically.

    Returns
    -------
    list of pathlib.Path
        The written files, in the order of the set.
    """
    directory = Path(directory)
    rels = [_safe_relative(n).with_suffix(".png") for n in image_set.names]
    first: dict[str, str] = {}
    for rel, name in zip(rels, image_set.names):
        key = rel.as_posix().lower()
        if key in first:
            raise ValueError(f"image names {first[key]!r} and {name!r} would both be written to {rel}")
        first[key] = name
    tiles = to_uint8(image_set.images)
    paths = []
    for rel, tile in zip(rels, tiles):
        p = directory.joinpath(*rel.parts)
        _save_png_atomic(_pil_from_hwc(tile), p)
        paths.append(p)
    return paths
