"""Checkpoints moved to :mod:`gazetune.checkpoint` (below every stage, so that ``nets`` can read
them without importing ``tune``); this module re-exports them for one release."""

from gazetune.checkpoint import *  # noqa: F401,F403
from gazetune.checkpoint import Checkpoint, atomic_write_bytes, atomic_write_text, read_checkpoint, write_checkpoint  # noqa: F401
