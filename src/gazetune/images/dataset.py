"""Image sets: the ``ImageSet`` record and its loaders (folder, ``.npz``, built-in faces).

Every stage that takes images (study, saliency, tuning, evaluation, simulated observers) takes an
:class:`ImageSet`: ``images`` float32 ``(N, C, H, W)`` in [-1, 1] with ``C`` in {1, 3}, and one
name per image.  Names are relative paths with their extension (``"sub/0001.jpg"``), the same
strings a fixation table puts in its ``image`` column (docs/architecture.md "Fixation table").

Sources understood by :func:`load_image_set`:

- a **folder**: every ``.png``, ``.jpg``, ``.jpeg`` below it (recursive, case-insensitive
  extension), in sorted order of their relative POSIX paths, so the order does not depend on the
  file system;
- an **``.npz`` file** with keys

  ``images``
      ``(N, H, W)`` or ``(N, H, W, C)`` (channels last, ``C`` in {1, 3, 4}); also accepted
      channels first ``(N, C, H, W)`` when ``C`` in {1, 3} and the last axis is not a channel
      count.  ``uint8`` is read as [0, 255], ``uint16`` as [0, 65535], floats as [0, 1] or
      [-1, 1] (see ``value_range``).
  ``names`` (optional)
      ``(N,)`` strings; default ``"00000.png"``, ``"00001.png"``, ...
  ``value_range`` (optional)
      two numbers ``[lo, hi]`` that map to [-1, 1].  Without it float data whose minimum is
      >= 0 is read as [0, 1], otherwise as [-1, 1].

- ``"builtin:faces"`` or ``None``: the 100 face crops of scikit-image's ``data.lfw_subset()``
  (grayscale 25 x 25; the first 100 of its 200 images are faces, the rest background patches).
  It ships inside the scikit-image wheel, so it works offline.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence, Union

import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
BUILTIN_SOURCES = ("builtin:faces",)
N_BUILTIN_FACES = 100

OnError = Literal["raise", "skip"]
Resample = Literal["lanczos", "bilinear"]
_RESAMPLE = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}


class ImageLoadError(ValueError):
    """One or more image files could not be read; ``bad`` lists ``(name, reason)`` pairs."""

    def __init__(self, message: str, bad: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.bad = list(bad)


@dataclass
class ImageSet:
    """A set of images of one size, ready for the networks.

    Attributes
    ----------
    images : numpy.ndarray
        float32 ``(N, C, H, W)``, values in [-1, 1], ``C`` is 1 (gray) or 3 (RGB).
    names : list of str
        ``N`` unique names (relative paths with extension), in the order of ``images``.
    skipped : list of str
        Files that were left out because they could not be read (``on_error="skip"``), each as
        ``"name: reason"``.  Empty otherwise.
    """

    images: np.ndarray
    names: list[str]
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        arr = np.asarray(self.images)
        if arr.ndim != 4 or arr.shape[1] not in (1, 3):
            raise ValueError(f"ImageSet.images must be (N, C, H, W) with C in (1, 3); got shape {arr.shape}")
        arr = arr.astype(np.float32, copy=False)
        if arr.size and not np.all(np.isfinite(arr)):
            raise ValueError("ImageSet.images has non-finite values")
        if arr.size and (arr.min() < -1.0 - 1e-4 or arr.max() > 1.0 + 1e-4):
            raise ValueError(
                f"ImageSet.images must lie in [-1, 1]; got range [{float(arr.min()):.4g}, {float(arr.max()):.4g}]"
            )
        self.images = np.clip(arr, -1.0, 1.0)
        self.names = [str(n) for n in self.names]
        if len(self.names) != arr.shape[0]:
            raise ValueError(f"ImageSet has {arr.shape[0]} images but {len(self.names)} names")
        seen: dict[str, int] = {}
        for i, n in enumerate(self.names):
            if n in seen:
                raise ValueError(f"ImageSet.names must be unique; {n!r} at positions {seen[n]} and {i}")
            seen[n] = i

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def channels(self) -> int:
        """Number of channels ``C`` (1 or 3)."""
        return int(self.images.shape[1])

    @property
    def size(self) -> tuple[int, int]:
        """``(height, width)`` in pixels."""
        return int(self.images.shape[2]), int(self.images.shape[3])

    def subset(self, indices: Sequence[int] | np.ndarray) -> "ImageSet":
        """The images at ``indices`` (in that order) as a new set."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"ImageSet.subset: index out of range for {len(self)} images: {idx.tolist()}")
        return ImageSet(self.images[idx].copy(), [self.names[int(i)] for i in idx])

    def index(self, name: str) -> int:
        """Position of the image called ``name``; ``KeyError`` naming it when absent."""
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"no image named {name!r} in this ImageSet ({len(self)} images)") from None

    def to_tensor(self):  # -> torch.Tensor, imported lazily so numpy users need not load torch
        """The images as a float32 ``torch.Tensor`` ``(N, C, H, W)`` (shares memory)."""
        import torch

        return torch.from_numpy(self.images)


