"""Gaze guidance (Gatys, Kümmerer, Wallis, Bethge, seed 001): change an image so people look where you want.

* :mod:`~gazetune.guide.transform`: the admissible change (a smooth local colour field) and the
  feed-forward :class:`GuideNet`;
* :mod:`~gazetune.guide.losses`: targets from a region or a map, relative feature and Gram losses,
  patch LSGAN losses;
* :mod:`~gazetune.guide.core`: the total loss, per-image optimisation, measurement with
  independent saliency models, PSNR;
* :mod:`~gazetune.guide.train`: training the network; :mod:`~gazetune.guide.cli` the commands.
"""

from gazetune.guide.core import GuideConfig, check_independent, guide_image, guide_with_net, measure, psnr
from gazetune.guide.losses import lsgan_discriminator_loss, lsgan_generator_loss, parse_region, region_mask, region_target
from gazetune.guide.transform import GuideNet, apply_field, bounded

__all__ = [
    "GuideConfig",
    "GuideNet",
    "apply_field",
    "bounded",
    "check_independent",
    "guide_image",
    "guide_with_net",
    "lsgan_discriminator_loss",
    "lsgan_generator_loss",
    "measure",
    "parse_region",
    "psnr",
    "region_mask",
    "region_target",
]
