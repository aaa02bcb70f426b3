"""`datagen recknowledge`: the recommendation-knowledge dataset of Cao et al. 2024 from the command line.

$ datagen recknowledge build/amazon-Gift_Cards --epochs 3
$ datagen render build/amazon-Gift_Cards --family recknowledge --task mim
"""

from __future__ import annotations

import click
from rich.table import Table

from datagen.buildfolder import BuildFolder
from datagen.family.rows import named_items
from datagen.options import EXECUTOR_OPTION, TEMPLATES_OPTION, WORKERS_OPTION, resolve_titled_build
from datagen.progress import StepProgress
from datagen.publish.validate import sealed_edit
from datagen.recknowledge.build import DATASET, SPLITS, TASKS, RecKnowledgeSettings, generate_recknowledge
from datagen.terminal import stdout_console

console = stdout_console()


@click.command(
    short_help="Generate Cao et al. 2024's retrieval, ranking, rating, MIM, MLM and BPR rows for a BUILD.",
    epilog="""\b
Examples:
  datagen recknowledge build/steam
  datagen recknowledge build/amazon-Gift_Cards --epochs 3
  datagen recknowledge build/steam --window 10 --candidates 50 --catalog-noun "games on Steam"
  datagen recknowledge build/steam --workers 8
""",
)
@click.argument("build_name", metavar="BUILD")
@click.option("--epochs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Copies of MIM, MLM and BPR, each with fresh masks and negatives (the paper's dynamic sampling).")  # fmt: skip
@click.option("--window", type=click.IntRange(min=2), default=20, show_default=True, help="w: items per window (history and target).")
@click.option("--candidates", type=click.IntRange(min=2), default=100, show_default=True, help="Ranking candidates: the target and popularity-sampled negatives.")
@click.option("--validation-users", type=click.IntRange(min=0), default=3000, show_default=True, help="Users with a validation row (test has every user).")
@click.option("--catalog-noun", help="What the items are called in the prompts [default: 'Amazon products', 'Steam games', else the source's own noun: 'movies', a table config's catalog_noun].")
@TEMPLATES_OPTION
@click.option("--seed", type=int, help="Seed for short ids, masks, negatives and positions [default: the build's].")
@WORKERS_OPTION
@EXECUTOR_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def recknowledge(build_name, epochs, window, candidates, validation_users, catalog_noun, template_dirs, seed, workers, executor, quiet):
    """Generate Cao et al. 2024's retrieval, ranking, rating, MIM, MLM and BPR rows for a BUILD.

    Items are shown as "Item ID: I123, Title: ..." with short random ids (the
    mapping is the recknowledge_items config). Rating prediction needs ratings
    (Amazon has them, Steam does not; its rows are then skipped and counted).
    Writes data/recknowledge/, data/recknowledge_items/, templates/recknowledge/
    and reports/recknowledge.{json,md}, then the manifest and the card.
    """
    folder = resolve_titled_build(build_name, "recknowledge")
    settings = RecKnowledgeSettings(
        seed=folder.manifest["parameters"]["seed"] if seed is None else seed,
        window=window,
        candidates=candidates,
        validation_users=validation_users,
        epochs=epochs,
        catalog_noun=catalog_noun,
        template_dirs=tuple(template_dirs),
        workers=workers,
        executor=executor,
    )
    with sealed_edit(folder.path, "datagen recknowledge") as staged:  # refused on a tampered build; a kill leaves the old build or the new one
        report = generate_recknowledge(BuildFolder.open(staged), settings, StepProgress(quiet=quiet))
    if not quiet:
        print_report(report)
    click.echo(str(folder.path / "data" / DATASET))


def print_report(report: dict) -> None:
    rows = Table(title="Recommendation-knowledge dataset: rows (checks: reports/recknowledge.md)")
    rows.add_column("task")
    for split in SPLITS:
        rows.add_column(split, justify="right")
    for task in TASKS:
        rows.add_row(task, *(f"{report['rows'][split].get(task, 0):,}" for split in SPLITS))
    console.print(rows)
    for dropped in report["dropped"]:
        console.print(f"skipped: {dropped['split']}/{dropped['task']}: {dropped['reason']} ({dropped['count']:,})")
    console.print(
        "[green]Label checks passed[/green]: answers name the target; ranking and BPR candidates hold it once and nothing "
        "the user has; MIM answers are the masked items; MLM spans restore the text; rating labels match the ratings."
    )


def recknowledge_facts(row: dict, titles: list[str]) -> list[tuple[str, str]]:
    """The facts `datagen render` shows beside a recknowledge row."""

    def named(ids):
        return named_items(ids, titles)

    target = row["target_item_id"]
    return [
        ("task", f"{row['task']} (epoch {row['epoch']})"),
        ("history", named(row["history_item_ids"])),
        ("target", "-" if target is None else named([target])),
        ("target rating", "-" if row["target_rating"] is None else f"{row['target_rating']:g}"),
        ("candidates", f"{len(row['candidate_item_ids'])} items" if row["candidate_item_ids"] else "-"),
        ("masked positions", ", ".join(map(str, row["masked_positions"])) if row["masked_positions"] else "-"),
        ("label", named(row["label_item_ids"])),
    ]
