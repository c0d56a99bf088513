"""Image datasets (folder, ``.npz``, built-in faces), conversions and writers.

The record is :class:`ImageSet`: float32 ``(N, C, H, W)`` in [-1, 1] plus one name per image.
"""

from gazetune.images.dataset import (
    BUILTIN_SOURCES,
    IMAGE_EXTENSIONS,
    ImageLoadError,
    ImageSet,
    builtin_faces,
    center_crop_square,
    convert_channels,
    decode_png,
    load_image_set,
    resize_images,
    rgb_to_grey,
    split_indices,
)
from gazetune.images.io import image_grid, save_image_folder, save_image_grid, to_uint8

__all__ = [
    "BUILTIN_SOURCES",
    "IMAGE_EXTENSIONS",
    "ImageLoadError",
    "ImageSet",
    "builtin_faces",
    "center_crop_square",
    "convert_channels",
    "decode_png",
    "image_grid",
    "load_image_set",
    "resize_images",
    "rgb_to_grey",
    "save_image_folder",
    "save_image_grid",
    "split_indices",
    "to_uint8",
]
