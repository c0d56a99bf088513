"""One option vocabulary for every ``gazetune`` command, and the old names kept for one release.

The names mean the same thing everywhere:

==================  ==============================================================================
``--images``        the image set a command reads (folder, ``.npz`` or ``builtin``); beside it,
                    ``--fake`` is a set of generated images
``--sigma-px``      a heatmap's Gaussian sigma in image pixels (``--sigma-deg``: in degrees of
                    visual angle)
``--batch``         images (or trials) per training step
``--net-width``     channels of a network's first level (never a bare ``--width``)
``--width-px``      a width in pixels (``--height-px`` a height); ``--size`` a square side in pixels
==================  ==============================================================================

Old names (``--data``, ``--real``, ``--real-images``, ``--batch-size``, ``--sigma``, ``--width``,
...) are still accepted for one release: a command built with :func:`renamed` rewrites them to the
new name before parsing, so they reach the same parameter, and prints one deprecation line on
stderr.  They are not declared as options, so they do not show in ``--help``.  An old name whose
value has other units (``saliency train --sigma-frac``) is a hidden option converted in the
command itself (:func:`deprecated`).
"""

from __future__ import annotations

import sys
from typing import Any, Mapping, Optional, Sequence

import typer
from typer.core import TyperCommand

#: Names no command shows any more (the test of the vocabulary checks every command for them).
RETIRED = ("--data", "--real", "--real-images", "--batch-size", "--sigma", "--sigma-frac", "--width", "--height")


def deprecated(old: str, new: str, where: str = "") -> None:
    """Print the one-line note that ``old`` is deprecated in favour of ``new`` (on stderr)."""
    print(f"{where or 'gazetune'}: {old} is deprecated and will be removed in the next release; use {new}",
          file=sys.stderr)


def rename_args(args: Sequence[str], renames: Mapping[str, str], where: str = "") -> list[str]:
    """``args`` with every old option name of ``renames`` (``--old`` or ``--old=value``) replaced by
    its new name; a deprecation note is printed for each.  Nothing after ``--`` is touched.

    >>> rename_args(["--data", "x", "--batch-size=4", "--", "--data"], {"--data": "--images",
    ...             "--batch-size": "--batch"})  # doctest: +NORMALIZE_WHITESPACE
    ['--images', 'x', '--batch=4', '--', '--data']
    """
    out: list[str] = []
    for k, arg in enumerate(args):
        if arg == "--":
            out.extend(args[k:])
            break
        name, eq, value = arg.partition("=")
        if name in renames:
            deprecated(name, renames[name], where)
            arg = renames[name] + eq + value
        out.append(arg)
    return out


class RenamedOptionsCommand(TyperCommand):
    """A Typer command that accepts the old names in :attr:`renamed_options` (old -> new); with
    :attr:`replaced_by` set it is the hidden old name of the command of that name."""

    renamed_options: dict[str, str] = {}
    replaced_by: Optional[str] = None

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if self.replaced_by:
            parent = ctx.parent.command_path + " " if ctx.parent else ""
            deprecated(f"the command '{parent}{ctx.info_name}'", f"'{parent}{self.replaced_by}'", parent.strip())
        return super().parse_args(ctx, rename_args(args, self.renamed_options, ctx.command_path))


def renamed(renames: Mapping[str, str] | None = None, replaced_by: Optional[str] = None) -> type[TyperCommand]:
    """A command class (``app.command(cls=renamed({...}))``) that maps old option names to new ones.

    ``replaced_by``: for a command mounted a second time under its old name (``hidden=True``), the
    new name; using the old one prints a deprecation note.
    """
    for old, new in (renames or {}).items():
        if not (old.startswith("--") and new.startswith("--")) or old == new:
            raise ValueError(f"a rename maps one long option to another; got {old!r} -> {new!r}")
    return type("RenamedOptionsCommand", (RenamedOptionsCommand,),
                {"renamed_options": dict(renames or {}), "replaced_by": replaced_by})


def hidden_option(old: str, **kw: Any) -> Any:
    """A hidden option under an old name, for values the command converts itself (see
    :func:`deprecated`)."""
    return typer.Option(None, old, hidden=True, **kw)