# --------------------------------------------------------------------------------------------
# conversions on float arrays in [-1, 1]

#: ITU-R BT.601 luma weights of R, G and B: the grey level Pillow's ``convert("L")`` computes.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def rgb_to_grey(rgb, axis: int = -3):
    """The one RGB -> grey conversion: ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601 luma, what
    Pillow's ``convert("L")`` computes, there rounded to 8 bits).

    ``rgb`` is a NumPy array or a torch tensor with 3 channels on ``axis`` (``-3``: ``(N, 3, H, W)``
    or ``(3, H, W)``; ``-1``: ``(H, W, 3)``); the result keeps that axis with size 1.  Tensors stay
    tensors (differentiable, same dtype and device); arrays become float32.  Being linear, it
    works in any value range ([-1, 1], [0, 1] or 0..255).

    >>> rgb_to_grey(np.array([[255.0, 0.0, 0.0], [0.0, 0.0, 255.0]]), axis=-1).round(3).tolist()
    [[76.245], [29.07]]
    """
    if rgb.shape[axis] != 3:
        raise ValueError(f"rgb_to_grey needs 3 channels on axis {axis}; got shape {tuple(rgb.shape)}")
    index = [slice(None)] * rgb.ndim

    def channel(k: int):
        index[axis] = slice(k, k + 1)
        return rgb[tuple(index)]

    grey = sum(w * channel(k) for k, w in enumerate(LUMA_WEIGHTS))
    return grey if hasattr(grey, "detach") else np.asarray(grey, dtype=np.float32)


def convert_channels(images: np.ndarray, channels: int) -> np.ndarray:
    """Convert ``(N, C, H, W)`` images between gray (1) and RGB (3).

    Gray -> RGB repeats the channel; RGB -> gray is :func:`rgb_to_grey`.
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (gray) or 3 (RGB); got {channels}")
    c = images.shape[1]
    if c == channels:
        return images
    if c == 1:
        return np.repeat(images, 3, axis=1)
    if c == 3:
        return rgb_to_grey(images, axis=1)
    raise ValueError(f"cannot convert images with {c} channels; expected 1 or 3")


def resize_images(images: np.ndarray, size: int | tuple[int, int], resample: Resample = "lanczos") -> np.ndarray:
    """Resize ``(N, C, H, W)`` float images to ``size`` (an int for a square, or ``(height, width)``).

    Each channel is resampled in 32-bit float by Pillow (no 8-bit rounding); Lanczos overshoot is
    clipped back to [-1, 1].  Non-square inputs are not cropped here: see :func:`center_crop_square`.
    """
    h, w = (int(size), int(size)) if np.isscalar(size) else (int(size[0]), int(size[1]))
    if h <= 0 or w <= 0:
        raise ValueError(f"size must be positive; got {size}")
    if resample not in _RESAMPLE:
        raise ValueError(f"resample must be one of {sorted(_RESAMPLE)}; got {resample!r}")
    n, c = images.shape[:2]
    if images.shape[2:] == (h, w):
        return images.astype(np.float32, copy=False)
    out = np.empty((n, c, h, w), dtype=np.float32)
    for i in range(n):
        for k in range(c):
            im = Image.fromarray(np.ascontiguousarray(images[i, k], dtype=np.float32))
            out[i, k] = np.asarray(im.resize((w, h), _RESAMPLE[resample]), dtype=np.float32)
    return np.clip(out, -1.0, 1.0)


def center_crop_square(image: np.ndarray) -> np.ndarray:
    """Central square crop of a ``(C, H, W)`` array (side ``min(H, W)``)."""
    h, w = image.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return image[..., top : top + s, left : left + s]


# --------------------------------------------------------------------------------------------
# readers


def _pil_to_array(im: Image.Image) -> np.ndarray:
    """Decoded Pillow image -> float32 ``(C, H, W)`` in [-1, 1], C in (1, 3)."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 or im.mode.startswith("I;16") else 255.0
        return (arr / top * 2.0 - 1.0).astype(np.float32)[None]
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        return np.clip(arr * 2.0 - 1.0, -1.0, 1.0)[None]
    if im.mode in ("1", "L", "LA"):
        arr = np.asarray(im.convert("L"), dtype=np.float32)[None]
    else:  # RGB, RGBA (alpha dropped), P, CMYK, YCbCr, ...
        arr = np.asarray(im.convert("RGB"), dtype=np.float32).transpose(2, 0, 1)
    return arr / 127.5 - 1.0


