"""`datagen instructrec`: the InstructRec dataset of Zhang et al. 2023 from the command line.

$ datagen instructrec build/amazon-Gift_Cards
$ datagen render build/amazon-Gift_Cards --family instructrec --task select
"""

from __future__ import annotations

import os

import click
from rich.table import Table

from datagen.buildfolder import BuildFolder
from datagen.errors import DataError
from datagen.family.rows import named_items
from datagen.instructrec.build import DATASET, DEFAULT_ANNOTATOR_MODEL, SPLITS, TASKS, InstructRecSettings, generate_instructrec
from datagen.layout import skipped_per_template
from datagen.lm.chat import BASE_URL_ENV
from datagen.options import EXECUTOR_OPTION, TEMPLATES_OPTION, WORKERS_OPTION, FiniteRange, resolve_titled_build
from datagen.progress import StepProgress
from datagen.publish.validate import sealed_edit
from datagen.terminal import stdout_console

console = stdout_console()


@click.command(
    short_help="Fill InstructRec's 39 appendix templates (Zhang et al. 2023) from a BUILD.",
    epilog="""\b
Examples:
  datagen instructrec build/steam
  datagen instructrec build/amazon-Gift_Cards --negatives teacher
  datagen instructrec build/steam --workers 8
  datagen instructrec build/amazon-Gift_Cards --annotator local
  datagen instructrec build/amazon-Gift_Cards --annotator openai --annotator-url http://127.0.0.1:8080/v1 --annotator-model smollm2
""",
)
@click.argument("build_name", metavar="BUILD")
@click.option("--negatives", type=click.Choice(["random", "teacher"]), default="random", show_default=True,
              help="T3 negatives: random items the user never had, or the SASRec teacher's best-ranked ones (hard, section 3.3.1).")  # fmt: skip
@click.option("--candidates", type=click.IntRange(min=2), default=10, show_default=True, help="T3 candidates: the target and negatives.")
@click.option("--max-history", type=click.IntRange(min=1), default=20, show_default=True, help="P1: the most recent titles shown.")
@click.option("--validation-users", type=click.IntRange(min=0), default=3000, show_default=True, help="Users with validation rows (test has every user).")
@click.option("--annotator", type=click.Choice(["none", "local", "openai"]), default="none", show_default=True,
              help="Who writes P2 and I1: nobody (their templates are skipped), a local model, or an OpenAI-compatible server.")  # fmt: skip
@click.option("--annotator-model", help=f"local: a Hub id, folder, .gguf or package:DIST [default: {DEFAULT_ANNOTATOR_MODEL}]; openai: the served model's name.")
@click.option(
    "--annotator-url", metavar="URL", help="openai: the server's base URL, e.g. http://127.0.0.1:8080/v1 [default: $OPENAI_BASE_URL] (the key, if any, from $DATAGEN_LLM_API_KEY or $OPENAI_API_KEY)."
)
@click.option("--annotator-concurrency", type=click.IntRange(min=1), default=4, show_default=True, help="openai: requests in flight.")
@click.option("--annotator-rps", type=FiniteRange(min=0, min_open=True), help="openai: at most this many requests per second.")
@click.option(
    "--annotator-timeout", type=FiniteRange(min=0, min_open=True), default=600, show_default=True, help="openai: seconds one prompt may take, retries included (one request waits at most 120)."
)
@TEMPLATES_OPTION
@click.option("--seed", type=int, help="Seed for sample points, templates, negatives and positions [default: the build's].")
@click.option("--device", default="auto", show_default=True, help="Device for the teacher (--negatives teacher).")
@WORKERS_OPTION
@EXECUTOR_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def instructrec(
    build_name,
    negatives,
    candidates,
    max_history,
    validation_users,
    annotator,
    annotator_model,
    annotator_url,
    annotator_concurrency,
    annotator_rps,
    annotator_timeout,
    template_dirs,
    seed,
    device,
    workers,
    executor,
    quiet,
):
    """Fill InstructRec's appendix templates (Zhang et al. 2023) from a BUILD.

    Each template is tagged with its preference (P0-P2), intention (I0-I2) and
    task form (T0 yes/no, T2 generation, T3 selection among 10). The explicit
    preference (P2) and vague intention (I1) are written by a teacher LLM in the
    paper: --annotator local or openai writes them (answers cached in
    $DATAGEN_CACHE/annotations.sqlite, so a rebuild asks nothing twice);
    without one, templates that need them are skipped, and the report and card
    count them. The specific intention (I2) is the target's category path.
    Writes data/instructrec/, templates/instructrec/ and reports/instructrec.{json,md},
    then the manifest and the card.
    """
    folder = resolve_titled_build(build_name, "instructrec")
    settings = InstructRecSettings(
        annotator=annotator_spec(annotator, annotator_model, annotator_url, annotator_concurrency, annotator_rps, annotator_timeout),
        seed=folder.manifest["parameters"]["seed"] if seed is None else seed,
        max_history=max_history,
        candidates=candidates,
        negatives=negatives,
        validation_users=validation_users,
        template_dirs=tuple(template_dirs),
        device=device,
        workers=workers,
        executor=executor,
    )
    with sealed_edit(folder.path, "datagen instructrec") as staged:  # refused on a tampered build; a kill leaves the old build or the new one
        report = generate_instructrec(BuildFolder.open(staged), settings, StepProgress(quiet=quiet))
    if not quiet:
        print_report(report)
    click.echo(str(folder.path / "data" / DATASET))


def annotator_spec(kind: str, model: str | None, url: str | None, concurrency: int, requests_per_second: float | None, total_timeout: float) -> dict | None:
    if kind == "none":
        return None
    if kind == "local":
        return {"backend": "local", "model": model or DEFAULT_ANNOTATOR_MODEL}
    url = url or os.environ.get(BASE_URL_ENV)
    if not url or not model:
        raise DataError(f"--annotator openai needs --annotator-url (or ${BASE_URL_ENV}) and --annotator-model", hint="e.g. --annotator-url http://127.0.0.1:8080/v1 --annotator-model smollm2")
    return {"backend": "openai", "url": url, "model": model, "concurrency": concurrency, "requests_per_second": requests_per_second, "total_timeout": total_timeout}


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
            console.print(f"templates not used ({reason}): {', '.join(templates)}")
    if report["annotator"]:
        a, run = report["annotator"], report["annotation_run"]
        console.print(
            f"annotations by {a['model']}: {a['asked']:,} asked; {run['generated']:,} generated in {run['seconds']:.1f} s,"
            f" {run['repeated']:,} repeated prompts, {run['cached']:,} from the cache; {a['empty']:,} empty"
        )
    console.print("[green]Label checks passed[/green]: answers are the target; T3 candidates hold it once and nothing the user has; T0 Yes exactly for the target, balanced.")


def instructrec_facts(row: dict, titles: list[str]) -> list[tuple[str, str]]:
    """The facts `datagen render` shows beside an instructrec row."""

    def named(ids):
        return named_items(ids, titles)

    return [
        ("task", f"{row['task']} {row['instruction_format']}"),
        ("history", named(row["history_item_ids"])),
        ("target", named([row["target_item_id"]])),
        ("query from", row["query_kind"] or "-"),
        ("specific intention", row["specific_intention"] or "-"),
        ("candidates", named(row["candidate_item_ids"])),
    ]
