"""`datagen instructrec`: the InstructRec dataset of Zhang et al. 2023 from the command line.

    $ datagen instructrec build/amazon-gift_cards
    $ datagen render build/amazon-gift_cards --dataset instructrec --task select
"""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from datagen.controllable.cli import TEMPLATES_OPTION, resolve_build
from datagen.instructrec.build import DATASET, SPLITS, TASKS, InstructRecSettings, generate_instructrec, skipped_per_template
from datagen.progress import StepProgress
from datagen.publish.release import finalize

console = Console()


@click.command(
    epilog="""\b
Examples:
  datagen instructrec build/steam
  datagen instructrec build/amazon-gift_cards --negatives teacher
"""
)
@click.argument("build_name", metavar="BUILD")
@click.option("--negatives", type=click.Choice(["random", "teacher"]), default="random", show_default=True,
              help="T3 negatives: random items the user never had, or the SASRec teacher's best-ranked ones (hard, section 3.3.1).")  # fmt: skip
@click.option("--candidates", type=click.IntRange(min=2), default=10, show_default=True, help="T3 candidates: the target and negatives.")
@click.option("--max-history", type=click.IntRange(min=1), default=20, show_default=True, help="P1: the most recent titles shown.")
@click.option("--valid-users", type=click.IntRange(min=0), default=3000, show_default=True, help="Users with validation rows (test has every user).")
@TEMPLATES_OPTION
@click.option("--seed", type=int, help="Seed for sample points, templates, negatives and positions [default: the build's].")
@click.option("--device", default="auto", show_default=True, help="Device for the teacher (--negatives teacher).")
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def instructrec(build_name, negatives, candidates, max_history, valid_users, template_dirs, seed, device, quiet):
    """Fill InstructRec's appendix templates (Zhang et al. 2023) from a BUILD.

    Each template is tagged with its preference (P0-P2), intention (I0-I2) and
    task form (T0 yes/no, T2 generation, T3 selection among 10). The explicit
    preference (P2) and vague intention (I1) are written by a teacher LLM in the
    paper; templates that need them are skipped, and the report and card count
    them. The specific intention (I2) is the target's category path.
    Writes data/instructrec/, templates/instructrec/ and reports/instructrec.{json,md},
    then the manifest and the card.
    """
    folder = resolve_build(build_name)
    settings = InstructRecSettings(
        seed=folder.manifest["parameters"]["seed"] if seed is None else seed,
        max_history=max_history,
        candidates=candidates,
        negatives=negatives,
        valid_users=valid_users,
        template_dirs=tuple(template_dirs),
        device=device,
    )
    report = generate_instructrec(folder, settings, StepProgress(quiet=quiet))
    finalize(folder.path)
    if not quiet:
        print_report(report)
    click.echo(str(folder.path / "data" / DATASET))


def print_report(report: dict) -> None:
    rows = Table(title="InstructRec dataset: rows (per template: reports/instructrec.md)")
    rows.add_column("task")
    for split in SPLITS:
        rows.add_column(split, justify="right")
    for task in TASKS:
        rows.add_row(task, *(f"{report['rows'][split].get(task, 0):,}" for split in SPLITS))
    console.print(rows)
    skipped = skipped_per_template(report)
    if skipped:
        reasons: dict[str, list[str]] = {}
        for (template, reason), _ in skipped.items():
            reasons.setdefault(reason, []).append(template.split("/")[-1])
        for reason, templates in reasons.items():
            console.print(f"templates not used where {reason}: {', '.join(templates)}")
    if report["label_check_failures"]:
        console.print(f"[bold red]Label checks failed:[/bold red] {'; '.join(report['label_check_failures'])}")
    else:
        console.print("[green]Label checks passed[/green]: answers are the target; T3 candidates hold it once and nothing the user has; T0 Yes exactly for the target, balanced.")


def instructrec_facts(row: dict, titles: list[str]) -> list[tuple[str, str]]:
    """The facts `datagen render` shows beside an instructrec row."""

    def named(ids):
        return "; ".join(f"{titles[i]} [{i}]" for i in ids) if ids else "-"

    return [
        ("task", f"{row['task']} {row['instruction_format']}"),
        ("history", named(row["history_item_ids"])),
        ("target", named([row["target_item_id"]])),
        ("query from", row["query_kind"] or "-"),
        ("specific intention", row["specific_intention"] or "-"),
        ("candidates", named(row["candidate_item_ids"])),
    ]
