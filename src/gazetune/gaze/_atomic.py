"""Atomic file writes: kept as an alias of :mod:`gazetune.atomic`, the one helper."""

from gazetune.atomic import atomic_write  # noqa: F401
