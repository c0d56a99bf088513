"""Run several image-set metrics in one go: a metric registry, as in stylegan2-ada's metrics.

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
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from gazetune.evaluate import distances as D

@dataclass
class MetricOptions:
    """What every metric gets (stylegan2-ada's ``MetricOptions``): the two image sets, optional
    maps for the salient variant, and shared settings.  Inception features are computed once per
    variant and shared by the metrics that read them (:meth:`inception`)."""

    real: Any
    fake: Any
    real_maps: Any = None
    fake_maps: Any = None
    suffix: str = ""
    crop: int | float = 0.5
    seed: int = 0
    device: str = "cpu"
    _features: Any = field(default=None, repr=False)

    def inception(self):
        """``(real_features, fake_features)`` of TF-Inception (cached)."""
        if self._features is None:
            self._features = D.inception_pair(self.real, self.fake, self.real_maps, self.fake_maps,
                                              self.crop, 1, self.seed, 32, self.device)
        return self._features


MetricFn = Callable[[MetricOptions], dict]
REGISTRY: dict[str, MetricFn] = {}


def register_metric(fn: MetricFn) -> MetricFn:
    """Decorator: register ``fn(opts) -> {key: number}`` under its function name.

    The returned keys get the variant's suffix (``_salient`` when maps are given) appended by
    :func:`evaluate_images`.  A new metric is one decorated function here or in any imported
    module; nothing else changes."""
    if fn.__name__ in REGISTRY:
        raise ValueError(f"metric {fn.__name__!r} is registered already")
    REGISTRY[fn.__name__] = fn
    return fn


@register_metric
def swd(opts: MetricOptions) -> dict:
    """Sliced Wasserstein distance (x 1e3): ``swd`` (mean over levels) and ``swd_<side>px``."""
    r = D.swd(opts.real, opts.fake, opts.real_maps, opts.fake_maps, seed=opts.seed)
    return {"swd": r.mean, **{f"swd_{res}px": v for res, v in zip(r.resolutions, r.levels)}}


@register_metric
def c2st(opts: MetricOptions) -> dict:
    """Classifier two-sample test: ``c2st_accuracy`` (0.5 = indistinguishable), ``c2st_p_value``."""
    c = D.c2st(opts.real, opts.fake, opts.real_maps, opts.fake_maps, crop=opts.crop, seed=opts.seed, device=opts.device)
    return {"c2st_accuracy": c.accuracy, "c2st_p_value": c.p_value}


@register_metric
def fid(opts: MetricOptions) -> dict:
    """Frechet Inception distance (needs the ``fid`` extra)."""
    fa, fb = opts.inception()
    return {"fid": D.frechet_distance(fa, fb)}


@register_metric
def kid(opts: MetricOptions) -> dict:
    """Kernel Inception distance ``kid`` and its spread over subsets ``kid_std``."""
    fa, fb = opts.inception()
    mean, std = D.kernel_distance(fa, fb, seed=opts.seed)
    return {"kid": mean, "kid_std": std}


METRICS = tuple(REGISTRY)
DEFAULT_METRICS = ("swd", "c2st")

Progress = Callable[[str], None]


def parse_metrics(spec: str | Sequence[str]) -> list[str]:
    """``"swd,fid"`` or ``["swd", "fid"]`` -> validated list; raises ``ValueError`` naming unknown ones."""
    names = [m.strip().lower() for m in (spec.split(",") if isinstance(spec, str) else spec) if m.strip()]
    unknown = [m for m in names if m not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {', '.join(REGISTRY)}")
    if not names:
        raise ValueError(f"no metric given; choose from {', '.join(REGISTRY)}")
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
    """Registered metrics between a real and a synthetic image set.

    Parameters
    ----------
    real, fake
        ``(N, C, H, W)`` arrays/tensors in [-1, 1] with equal ``C, H, W``.
    metrics
        Names in :data:`REGISTRY` (comma-separated string or sequence).
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
        What each metric returns (``swd`` (x 1e3) and ``swd_<side>px``; ``c2st_accuracy``,
        ``c2st_p_value``; ``fid``; ``kid`` and ``kid_std``), each also with ``_salient`` when
        maps are given; plus ``n_real``, ``n_fake`` and ``seconds``.

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
        opts = MetricOptions(x, y, rm, fm, suffix, crop, seed, device)
        for name in names:
            if progress:
                progress(name + suffix)
            for key, value in REGISTRY[name](opts).items():
                # the salient suffix goes after the metric name: swd_salient_16px, kid_std_salient
                if suffix and key.startswith(name + "_") and key[len(name) + 1:].endswith("px"):
                    out[f"{name}{suffix}_{key[len(name) + 1:]}"] = value
                else:
                    out[key + suffix] = value
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
