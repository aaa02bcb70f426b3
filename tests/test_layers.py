"""The package's layers, as facts a test can check: no import circle, no module importing a layer above it.

From the bottom: the core modules, sources, the teacher and publishing; the
dataset families (controllable, recknowledge, instructrec), which never import
each other; what sees them all (their registry, datagen/families.py; the pipeline
that builds them; `datagen render` and `datagen templates` in browse.py);
training; the CLI. Every
`import` counts, at the top of a module or inside a function.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("datagen.controllable", "datagen.recknowledge", "datagen.instructrec")
ABOVE_THE_FAMILIES = ("datagen.families", "datagen.pipeline", "datagen.browse", "datagen.training", "datagen.cli")


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


def test_no_module_imports_a_layer_above_it():
    for name, imported in import_graph().items():
        for target in imported:
            assert target != "datagen.cli" or name == "datagen.__main__", f"{name} imports the CLI"
            assert not within(target, "datagen.training") or within(name, "datagen.training", "datagen.cli"), f"{name} imports training ({target})"
            family = next((f for f in FAMILIES if within(target, f)), None)
            if family and not within(name, family):
                assert within(name, *ABOVE_THE_FAMILIES), f"{name} imports the family {family} ({target})"


def test_the_package_holds_only_its_own_modules():
    """No __path__ edits: from the checkout, the repository's tests/ and bench/ are not part of the package,
    and the shipped folders are found through importlib.resources, whoever imports them."""
    for name in ("datagen.tests", "datagen.bench"):
        result = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT, capture_output=True, text=True)
        assert result.returncode == 1 and f"No module named '{name}'" in result.stderr
    shown = subprocess.run([sys.executable, "-c", "from datagen.shipped import TEMPLATES_DIR, RECIPES_DIR; print(TEMPLATES_DIR, RECIPES_DIR)"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert shown.stdout.split() == [str(ROOT / "templates"), str(ROOT / "recipes")]
    assert not (ROOT / "datagen" / "templates.py").exists(), "a module and the template package share a name"
