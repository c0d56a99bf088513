"""GAN tuning with gaze (patent FIG. 4): losses (eq 1-2, 9a-10b), DiffAugment, CutMix, EMA,
map sources, the phased training loop and checkpoints.

Names are imported lazily so that ``gazetune --help`` does not load PyTorch.

Public API: :class:`TrainConfig`, :class:`TuneConfig`, :func:`pretrain`, :func:`tune`,
:class:`GazeGANLoss`, :class:`MapSet`, :class:`MapProvider`, :func:`synthetic_image_name`,
:func:`parse_synthetic_name`, :class:`EMA`, :func:`diff_augment`, :func:`cutmix`,
:func:`write_checkpoint`, :func:`read_checkpoint`, and the loss functions in
:mod:`gazetune.tune.losses`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "train",
    "TuneConfig": "train",
    "pretrain": "train",
    "tune": "train",
    "GazeGANLoss": "train",
    "MapSet": "maps",
    "MapProvider": "maps",
    "synthetic_image_name": "maps",
    "parse_synthetic_name": "maps",
    "EMA": "ema",
    "diff_augment": "augment",
    "cutmix": "augment",
    "write_checkpoint": "checkpoint",
    "read_checkpoint": "checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"gazetune.tune.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'gazetune.tune' has no attribute {name!r}")
