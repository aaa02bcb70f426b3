"""The shipped recipes as files: list them, or copy one (with the recipes it extends) to edit, as torchtune's `tune ls` / `tune cp`.

>>> [name for name, _ in shipped_recipes()][:2]  # doctest: +SKIP
['amazon-movies/llama-2-7b-chat/sft', 'steam/llama-2-7b-chat/sft']
>>> copy_recipe("steam/smollm2-135m/ppo-cpu", Path("my-recipes"))  # doctest: +SKIP
[PosixPath('my-recipes/ppo-cpu.yaml'), PosixPath('my-recipes/steam-smollm2-135m-ppo.yaml')]
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from datagen.errors import DataError
from datagen.shipped import RECIPES_DIR
from datagen.training.recipe import find_recipe

EXTENDS_LINE = re.compile(r"^extends:.*$", re.MULTILINE)


def shipped_recipes() -> list[tuple[str, str]]:
    """(name, the first line of its header comment) of every shipped recipe, sorted by name."""
    recipes = []
    for path in sorted(RECIPES_DIR.rglob("*.yaml")):
        if "accelerate" in path.relative_to(RECIPES_DIR).parts:  # launcher configs, not recipes
            continue
        first = path.read_text().split("\n", 1)[0]
        recipes.append((recipe_name(path), first.lstrip("# ").strip() if first.startswith("#") else ""))
    return sorted(recipes)


def recipe_name(path: Path) -> str:
    return str(path.resolve().relative_to(RECIPES_DIR.resolve()).with_suffix(""))


def copy_recipe(name: str, destination: Path) -> list[Path]:
    """Copy shipped recipe `name` into the folder `destination`, with every recipe it extends; the written files.

    The recipe keeps its file name; a recipe it extends is named after its
    shipped name (`steam-smollm2-135m-ppo.yaml`), and the copied `extends:`
    lines point at those copies, so the copy loads as the original does,
    comments included. Existing files are never overwritten.
    """
    source = find_recipe(name)
    if not source.resolve().is_relative_to(RECIPES_DIR.resolve()):
        raise DataError("not a shipped recipe", path=name, hint="`datagen recipes ls` lists them.")
    chain = [(source, destination / source.name)]
    while (parent := _extends(chain[-1][0])) is not None:
        chain.append((parent, destination / f"{recipe_name(parent).replace('/', '-')}.yaml"))
    taken = [target for _, target in chain if target.exists()]
    if taken:
        raise DataError("already exists; nothing was copied", path=taken[0], hint="Copy into another folder, or remove the file.")
    destination.mkdir(parents=True, exist_ok=True)
    for (original, target), (_, parent_copy) in zip(chain, [*chain[1:], (None, None)]):
        text = original.read_text()
        if parent_copy is not None:
            text = EXTENDS_LINE.sub(f"extends: {parent_copy.name}", text, count=1)
        target.write_text(text)
    return [target for _, target in chain]


def _extends(path: Path) -> Path | None:
    parent = (yaml.safe_load(path.read_text()) or {}).get("extends")
    return None if parent is None else (path.parent / parent).resolve()
