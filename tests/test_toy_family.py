"""A new family is its own package plus one registry line: a toy family from tests/fixtures/toy_family, registered
before the CLI loads, is built by `datagen build`, rendered by `datagen render` and described in the card."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

FIXTURES = Path(__file__).parent / "fixtures"
# The one line a new family adds to datagen/families.py, done here before anything reads the registry.
REGISTERED_CLI = """
import sys
import datagen.families
from toy_family.family import TOY
datagen.families.FAMILIES = (*datagen.families.FAMILIES, TOY)
from datagen.cli import main
main(sys.argv[1:])
"""


def datagen_with_toy(*arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", REGISTERED_CLI, *arguments], capture_output=True, text=True, cwd=cwd, env={**os.environ, "PYTHONPATH": str(FIXTURES)})


def test_a_registered_toy_family_is_built_rendered_and_carded(tmp_path):
    out = tmp_path / "steam-toy"
    built = datagen_with_toy("build", "steam", "--no-teacher", "--toy", "--out", str(out), "-q", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    test = pl.read_parquet(next((out / "data" / "toy").glob("test-*.parquet")))
    sequences = pl.read_parquet(out / "sequences.parquet")
    assert test.height == sequences.height and set(test["task"]) == {"next_item"}
    assert (out / "templates" / "toy" / "toy" / "next_item.jinja").is_file(), "its templates, copied into the build"
    card = (out / "README.md").read_text()
    assert f"`toy` has {test.height} test rows of one task" in card, "its section, from its own card.md.jinja"
    assert "config_name: toy" in card

    shown = datagen_with_toy("render", str(out), "--family", "toy", "--split", "test", "--n", "1", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "Name the next one." in shown.stdout and "target" in shown.stdout
    listed = datagen_with_toy("--help", cwd=tmp_path)
    assert "toy" in listed.stdout, "its command joins the others"
