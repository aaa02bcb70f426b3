"""The `datagen` command line: thin wrappers over the library.

$ datagen build steam                       # the shipped sample
$ datagen build steam --raw-dir data/steam  # the real files
$ datagen sources
$ datagen stats build/steam
"""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import click
import polars as pl
from rich.console import Console
from rich.table import Table

from datagen import __version__
from datagen.browse import render, templates
from datagen.cache import RAW_CACHE, writable_cache_dir
from datagen.errors import DataError
from datagen.families import FAMILIES
from datagen.ingest.presets import PRESETS
from datagen.options import EXECUTOR_OPTION, TEMPLATES_OPTION, WORKERS_OPTION, FiniteRange, resolve_build
from datagen.output import check_writable
from datagen.progress import StepProgress
from datagen.publish.cli import card, export, push, validate
from datagen.publish.release import DEFAULT_VERSION
from datagen.sources.download import download, official_files
from datagen.teacher.cli import teacher
from datagen.teacher.settings import LABEL_SOURCE_CHOICES, TeacherSettings, TrainConfig
from datagen.terminal import stdout_console
from datagen.training.cli import evaluate, recipes, train

console = stdout_console()


# Disk full, file too large for a limit, quota, read-only file system. Arrow and Polars
# raise them as OSError with the errno only in the message: "[errno 28] No space left on device".
FULL_DISK_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS)


def is_full_disk(error: OSError) -> bool:
    return error.errno in FULL_DISK_ERRNOS or any(f"errno {number}]" in str(error) for number in FULL_DISK_ERRNOS)


class DataErrorGroup(click.Group):
    """Shows a DataError, or a disk that cannot take the output, as a plain message with exit code 1, never a traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except DataError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(1)
        except OSError as error:
            if not is_full_disk(error):
                raise
            where = f" ({error.filename})" if error.filename else ""
            click.echo(
                f"Error: could not write{where}: {error.strerror or error}\n"
                "    datagen writes through temporary files, so nothing is left half-written and a build being changed is as it was.\n"
                "    Free some space (or raise the limit), or write elsewhere (--out, $DATAGEN_CACHE).",
                err=True,
            )
            sys.exit(1)


@click.group(cls=DataErrorGroup, context_settings={"max_content_width": 120})
@click.version_option(__version__, prog_name="datagen")
def main() -> None:
    """Turn raw recommendation logs into instruction datasets for LLM recommenders.

    \b
    Start here:
      datagen build steam                 build the Steam sample shipped with datagen
      datagen sources                     what can be built, with which options
      datagen stats steam                 Table 1 and what cleaning dropped (build/steam, else build/steam-sample)
      datagen teacher --help              the SASRec teacher: train, eval, rank
      datagen render steam --task i2      generated rows with their facts
      datagen recknowledge steam          Cao et al.'s retrieval, ranking, rating, MIM, MLM, BPR rows
      datagen instructrec steam           InstructRec's templates filled from the build
      datagen templates                   the prompt templates, and how to add yours
      datagen validate steam              check a dataset folder before a push
      datagen push steam --repo ORG/NAME --dry-run
                                          what would go to the Hub (drop --dry-run to push)
      datagen recipes ls                  the shipped training recipes (cp one to edit it)
      datagen train sft steam/smollm2-135m/sft
                                          LoRA SFT as a recipe says (see recipes/)
      datagen train ppo steam/smollm2-135m/ppo
                                          PPO on the SFT model with the paper's token-level rewards
      datagen train grpo steam/smollm2-135m/grpo
                                          GRPO on the SFT model, rewarded by the paper's rules
      datagen eval --recipe steam/smollm2-135m/sft --model sft=runs/steam-smollm2-135m-sft/merged
                                          the paper's metrics and tables for any model
    """


def _parse_options(values: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for value in values:
        key, sep, setting = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{value!r} is not KEY=VALUE", param_hint="--option")
        options[key] = setting
    return options


def family_options(command):
    """`datagen build`'s options of each dataset family (its flag, then the options it adds), in FAMILIES order."""
    for family in reversed(FAMILIES):
        for option in reversed((family.build_flag, *family.build_options)):
            command = option(command)
    return command


