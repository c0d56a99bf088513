"""Training checkpoints in safetensors, written atomically.

One file holds everything needed to continue a run to the same state as if it had never stopped:

* tensors ``"<module>/<name>"`` for the networks (``G``, ``D``, ``G_ema``),
* tensors ``"<optimizer>/state/<param index>/<key>"`` for optimiser moments and step counts, with
  the optimiser's ``param_groups`` (learning rates, betas, ...) as JSON in the metadata,
* tensors ``"rng/<name>"`` with random generator states (``uint8``),
* string metadata: ``step``, the run configuration and the network constructor arguments as JSON.

The file is written to a temporary name in the same directory and moved over the old one with
:func:`os.replace`, so a crash or kill while saving leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from gazetune.atomic import atomic_write_bytes, atomic_write_text  # noqa: F401 (re-exported)


def _flatten_optimizer(name: str, opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    sd = opt.state_dict()
    plain: dict[str, dict[str, Any]] = {}
    for idx, st in sd["state"].items():
        for key, val in st.items():
            if isinstance(val, torch.Tensor):
                tensors[f"{name}/state/{idx}/{key}"] = val.detach().cpu().contiguous()
            else:
                plain.setdefault(str(idx), {})[key] = val
    meta[f"{name}/param_groups"] = json.dumps(sd["param_groups"])
    meta[f"{name}/plain_state"] = json.dumps(plain)


def write_checkpoint(
    path: str | os.PathLike,
    modules: Mapping[str, torch.nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    rng: Mapping[str, torch.Tensor] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> None:
    """Write networks, optimisers, RNG states and metadata to ``path`` atomically.

    Parameters
    ----------
    path
        Target ``.safetensors`` file (parent directories are created).
    modules
        ``{name: module}``; their ``state_dict()`` tensors are stored under ``"name/..."``.
    optimizers
        ``{name: optimizer}`` (state tensors + JSON param groups).
    rng
        ``{name: state}`` byte tensors from ``torch.Generator.get_state()`` / ``torch.get_rng_state()``.
    metadata
        Extra string key/values (e.g. ``step``, JSON configs).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    meta: dict[str, str] = {str(k): str(v) for k, v in (metadata or {}).items()}
    for name, module in modules.items():
        for key, val in module.state_dict().items():
            tensors[f"{name}/{key}"] = val.detach().cpu().contiguous().clone()
    for name, opt in (optimizers or {}).items():
        _flatten_optimizer(name, opt, tensors, meta)
    for name, state in (rng or {}).items():
        tensors[f"rng/{name}"] = state.detach().cpu().contiguous().clone()
    atomic_write_bytes(path, st_save(tensors, metadata=meta))


@dataclass
class Checkpoint:
    """A checkpoint read back: ``tensors`` by full key and string ``metadata``."""

    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str]

    def state_dict(self, module: str) -> dict[str, torch.Tensor]:
        """The ``state_dict`` of the module stored as ``module`` (``KeyError`` when absent)."""
        prefix = f"{module}/"
        sd = {k[len(prefix):]: v for k, v in self.tensors.items() if k.startswith(prefix)}
        if not sd:
            raise KeyError(f"checkpoint has no module {module!r}; modules: {self.modules()}")
        return sd

    def modules(self) -> list[str]:
        """Names of stored modules and optimisers."""
        return sorted({k.split("/", 1)[0] for k in self.tensors if not k.startswith("rng/")})

    def has(self, name: str) -> bool:
        return any(k.startswith(f"{name}/") for k in self.tensors) or f"{name}/param_groups" in self.metadata

    def load_optimizer(self, name: str, opt: torch.optim.Optimizer) -> None:
        """Restore optimiser ``name`` into ``opt`` (same parameter order as when saved)."""
        if f"{name}/param_groups" not in self.metadata:
            raise KeyError(f"checkpoint has no optimiser {name!r}")
        state: dict[int, dict[str, Any]] = {}
        prefix = f"{name}/state/"
        for k, v in self.tensors.items():
            if k.startswith(prefix):
                idx, key = k[len(prefix):].split("/", 1)
                state.setdefault(int(idx), {})[key] = v
        for idx, vals in json.loads(self.metadata[f"{name}/plain_state"]).items():
            state.setdefault(int(idx), {}).update(vals)
        opt.load_state_dict({"state": state, "param_groups": json.loads(self.metadata[f"{name}/param_groups"])})

    def rng(self, name: str) -> torch.Tensor:
        """Stored random generator state ``name`` (uint8 tensor)."""
        return self.tensors[f"rng/{name}"]


def read_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`write_checkpoint` (tensors on the CPU)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    data = path.read_bytes()
    try:
        n = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + n])
    except (ValueError, UnicodeDecodeError):
        raise ValueError(f"{path}: not a safetensors checkpoint") from None
    return Checkpoint(tensors=dict(st_load(data)), metadata=dict(header.get("__metadata__", {})))
