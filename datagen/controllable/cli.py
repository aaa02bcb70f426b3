"""`datagen generate`: the controllable dataset from the command line, and the facts `datagen render` shows beside its rows.

$ datagen generate build/steam --chat sharegpt.json
"""

from __future__ import annotations

import re
from collections import Counter

import click
from rich.table import Table

from datagen.buildfolder import BuildFolder
from datagen.controllable.build import SPLITS, ControllableSettings, generate_controllable
from datagen.controllable.tasks import TASKS
from datagen.family.rows import named_items
from datagen.options import EXECUTOR_OPTION, TEMPLATES_OPTION, WORKERS_OPTION, FiniteRange, resolve_titled_build
from datagen.progress import StepProgress
from datagen.publish.validate import sealed_edit
from datagen.terminal import stdout_console

console = stdout_console()

CHAT_OPTION = click.option("--chat", metavar="FILE|ORG/NAME", help="ShareGPT conversations for I4 (a JSON/JSONL file or a Hub dataset id), mixed into train.")
CHAT_RATIO_OPTION = click.option("--chat-ratio", type=FiniteRange(min=0), default=0.5, show_default=True, help="I4 rows per other train row (Lu et al.: 50%).")


@click.command(
    epilog="""\b
Examples:
  datagen generate build/steam-sample
  datagen generate build/steam --chat sharegpt.json --chat-ratio 0.5
  datagen generate build/steam --templates my_templates/
  datagen generate build/steam --workers 8
  RAY_ADDRESS=auto datagen generate build/steam --executor ray --workers 64
"""
)
@click.argument("build_name", metavar="BUILD")
@TEMPLATES_OPTION
@CHAT_OPTION
@CHAT_RATIO_OPTION
@click.option("--seed", type=int, help="Seed for sample points, k, categories and templates [default: the build's].")
@click.option("--train-copies", type=click.IntRange(min=1), default=1, show_default=True, help="Train sample points per user (each task).")
@click.option("--device", default="auto", show_default=True, help="Device for the teacher's rankings.")
@WORKERS_OPTION
@EXECUTOR_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def generate(build_name, template_dirs, chat, chat_ratio, seed, train_copies, device, workers, executor, quiet):
    """(Re)generate the controllable dataset of a BUILD from its tables and teacher.

    `datagen build` already does this; run it again after changing templates or
    the chat file. Writes data/controllable/, templates/controllable/ and
    reports/controllable.{json,md}, then the manifest's file list, content hash
    and the card (README.md).
    """
    folder = resolve_titled_build(build_name, "controllable")
    settings = ControllableSettings(
        seed=folder.manifest["parameters"]["seed"] if seed is None else seed,
        train_copies=train_copies,
        chat=chat,
        chat_ratio=chat_ratio,
        template_dirs=tuple(template_dirs),
        device=device,
        workers=workers,
        executor=executor,
    )
    with sealed_edit(folder.path, "datagen generate") as staged:  # refused on a tampered build; a kill leaves the old build or the new one
        report = generate_controllable(BuildFolder.open(staged), settings, StepProgress(quiet=quiet))
    if not quiet:
        print_report(report)
    click.echo(str(folder.path / "data" / "controllable"))


def print_report(report: dict) -> None:
    rows = Table(title="Controllable dataset: rows (all checks: reports/controllable.md)")
    rows.add_column("task")
    for split in SPLITS:
        rows.add_column(split, justify="right")
    empty = []
    for task in [*TASKS, "i4_chat"] if report["chat"] else list(TASKS):
        counts = [report["rows"][split].get(task, 0) for split in SPLITS]
        rows.add_row(task, *(f"{count:,}" for count in counts), style=None if any(counts) else "dim")
        if not any(counts):
            empty.append(task)
    console.print(rows)
    for task in empty:
        # a dropped sample's job is a task ("i1_pos"), a task and its proportion ("i2_le_20") or a train group ("i1")
        reasons = Counter()
        for dropped in report["dropped"]:
            if dropped["job"] == TASKS[task].group or re.fullmatch(rf"{task}(_\d+)?", dropped["job"]):
                reasons[dropped["reason"]] += dropped["count"]
        why = "; ".join(f"{reason} ({count:,})" for reason, count in reasons.most_common()) or "no sample point asked for it"
        console.print(f"no {task} rows: {why}")
    console.print(
        "[green]Label checks passed[/green]: every label has k items, no repeats, no history or unknown items; "
        "HR = 1 where it holds the target; TCP 100% for +C, 0% for -C; CPA = 1 for every proportion task."
    )


def controllable_facts(row: dict, titles: list[str]) -> list[tuple[str, str]]:
    """The facts `datagen render` shows beside a controllable row (none for I4 chat)."""
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
