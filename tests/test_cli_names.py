"""Every command speaks one option vocabulary (gazetune.cli_options); the old names still work
for one release, reach the same parameter, and say that they are deprecated."""

from __future__ import annotations

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from gazetune.cli import app
from gazetune.cli_options import RETIRED, RenamedOptionsCommand, rename_args

ROOT = get_command(app)

#: The old names the issue retired, per command: each must still be accepted.
OLD_NAMES = {
    "gan pretrain": {"--data": "--images"},
    "gan tune": {"--data": "--images"},
    "gan map-set": {"--sigma": "--sigma-px", "--height": "--height-px", "--width": "--width-px"},
    "gaze maps": {"--sigma": "--sigma-px"},
    "saliency train": {"--width": "--net-width", "--batch-size": "--batch"},
    "human train": {"--sigma": "--sigma-px", "--width": "--net-width"},
    "eval images": {"--real": "--images"},
    "refine train": {"--real": "--images"},
    "guide train": {"--batch-size": "--batch"},
    "loop": {"--real-images": "--images"},
}
#: Old names whose values have other units: hidden options converted by the command.
HIDDEN_OLD = {"saliency train": ["--sigma-frac"]}


def _commands(cmd=ROOT, path=()):
    yield " ".join(path), cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands())


def _options(cmd):
    return [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]


def _visible_names(cmd):
    return {n for p in _options(cmd) if not p.hidden for n in (*p.opts, *p.secondary_opts)}


def _param_named(cmd, opt: str):
    hits = [p for p in _options(cmd) if opt in (*p.opts, *p.secondary_opts)]
    return hits[0] if hits else None


def test_no_command_shows_a_retired_name():
    shown = {path: sorted(_visible_names(cmd) & set(RETIRED)) for path, cmd in COMMANDS.items()}
    assert not {p: n for p, n in shown.items() if n}, "retired option names still shown"


def test_width_is_never_bare_and_images_sigma_batch_are_spelt_one_way():
    for path, cmd in COMMANDS.items():
        names = _visible_names(cmd)
        assert "--width" not in names and "--height" not in names, path
        assert not names & {"--image-dir", "--image-folder", "--real-images", "--sigma-frac", "--batch-size"}, path


def test_two_maps_commands_have_distinct_names():
    gan = COMMANDS["gan"].commands
    assert "map-set" in gan and not gan["map-set"].hidden
    assert gan["maps"].hidden and gan["maps"].replaced_by == "map-set"
    assert not COMMANDS["gaze maps"].hidden


def _value_for(param, tmp_path) -> str:
    """A valid command-line value for ``param`` (its annotation, ``Optional`` unwrapped)."""
    import enum
    import typing
    from pathlib import Path

    kind = param.type_descriptor.annotation
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    kind = args[0] if args else kind
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return str(next(iter(kind)).value)
    if kind is bool:
        raise AssertionError(f"{param.name}: flags are not renamed here")
    return {int: "3", float: "0.5", Path: str(tmp_path)}.get(kind, "x")


@pytest.mark.parametrize("path", sorted(OLD_NAMES))
def test_old_names_reach_the_same_parameter(path, tmp_path, capsys):
    cmd = COMMANDS[path]
    assert isinstance(cmd, RenamedOptionsCommand), f"{path}: not built with cli_options.renamed"
    for old, new in OLD_NAMES[path].items():
        assert cmd.renamed_options.get(old) == new, (path, old)
        assert _param_named(cmd, old) is None, f"{path}: {old} is still declared"
        param = _param_named(cmd, new)
        assert param is not None and not param.hidden, f"{path}: no visible {new}"
        value = _value_for(param, tmp_path)
        with cmd.make_context(path, [old, value], resilient_parsing=True) as ctx_old:
            got_old = ctx_old.params[param.name]
        assert f"{old} is deprecated" in capsys.readouterr().err
        with cmd.make_context(path, [f"{new}={value}"], resilient_parsing=True) as ctx_new:
            got_new = ctx_new.params[param.name]
        assert capsys.readouterr().err == ""
        assert got_old == got_new is not None, (path, old, got_old, got_new)


def test_every_renamed_command_is_listed_here():
    renamed = {path for path, cmd in COMMANDS.items() if isinstance(cmd, RenamedOptionsCommand) and cmd.renamed_options}
    assert renamed - {"gan maps"} == set(OLD_NAMES)


@pytest.mark.parametrize("path", sorted(HIDDEN_OLD))
def test_old_names_with_other_units_are_hidden_options(path):
    for old in HIDDEN_OLD[path]:
        p = _param_named(COMMANDS[path], old)
        assert p is not None and p.hidden


def test_sigma_frac_converts_to_the_same_sigma():
    from gazetune.saliency.cli import sigma_fraction

    assert sigma_fraction(None, 0.05, 64) == pytest.approx(sigma_fraction(3.2, None, 64))
    assert sigma_fraction(None, None, 64) == pytest.approx(0.03)


def test_old_command_name_and_option_through_the_app(tmp_path):
    """``gan maps --sigma --height --width`` still builds a map set, with two deprecation notes."""
    import numpy as np

    from gazetune.tune.maps import MapSet

    table = tmp_path / "fix.csv"
    table.write_text("image,subject,index,x,y,duration_ms\na.png,s1,0,4,5,200\n")
    res = CliRunner().invoke(app, ["gan", "maps", "--fixations", str(table), "--sigma", "2", "--height", "10",
                                   "--width", "12", "--out", str(tmp_path / "m.npz")])
    assert res.exit_code == 0, res.output
    assert "gan map-set'" in res.output and "--sigma is deprecated" in res.output
    ms = MapSet.load(tmp_path / "m.npz")
    assert np.asarray(ms.real["a.png"]).shape == (10, 12)


def test_rename_args_leaves_longer_names_and_values_alone():
    renames = {"--real": "--images"}
    assert rename_args(["--real-end", "low", "--real=a", "--", "--real"], renames) == \
        ["--real-end", "low", "--images=a", "--", "--real"]
