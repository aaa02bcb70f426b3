"""`datagen render` and `datagen templates`: look at any family's generated rows and prompt templates.

$ datagen templates --show lu2024/i2_le
$ datagen render steam --task i2 --n 3
$ datagen render build/amazon-Gift_Cards --family recknowledge --task mim
"""

from __future__ import annotations

import json
import random

import click
import polars as pl
from rich.table import Table

from datagen.errors import DataError
from datagen.families import FAMILIES, family_named
from datagen.layout import DATA_DIR, SPLIT_ORDER, data_files, read_split
from datagen.options import TEMPLATES_OPTION, old_spelling, resolve_build
from datagen.terminal import stdout_console

console = stdout_console()


@click.command(
    epilog="""\b
Examples:
  datagen templates
  datagen templates --templates my_templates/ --show lu2024/i2_le
  datagen templates --json
"""
)
@TEMPLATES_OPTION
@click.option("--show", metavar="ID", help="Print one template's header and text.")
@click.option("--json", "as_json", is_flag=True, help="Print the templates, each task's variables and the phrase sets as JSON.")
def templates(template_dirs, show, as_json):
    """List the prompt templates (shipped ones and yours) with their task and variables.

    A template is a Jinja file with a YAML header in a {# ... #} comment (id, task,
    version, source, system, variables, and dataset: controllable, the default,
    recknowledge or instructrec). Drop one into a folder passed with --templates
    and `datagen build`/`generate`/`recknowledge`/`instructrec` draw it for its
    task, no code needed.
    """
    libraries = [family.load_library(tuple(template_dirs)) for family in FAMILIES]
    everything = [template for library in libraries for template in library.templates]
    if show:
        found = [t for t in everything if t.id == show]
        if not found:
            raise DataError(f"no template {show!r}", hint="`datagen templates` lists the ids.")
        click.echo(f"# {found[0].path}")
        click.echo(found[0].path.read_text())
        return
    if as_json:
        listing = {
            "templates": [{"id": t.id, "dataset": t.dataset, "task": t.task, "version": t.version, "variables": list(t.variables), "source": t.source, "path": str(t.path)} for t in everything],
            "task_variables": {family.name: {task: sorted(names) for task, names in family.template_variables.items()} for family in FAMILIES},
            "phrase_sets": [{"id": p.id, "source": p.source, "path": str(p.path), "texts": p.texts} for library in libraries for p in library.phrase_sets],
        }
        click.echo(json.dumps(listing, indent=2))
        return
    table = Table(title="Templates (--show ID for the text, source and file)")
    for column in ("id", "dataset", "task"):
        table.add_column(column, no_wrap=True)
    table.add_column("v")
    table.add_column("variables")
    for template in everything:
        table.add_row(template.id, template.dataset, template.task, str(template.version), ", ".join(template.variables))
    console.print(table)
    provided = Table(title="Variables each task gives its templates")
    provided.add_column("dataset", no_wrap=True)
    provided.add_column("task", no_wrap=True)
    provided.add_column("variables")
    for family in FAMILIES:
        for task, names in family.template_variables.items():
            provided.add_row(family.name, task, ", ".join(sorted(names)))
    console.print(provided)
    for phrase_set in (phrase_set for library in libraries for phrase_set in library.phrase_sets):
        console.print(f"[bold]{phrase_set.id}[/bold] ({phrase_set.source}, {phrase_set.path}):")
        for kind, texts in phrase_set.texts.items():
            for text in texts:
                console.print(f"  {kind}: {text}", markup=False)


@click.command(
    epilog="""\b
Examples:
  datagen render steam --task i2 --n 3
  datagen render build/steam --task i1_neg --split test --n 2
  datagen render steam-sample --task i0 --json
  datagen render build/amazon-Gift_Cards --family recknowledge --task mim
  datagen render build/amazon-Gift_Cards --family instructrec --task select
"""
)
@click.argument("build_name", metavar="BUILD")
@click.option("--family", type=click.Choice([family.name for family in FAMILIES]), default=FAMILIES[0].name, show_default=True, help="Which family's rows (its config).")
@old_spelling("--dataset", "family", "--family", type=click.Choice([family.name for family in FAMILIES]), default=FAMILIES[0].name)
@click.option("--task", default=None, help="A task (i0, i1_pos, i2_le, ...; retrieval, mim, ...) or controllable family (i0, i1, i2, i3, i4, combined).")
@click.option("--split", type=click.Choice(SPLIT_ORDER), default="train", show_default=True)
@click.option("--n", "count", type=click.IntRange(min=1), default=3, show_default=True, help="How many rows.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which rows: a random draw with this seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON lines.")
def render(build_name, family, task, split, count, seed, as_json):
    """Print generated rows with their structured facts: what the model will be taught."""
    folder = resolve_build(build_name)
    if family not in data_files(folder.path):
        hint = f"datagen {family_named(family).command.name} {folder.path}"
        raise DataError(f"no {family} family in this build", path=folder.path / DATA_DIR / family, hint=f"Run `{hint}`.")
    everything = read_split(folder.path, family, split)
    frame = everything
    if task:
        frame = frame.filter((pl.col("task") == task) | (pl.col("family") == task) if "family" in frame.columns else pl.col("task") == task)
        if frame.is_empty():
            raise DataError(f"no {split} rows of task {task!r}; tasks: {', '.join(sorted(set(everything['task'])))}")
    picked = sorted(random.Random(seed).sample(range(frame.height), min(count, frame.height)))
    titles = folder.items.sort("item_id")["title"].to_list()
    for index in picked:
        row = frame.row(index, named=True)
        if as_json:
            click.echo(json.dumps(row, ensure_ascii=False))
        else:
            _print_row(row, family_named(family).facts(row, titles))


def _print_row(row: dict, facts: list[tuple[str, str]]) -> None:
    table = Table(title=f"{row['id']}  (template {row['template_id']})", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for name, value in facts:
        table.add_row(name, value)
    console.print(table)
    for message in row["messages"]:
        console.print(f"[bold cyan]{message['role']}:[/bold cyan]")
        console.print(message["content"], markup=False, highlight=False)
    console.print()
