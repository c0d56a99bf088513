"""Distances between a real and a synthetic image set, over whole images or their salient regions.

* :func:`swd`: sliced Wasserstein distance between 7 x 7 patches of the levels of a Laplacian
  pyramid (the multi-scale statistical similarity of Karras et al., "Progressive Growing of GANs",
  ICLR 2018).  Needs no pretrained network.
* :func:`c2st`: classifier two-sample test (Lopez-Paz & Oquab, ICLR 2017): a small CNN learns to
  tell the sets apart on one half of each; its accuracy on the other halves is about 0.5 when the
  distributions are the same, with a one-sided binomial p-value.  :func:`c2st_features` does the
  same with logistic regression on given feature vectors (e.g. Inception features).
* :func:`fid` and :func:`kid`: Frechet and kernel Inception distances (Heusel et al. 2017;
  Binkowski et al. 2018) with the TF-Inception network of :mod:`gazetune.evaluate.inception`.

**Salient-region variants.**  Every function takes optional maps (``real_maps``, ``fake_maps``):
non-negative ``(H, W)`` arrays shared by all images of a set (e.g. pooled human gaze on aligned
faces) or ``(N, H, W)`` arrays, one per image (e.g. predicted saliency); any resolution, resized
to the images.  Patches (SWD) and crops (C2ST, FID, KID) are then drawn with probability
proportional to the map's mass inside them (:func:`sample_windows`), so the distance measures
the regions where people look.  ``fake_maps`` defaults to ``real_maps`` when that is one shared map.

Images everywhere are float ``(N, C, H, W)`` arrays or tensors in [-1, 1].
"""

from __future__ import annotations

import math
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from scipy import stats
from torch import nn

ArrayLike = Any  # numpy array or torch tensor
MapsLike = Any  # None, (H, W) or (N, H, W) array/tensor


# ----------------------------------------------------------------------------------------------
# inputs


def as_images(images: ArrayLike, name: str = "images") -> torch.Tensor:
    """Validate and convert an image batch to a float32 CPU tensor ``(N, C, H, W)``."""
    t = torch.as_tensor(np.asarray(images) if not isinstance(images, torch.Tensor) else images)
    t = t.detach().to("cpu", torch.float32)
    if t.ndim != 4:
        raise ValueError(f"{name} must be a (N, C, H, W) batch; got shape {tuple(t.shape)}")
    if t.shape[0] < 1:
        raise ValueError(f"{name} is empty")
    if t.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 or 3 channels (N, C, H, W); got C={t.shape[1]}")
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return t


def as_maps(maps: MapsLike, n: int, shape: tuple[int, int], name: str = "maps") -> torch.Tensor | None:
    """Validate maps and resize them to the images: ``None`` or a float32 ``(n, H, W)`` tensor.

    ``maps`` is ``None``, one ``(h, w)`` map for every image, or ``(n, h, w)`` maps (any ``h, w``;
    bilinear resizing).  Values must be finite and non-negative; only their relative size matters.
    """
    if maps is None:
        return None
    m = torch.as_tensor(np.asarray(maps) if not isinstance(maps, torch.Tensor) else maps)
    m = m.detach().to("cpu", torch.float32)
    if m.ndim == 2:
        m = m[None].expand(n, -1, -1)
    if m.ndim != 3 or m.shape[0] != n:
        raise ValueError(f"{name} must be (H, W) or ({n}, H, W) for {n} images; got shape {tuple(m.shape)}")
    if not torch.isfinite(m).all() or (m < 0).any():
        raise ValueError(f"{name} must be finite and non-negative")
    if tuple(m.shape[1:]) != tuple(shape):
        m = F.interpolate(m[:, None], size=shape, mode="bilinear", align_corners=False)[:, 0].clamp_min(0)
    return m.contiguous()


def _shared_default(real_maps: MapsLike, fake_maps: MapsLike) -> MapsLike:
    """``fake_maps`` defaults to ``real_maps`` when that is a single (H, W) map."""
    if fake_maps is None and real_maps is not None and np.ndim(np.asarray(real_maps)) == 2:
        return real_maps
    if (real_maps is None) != (fake_maps is None):
        raise ValueError("give maps for both sets (real_maps and fake_maps), or one shared (H, W) map")
    return fake_maps