def decode_png(data: bytes) -> np.ndarray:
    """Encoded image bytes (PNG, or any format Pillow reads) -> float32 ``(C, H, W)`` in [-1, 1].

    Grey images give C = 1, colour images C = 3 (alpha dropped), as :func:`load_image_set` reads
    files; the trainer API serves every shown image this way.
    """
    import io

    with Image.open(io.BytesIO(data)) as im:
        im.load()
        return _pil_to_array(im)


def _read_image_file(path: Path) -> np.ndarray:
    """Read one file fully (so truncation is detected now) as ``(C, H, W)`` in [-1, 1]."""
    with Image.open(path) as im:  # checks the header (UnidentifiedImageError for non-images)
        im.verify()  # checks the structure and PNG checksums without decoding
    with Image.open(path) as im:
        im.load()  # decodes: raises OSError on truncated data
        return _pil_to_array(im)


def _finish(arrays: list[np.ndarray], names: list[str], where: str, size, channels, resample) -> np.ndarray:
    """Crop/resize/convert a list of ``(C, H, W)`` arrays and stack them."""
    if channels is None:
        channels = 3 if any(a.shape[0] == 3 for a in arrays) else 1
    out = []
    for a in arrays:
        a = convert_channels(a[None], channels)[0]
        if size is not None:
            a = resize_images(center_crop_square(a)[None], size, resample)[0]
        out.append(a)
    shapes = {a.shape[1:] for a in out}
    if len(shapes) > 1:
        by_shape: dict[tuple, str] = {}
        for a, n in zip(out, names):
            by_shape.setdefault(a.shape[1:], n)
        listing = ", ".join(f"{n} is {s[1]}x{s[0]}" for s, n in sorted(by_shape.items()))
        raise ValueError(f"{where}: images differ in size ({listing}); pass size=... to resize them all")
    return np.stack(out).astype(np.float32)


