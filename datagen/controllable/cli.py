"""`datagen generate`, `datagen render` and `datagen templates`: the controllable dataset from the command line.

$ datagen templates
$ datagen generate build/steam --chat sharegpt.json
$ datagen render steam --task i2 --n 3
"""

from __future__ import annotations

import json
import random

import click
import polars as pl
from rich.table import Table

from datagen.buildfolder import BuildFolder
from datagen.controllable.build import FAMILY, SPLITS, ControllableSettings, generate_controllable, load_library
from datagen.controllable.tasks import TASKS, TEMPLATE_VARIABLES
from datagen.errors import DataError
from datagen.family_cli import TEMPLATES_OPTION, named_items, resolve_build
from datagen.output import staged_edit
from datagen.progress import StepProgress
from datagen.publish.layout import DATA_DIR, data_files, read_split
from datagen.publish.release import finalize
from datagen.terminal import stdout_console

console = stdout_console()

CHAT_OPTION = click.option("--chat", metavar="FILE|ORG/NAME", help="ShareGPT conversations for I4 (a JSON/JSONL file or a Hub dataset id), mixed into train.")
CHAT_RATIO_OPTION = click.option("--chat-ratio", type=click.FloatRange(min=0), default=0.5, show_default=True, help="I4 rows per other train row (Lu et al.: 50%).")
RENDERED_DATASETS = (FAMILY, "recknowledge", "instructrec")  # the configs `datagen render` shows


@click.command(
    epilog="""\b
Examples:
  datagen templates
  datagen templates --templates my_templates/ --show lu2024/i2-le
"""
)
@TEMPLATES_OPTION
@click.option("--show", metavar="ID", help="Print one template's header and text.")
def templates(template_dirs, show):
    """List the prompt templates (shipped ones and yours) with their task and variables.

    A template is a Jinja file with a YAML header in a {# ... #} comment (id, task,
    version, source, system, variables, and dataset: controllable, the default,
    recknowledge or instructrec). Drop one into a folder passed with --templates
    and `datagen build`/`generate`/`recknowledge`/`instructrec` draw it for its
    task, no code needed.
    """
    from datagen.instructrec.build import TEMPLATE_VARIABLES as INSTRUCTREC_VARIABLES
    from datagen.instructrec.build import load_library as load_instructrec
    from datagen.recknowledge.build import TEMPLATE_VARIABLES as RECKNOWLEDGE_VARIABLES
    from datagen.recknowledge.build import load_library as load_recknowledge

    library = load_library(template_dirs)
    everything = [*library.templates, *load_recknowledge(template_dirs).templates, *load_instructrec(template_dirs).templates]
    if show:
        found = [t for t in everything if t.id == show]
        if not found:
            raise DataError(f"no template {show!r}", hint="`datagen templates` lists the ids.")
        click.echo(f"# {found[0].path}")
        click.echo(found[0].path.read_text())
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
    for dataset, variables in ((FAMILY, TEMPLATE_VARIABLES), ("recknowledge", RECKNOWLEDGE_VARIABLES), ("instructrec", INSTRUCTREC_VARIABLES)):
        for task, names in variables.items():
            provided.add_row(dataset, task, ", ".join(sorted(names)))
    console.print(provided)
    for phrase_set in library.phrase_sets:
        console.print(f"[bold]{phrase_set.id}[/bold] ({phrase_set.source}, {phrase_set.path}):")
        for kind, texts in phrase_set.texts.items():
            for text in texts:
                console.print(f"  {kind}: {text}", markup=False)


@click.command(
    epilog="""\b
Examples:
  datagen generate build/steam-sample
  datagen generate build/steam --chat sharegpt.json --chat-ratio 0.5
  datagen generate build/steam --templates my_templates/
"""
)
@click.argument("build_name", metavar="BUILD")
@TEMPLATES_OPTION
@CHAT_OPTION
@CHAT_RATIO_OPTION
@click.option("--seed", type=int, help="Seed for sample points, k, categories and templates [default: the build's].")
@click.option("--train-copies", type=click.IntRange(min=1), default=1, show_default=True, help="Train sample points per user (each task).")
@click.option("--device", default="auto", show_default=True, help="Device for the teacher's rankings.")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def generate(build_name, template_dirs, chat, chat_ratio, seed, train_copies, device, quiet):
    """(Re)generate the controllable dataset of a BUILD from its tables and teacher.

    `datagen build` already does this; run it again after changing templates or
    the chat file. Writes data/controllable/, templates/controllable/ and
    reports/controllable.{json,md}, then the manifest's file list, content hash
    and the card (README.md).
    """
    folder = resolve_build(build_name)
    settings = ControllableSettings(
        seed=folder.manifest["parameters"]["seed"] if seed is None else seed,
        train_copies=train_copies,
        chat=chat,
        chat_ratio=chat_ratio,
        template_dirs=tuple(template_dirs),
        device=device,
    )
    with staged_edit(folder.path) as staged:  # a kill leaves the old build or the new one
        report = generate_controllable(BuildFolder.open(staged), settings, StepProgress(quiet=quiet))
        finalize(staged)
    if not quiet:
        print_report(report)
    click.echo(str(folder.path / "data" / "controllable"))