@main.command(
    epilog="""\b
Examples:
  datagen build steam
      the small real Steam sample shipped with datagen (offline)
  datagen build steam --raw-dir $DATAGEN_DATA/steam
      the real UCSD files; or set DATAGEN_DATA to a folder holding steam/
  datagen build steam --raw-dir $DATAGEN_DATA/steam --preset lu2024 --option category_field=tags
      Lu et al.'s 25/10-core, with Steam tags as categories (the sample is too small for that core)
  datagen build amazon:Gift_Cards --raw-dir ../shared/data/amazon
  datagen build table:examples/scientific.yaml --raw-dir ../shared/data/catalogs/scientific
      any catalog described by a YAML file
  datagen build steam --no-teacher
      canonical tables only (the teacher can follow: datagen teacher train build/steam-sample)
  datagen build steam --raw-dir ../shared/data/steam --chat sharegpt.json
      with I4: ShareGPT conversations mixed into train at --chat-ratio (0.5)
  datagen build amazon:Gift_Cards --raw-dir ../shared/data/amazon --recknowledge --instructrec
      also Cao et al. 2024's retrieval, ranking, rating, MIM, MLM and BPR rows, and InstructRec's
  datagen build amazon:Gift_Cards --raw-dir ../shared/data/amazon --review-texts
      with reviews.parquet, the texts InstructRec's annotator turns into vague intentions
  datagen build steam --raw-dir ../shared/data/steam --version 1.1.0
      the version the card and manifest record, and `datagen push` tags (v1.1.0)
"""
)
@click.argument("source", metavar="SOURCE[:ARG]")
@click.option("--raw-dir", type=click.Path(path_type=Path), help="Folder with the raw files (default: $DATAGEN_DATA/<source>, then the download cache, then the shipped sample).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Output folder [default: build/<name>].")
@click.option("--preset", type=click.Choice(sorted(PRESETS)), help="A paper's preprocessing settings (see `datagen sources`).")
@click.option("--user-core", type=click.IntRange(min=1), help="Keep users with at least this many interactions [default: 5; at least 3 for the split].")
@click.option("--item-core", type=click.IntRange(min=1), help="Keep items with at least this many interactions [default: 5].")
@click.option("--max-title-tokens", type=click.IntRange(min=1), help="Cap titles at this many word pieces [default: 64].")
@click.option("--max-users", type=click.IntRange(min=1), help="Sub-sample this many users (with --seed) before k-core.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed for everything random in the build.")
@click.option("--max-bad-share", type=FiniteRange(0, 1), default=0.01, show_default=True, help="Share of bad rows per file that are skipped and counted; more is an error.")
@click.option("--option", "-O", "options", multiple=True, metavar="KEY=VALUE", help="A source option, e.g. category_field=tags (see `datagen sources`).")
@click.option(
    "--teacher",
    "label_source",
    type=click.Choice(LABEL_SOURCE_CHOICES),
    default="auto",
    show_default=True,
    help="Train the SASRec teacher into <out>/teacher/ (resumed from the cache, or reused from the previous build when data and settings match); what ranks items for the labels: sasrec, cooccurrence, or auto (the better on validation NDCG@10).",
)
@click.option("--no-teacher", is_flag=True, help="Canonical tables only: no teacher, so no controllable dataset.")
@click.option(
    "--teacher-epochs",
    type=click.IntRange(min=1),
    default=TrainConfig.epochs,
    show_default=True,
    help="At most this many teacher epochs (early stopping on validation NDCG@10; `datagen teacher train --help` has every setting).",
)
@click.option("--device", default="auto", show_default=True, help="Device for the teacher: cpu, cuda, ... (auto: CUDA when present).")
@family_options
@click.option(
    "--review-texts", is_flag=True, help="Keep the reviews' texts in <out>/reviews.parquet, for InstructRec's vague intentions (`datagen instructrec --annotator`); otherwise they are not read."
)
@TEMPLATES_OPTION
@WORKERS_OPTION
@EXECUTOR_OPTION
@click.option(
    "--version",
    "dataset_version",
    default=DEFAULT_VERSION,
    show_default=True,
    metavar="X.Y.Z",
    help="The dataset's semantic version, recorded in the manifest and card; `datagen push` tags it vX.Y.Z.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def build(
    source,
    raw_dir,
    out_dir,
    preset,
    user_core,
    item_core,
    max_title_tokens,
    max_users,
    seed,
    max_bad_share,
    options,
    label_source,
    no_teacher,
    teacher_epochs,
    device,
    review_texts,
    template_dirs,
    workers,
    executor,
    dataset_version,
    quiet,
    **family_values,
):
    """Clean, filter and split a SOURCE, train its teacher, and generate the task data.

    The output folder is a Hugging Face dataset repository: configs items,
    interactions and controllable (and recknowledge, instructrec) under data/ (the controllable dataset's label
    checks in reports/, `datagen render --help`), the templates used,
    manifest.json (version, content hash, input checksums, parameters, rows
    dropped at each step, every file's sha256), the generated card README.md
    with its plots, stats.md (Table 1 of Lu et al.), and teacher/ (SASRec and
    its evaluation beside two baselines; `datagen teacher --help`). The folder
    appears only once complete; `datagen push` uploads it.
    """
    from datagen.pipeline import BuildConfig
    from datagen.pipeline import build as run_build

    values = {**family_values, "seed": seed, "template_dirs": tuple(template_dirs), "device": device, "workers": workers, "executor": executor}

    config = BuildConfig(
        source=source,
        raw_dir=raw_dir,
        out_dir=out_dir,
        preset=preset,
        user_core=user_core,
        item_core=item_core,
        max_title_tokens=max_title_tokens,
        max_users=max_users,
        seed=seed,
        max_bad_share=max_bad_share,
        options=_parse_options(options),
        teacher=None if no_teacher else TeacherSettings(label_source=label_source, train=TrainConfig(epochs=teacher_epochs, seed=seed, device=device)),
        families={family.name: family.build_settings(values) for family in FAMILIES if family_values[family.name]},
        version=dataset_version,
        review_texts=review_texts,
    )
    result = run_build(config, StepProgress(quiet=quiet))
    if not quiet:
        _print_summary(result.manifest)
        _print_teacher_summary(result.out_dir / "teacher" / "report.json")
        for family in FAMILIES:
            report = result.out_dir / "reports" / f"{family.name}.json"
            if family_values[family.name] and report.is_file():
                family.print_report(json.loads(report.read_text()))
    click.echo(str(result.out_dir))


