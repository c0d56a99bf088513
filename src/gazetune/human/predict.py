"""Predictions of a trained human-response model (FIG. 5): P(a person calls it real) and the
predicted gaze map, for arrays (:func:`predict`) or a whole image set written to disk
(:func:`write_predictions`: ``image,p_real`` CSV and the maps as ``.npz``).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from gazetune.atomic import atomic_write
from gazetune.human.model import HumanResponseModel, SeparateHumanModel


def as_tensor(a: Any, dtype=torch.float32) -> torch.Tensor:
    """``a`` (array or tensor) as a float32 tensor."""
    return torch.as_tensor(np.asarray(a) if not torch.is_tensor(a) else a, dtype=dtype)


@torch.no_grad()
def predict(model: HumanResponseModel | SeparateHumanModel, images: np.ndarray | torch.Tensor, batch_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """``(P(real) (N,), gaze maps sigmoid(logits) (N, H, W))`` as float32 numpy arrays.

    ``images`` (N, C, H, W) in [-1, 1]; other sizes are resized to the model's (bilinear)."""
    x_all = as_tensor(images)
    dev = next(model.parameters()).device
    ps, ms = [], []
    model.eval()
    for i in range(0, len(x_all), batch_size):
        label, gaze = model(model.prepare(x_all[i : i + batch_size].to(dev)))
        ps.append(torch.sigmoid(label).cpu())
        ms.append(torch.sigmoid(gaze)[:, 0].cpu())
    return torch.cat(ps).numpy(), torch.cat(ms).numpy()


def write_predictions(names: Sequence[str], p_real: np.ndarray, maps: np.ndarray | None,
                      out_csv: str | os.PathLike) -> Path:
    """Write ``image,p_real`` rows to ``out_csv`` and, with ``maps`` (N, H, W), the maps to
    ``<out_csv without suffix>.npz`` (keys ``names``, ``maps``); both atomically.  Returns the CSV
    path."""
    out = Path(out_csv)
    if len(names) != len(p_real) or (maps is not None and len(maps) != len(names)):
        raise ValueError(f"{len(names)} names, {len(p_real)} probabilities and "
                         f"{'no' if maps is None else len(maps)} maps: need one of each per image")
    with atomic_write(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "p_real"])
        for name, p in zip(names, p_real):
            w.writerow([name, f"{float(p):.6f}"])
    if maps is not None:
        with atomic_write(out.with_suffix(".npz")) as fh:
            np.savez_compressed(fh, names=np.asarray(list(names)), maps=np.asarray(maps, np.float32))
    return out
