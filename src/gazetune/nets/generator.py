"""Generators: the built-in DCGAN-style generator and a loader for user generators.

Contract (docs/architecture.md, patent ¶52: the method does not depend on the architecture): a generator is
any :class:`torch.nn.Module` with an integer attribute ``z_dim`` whose ``forward(z)`` maps latents
``z`` of shape ``(N, z_dim)`` to images ``(N, C, H, W)`` with values in ``[-1, 1]``.

:class:`DCGANGenerator` is deliberately small and readable.  Choices (and why):

* Nearest-neighbour upsampling followed by a 3x3 convolution instead of transposed convolutions
  (no checkerboard artefacts), one doubling per stage from a 4x4 (or smaller) start.
* **Any output size** (25, 28, 32, 64, ...): the stage sizes are ``size, ceil(size/2),
  ceil(size/4), ...`` down to at most 4 px, and every upsampling goes to the exact next size, so a
  25 px generator grows 4 -> 7 -> 13 -> 25 with no cropping.
* Pixel-wise feature normalisation (each pixel's feature vector scaled to unit RMS) instead of
  BatchNorm: the image made from a latent seed never depends on the rest of the batch or on
  train/eval mode, so "(generator version, seed)" identifies one image exactly, which the direct
  gaze maps rely on (FIG. 4).
* ``tanh`` output in ``[-1, 1]``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


def stage_sizes(size: int, start_max: int = 4) -> list[int]:
    """Spatial sizes of the generator stages, smallest first.

    Parameters
    ----------
    size
        Output side length in pixels (>= 1).
    start_max
        Largest allowed starting side length in pixels.

    Returns
    -------
    list of int
        ``[s_0, ..., size]`` with ``s_{k+1} = size / 2**(K-k-1)`` rounded up, ``s_0 <= start_max``.

    Examples
    --------
    >>> stage_sizes(25), stage_sizes(32), stage_sizes(64)
    ([4, 7, 13, 25], [4, 8, 16, 32], [4, 8, 16, 32, 64])
    """
    if int(size) < 1:
        raise ValueError(f"image size must be a positive number of pixels; got {size}")
    sizes = [int(size)]
    while sizes[-1] > start_max:
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes[::-1]


class PixelNorm(nn.Module):
    """Scale each pixel's feature vector to unit root-mean-square over channels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class DCGANGenerator(nn.Module):
    """Small DCGAN-style generator ``z (N, z_dim) -> image (N, channels, size, size)`` in [-1, 1].

    Parameters
    ----------
    z_dim
        Latent dimension (latents are standard normal, see :func:`gazetune.nets.latent_from_seed`).
    size
        Output side length in pixels; 32 and 64 are the usual choices, any size >= 4 works
        (e.g. the 25 px built-in faces).
    channels
        1 (grey) or 3 (RGB).
    width
        Number of feature channels at the largest resolution; each smaller stage doubles it up to
        ``8 * width``.  ``width=32`` gives about 0.66 M parameters at 32 px and 1.25 M at 64 px.
    """

    def __init__(self, z_dim: int = 64, size: int = 32, channels: int = 3, width: int = 32):
        super().__init__()
        if z_dim < 1 or width < 1:
            raise ValueError(f"z_dim and width must be >= 1; got z_dim={z_dim}, width={width}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (RGB); got {channels}")
        if size < 4:
            raise ValueError(f"size must be >= 4 pixels; got {size}")
        self.z_dim = int(z_dim)
        self.size = int(size)
        self.channels = int(channels)
        self.width = int(width)
        self.sizes = stage_sizes(self.size)
        n_up = len(self.sizes) - 1
        # channels per stage: width * 2**(stages from the end), capped at 8 * width
        chans = [width * min(8, 2 ** (n_up - k)) for k in range(n_up + 1)]
        s0 = self.sizes[0]
        self.project = nn.Linear(self.z_dim, chans[0] * s0 * s0)
        self.blocks = nn.ModuleList(
            nn.Conv2d(chans[k], chans[k + 1], 3, padding=1) for k in range(n_up)
        )
        self.refine = nn.Conv2d(chans[-1], chans[-1], 3, padding=1)
        self.to_image = nn.Conv2d(chans[-1], self.channels, 1)
        self.norm = PixelNorm()
        self._chans0 = chans[0]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape (N, {self.z_dim}); got {tuple(z.shape)}")
        s0 = self.sizes[0]
        x = self.project(self.norm(z[:, :, None, None])[:, :, 0, 0])
        x = self.norm(F.leaky_relu(x.view(-1, self._chans0, s0, s0), 0.2))
        for block, s in zip(self.blocks, self.sizes[1:]):
            x = F.interpolate(x, size=(s, s), mode="nearest")
            x = self.norm(F.leaky_relu(block(x), 0.2))
        x = self.norm(F.leaky_relu(self.refine(x), 0.2))
        return torch.tanh(self.to_image(x))

    def config(self) -> dict[str, int]:
        """Constructor arguments, enough to rebuild the network (stored in checkpoints)."""
        return {"z_dim": self.z_dim, "size": self.size, "channels": self.channels, "width": self.width}