@main.command(epilog="\b\nExamples:\n  datagen sources\n  datagen sources --json")
@click.option("--json", "as_json", is_flag=True, help="Print the sources and presets as JSON.")
def sources(as_json):
    """List the sources (catalog adapters), their options, and the presets."""
    from datagen.sources import available_sources

    if as_json:
        listing = {
            "sources": [
                {"name": name, "reads": cls.summary, "argument": cls.argument or None, "options": {key: {"default": default, "help": text} for key, (default, text) in cls.options.items()}}
                for name, cls in available_sources().items()
            ],
            "presets": {name: dict(preset) for name, preset in PRESETS.items()},
        }
        click.echo(json.dumps(listing, indent=2))
        return
    table = Table(title="Sources: datagen build SOURCE[:ARG]", show_lines=True)
    for column in ("source", "reads", "ARG", "options (-O KEY=VALUE)"):
        table.add_column(column)
    for name, cls in available_sources().items():
        options = "\n".join(f"{key}: {help_text}" + (f" [default: {default}]" if default else "") for key, (default, help_text) in cls.options.items())
        table.add_row(name, cls.summary, cls.argument or "-", options or "-")
    console.print(table)
    presets = Table(title="Presets: datagen build SOURCE --preset NAME")
    for column in ("preset", "user core", "item core", "history", "from"):
        presets.add_column(column)
    for name, preset in PRESETS.items():
        presets.add_row(name, str(preset["user_core"]), str(preset["item_core"]), str(preset["max_history"]), preset["about"])
    console.print(presets)


@main.command(epilog="\b\nExample:\n  datagen stats build/steam-sample\n  datagen stats build/steam --json")
@click.argument("build", metavar="BUILD")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest's stats and report as JSON.")
def stats(build, as_json):
    """Show a build's Table 1 statistics and the rows each cleaning step dropped. BUILD: a build folder, or a name looked up in build/."""
    folder = resolve_build(build)
    manifest = folder.manifest
    if as_json:
        click.echo(json.dumps({"stats": manifest["stats"], "report": manifest["report"]}, indent=2))
        return
    _print_summary(manifest)
    sequences = pl.read_parquet(folder.path / "sequences.parquet", columns=["length"])["length"]
    console.print(f"history length: min {sequences.min()}, median {sequences.median():g}, max {sequences.max()}")


