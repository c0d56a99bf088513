"""Run several image-set metrics in one go (a small registry, as in stylegan2-ada's metrics).

:func:`evaluate_images` computes the requested metrics between a real and a synthetic set and, when
maps are given, their salient-region variants (suffix ``_salient``).  Inception features are
computed once and shared by FID and KID.  Results are a flat ``{name: number}`` dict, ready for
JSON; :func:`append_jsonl` appends one record per run to a log.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gazetune.evaluate import distances as D

METRICS = ("swd", "c2st", "fid", "kid")
DEFAULT_METRICS = ("swd", "c2st")

Progress = Callable[[str], None]


def parse_metrics(spec: str | Sequence[str]) -> list[str]:
    """``"swd,fid"`` or ``["swd", "fid"]`` -> validated list; raises ``ValueError`` naming unknown ones."""
    names = [m.strip().lower() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    if not names:
        raise ValueError(f"no metric given; choose from {', '.join(METRICS)}")
    return list(dict.fromkeys(names))


def evaluate_images(
    real: Any,
    fake: Any,
    metrics: str | Sequence[str] = DEFAULT_METRICS,
    real_maps: Any = None,
    fake_maps: Any = None,
    crop: int | float = 0.5,
    seed: int = 0,
    device: str = "cpu",
    progress: Progress | None = None,
) -> dict[str, float]:
    """Metrics between a real and a synthetic image set.

    Parameters
    ----------
    real, fake
        ``(N, C, H, W)`` arrays/tensors in [-1, 1] with equal ``C, H, W``.
    metrics
        Subset of :data:`METRICS` (comma-separated string or sequence).
    real_maps, fake_maps
        Optional maps (``(H, W)`` shared or ``(N, H, W)``); adds the ``*_salient`` variants.
    crop
        Crop side (pixels, or fraction of the image side) for salient C2ST, FID and KID.
    seed
        Seed of every random choice.
    device
        Torch device for the C2ST classifier and the Inception network.
    progress
        Optional callback, called with the name of each metric before it runs.

    Returns
    -------
    dict
        ``swd`` (x 1e3, mean over levels) and ``swd_level<k>``; ``c2st_accuracy``,
        ``c2st_p_value``; ``fid``; ``kid`` and ``kid_std``; each also with ``_salient``; plus
        ``n_real``, ``n_fake`` and ``seconds``.

    Raises
    ------
    gazetune.evaluate.inception.InceptionUnavailable
        When FID or KID is requested and the ``fid`` extra is not installed.
    """
    names = parse_metrics(metrics)
    x, y = D.as_images(real, "real"), D.as_images(fake, "fake")
    variants: list[tuple[str, Any, Any]] = [("", None, None)]
    if real_maps is not None or fake_maps is not None:
        variants.append(("_salient", real_maps, D._shared_default(real_maps, fake_maps)))
    out: dict[str, float] = {"n_real": int(x.shape[0]), "n_fake": int(y.shape[0])}
    start = time.perf_counter()
    for suffix, rm, fm in variants:
        if "swd" in names:
            if progress:
                progress("swd" + suffix)
            r = D.swd(x, y, rm, fm, seed=seed)
            out["swd" + suffix] = r.mean
            for res, v in zip(r.resolutions, r.levels):
                out[f"swd{suffix}_{res}px"] = v
        if "c2st" in names:
            if progress:
                progress("c2st" + suffix)
            c = D.c2st(x, y, rm, fm, crop=crop, seed=seed, device=device)
            out["c2st_accuracy" + suffix] = c.accuracy
            out["c2st_p_value" + suffix] = c.p_value
        if "fid" in names or "kid" in names:
            if progress:
                progress("inception features" + suffix)
            fa, fb = D.inception_pair(x, y, rm, fm, crop, 1, seed, 32, device)
            if "fid" in names:
                out["fid" + suffix] = D.frechet_distance(fa, fb)
            if "kid" in names:
                out["kid" + suffix], out["kid_std" + suffix] = D.kernel_distance(fa, fb, seed=seed)
    out["seconds"] = time.perf_counter() - start
    return out


def sample_generator(
    generator: Any,
    n: int,
    seed: int = 0,
    batch_size: int = 64,
    device: str = "cpu",
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """``n`` images from a generator, latent ``i`` fixed by seed ``seed + i``.

    ``generator`` is any module with ``z_dim`` and ``forward(z) -> (N, C, H, W)`` in [-1, 1];
    latents come from :func:`gazetune.nets.latent.latents_from_seeds`, so each image can be made
    again from its seed.  Returns float32 ``(n, C, H, W)``; ``progress`` gets the count done.
    """
    import torch

    from gazetune.nets.latent import latents_from_seeds

    z_dim = getattr(generator, "z_dim", None)
    if not isinstance(z_dim, int) or z_dim < 1:
        raise ValueError("generator must have an integer attribute z_dim (its latent size)")
    if n < 1:
        raise ValueError(f"n must be >= 1 image; got {n}")
    out = []
    was_training = getattr(generator, "training", False)
    if hasattr(generator, "eval"):
        generator.eval()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            seeds = list(range(seed + start, seed + min(start + batch_size, n)))
            x = generator(latents_from_seeds(seeds, z_dim).to(device))
            out.append(x.detach().float().clamp(-1, 1).cpu().numpy())
            if progress is not None:
                progress(start + len(seeds))
    if was_training and hasattr(generator, "train"):
        generator.train()
    return np.concatenate(out)


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON record (one line) to ``path``, creating folders as needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps(record, default=_jsonable) + "\n")


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if hasattr(v, "as_dict"):
        return v.as_dict()
    return str(v)
