"""The import graph follows the data flow (docs/architecture.md): no package imports a later stage."""

from __future__ import annotations

import ast
from pathlib import Path

import gazetune

ROOT = Path(gazetune.__file__).parent

# foundations (any stage may import them), then the stages in the order data flows through them;
# the gaze records and their processing (samples, fixations, maps) are a library the study itself
# uses to store and export gaze, so they sit with the foundations; M_saliency and gaze guidance
# need only the foundations and come before the study, which shows guided variants of its
# synthetic images (study.guided)
FOUNDATION = ["atomic", "seeding", "cli_options", "config", "stats", "checkpoint", "images", "gaze", "trials", "nets", "features"]
STAGES = ["saliency", "guide", "study", "human", "tune", "refine", "observers", "evaluate", "stages",
          "loop", "demo_report", "demo", "cli", "__main__"]


def _rank(pkg: str) -> int:
    if pkg in FOUNDATION:
        return FOUNDATION.index(pkg)
    return len(FOUNDATION) + STAGES.index(pkg)


def _imports():
    for f in ROOT.rglob("*.py"):
        rel = f.relative_to(ROOT)
        pkg = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        if pkg == "__init__":
            continue
        for node in ast.walk(ast.parse(f.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("gazetune.") and name.split(".")[1] != pkg:
                    yield pkg, name.split(".")[1], str(rel)


def test_every_package_has_a_place_in_the_flow():
    pkgs = {p.name if p.is_dir() else p.stem for p in ROOT.iterdir() if (p.is_dir() and (p / "__init__.py").exists()) or p.suffix == ".py"}
    pkgs.discard("__init__")
    missing = sorted(pkgs - set(FOUNDATION) - set(STAGES))
    assert not missing, f"add these to docs/architecture.md and to FOUNDATION/STAGES here: {missing}"


def test_no_package_imports_a_later_stage():
    bad = sorted({f"{where}: {pkg} imports {dep}" for pkg, dep, where in _imports()
                  if dep in FOUNDATION + STAGES and _rank(dep) > _rank(pkg)})
    assert not bad, "imports against the flow:\n" + "\n".join(bad)
