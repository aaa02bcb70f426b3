"""The package's layers, as facts a test can check: no import circle, no module importing a wing above it.

From the bottom: the floor (the modules at datagen/'s root that the rest stands
on: errors, output, the build folder and its layout, templating, the executor,
the shared command options); the first stage (ingest/), the language-model
helpers (lm/) and answer scoring (scoring/), none of which imports another wing;
publishing, over ingest; the sources and the teacher; the kit every family
uses (family/); the dataset families of the registry, which never import each
other; what sees them all (the registry datagen/families.py, the pipeline that
builds them, `datagen render` and `datagen templates` in browse.py); training;
the CLI. Every `import` counts, at the top of a module or inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ABOVE_THE_FAMILIES = ("datagen.families", "datagen.pipeline", "datagen.browse")
CLI = ("datagen.cli", "datagen.__main__")
# wing -> the wings its modules may import (each may import itself and the floor)
BELOW = {
    "floor": set(),
    "ingest": set(),
    "lm": set(),
    "scoring": set(),
    "publish": {"ingest"},
    "sources": {"ingest"},
    "teacher": {"ingest", "publish"},
    "family": {"ingest", "lm", "scoring", "publish", "teacher"},
}
UNDER_A_FAMILY = {"ingest", "lm", "scoring", "publish", "teacher", "family"}


def family_packages() -> list[str]:
    from datagen.families import FAMILIES

    return [family.generate.__module__.rsplit(".", 1)[0] for family in FAMILIES]


def wing(name: str, families: list[str]) -> str:
    """The wing a module belongs to: a package under datagen/ (a family's is its own), training, the CLI, above the families, or the floor."""
    if within(name, "datagen.training"):
        return "training"
    if name in CLI:
        return "cli"
    if name in ABOVE_THE_FAMILIES:
        return "above the families"
    family = next((f for f in families if within(name, f)), None)
    if family:
        return family
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in BELOW else "floor"


def modules() -> dict[str, Path]:
    found = {}
    for folder, package in ((ROOT / "datagen", "datagen"), (ROOT / "training", "datagen.training")):
        for path in folder.rglob("*.py"):
            parts = [part for part in path.relative_to(folder).with_suffix("").parts if part != "__init__"]
            found[".".join([package, *parts])] = path
    return found


def import_graph() -> dict[str, set[str]]:
    known = modules()
    graph = {}
    for name, path in known.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("datagen"):
                for alias in node.names:
                    imported.add(f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known else node.module)
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names if alias.name in known}
        graph[name] = {target for target in imported if target in known and target != name}
    return graph


def within(name: str, *packages: str) -> bool:
    return any(name == package or name.startswith(package + ".") for package in packages)


def test_no_import_circle():
    graph = import_graph()
    for start in graph:
        seen, stack = set(), [(start, (start,))]
        while stack:
            name, path = stack.pop()
            for target in graph[name]:
                assert target != start, "import circle: " + " -> ".join((*path, target))
                if target not in seen:
                    seen.add(target)
                    stack.append((target, (*path, target)))


def may_import(here: str, there: str, allowed: dict[str, set[str]]) -> bool:
    if here == "cli" or there == here:
        return True
    if here == "training":
        return there != "cli"
    if here == "above the families":
        return there not in ("training", "cli")
    return there == "floor" or there in allowed[here]


def test_no_module_imports_a_wing_above_it():
    families = family_packages()
    assert families and all(package.startswith("datagen.") for package in families)
    allowed = BELOW | {family: UNDER_A_FAMILY for family in families}
    up_arrows = []
    for name, imported in import_graph().items():
        here = wing(name, families)
        up_arrows += [f"{name} ({here}) imports {target} ({wing(target, families)})" for target in imported if not may_import(here, wing(target, families), allowed)]
    assert not up_arrows, "\n".join(up_arrows)


def test_the_floor_is_most_of_what_stays_at_the_root():
    """datagen/'s root holds the floor, what sees every family and the CLI; each stage has its own folder."""
    root_modules = sorted(path.stem for path in (ROOT / "datagen").glob("*.py") if path.stem not in ("__init__", "__main__"))
    assert len(root_modules) <= 18, root_modules


def test_the_package_holds_only_its_own_modules():
    """No __path__ edits: from the checkout, the repository's tests/ and bench/ are not part of the package,
    and the shipped folders are found through importlib.resources, whoever imports them."""
    for name in ("datagen.tests", "datagen.bench"):
        result = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 1 and f"No module named '{name}'" in result.stderr
    shown = subprocess.run([sys.executable, "-c", "from datagen.shipped import TEMPLATES_DIR, RECIPES_DIR; print(TEMPLATES_DIR, RECIPES_DIR)"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert shown.stdout.split() == [str(ROOT / "templates"), str(ROOT / "recipes")]
    assert not (ROOT / "datagen" / "templates.py").exists(), "a module and the template package share a name"
