"""The shipped recipes as files: list them, or copy one (with the recipes it extends) to edit, as torchtune's `tune ls` / `tune cp`.

>>> [name for name, _ in shipped_recipes()][:2]  # doctest: +SKIP
['amazon-movies/llama-2-7b-chat/sft', 'steam/llama-2-7b-chat/sft']
>>> [path.name for path, _ in accelerate_configs()]  # doctest: +SKIP
['ddp.yaml', 'fsdp.yaml', 'zero3.yaml']
>>> copy_recipe("steam/smollm2-135m/ppo-cpu", Path("my-recipes"))  # doctest: +SKIP
[PosixPath('my-recipes/ppo-cpu.yaml'), PosixPath('my-recipes/steam-smollm2-135m-ppo.yaml')]
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from datagen.errors import DataError
from datagen.output import write_text
from datagen.shipped import RECIPES_DIR
from datagen.training.recipe import find_recipe

EXTENDS_LINE = re.compile(r"^extends:.*$", re.MULTILINE)
ACCELERATE_DIR = RECIPES_DIR / "accelerate"  # launcher configs for `accelerate launch --config_file`, not recipes
SENTENCE_END = re.compile(r"(?<!\bal)(?<!\bEq)\.(?=\s|$)")  # a full stop, but not those of "et al." and "Eq."


def header_summary(path: Path) -> str:
    """The first sentence of a YAML file's header comment, as one line: its text up to a full stop, a blank comment
    line or an indented one (a command example), the trailing colon that introduces such an example dropped."""
    lines = []
    for line in path.read_text().splitlines():
        text = line.removeprefix("#")
        if not line.startswith("#") or not text.strip() or text.startswith("  "):
            break
        lines.append(text.strip())
    paragraph = " ".join(lines)
    end = SENTENCE_END.search(paragraph)
    return paragraph[: end.end()] if end else paragraph.removesuffix(":")


def shipped_recipes() -> list[tuple[str, str]]:
    """(name, the first paragraph of its header comment) of every shipped recipe, sorted by name."""
    paths = (path for path in RECIPES_DIR.rglob("*.yaml") if ACCELERATE_DIR not in path.parents)
    return sorted((recipe_name(path), header_summary(path)) for path in paths)


def accelerate_configs() -> list[tuple[Path, str]]:
    """(path, the first paragraph of its header comment) of every shipped `accelerate launch` config."""
    return [(path, header_summary(path)) for path in sorted(ACCELERATE_DIR.glob("*.yaml"))]


def accelerate_config(name_or_path: str) -> Path:
    """A shipped `accelerate launch` config by name (`ddp`), else a config file's path."""
    shipped = ACCELERATE_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    path = Path(name_or_path)
    if not path.is_file():
        names = ", ".join(config.stem for config, _ in accelerate_configs())
        raise DataError("neither a shipped accelerate config nor a file", path=name_or_path, hint=f"The shipped ones: {names}.")
    return path


def recipe_name(path: Path) -> str:
    return str(path.resolve().relative_to(RECIPES_DIR.resolve()).with_suffix(""))


def copy_recipe(name: str, destination: Path, force: bool = False) -> list[Path]:
    """Copy shipped recipe `name` to `destination`, with every recipe it extends; the written files.

    A destination ending in .yaml is the copy's own file name, else a folder
    where the recipe keeps its name. A recipe it extends is written beside it,
    named after its shipped name (`steam-smollm2-135m-ppo.yaml`), and the
    copied `extends:` lines point at those copies, so the copy loads as the
    original does, comments included. The copy's header gains a first line
    naming the recipe it came from. Existing files are overwritten only with
    `force`.
    """
    source = find_recipe(name)
    if not source.resolve().is_relative_to(RECIPES_DIR.resolve()):
        raise DataError("not a shipped recipe", path=name, hint="`datagen recipes ls` lists them.")
    target = destination if destination.suffix in (".yaml", ".yml") else destination / source.name
    chain = [(source, target)]
    while (parent := _extends(chain[-1][0])) is not None:
        chain.append((parent, target.parent / f"{recipe_name(parent).replace('/', '-')}.yaml"))
    taken = [written for _, written in chain if written.exists()]
    if taken and not force:
        raise DataError("already exists; nothing was copied", path=taken[0], hint="Copy to another path, or pass --force to overwrite.")
    target.parent.mkdir(parents=True, exist_ok=True)
    for (original, written), (_, parent_copy) in zip(chain, [*chain[1:], (None, None)]):
        text = f"# Copied from datagen's shipped recipe {recipe_name(original)}: where a command below names it, give {written} instead.\n{original.read_text()}"
        if parent_copy is not None:
            text = EXTENDS_LINE.sub(f"extends: {parent_copy.name}", text, count=1)
        write_text(text, written)
    return [written for _, written in chain]


def _extends(path: Path) -> Path | None:
    parent = (yaml.safe_load(path.read_text()) or {}).get("extends")
    return None if parent is None else (path.parent / parent).resolve()