@main.command(
    "download",
    epilog="""\b
Examples:
  datagen download steam
  datagen download amazon:Gift_Cards
  datagen download amazon:Movies_and_TV --reviews full --dest data/amazon
  datagen download amazon:Video_Games --release 2023
  datagen download movielens:ml-1m
  datagen download recbole:amazon-beauty     (then: datagen build recbole:Amazon_Beauty)
""",
)
@click.argument("spec", metavar="SOURCE[:ARG]")
@click.argument("category", required=False)
@click.option("--reviews", type=click.Choice(["5core", "full", "ratings"]), default="5core", show_default=True, help="Amazon 2018: which reviews file.")
@click.option("--release", type=click.Choice(["2018", "2023"]), default="2018", show_default=True, help="Amazon: Amazon Review Data 2018 (amazon_v2) or Amazon Reviews 2023.")
@click.option("--dest", type=click.Path(path_type=Path), help="Folder to save into [default: the cache, $DATAGEN_CACHE/raw/<source>].")
@click.option("--base-url", help="A mirror of the official files (same layout), tried instead of the official hosts.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def download_command(spec, category, reviews, release, dest, base_url, quiet):
    """Fetch the official raw files of steam, amazon:CATEGORY, movielens:RELEASE or recbole:NAME (resumable, verified).

    Each file comes from the lab's current host, else its old host (Amazon 2023:
    the Hub dataset McAuley-Lab/Amazon-Reviews-2023); MovieLens and RecBole zips
    are unpacked. `datagen build` then finds them without --raw-dir.
    """
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    source, _, argument = spec.partition(":")
    if argument and category:
        raise click.UsageError(f"give the argument once: `datagen download {spec}`")
    if dest:
        check_writable(dest)  # a read-only --dest fails before any request
    folder = dest or writable_cache_dir(RAW_CACHE, source)  # so does the cache, naming $DATAGEN_CACHE
    remotes = official_files(source, argument or category or None, reviews, base_url, release)
    with Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), disable=quiet, console=Console(stderr=True)) as bar:
        for remote in remotes:
            task = bar.add_task(remote.name, total=None)
            path = download(remote, folder, lambda done, total, task=task: bar.update(task, completed=done, total=total))
            click.echo(str(path))


main.add_command(teacher)
for family in FAMILIES:
    main.add_command(family.command)
main.add_command(render)
main.add_command(templates)
main.add_command(validate)
main.add_command(card)
main.add_command(push)
main.add_command(export)
main.add_command(train)
main.add_command(recipes)
main.add_command(evaluate)


def _print_teacher_summary(report_path: Path) -> None:
    if not report_path.is_file():
        return
    report = json.loads(report_path.read_text())
    full = report["evaluation"]["full"]
    table = Table(title=f"SASRec teacher, full ranking (best epoch {report['training']['best_epoch']}; all metrics: teacher/report.md)")
    for column in ("model", "validation HR@10", "validation NDCG@10", "test HR@10", "test NDCG@10"):
        table.add_column(column, justify="right")
    for model in full["test"]:
        table.add_row(model, *(f"{full[split][model][metric]:.4f}" for split in ("validation", "test") for metric in ("HR@10", "NDCG@10")))
    console.print(table)


def _print_summary(manifest: dict) -> None:
    stats = manifest["stats"]
    table = Table(title=f"{manifest['name']} (Table 1)")
    for column in ("#Users", "#Items", "#Inters", "#Sparsity", "items w/o category"):
        table.add_column(column, justify="right")
    table.add_row(f"{stats['users']:,}", f"{stats['items']:,}", f"{stats['interactions']:,}", f"{stats['sparsity']:.2%}", f"{stats['items_without_category']:,}")
    console.print(table)
    steps = Table(title="Cleaning")
    for column in ("step", "table", "before", "after", "dropped", "why"):
        steps.add_column(column)
    for step in manifest["report"]["steps"]:
        steps.add_row(step["step"], step["table"], f"{step['before']:,}", f"{step['after']:,}", f"{step['dropped']:,}", step["why"])
    console.print(steps)
    for bad in manifest["report"]["bad_rows"]:
        console.print(f"skipped bad {bad['what']} in {bad['file']}: {bad['rows']:,} (field {bad['field']}: {bad['reason']}; first at line {bad['first_line']})")