def print_report(report: dict) -> None:
    rows = Table(title="Controllable dataset: rows (all checks: reports/controllable.md)")
    rows.add_column("task")
    for split in SPLITS:
        rows.add_column(split, justify="right")
    for task in [*TASKS, "i4_chat"]:
        counts = [report["rows"][split].get(task, 0) for split in SPLITS]
        if any(counts):
            rows.add_row(task, *(f"{count:,}" for count in counts))
    console.print(rows)
    failures = report["label_check_failures"]
    if failures:
        console.print(f"[bold red]Label checks failed:[/bold red] {'; '.join(failures)}")
    else:
        console.print(
            "[green]Label checks passed[/green]: every label has k items, no repeats, no history or unknown items; "
            "HR = 1 where it holds the target; TCP 100% for +C, 0% for -C; CPA = 1 for every proportion task."
        )


@click.command(
    epilog="""\b
Examples:
  datagen render steam --task i2 --n 3
  datagen render build/steam --task i1_neg --split test --n 2
  datagen render steam-sample --task i0 --json
  datagen render build/amazon-gift_cards --dataset recknowledge --task mim
  datagen render build/amazon-gift_cards --dataset instructrec --task select
"""
)
@click.argument("build_name", metavar="BUILD")
@click.option("--dataset", type=click.Choice(RENDERED_DATASETS), default=FAMILY, show_default=True, help="Which generated dataset config.")
@click.option("--task", default=None, help="A task (i0, i1_pos, i2_le, ...; retrieval, mim, ...) or controllable family (i0, i1, i2, i3, i4, combined).")
@click.option("--split", type=click.Choice(SPLITS), default="train", show_default=True)
@click.option("--n", "count", type=click.IntRange(min=1), default=3, show_default=True, help="How many rows.")
@click.option("--seed", type=int, default=0, show_default=True, help="Which rows: a random draw with this seed.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON lines.")
def render(build_name, dataset, task, split, count, seed, as_json):
    """Print generated rows with their structured facts: what the model will be taught."""
    folder = resolve_build(build_name)
    if dataset not in data_files(folder.path):
        hint = f"datagen generate {folder.path}" if dataset == FAMILY else f"datagen {dataset} {folder.path}"
        raise DataError(f"no {dataset} dataset in this build", path=folder.path / DATA_DIR / dataset, hint=f"Run `{hint}`.")
    everything = read_split(folder.path, dataset, split)
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
            _print_row(row, _facts(dataset, row, titles))


def _facts(dataset: str, row: dict, titles: list[str]) -> list[tuple[str, str]]:
    if dataset == "recknowledge":
        from datagen.recknowledge.cli import recknowledge_facts

        return recknowledge_facts(row, titles)
    if dataset == "instructrec":
        from datagen.instructrec.cli import instructrec_facts

        return instructrec_facts(row, titles)
    if row["family"] == "i4":
        return []

    def named(ids):
        return named_items(ids, titles)

    target = row["target_item_id"]
    return [
        ("task", f"{row['task']} (constraint: {row['constraint']})"),
        ("k", str(row["k"])),
        ("history", named(row["history_item_ids"])),
        ("target", "-" if target is None else named([target])),
        ("category", row["target_category"] or "-"),
        ("excluded category", row["excluded_category"] or "-"),
        ("proportion", "-" if row["proportion"] is None else f"{row['proportion']}%"),
        ("candidates", named(row["candidate_item_ids"])),
        ("teacher's top items", named(row["teacher_item_ids"])),
        ("label", named(row["label_item_ids"])),
    ]


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