def check_generator(g: nn.Module) -> int:
    """Validate the generator contract and return ``z_dim``.

    Raises ``TypeError`` when ``g`` is not a module or has no integer ``z_dim`` attribute.
    """
    if not isinstance(g, nn.Module):
        raise TypeError(f"a generator must be a torch.nn.Module; got {type(g).__name__}")
    z_dim = getattr(g, "z_dim", None)
    if isinstance(z_dim, torch.Tensor):
        z_dim = int(z_dim.item())
    if not isinstance(z_dim, int) or z_dim < 1:
        raise TypeError(
            "a generator needs an integer attribute z_dim (latent size) and forward(z (N, z_dim)) -> "
            f"(N, C, H, W); {type(g).__name__} has z_dim={z_dim!r}"
        )
    return z_dim


class ScriptedGenerator(nn.Module):
    """Wraps a TorchScript generator that lacks a ``z_dim`` attribute (e.g. a traced one)."""

    def __init__(self, module: nn.Module, z_dim: int):
        super().__init__()
        self.module = module
        self.z_dim = int(z_dim)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.module(z)


def load_generator(
    path: str | os.PathLike,
    which: str = "G_ema",
    device: str | torch.device = "cpu",
    z_dim: int | None = None,
) -> nn.Module:
    """Load a generator from a gazetune run, a TorchScript file, a network pickle or a factory.

    Parameters
    ----------
    path
        One of

        * a gazetune run directory (holding ``checkpoint.safetensors``) or its checkpoint: a
          built-in generator (DCGAN or style-based, as the checkpoint records) or an external
          generator tuned by ``gazetune gan tune --generator`` (rebuilt by
          :func:`gazetune.nets.external.generator_from_checkpoint`);
        * a TorchScript file (``torch.jit.save``).  Its latent size comes from, in order: the
          ``z_dim`` argument, the module's attribute ``z_dim`` (kept by ``torch.jit.script``), or an
          extra file ``"z_dim"`` saved with it
          (``torch.jit.save(m, path, _extra_files={"z_dim": "128"})``, the way for traced modules);
        * a ``generator.safetensors`` export of a tuned external run (needs the user's code);
        * a StyleGAN2-ADA / StyleGAN3 ``.pkl`` (needs NVlabs' ``dnnlib`` and ``torch_utils``) or a
          factory ``package.module:function`` (untuned).
    which
        For gazetune checkpoints: ``"G_ema"`` (default; the averaged weights used for sampling)
        or ``"G"`` (the raw training weights).
    device
        Where to put the module.
    z_dim
        Latent size of a TorchScript generator (overrides what the file says).

    Returns
    -------
    torch.nn.Module
        The generator in eval mode; ``generator.z_dim`` is its latent size.
    """
    from gazetune.nets import external

    spec = str(path)
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.safetensors"
    if not path.exists():
        if external.spec_kind(spec) == "factory":  # raises FileNotFoundError for anything else
            return external.load_external(spec, device)
    if path.suffix == ".pkl":
        return external.load_external(path, device)
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head[:2] == b"PK":  # TorchScript archives are zip files
        extra = {"z_dim": ""}
        g = torch.jit.load(str(path), map_location=device, _extra_files=extra)
        if z_dim is None and not isinstance(getattr(g, "z_dim", None), int) and extra["z_dim"]:
            z_dim = int(extra["z_dim"])
        if z_dim is not None:
            g = ScriptedGenerator(g, z_dim)
        check_generator(g)
        return g.eval()
    from gazetune.checkpoint import read_checkpoint

    ckpt = read_checkpoint(path)
    if "generator_config" not in ckpt.metadata:
        return external.load_external(path, device)  # a generator.safetensors export
    return external.generator_from_checkpoint(ckpt, path.parent, which, device).eval()
