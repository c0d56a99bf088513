"""Atomic file writes, the one helper every package uses.

A file is written to a temporary file beside the target, flushed to disk, then renamed over the
target (``os.replace``), so readers see the old file or the new one, never a half-written one,
and a crash, an exception or a full disk mid-write leaves the previous file intact (and no
temporary file behind).  The new file gets the permissions a plain ``open(path, "w")`` would give.

* :func:`atomic_write`: a file object to write to (``with atomic_write(p, "w") as fh: ...``);
* :func:`atomic_path`: a temporary path, for writers that want a file name (safetensors,
  Pillow, ``np.savez``);
* :func:`atomic_write_bytes`, :func:`atomic_write_text`: the whole content at once.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (parents created); when the block ends without an
    exception the file written there replaces ``path``, otherwise it is removed.

    ``suffix`` ends the temporary name, for writers that pick the format from it (e.g. ``".png"``).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(d / "x.txt") as tmp:
    ...     _ = tmp.write_text("hi")
    >>> (d / "x.txt").read_text(), sorted(p.name for p in d.iterdir())
    ('hi', ['x.txt'])
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        with open(tmp, "rb+") as fh:  # the writer may have closed it without syncing
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; keep what open() would give
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on success it replaces ``path`` (parents created).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_write(d / "a" / "x.txt", "w") as fh:
    ...     _ = fh.write("hi")
    >>> (d / "a" / "x.txt").read_text()
    'hi'
    """
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes a whole new file: mode must start with 'w'; got {mode!r}")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as fh:
            yield fh
            fh.flush()


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "wb") as fh:
        fh.write(payload)


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w", encoding=encoding) as fh:
        fh.write(text)