def _load_folder(root: Path, size, channels, on_error: OnError, resample) -> ImageSet:
    files = sorted(
        (p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    if not files:
        raise FileNotFoundError(f"no {'/'.join(e[1:] for e in IMAGE_EXTENSIONS)} images found under {root}")
    arrays, names, bad = [], [], []
    for p in files:
        name = p.relative_to(root).as_posix()
        try:
            arrays.append(_read_image_file(p))
            names.append(name)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
            bad.append((name, f"{type(e).__name__}: {e}"))
    skipped = [f"{n}: {r}" for n, r in bad]
    if bad and on_error == "raise":
        listing = "\n  ".join(skipped)
        raise ImageLoadError(
            f"{len(bad)} of {len(files)} image file(s) under {root} could not be read "
            f"(pass on_error='skip' to leave them out):\n  {listing}",
            bad,
        )
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable image file(s) under {root}: {', '.join(n for n, _ in bad)}")
    if not arrays:
        raise ImageLoadError(f"none of the {len(files)} image file(s) under {root} could be read", bad)
    images = _finish(arrays, names, str(root), size, channels, resample)
    return ImageSet(images, names, skipped=skipped)


def _npz_to_float(arr: np.ndarray, value_range, path: Path) -> np.ndarray:
    if value_range is not None:
        vr = np.asarray(value_range, dtype=np.float64).reshape(-1)
        if vr.shape != (2,) or not vr[1] > vr[0]:
            raise ValueError(f"{path}: key 'value_range' must be two numbers lo < hi; got {vr.tolist()}")
        lo, hi = float(vr[0]), float(vr[1])
    elif arr.dtype == np.uint8:
        lo, hi = 0.0, 255.0
    elif arr.dtype == np.uint16:
        lo, hi = 0.0, 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        if arr.size and not np.all(np.isfinite(arr)):
            raise ValueError(f"{path}: key 'images' has non-finite values")
        lo, hi = (0.0, 1.0) if (arr.size == 0 or arr.min() >= 0) else (-1.0, 1.0)
    else:
        raise ValueError(
            f"{path}: key 'images' has dtype {arr.dtype}; expected uint8, uint16 or float "
            "(or give 'value_range')"
        )
    out = (arr.astype(np.float64) - lo) / (hi - lo) * 2.0 - 1.0
    if out.size and (out.min() < -1.0 - 1e-3 or out.max() > 1.0 + 1e-3):
        raise ValueError(
            f"{path}: key 'images' has values in [{float(arr.min()):.4g}, {float(arr.max()):.4g}], "
            f"outside the range [{lo:g}, {hi:g}] it was read with; give 'value_range'"
        )
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _load_npz(path: Path, size, channels, resample) -> ImageSet:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as e:  # zipfile.BadZipFile, OSError, ValueError ...
        raise ImageLoadError(f"{path}: not a readable .npz file ({type(e).__name__}: {e})", [(str(path), str(e))]) from e
    with data:
        if "images" not in data.files:
            raise KeyError(f"{path}: no key 'images' (keys: {sorted(data.files)})")
        arr = data["images"]
        names = [str(n) for n in data["names"].tolist()] if "names" in data.files else None
        value_range = data["value_range"] if "value_range" in data.files else None
    if arr.ndim == 3:
        arr = arr[:, None]
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3, 4):
        arr = arr.transpose(0, 3, 1, 2)
    elif arr.ndim == 4 and arr.shape[1] in (1, 3):
        pass  # channels first
    else:
        raise ValueError(
            f"{path}: key 'images' has shape {arr.shape}; expected (N, H, W), (N, H, W, C) or (N, C, H, W) with C in 1, 3, 4"
        )
    if arr.shape[1] == 4:
        arr = arr[:, :3]  # alpha dropped
    images = _npz_to_float(arr, value_range, path)
    n = images.shape[0]
    if names is None:
        names = [f"{i:05d}.png" for i in range(n)]
    elif len(names) != n:
        raise ValueError(f"{path}: key 'names' has {len(names)} entries but 'images' has {n}")
    if channels is not None:
        images = convert_channels(images, channels)
    if size is not None:
        if images.shape[2] != images.shape[3]:
            images = np.stack([center_crop_square(a) for a in images])
        images = resize_images(images, size, resample)
    return ImageSet(images, names)


def builtin_faces() -> ImageSet:
    """The 100 gray 25 x 25 face crops of scikit-image's ``data.lfw_subset()`` (LFW).

    ``lfw_subset()`` returns 200 images: the first 100 are faces, the last 100 non-face
    background patches, which are left out.  Names are ``"lfw_face_000.png"`` ... ``"lfw_face_099.png"``.
    """
    from skimage import data as skdata

    arr = np.asarray(skdata.lfw_subset(), dtype=np.float64)[:N_BUILTIN_FACES]  # (100, 25, 25) in [0, 1]
    images = (arr * 2.0 - 1.0).astype(np.float32)[:, None]
    return ImageSet(images, [f"lfw_face_{i:03d}.png" for i in range(arr.shape[0])])


def load_image_set(
    source: Union[str, os.PathLike, None] = None,
    size: Optional[int] = None,
    channels: Optional[int] = None,
    on_error: OnError = "raise",
    resample: Resample = "lanczos",
) -> ImageSet:
    """Load images from a folder, an ``.npz`` file, or the built-in faces.

    Parameters
    ----------
    source
        A folder of png/jpg files (recursive), a ``.npz`` file (keys in the module docstring),
        ``"builtin:faces"``, or ``None`` for the built-in faces.
    size
        Side in pixels of the square output; non-square images are centre-cropped to a square
        first.  ``None`` keeps the size (all images must then share it).
    channels
        1 (gray) or 3 (RGB).  ``None`` keeps the data's channels; a folder that mixes gray and
        colour files becomes RGB.
    on_error
        ``"raise"`` (default): unreadable files raise one :class:`ImageLoadError` that lists every
        bad file by name with its reason.  ``"skip"``: they are left out, a warning gives their
        count and names, and ``ImageSet.skipped`` lists them.
    resample
        ``"lanczos"`` (default) or ``"bilinear"``, the Pillow filter used for resizing.

    Returns
    -------
    ImageSet
        float32 ``(N, C, H, W)`` in [-1, 1] with names.

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist, or a folder holds no image files.
    ImageLoadError
        Files that cannot be decoded (truncated, not an image), with ``on_error="raise"``.
    ValueError
        Bad arguments, or images of different sizes without ``size``.

    Examples
    --------
    >>> faces = load_image_set("builtin:faces", size=32, channels=3)
    >>> faces.images.shape, faces.names[0]
    ((100, 3, 32, 32), 'lfw_face_000.png')
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
    if channels is not None and channels not in (1, 3):
        raise ValueError(f"channels must be 1, 3 or None; got {channels}")
    if size is not None and (int(size) != size or size <= 0):
        raise ValueError(f"size must be a positive integer (pixels) or None; got {size}")
    if source is None or (isinstance(source, str) and source.startswith("builtin:")):
        name = "builtin:faces" if source is None else source
        if name not in BUILTIN_SOURCES:
            raise ValueError(f"unknown built-in image set {name!r}; known: {', '.join(BUILTIN_SOURCES)}")
        faces = builtin_faces()
        images = faces.images
        if channels is not None:
            images = convert_channels(images, channels)
        if size is not None:
            images = resize_images(images, size, resample)
        return ImageSet(images, faces.names)
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"image source not found: {path}")
    if path.is_dir():
        return _load_folder(path, size, channels, on_error, resample)
    if path.suffix.lower() == ".npz":
        return _load_npz(path, size, channels, resample)
    raise ValueError(f"image source {path} is neither a folder nor a .npz file")


def split_indices(n: int, fraction: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic random split of ``range(n)`` into two parts.

    Parameters
    ----------
    n
        Number of items.
    fraction
        Share of items in the second part (e.g. held-out), in [0, 1]; its size is
        ``round(fraction * n)``.
    seed
        Seed of the permutation: same ``(n, fraction, seed)``, same split, on every machine.

    Returns
    -------
    (first, second)
        Two sorted int64 arrays that together hold every index once.

    Examples
    --------
    >>> a, b = split_indices(10, 0.3, seed=1)
    >>> len(a), len(b), sorted(a.tolist() + b.tolist()) == list(range(10))
    (7, 3, True)
    """
    if int(n) != n or n < 0:
        raise ValueError(f"split_indices: n must be a non-negative integer; got {n}")
    if not 0.0 <= float(fraction) <= 1.0:
        raise ValueError(f"split_indices: fraction must be in [0, 1]; got {fraction}")
    perm = np.random.default_rng(int(seed)).permutation(int(n))
    k = int(round(float(fraction) * n))
    return np.sort(perm[k:]).astype(np.int64), np.sort(perm[:k]).astype(np.int64)
