"""Configuration dataclasses <-> TOML.

Every run writes its resolved configuration next to its outputs (``config.toml``) so a result can
be reproduced from the file alone.  Each stage keeps its own dataclass (e.g. the GAN's
``TrainConfig`` in :mod:`gazetune.tune`); this module only converts and validates.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import tomli_w

from gazetune.atomic import atomic_write

T = TypeVar("T")


def to_dict(cfg: Any) -> dict[str, Any]:
    """Dataclass -> plain dict that TOML can hold (None values are dropped, paths become str)."""

    def clean(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {k: clean(x) for k, x in dataclasses.asdict(v).items() if x is not None}
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, Path):
            return str(v)
        return v

    return clean(cfg)


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write a dataclass (or dict) as TOML atomically."""
    data = to_dict(cfg)
    with atomic_write(path, "wb") as fh:
        tomli_w.dump(data, fh)


def from_dict(cls: type[T], data: dict[str, Any], source: str = "config") -> T:
    """Build dataclass ``cls`` from ``data``; unknown keys are an error naming the key."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; known: {sorted(names)}")
    return cls(**data)


def load_config(cls: type[T], path: str | os.PathLike) -> T:
    """Read TOML ``path`` into dataclass ``cls`` (errors name the file and key)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: not valid TOML: {e}") from None
    return from_dict(cls, data, source=str(path))