# ----------------------------------------------------------------------------------------------
# where to look: windows drawn where a map puts its mass


def sample_windows(
    maps: torch.Tensor | None,
    n: int,
    image_shape: tuple[int, int],
    size: int,
    count: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-left corners of ``count`` square windows per image, drawn with replacement.

    Parameters
    ----------
    maps
        ``None`` (uniform over positions) or ``(n, H, W)`` non-negative maps at image resolution.
        A window is drawn with probability proportional to the map's mean inside it; an image
        whose map has no mass falls back to uniform.
    n
        Number of images.
    image_shape
        ``(H, W)`` in pixels.
    size
        Window side in pixels, ``1 <= size <= min(H, W)``.
    count
        Windows per image.
    generator
        Torch random generator (reproducibility).

    Returns
    -------
    rows, cols
        int64 tensors ``(n, count)``: window top-left pixel.
    """
    h, w = image_shape
    if not 1 <= size <= min(h, w):
        raise ValueError(f"window size {size} px does not fit images of {h} x {w} px")
    nh, nw = h - size + 1, w - size + 1
    if maps is None:
        flat = torch.randint(0, nh * nw, (n, count), generator=generator)
    else:
        mass = F.avg_pool2d(maps[:, None].double(), size, stride=1)[:, 0].reshape(n, -1)
        empty = mass.sum(dim=1) <= 0
        mass[empty] = 1.0
        flat = torch.multinomial(mass, count, replacement=True, generator=generator)
    return flat // nw, flat % nw


def crop_windows(images: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, size: int) -> torch.Tensor:
    """Cut square windows out of images.

    ``images`` is ``(N, C, H, W)``, ``rows``/``cols`` are ``(N, P)`` top-left corners; returns
    ``(N * P, C, size, size)`` ordered image by image.
    """
    n, p = rows.shape
    d = torch.arange(size)
    ri = (rows[:, :, None, None] + d[None, None, :, None]).expand(n, p, size, size)
    ci = (cols[:, :, None, None] + d[None, None, None, :]).expand(n, p, size, size)
    ni = torch.arange(n)[:, None, None, None].expand(n, p, size, size)
    patches = images[ni, :, ri, ci]  # (N, P, size, size, C)
    return patches.permute(0, 1, 4, 2, 3).reshape(n * p, images.shape[1], size, size)


def salient_crops(
    images: ArrayLike,
    maps: MapsLike = None,
    size: int | float = 0.5,
    per_image: int = 1,
    seed: int = 0,
) -> torch.Tensor:
    """Square crops drawn where ``maps`` put their mass (uniformly when ``maps`` is None).

    Parameters
    ----------
    images
        ``(N, C, H, W)`` in [-1, 1].
    maps
        ``None``, ``(H, W)`` or ``(N, H, W)`` non-negative maps (see module docstring).
    size
        Crop side in pixels (int) or as a fraction of ``min(H, W)`` (float in (0, 1]).
    per_image
        Crops per image.
    seed
        Random seed.

    Returns
    -------
    torch.Tensor
        ``(N * per_image, C, s, s)`` crops.
    """
    x = as_images(images)
    n, _, h, w = x.shape
    side = int(round(size * min(h, w))) if isinstance(size, float) else int(size)
    if isinstance(size, float) and not 0 < size <= 1:
        raise ValueError(f"crop size as a fraction must be in (0, 1]; got {size}")
    if per_image < 1:
        raise ValueError(f"per_image must be >= 1; got {per_image}")
    m = as_maps(maps, n, (h, w))
    g = torch.Generator().manual_seed(int(seed))
    rows, cols = sample_windows(m, n, (h, w), max(side, 1), per_image, g)
    return crop_windows(x, rows, cols, max(side, 1))


# ----------------------------------------------------------------------------------------------
# sliced Wasserstein distance on Laplacian-pyramid patches

_BINOMIAL5 = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: torch.Tensor) -> torch.Tensor:
    c = x.shape[1]
    k = (_BINOMIAL5[:, None] * _BINOMIAL5[None, :]).to(x)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), k, groups=c)


def _pyr_down(x: torch.Tensor) -> torch.Tensor:
    return _blur(x)[:, :, ::2, ::2]


def _pyr_up(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    n, c, h, w = x.shape
    up = torch.zeros(n, c, 2 * h, 2 * w, dtype=x.dtype)
    up[:, :, ::2, ::2] = x * 4.0
    return _blur(up)[:, :, : shape[0], : shape[1]]


def laplacian_pyramid(images: ArrayLike, min_size: int = 16) -> list[torch.Tensor]:
    """Laplacian pyramid, finest level first; the last level is the low-pass residual.

    Levels halve the resolution (5-tap binomial filter) until the next would be smaller than
    ``min_size`` pixels.  ``images`` is ``(N, C, H, W)``; returns a list of ``(N, C, h_l, w_l)``.
    Summing the levels back up (upsampling each) reconstructs the images exactly.
    """
    x = as_images(images)
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"images of {tuple(x.shape[-2:])} px are smaller than min_size={min_size}")
    levels = []
    while min(x.shape[-2:]) // 2 >= min_size:
        down = _pyr_down(x)
        levels.append(x - _pyr_up(down, tuple(x.shape[-2:])))
        x = down
    levels.append(x)
    return levels


def _level_maps(maps: torch.Tensor | None, shape: tuple[int, int]) -> torch.Tensor | None:
    if maps is None:
        return None
    return F.adaptive_avg_pool2d(maps[:, None], shape)[:, 0]


def pyramid_descriptors(
    images: ArrayLike,
    maps: MapsLike = None,
    patches_per_image: int = 128,
    patch_size: int = 7,
    min_size: int = 16,
    seed: int = 0,
) -> list[torch.Tensor]:
    """Normalised patch descriptors of every Laplacian-pyramid level.

    At each level ``patches_per_image`` windows of ``patch_size`` pixels are drawn per image
    (where ``maps`` put their mass, pooled to the level's resolution), flattened to vectors of
    ``C * patch_size**2`` values and normalised per channel to zero mean and unit variance over all
    descriptors of the level.  Returns one float32 ``(N * patches_per_image, C * patch_size**2)``
    tensor per level, finest first.
    """
    x = as_images(images)
    n, _, h, w = x.shape
    m = as_maps(maps, n, (h, w))
    g = torch.Generator().manual_seed(int(seed))
    out = []
    for level in laplacian_pyramid(x, min_size=min_size):
        lh, lw = level.shape[-2:]
        rows, cols = sample_windows(_level_maps(m, (lh, lw)), n, (lh, lw), patch_size, patches_per_image, g)
        d = crop_windows(level, rows, cols, patch_size)  # (N*P, C, k, k)
        mean = d.mean(dim=(0, 2, 3), keepdim=True)
        std = d.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-8)
        out.append(((d - mean) / std).reshape(d.shape[0], -1))
    return out


def sliced_wasserstein(
    a: torch.Tensor, b: torch.Tensor, n_projections: int = 512, seed: int = 0
) -> float:
    """Sliced Wasserstein-1 distance between two point clouds of equal size.

    Both ``(n, d)`` clouds are projected on ``n_projections`` random unit directions; the distance
    is the mean over directions of the mean absolute difference of the sorted projections.
    The larger cloud is randomly subsampled to the size of the smaller one.
    """
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"point clouds must be (n, d) with the same d; got {tuple(a.shape)} and {tuple(b.shape)}")
    g = torch.Generator().manual_seed(int(seed))
    k = min(a.shape[0], b.shape[0])
    if a.shape[0] > k:
        a = a[torch.randperm(a.shape[0], generator=g)[:k]]
    if b.shape[0] > k:
        b = b[torch.randperm(b.shape[0], generator=g)[:k]]
    total, done = 0.0, 0
    while done < n_projections:  # chunks of directions keep memory small
        p = min(128, n_projections - done)
        dirs = torch.randn(a.shape[1], p, generator=g, dtype=a.dtype)
        dirs = dirs / dirs.norm(dim=0, keepdim=True)
        pa = np.sort((a @ dirs).numpy(), axis=0)  # numpy sorts several times faster than torch on CPU
        pb = np.sort((b @ dirs).numpy(), axis=0)
        total += float(np.abs(pa - pb).mean(axis=0).sum())
        done += p
    return total / n_projections


@dataclass
class SWDResult:
    """Sliced Wasserstein distances, in units of 1e-3 (as reported by Karras et al. 2018).

    Attributes
    ----------
    levels
        One distance per pyramid level, finest first (resolutions in ``resolutions``).
    mean
        Average over levels.
    resolutions
        Side of each level in pixels.
    """

    levels: list[float]
    mean: float
    resolutions: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def swd(
    real: ArrayLike,
    fake: ArrayLike,
    real_maps: MapsLike = None,
    fake_maps: MapsLike = None,
    patches_per_image: int = 128,
    n_projections: int = 512,
    patch_size: int = 7,
    min_size: int = 16,
    seed: int = 0,
) -> SWDResult:
    """Sliced Wasserstein distance between Laplacian-pyramid patches of two image sets.

    Parameters
    ----------
    real, fake
        ``(N, C, H, W)`` image sets in [-1, 1] with the same ``C, H, W`` (sizes may differ).
    real_maps, fake_maps
        Optional maps for the salient variant (see module docstring).
    patches_per_image
        Patches drawn per image and level (Karras et al.: 128).
    n_projections
        Random directions (Karras et al.: 4 x 128).
    patch_size
        Patch side in pixels (7).
    min_size
        Coarsest pyramid level in pixels (16).
    seed
        Seed of patch positions and directions; both sets use the same directions.

    Returns
    -------
    SWDResult
        Distances x 1e3 per level and their mean; about 0 for sets from one distribution (it
        shrinks as sets grow), larger when local image statistics differ.
    """
    x, y = as_images(real, "real"), as_images(fake, "fake")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"real and fake images differ in (C, H, W): {tuple(x.shape[1:])} vs {tuple(y.shape[1:])}")
    fake_maps = _shared_default(real_maps, fake_maps)
    # the same seed for both sets: identical sets give identical patches (distance 0), and paired
    # sets (an image and its degraded copy) are compared at the same places
    da = pyramid_descriptors(x, real_maps, patches_per_image, patch_size, min_size, seed)
    db = pyramid_descriptors(y, fake_maps, patches_per_image, patch_size, min_size, seed)
    levels = [1e3 * sliced_wasserstein(a, b, n_projections, seed + 2 + i) for i, (a, b) in enumerate(zip(da, db))]
    res = [int(x.shape[-1]) >> i for i in range(len(levels))]
    return SWDResult(levels=levels, mean=float(np.mean(levels)), resolutions=res)


# ----------------------------------------------------------------------------------------------
# classifier two-sample test


@dataclass
class C2STResult:
    """Held-out accuracy of a classifier telling real from fake.

    Attributes
    ----------
    accuracy
        Share of correctly classified held-out samples; 0.5 = indistinguishable.
    p_value
        One-sided binomial p-value of ``accuracy`` under chance (0.5).
    n_test
        Held-out samples (half real, half fake).
    n_train
        Training samples.
    classifier
        ``"cnn"`` or ``"logistic"``.
    """

    accuracy: float
    p_value: float
    n_test: int
    n_train: int
    classifier: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tiny_cnn(channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 1),
    )


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run a tiny network on one intra-op thread: it gains nothing from more, and on a busy
    machine extra threads waiting on each other make it many times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _balanced_split(n_a: int, n_b: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Equal numbers of each set, shuffled, split in halves: (train_a, test_a, train_b, test_b)."""
    k = min(n_a, n_b)
    if k < 4:
        raise ValueError(f"a two-sample test needs at least 4 samples per set; got {n_a} and {n_b}")
    ia, ib = torch.randperm(n_a, generator=g)[:k], torch.randperm(n_b, generator=g)[:k]
    half = k // 2
    return ia[:half], ia[half:], ib[:half], ib[half:]


def _fit_predict(
    fit: Callable[[torch.Tensor, torch.Tensor], Callable[[torch.Tensor], torch.Tensor]],
    a: torch.Tensor,
    b: torch.Tensor,
    g: torch.Generator,
    classifier: str,
) -> C2STResult:
    tra, tea, trb, teb = _balanced_split(a.shape[0], b.shape[0], g)
    x_train = torch.cat([a[tra], b[trb]])
    y_train = torch.cat([torch.ones(len(tra)), torch.zeros(len(trb))])
    predict = fit(x_train, y_train)
    with torch.no_grad():
        correct = int((predict(a[tea]) > 0).sum()) + int((predict(b[teb]) <= 0).sum())
    n_test = len(tea) + len(teb)
    p = float(stats.binomtest(correct, n_test, 0.5, alternative="greater").pvalue)
    return C2STResult(accuracy=correct / n_test, p_value=p, n_test=n_test, n_train=len(y_train), classifier=classifier)


def c2st(
    real: ArrayLike,
    fake: ArrayLike,
    real_maps: MapsLike = None,
    fake_maps: MapsLike = None,
    crop: int | float = 0.5,
    crops_per_image: int = 4,
    steps: int = 200,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    device: str = "cpu",
) -> C2STResult:
    """Classifier two-sample test with a tiny CNN (3 conv layers, global average pooling).

    Each set is subsampled to the size of the smaller one and split in halves; the CNN is trained
    with Adam on the first halves (binary cross-entropy, real = 1) and tested on the second.
    Without maps it sees whole images; with maps (salient variant) it sees ``crops_per_image``
    crops of side ``crop`` per image drawn where the maps put their mass, and the crops of an
    image stay on its side of the split.

    Parameters
    ----------
    real, fake
        ``(N, C, H, W)`` in [-1, 1], same ``C, H, W``.
    real_maps, fake_maps
        Optional maps (salient variant).
    crop, crops_per_image
        Crop side (pixels, or fraction of the image side) and crops per image for the salient variant.
    steps, batch_size, lr
        Training schedule: Adam steps on mini-batches of ``batch_size`` images (or crops).
    seed
        Seeds the split, the crops and the CNN's initialisation.
    device
        Torch device for the CNN (batches are moved there one at a time).

    Returns
    -------
    C2STResult
        Accuracy (about 0.5 when the sets come from one distribution) and binomial p-value.
    """
    x, y = as_images(real, "real"), as_images(fake, "fake")
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"real and fake images differ in (C, H, W): {tuple(x.shape[1:])} vs {tuple(y.shape[1:])}")
    fake_maps = _shared_default(real_maps, fake_maps)
    per = 1
    if real_maps is not None:  # (N, per, C, s, s): the crops of an image stay together
        per = crops_per_image
        x = salient_crops(x, real_maps, crop, per, seed).unflatten(0, (x.shape[0], per))
        y = salient_crops(y, fake_maps, crop, per, seed + 1).unflatten(0, (y.shape[0], per))
    else:
        x, y = x[:, None], y[:, None]

    def fit(xs: torch.Tensor, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        flat = xs.flatten(0, 1)
        lab = labels.repeat_interleave(per)
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = _tiny_cnn(flat.shape[1]).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        order = torch.Generator().manual_seed(seed + 7)
        perm, start = torch.randperm(flat.shape[0], generator=order), 0
        with _one_thread() if device == "cpu" else nullcontext():
            for _ in range(steps):
                if start >= flat.shape[0]:  # next epoch
                    perm, start = torch.randperm(flat.shape[0], generator=order), 0
                idx = perm[start:start + batch_size]
                start += batch_size
                loss = F.binary_cross_entropy_with_logits(net(flat[idx].to(device))[:, 0], lab[idx].to(device))
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()

        def predict(items: torch.Tensor) -> torch.Tensor:  # mean logit over an image's crops
            logits = [net(items[i:i + 256].flatten(0, 1).to(device))[:, 0].cpu() for i in range(0, len(items), 256)]
            return torch.cat(logits).reshape(items.shape[0], per).mean(dim=1)

        return predict

    g = torch.Generator().manual_seed(int(seed))
    return _fit_predict(fit, x, y, g, "cnn")


def c2st_features(
    real: ArrayLike, fake: ArrayLike, l2: float = 1e-2, max_iter: int = 200, seed: int = 0
) -> C2STResult:
    """Classifier two-sample test with L2-regularised logistic regression on feature vectors.

    ``real`` and ``fake`` are ``(N, D)`` features (e.g. Inception pool features of
    :func:`gazetune.evaluate.inception.inception_features`); they are standardised with the
    training half's statistics, fitted with L-BFGS (penalty ``l2`` on the mean loss), and scored on
    the held-out halves as in :func:`c2st`.
    """
    a = torch.as_tensor(np.asarray(real), dtype=torch.float64)
    b = torch.as_tensor(np.asarray(fake), dtype=torch.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D; got {tuple(a.shape)} and {tuple(b.shape)}")

    def fit(xs: torch.Tensor, labels: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        mean, std = xs.mean(dim=0), xs.std(dim=0).clamp_min(1e-8)
        z = (xs - mean) / std
        wts = torch.zeros(z.shape[1] + 1, dtype=z.dtype, requires_grad=True)
        opt = torch.optim.LBFGS([wts], max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(z @ wts[:-1] + wts[-1], labels.to(z.dtype))
            loss = loss + l2 * (wts[:-1] ** 2).sum()
            loss.backward()
            return loss

        opt.step(closure)
        w = wts.detach()
        return lambda items: ((items - mean) / std) @ w[:-1] + w[-1]

    g = torch.Generator().manual_seed(int(seed))
    return _fit_predict(fit, a, b, g, "logistic")


# ----------------------------------------------------------------------------------------------
# FID and KID


def _centred(f: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"{name} features must be (N >= 2, D); got shape {f.shape}")
    mu = f.mean(axis=0)
    return mu, f - mu


def frechet_distance(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (the FID formula).

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2))`` with sample covariances
    (``N - 1`` denominator).  The trace of the matrix square root is computed exactly, without
    ``sqrtm``: when the sets are small it is the nuclear norm of ``A B^T / sqrt((n_a-1)(n_b-1))``
    for the centred feature matrices ``A, B``; otherwise from the eigenvalues of
    ``S_a^(1/2) S_b S_a^(1/2)``.  Identical sets give 0 up to rounding.

    Parameters
    ----------
    real_features, fake_features
        ``(N_a, D)`` and ``(N_b, D)`` feature arrays.

    Returns
    -------
    float
        Non-negative distance in squared feature units.
    """
    mu_a, a = _centred(real_features, "real")
    mu_b, b = _centred(fake_features, "fake")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")
    na, nb, d = a.shape[0] - 1, b.shape[0] - 1, a.shape[1]
    tr_a, tr_b = float((a * a).sum()) / na, float((b * b).sum()) / nb
    if a.shape[0] * b.shape[0] <= d * d:
        tr_sqrt = float(np.linalg.svd(a @ b.T, compute_uv=False).sum()) / math.sqrt(na * nb)
    else:
        sa = a.T @ a / na
        vals, vecs = np.linalg.eigh(sa)
        root = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
        inner = root @ (b.T @ b / nb) @ root
        tr_sqrt = float(np.sqrt(np.clip(np.linalg.eigvalsh((inner + inner.T) / 2), 0, None)).sum())
    value = float(((mu_a - mu_b) ** 2).sum()) + tr_a + tr_b - 2.0 * tr_sqrt
    return max(value, 0.0)


def kernel_distance(
    real_features: np.ndarray,
    fake_features: np.ndarray,
    subset_size: int = 1000,
    n_subsets: int = 100,
    seed: int = 0,
) -> tuple[float, float]:
    """Unbiased squared MMD with the cubic polynomial kernel ``(x.y / D + 1)^3`` (the KID formula).

    Averaged over ``n_subsets`` random subsets of ``min(subset_size, N_a, N_b)`` samples per set
    (half the smaller set when that is smaller than ``subset_size``, so that subsets differ and
    the spread means something; the estimate is unbiased at any subset size).

    Returns
    -------
    (mean, std)
        Mean and standard deviation over subsets; about 0 (it can be slightly negative) when the
        sets come from one distribution.
    """
    fa, fb = np.asarray(real_features, dtype=np.float64), np.asarray(fake_features, dtype=np.float64)
    if fa.ndim != 2 or fb.ndim != 2 or fa.shape[1] != fb.shape[1]:
        raise ValueError(f"features must be (N, D) with the same D; got {fa.shape} and {fb.shape}")
    n_min = min(fa.shape[0], fb.shape[0])
    if n_min < 2:
        raise ValueError(f"KID needs at least 2 samples per set; got {fa.shape[0]} and {fb.shape[0]}")
    m = min(subset_size, n_min)
    if m == n_min and n_subsets > 1 and n_min >= 4:
        m = n_min // 2  # subsets of the whole smaller set would all be alike: no spread to report
    d = fa.shape[1]
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_subsets):
        x = fa[rng.choice(fa.shape[0], m, replace=False)]
        y = fb[rng.choice(fb.shape[0], m, replace=False)]
        kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
        off = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        values.append(off - 2 * kxy.mean())
    return float(np.mean(values)), float(np.std(values))


def inception_pair(
    real: ArrayLike, fake: ArrayLike, real_maps: MapsLike, fake_maps: MapsLike,
    crop: int | float, crops_per_image: int, seed: int, batch_size: int, device: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Inception features of both sets: of whole images, or of salient crops when maps are given."""
    from gazetune.evaluate.inception import inception_features

    x, y = as_images(real, "real"), as_images(fake, "fake")
    if real_maps is not None or fake_maps is not None:
        fake_maps = _shared_default(real_maps, fake_maps)
        x = salient_crops(x, real_maps, crop, crops_per_image, seed)
        y = salient_crops(y, fake_maps, crop, crops_per_image, seed + 1)
    return (inception_features(x, batch_size=batch_size, device=device),
            inception_features(y, batch_size=batch_size, device=device))


def fid(
    real: ArrayLike,
    fake: ArrayLike,
    real_maps: MapsLike = None,
    fake_maps: MapsLike = None,
    crop: int | float = 0.5,
    crops_per_image: int = 1,
    batch_size: int = 32,
    device: str = "cpu",
    seed: int = 0,
) -> float:
    """Frechet Inception distance (TF-Inception pool features, 2048-d; needs the ``fid`` extra).

    With maps, the features are those of crops (side ``crop``, ``crops_per_image`` per image)
    drawn where the maps put their mass: the salient-region FID.  Compare values only at equal set
    sizes: FID is biased upwards for small sets.
    """
    fa, fb = inception_pair(real, fake, real_maps, fake_maps, crop, crops_per_image, seed, batch_size, device)
    return frechet_distance(fa, fb)


def kid(
    real: ArrayLike,
    fake: ArrayLike,
    real_maps: MapsLike = None,
    fake_maps: MapsLike = None,
    crop: int | float = 0.5,
    crops_per_image: int = 1,
    subset_size: int = 1000,
    n_subsets: int = 100,
    batch_size: int = 32,
    device: str = "cpu",
    seed: int = 0,
) -> tuple[float, float]:
    """Kernel Inception distance ``(mean, std)`` over subsets; salient variant with maps as in :func:`fid`."""
    fa, fb = inception_pair(real, fake, real_maps, fake_maps, crop, crops_per_image, seed, batch_size, device)
    return kernel_distance(fa, fb, subset_size, n_subsets, seed)
