"""Where the saliency maps of eq 9b/10b come from (FIG. 4, ¶84-86, ¶101).

* **direct** (¶85): maps measured on people.  A real image is known by its name; a synthetic image
  by ``(generator version, latent seed)``, so the trainer regenerates exactly the image that was
  shown (:func:`gazetune.nets.latent_from_seed`).  Real batches are drawn from the observed real
  images, fake batches from the observed seeds.
* **predicted** (¶86, ¶101): maps from a saliency model ``M_saliency`` (``forward(x) -> logits
  (N, 1, H, W)``; ``sigmoid`` gives ``SM_pred``), computed without gradients on the clean images of
  every batch (before DiffAugment).  Real-image maps are cached per image, since the real images
  and the frozen model do not change.
* **hybrid** (direct maps done right): real images get their measured maps (as in direct);
  generated images are drawn from **fresh latents** and get maps predicted by ``M_saliency`` for
  the image actually in the batch (fine-tune the model on the observed synthetic maps first).
  ``observed_share`` of each fake batch may still come from the observed seeds with their measured
  maps -- only while the generator is close to the version people saw, since a seed's image drifts
  as G is tuned while its map stays.  Plain direct mode restricts G to the 50-100 observed seeds
  and keeps their maps however far their images move.
* **auto**: with at least ``min_observed`` usable observed images, hybrid when a saliency model
  is given and direct otherwise; with fewer, predicted.  The choice and the reason are reported
  through the ``log`` callback.  Hybrid is preferred because plain direct mode let D fall to
  chance on the demo's faces (its 50 fixed fakes are easy for G to fit), while hybrid stayed
  healthy and scored the lowest SWD (docs/benchmarks.md, "Direct, hybrid and predicted maps").
* **none**: no maps (plain eq 9a/10a; pretraining and the unweighted baseline).

Synthetic images in a fixation table are named ``synthetic/<generator version>/<seed>``
(:func:`synthetic_image_name`); every other name is a real image.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from gazetune.gaze.fixation_table import FixationTable
from gazetune.gaze.heatmap import pooled_heatmap
from gazetune.images.names import SYNTHETIC_PREFIX, parse_synthetic_name, synthetic_image_name  # noqa: F401 (re-exported)
from gazetune.nets.latent import latents_from_seeds
from gazetune.atomic import atomic_write_bytes

Mode = Literal["none", "direct", "hybrid", "predicted", "auto"]
MODES = ("none", "direct", "hybrid", "predicted", "auto")


@dataclass
class MapSet:
    """Observed saliency maps: real images by name, synthetic images by (version, seed).

    Maps are float32 ``(H, W)`` arrays, non-negative (heatmaps scaled to [0, 1] by default).
    """

    real: dict[str, np.ndarray] = field(default_factory=dict)
    synthetic: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.real) + len(self.synthetic)

    def versions(self) -> list[str]:
        """Generator versions that have synthetic maps."""
        return sorted({v for v, _ in self.synthetic})

    def seeds(self, version: str | None = None) -> list[int]:
        """Observed latent seeds of ``version`` (all versions when ``None``), sorted."""
        return sorted({s for v, s in self.synthetic if version is None or v == version})

    @classmethod
    def from_fixations(
        cls,
        table: FixationTable,
        sigma: float,
        shape: tuple[int, int],
        images: Sequence[str] | None = None,
    ) -> "MapSet":
        """Pooled duration-weighted heatmaps (eq 3, ¶58) of every image in a fixation table.

        Parameters
        ----------
        table
            Fixations (pixels of the displayed image).
        sigma
            Gaussian standard deviation in pixels of the displayed image (about 1 degree).
        shape
            ``(H, W)`` of the displayed images in pixels (the maps' shape).
        images
            Only these image names (default: all in the table).

        Returns
        -------
        MapSet
            Maps scaled to max 1; names ``synthetic/<version>/<seed>`` go to :attr:`synthetic`.
        """
        out = cls()
        for name in table.images() if images is None else images:
            per_observer = list(table.for_image(name).values())
            m = pooled_heatmap(per_observer, shape, sigma, normalize="max")
            key = parse_synthetic_name(name)
            if key is None:
                out.real[name] = m
            else:
                out.synthetic[key] = m
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write ``.npz`` atomically: ``real_names``, ``real_maps (N, H, W)``,
        ``synthetic_versions``, ``synthetic_seeds``, ``synthetic_maps (M, H, W)``."""
        names = sorted(self.real)
        keys = sorted(self.synthetic)
        arrays = {
            "real_names": np.asarray(names, dtype=str),
            "real_maps": _stack([self.real[n] for n in names], "real"),
            "synthetic_versions": np.asarray([v for v, _ in keys], dtype=str),
            "synthetic_seeds": np.asarray([s for _, s in keys], dtype=np.int64),
            "synthetic_maps": _stack([self.synthetic[k] for k in keys], "synthetic"),
        }
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "MapSet":
        """Read a file written by :meth:`save` (errors name the file and the missing array)."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"map set not found: {path}")
        with np.load(path, allow_pickle=False) as z:
            need = ("real_names", "real_maps", "synthetic_versions", "synthetic_seeds", "synthetic_maps")
            missing = [k for k in need if k not in z.files]
            if missing:
                raise ValueError(f"{path}: not a gazetune map set, missing array(s) {missing}")
            real = {str(n): m.astype(np.float32) for n, m in zip(z["real_names"], z["real_maps"])}
            syn = {
                (str(v), int(s)): m.astype(np.float32)
                for v, s, m in zip(z["synthetic_versions"], z["synthetic_seeds"], z["synthetic_maps"])
            }
        return cls(real=real, synthetic=syn)


def _stack(maps: list[np.ndarray], what: str) -> np.ndarray:
    if not maps:
        return np.zeros((0, 1, 1), dtype=np.float32)
    shapes = {m.shape for m in maps}
    if len(shapes) > 1:
        raise ValueError(f"all {what} maps of a MapSet must have one shape; got {sorted(shapes)}")
    return np.stack(maps).astype(np.float32)


def _to_maps(arrays: list[np.ndarray], hw: tuple[int, int], device: torch.device) -> torch.Tensor:
    """(K, H0, W0) arrays -> (K, 1, H, W) float32 tensor resized bilinearly to ``hw``."""
    t = torch.from_numpy(np.stack(arrays).astype(np.float32))[:, None]
    if tuple(t.shape[-2:]) != tuple(hw):
        t = F.interpolate(t, size=hw, mode="bilinear", align_corners=False).clamp_min(0)
    return t.to(device)


class MapProvider:
    """Draws real batches and latents for the GAN and supplies their saliency maps.

    Parameters
    ----------
    mode
        ``"none"``, ``"direct"``, ``"hybrid"``, ``"predicted"`` or ``"auto"`` (see the module docstring).
    maps
        Observed maps (needed by ``direct`` and ``hybrid``; used by ``auto``).
    saliency_model
        ``M_saliency`` for ``predicted`` and ``hybrid`` (``auto`` picks hybrid with it): ``forward(x) -> logits
        (N, 1, h, w)``; the output is resized to the image size.  A model that wants 3 channels
        (attribute ``in_channels`` or ``channels`` = 3) gets grey images repeated 3 times.
    generator_version
        Use only synthetic maps of this generator version (their seeds regenerate the shown
        images only with those weights); ``None`` accepts every version.
    min_observed
        ``auto`` picks ``hybrid`` (or ``direct`` without a saliency model) when at least this many
        observed images (real + synthetic) are usable.
    log
        Called with a dict describing the resolved mode (the training loop writes it to
        ``log.jsonl``).

    Notes
    -----
    Call :meth:`bind` with the training images' names before sampling.  All random draws use the
    ``torch.Generator`` passed in, so training stays reproducible.  In ``direct`` mode a side with no
    observed maps (e.g. no synthetic images yet) is sampled as usual and returns ``None`` maps
    (unweighted loss on that side); the log says so.
    """

    def __init__(
        self,
        mode: Mode = "auto",
        maps: MapSet | None = None,
        saliency_model: nn.Module | None = None,
        generator_version: str | None = None,
        min_observed: int = 64,
        log: Callable[[dict], None] | None = None,
        observed_share: float = 0.0,
    ):
        if mode not in MODES:
            raise ValueError(f"map mode must be one of {MODES}; got {mode!r}")
        if mode == "direct" and maps is None:
            raise ValueError("mode 'direct' needs observed maps (a MapSet)")
        if mode in ("predicted", "hybrid") and saliency_model is None:
            raise ValueError(f"mode {mode!r} needs a saliency model")
        if mode == "hybrid" and maps is None:
            raise ValueError("mode 'hybrid' needs observed maps (a MapSet) for the real images")
        if not 0.0 <= observed_share <= 1.0:
            raise ValueError(f"observed_share must be in [0, 1]; got {observed_share}")
        self.observed_share = float(observed_share)
        if min_observed < 0:
            raise ValueError(f"min_observed must be >= 0; got {min_observed}")
        self.requested = mode
        self.mode: str = mode
        self.maps = maps
        self.model = saliency_model.eval().requires_grad_(False) if saliency_model is not None else None
        self.generator_version = generator_version
        self.min_observed = int(min_observed)
        self.log = log or (lambda _info: None)
        self._bound = False

    # -- setup --------------------------------------------------------------------------------
    def bind(self, names: Sequence[str], image_size: tuple[int, int], z_dim: int, device: str | torch.device = "cpu") -> dict:
        """Match observed maps to the training images, resolve ``auto``, and log the choice.

        Parameters
        ----------
        names
            Names of the training images (index ``k`` is image ``images[k]``).
        image_size
            ``(H, W)`` of the training images; maps are resized to it.
        z_dim
            Latent size of the generator (for regenerating observed seeds).
        device
            Device of the training tensors.

        Returns
        -------
        dict
            What was decided: ``mode``, ``requested``, ``n_real_maps``, ``n_synthetic_maps``, ``reason``.
        """
        self.device = torch.device(device)
        self.hw = (int(image_size[0]), int(image_size[1]))
        self.n_images = len(names)
        self.z_dim = int(z_dim)
        index = {str(n): k for k, n in enumerate(names)}
        real_names: list[str] = []
        syn_keys: list[tuple[str, int]] = []
        if self.maps is not None:
            real_names = sorted(n for n in self.maps.real if n in index)
            syn_keys = sorted(
                k for k in self.maps.synthetic if self.generator_version is None or k[0] == self.generator_version
            )
        n_obs = len(real_names) + len(syn_keys)
        reason = ""
        if self.requested == "auto":
            if self.maps is not None and n_obs >= self.min_observed and n_obs > 0 and self.model is not None:
                self.mode, reason = "hybrid", (f"{n_obs} observed images >= min_observed {self.min_observed}; fresh latents "
                                               "with predicted maps for the fakes")
            elif self.maps is not None and n_obs >= self.min_observed and n_obs > 0:
                self.mode, reason = "direct", f"{n_obs} observed images >= min_observed {self.min_observed}, no saliency model"
            elif self.model is not None:
                self.mode, reason = "predicted", f"{n_obs} observed images < min_observed {self.min_observed}"
            else:
                raise ValueError(
                    f"mode 'auto': only {n_obs} observed images (< min_observed {self.min_observed}) and no "
                    "saliency model to predict maps; pass --saliency-model or lower min_observed"
                )
        if self.mode in ("direct", "hybrid"):
            if n_obs == 0:
                some = sorted(self.maps.real)[:3] if self.maps else []
                raise ValueError(
                    f"mode 'direct': no observed map matches the training images (map names e.g. {some}, "
                    f"image names e.g. {list(names)[:3]}; generator version {self.generator_version!r})"
                )
            reason = reason or "observed maps given"
            self._real_idx = torch.tensor([index[n] for n in real_names], dtype=torch.long)
            self._real_maps = _to_maps([self.maps.real[n] for n in real_names], self.hw, self.device) if real_names else None
            self._seeds = [s for _, s in syn_keys]
            self._z = latents_from_seeds(self._seeds, self.z_dim).to(self.device) if syn_keys else None
            self._syn_maps = _to_maps([self.maps.synthetic[k] for k in syn_keys], self.hw, self.device) if syn_keys else None
        if self.mode in ("predicted", "hybrid"):
            self._cache = torch.zeros((self.n_images, 1, *self.hw), device=self.device)
            self._cached = torch.zeros(self.n_images, dtype=torch.bool)
            reason = reason or "saliency model given"
        info = {
            "event": "map_mode",
            "requested": self.requested,
            "mode": self.mode,
            "n_real_maps": len(real_names),
            "n_synthetic_maps": len(syn_keys),
            "reason": reason or "no maps",
        }
        if self.mode == "hybrid":
            info["observed_share"] = self.observed_share
        if self.mode == "direct" and (not real_names or not syn_keys):
            info["note"] = "unweighted " + ("real" if not real_names else "fake") + " side: no observed maps for it"
        self.log(info)
        self._bound = True
        return info

    def _need_bound(self) -> None:
        if not self._bound:
            raise RuntimeError("MapProvider.bind(names, image_size, z_dim) must be called before sampling")

    # -- sampling -----------------------------------------------------------------------------
    def sample_real(self, images: torch.Tensor, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A batch of real images ``(B, C, H, W)`` and their maps ``(B, 1, H, W)`` (or ``None``)."""
        self._need_bound()
        if self.mode in ("direct", "hybrid") and self._real_maps is not None:
            pick = torch.randint(len(self._real_idx), (batch,), generator=gen)
            return images[self._real_idx[pick].to(images.device)], self._real_maps[pick.to(self.device)]
        idx = torch.randint(images.shape[0], (batch,), generator=gen)
        x = images[idx.to(images.device)]
        if self.mode in ("predicted", "hybrid"):
            missing = idx[~self._cached[idx]].unique()
            if len(missing):
                self._cache[missing.to(self.device)] = self.predict(images[missing.to(images.device)])
                self._cached[missing] = True
            return x, self._cache[idx.to(self.device)]
        return x, None

    def sample_latents(self, batch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Latents ``(B, z_dim)`` and, in direct mode, the maps of the images they regenerate."""
        self._need_bound()
        if self.mode == "direct" and self._z is not None:
            pick = torch.randint(len(self._seeds), (batch,), generator=gen).to(self.device)
            return self._z[pick], self._syn_maps[pick]
        z = torch.randn(batch, self.z_dim, generator=gen).to(self.device)
        if self.mode == "hybrid":
            # NaN rows: fresh latents whose maps are predicted on the generated image (fake_maps)
            maps = torch.full((batch, 1, *self.hw), float("nan"), device=self.device)
            k = int(round(self.observed_share * batch)) if self._z is not None else 0
            if k:
                pick = torch.randint(len(self._seeds), (k,), generator=gen).to(self.device)
                z[:k], maps[:k] = self._z[pick], self._syn_maps[pick]
            return z, maps
        return z, None

    def fake_maps(self, fake: torch.Tensor, maps: torch.Tensor | None) -> torch.Tensor | None:
        """Maps of generated images: ``maps`` as drawn by :meth:`sample_latents`, predicted
        (``predicted``), or in ``hybrid`` mode measured where known and predicted for the rest
        (rows of NaN)."""
        if maps is None and self.mode == "predicted":
            return self.predict(fake)
        if self.mode == "hybrid":
            known = torch.isfinite(maps).all(dim=(1, 2, 3)) if maps is not None else torch.zeros(len(fake), dtype=torch.bool)
            if bool(known.all()):
                return maps
            pred = self.predict(fake)
            if maps is None:
                return pred
            return torch.where(known[:, None, None, None].to(pred.device), torch.nan_to_num(maps), pred)
        return maps

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """``SM_pred = sigmoid(M_saliency(x))`` as ``(N, 1, H, W)``, no gradient (eq 4)."""
        if self.model is None:
            raise RuntimeError("no saliency model to predict maps with")
        x = x.detach()
        want = getattr(self.model, "in_channels", getattr(self.model, "channels", None))
        if want == 3 and x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)
        logits = self.model(x)
        if logits.ndim != 4 or logits.shape[1] != 1:
            raise ValueError(f"saliency model must return logits (N, 1, H, W); got {tuple(logits.shape)}")
        if tuple(logits.shape[-2:]) != self.hw:
            logits = F.interpolate(logits, size=self.hw, mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)
