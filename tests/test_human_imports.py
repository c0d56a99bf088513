"""The FIG. 5 judge and the trainer-API client sit early in the data flow: a static check that
they import no later stage (the import graph follows the flow, issue 14)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "gazetune"
LATER = {
    "human": ("tune", "loop", "evaluate", "demo", "demo_report", "observers", "study"),
    "study/client.py": ("saliency", "nets", "human", "tune", "loop", "evaluate", "demo", "observers"),
}
ALLOWED = {"human": ("study.client",)}  # the study edge: reading a live server


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
    return [m for m in out if m.startswith("gazetune.")]


@pytest.mark.parametrize("where", sorted(LATER))
def test_no_import_of_a_later_stage(where):
    files = sorted((SRC / where).rglob("*.py")) if (SRC / where).is_dir() else [SRC / where]
    assert files
    bad = []
    for f in files:
        for mod in _imports(f):
            rest = mod.split(".", 1)[1]
            if rest.startswith(ALLOWED.get(where, ())):
                continue
            if rest.split(".")[0] in LATER[where]:
                bad.append(f"{f.relative_to(SRC)} imports {mod}")
    assert not bad, bad
