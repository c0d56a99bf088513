"""Names of images in fixation tables, trial records and stores.

A real image is known by its own name (its file name in the image set).  A synthetic image is
named ``synthetic/<generator version>/<latent seed>``, so a map, an answer or a fixation always
belongs to one exact image that the generator can render again.
"""

from __future__ import annotations

SYNTHETIC_PREFIX = "synthetic/"


def synthetic_image_name(version: str, seed: int) -> str:
    """Name of synthetic image ``seed`` of generator ``version`` in fixation tables and stores.

    >>> synthetic_image_name("run1@2000", 7)
    'synthetic/run1@2000/7'
    """
    if int(seed) < 0:
        raise ValueError(f"latent seed must be >= 0; got {seed}")
    return f"{SYNTHETIC_PREFIX}{version}/{int(seed)}"


def parse_synthetic_name(name: str) -> tuple[str, int] | None:
    """``(version, seed)`` of a name made by :func:`synthetic_image_name`; ``None`` for real images.

    >>> parse_synthetic_name("synthetic/run1@2000/7"), parse_synthetic_name("face_003.png")
    (('run1@2000', 7), None)
    """
    if not name.startswith(SYNTHETIC_PREFIX):
        return None
    version, _, seed = name[len(SYNTHETIC_PREFIX):].rpartition("/")
    if not version or not seed.isdigit():
        raise ValueError(f"synthetic image name must be 'synthetic/<version>/<seed>'; got {name!r}")
    return version, int(seed)
