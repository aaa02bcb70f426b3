"""`datagen teacher train|eval|rank`: the SASRec teacher of a build, from the command line.

Each command imports the teacher's torch code when it runs, so `datagen --help` does not.

    $ datagen teacher train build/steam
    $ datagen teacher eval build/steam --json
    $ datagen teacher rank build/steam --user 12 --include-category Strategy --top 5
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
import polars as pl
from rich.table import Table

from datagen.buildfolder import BuildFolder
from datagen.cache import cache_root, writable_cache_dir
from datagen.errors import DataError
from datagen.options import EXECUTOR_OPTION, WORKERS_OPTION, FiniteRange, resolve_build
from datagen.progress import StepProgress
from datagen.publish.validate import sealed_edit
from datagen.teacher.settings import (
    FULL_SOFTMAX_MAX_ITEMS,
    LABEL_SOURCE_CHOICES,
    OBJECTIVES,
    SPLITS,
    EvalSettings,
    TeacherSettings,
    TrainConfig,
)
from datagen.terminal import stdout_console

console = stdout_console()
BUILD_ARGUMENT = click.argument("build_dir", metavar="BUILD")  # a build folder, or a name looked up in build/
DEVICE_OPTION = click.option("--device", default="auto", show_default=True, help="cpu, cuda, cuda:1 ... (auto: CUDA when present).")
LABEL_SOURCE_OPTION = click.option(
    "--teacher",
    "label_source",
    type=click.Choice(LABEL_SOURCE_CHOICES),
    default="auto",
    show_default=True,
    help="What ranks items for the labels: sasrec, cooccurrence, or auto (the better on validation NDCG@10).",
)


@click.group()
def teacher() -> None:
    """Train, evaluate and query the SASRec teacher that augments labels.

    \b
    The teacher of a build lives in BUILD_DIR/teacher/ (model.safetensors,
    config.json, report.json, report.md). `datagen build` trains it too,
    unless --no-teacher.
    """


TRAIN_DEFAULTS = TrainConfig()
SETTINGS_DEFAULTS = TeacherSettings()
EVAL_USERS_OPTION = click.option(
    "--eval-users",
    type=click.IntRange(min=0),
    default=EvalSettings.users,
    show_default=True,
    help="Evaluate on at most this many users, the same seeded sample for validation and test (0: every user).",
    callback=lambda _context, _parameter, users: users or None,  # EvalSettings.users: None for every user
)


@teacher.command(
    epilog=f"""\b
Examples:
  datagen teacher train build/steam
  datagen teacher train build/steam --epochs 20 --dim 64 --device cuda
  datagen teacher train build/amazon-games-sasrec --objective sampled-softmax --negatives 512
  datagen teacher train build/steam --teacher sasrec
      labels from SASRec even where co-occurrence does better on validation
\b
Objectives (--objective): softmax over every item; sampled-softmax over
NEGATIVES items drawn half by popularity, half uniformly, with the logQ correction; bce, the paper's
one negative per position. auto: softmax up to {FULL_SOFTMAX_MAX_ITEMS:,} items, else sampled-softmax.
The training state is kept in $DATAGEN_CACHE/teacher-training/ after every
epoch: run the same command again after a kill and it goes on from there.
"""
)
@BUILD_ARGUMENT
@click.option("--epochs", type=click.IntRange(min=1), default=TRAIN_DEFAULTS.epochs, show_default=True, help="At most this many epochs.")
@click.option("--patience", type=click.IntRange(min=1), default=TRAIN_DEFAULTS.patience, show_default=True, help="Stop after this many validations without a better validation NDCG@10.")
@click.option("--validate-every", type=click.IntRange(min=1), default=TRAIN_DEFAULTS.validate_every, show_default=True, help="Epochs between validations.")
@click.option(
    "--validation-users",
    type=click.IntRange(min=1),
    default=TRAIN_DEFAULTS.validation_users,
    show_default=True,
    help="Validate on at most this many users (a seeded sample); the final report uses --eval-users.",
)
@click.option("--objective", type=click.Choice(OBJECTIVES), default=TRAIN_DEFAULTS.objective, show_default=True, help="Training loss (see below).")
@click.option("--negatives", type=click.IntRange(min=1), default=TRAIN_DEFAULTS.negatives, show_default=True, help="sampled-softmax: negatives per batch.")
@click.option("--batch-size", type=click.IntRange(min=1), default=TRAIN_DEFAULTS.batch_size, show_default=True)
@click.option("--lr", "learning_rate", type=FiniteRange(min=0, min_open=True), default=TRAIN_DEFAULTS.learning_rate, show_default=True, help="Adam learning rate.")
@click.option(
    "--lr-decay",
    type=FiniteRange(0, 1, min_open=True),
    default=TRAIN_DEFAULTS.lr_decay,
    show_default=True,
    help="Multiply the learning rate by this after each validation that is not the best so far (1: constant).",
)
@click.option(
    "--min-epochs",
    type=click.IntRange(min=0),
    default=TRAIN_DEFAULTS.min_epochs,
    show_default=True,
    help="Validations up to this epoch neither stop training nor lower the learning rate.",
)
@click.option(
    "--average-epochs",
    type=FiniteRange(min=0),
    default=TRAIN_DEFAULTS.average_epochs,
    show_default=True,
    help="Validate and keep a moving average of the weights over about this many epochs (0: the weights as trained).",
)
@click.option(
    "--label-smoothing",
    type=FiniteRange(0, 1, max_open=True),
    default=TRAIN_DEFAULTS.label_smoothing,
    show_default=True,
    help="softmax and sampled-softmax: the share of the target's probability spread over the other items.",
)
@click.option("--max-history", type=click.IntRange(min=1), default=SETTINGS_DEFAULTS.max_history, show_default=True, help="Items the teacher reads (its own, not the prompts').")
@click.option("--dim", type=click.IntRange(min=2), default=SETTINGS_DEFAULTS.dim, show_default=True, help="Embedding and hidden size.")
@click.option("--inner-dim", type=click.IntRange(min=1), default=SETTINGS_DEFAULTS.inner_dim, show_default=True, help="Feed-forward size.")
@click.option("--layers", type=click.IntRange(min=1), default=SETTINGS_DEFAULTS.layers, show_default=True)
@click.option("--heads", type=click.IntRange(min=1), default=SETTINGS_DEFAULTS.heads, show_default=True)
@click.option("--dropout", type=FiniteRange(0, 1, max_open=True), default=SETTINGS_DEFAULTS.dropout, show_default=True)
@LABEL_SOURCE_OPTION
@EVAL_USERS_OPTION
@click.option("--seed", type=int, default=TRAIN_DEFAULTS.seed, show_default=True)
@DEVICE_OPTION
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
def train(
    build_dir,
    epochs,
    patience,
    validate_every,
    validation_users,
    objective,
    negatives,
    batch_size,
    learning_rate,
    lr_decay,
    min_epochs,
    average_epochs,
    label_smoothing,
    max_history,
    dim,
    inner_dim,
    layers,
    heads,
    dropout,
    label_source,
    eval_users,
    seed,
    device,
    quiet,
):
    """Train SASRec on BUILD_DIR's train split, early-stopped on validation NDCG@10.

    Then evaluates it beside most-popular and co-occurrence, warns when it does
    not beat co-occurrence, and writes BUILD_DIR/teacher/.
    """
    from datagen.teacher.folder import train_teacher

    folder = resolve_build(build_dir)
    settings = TeacherSettings(
        max_history=max_history,
        dim=dim,
        inner_dim=inner_dim,
        layers=layers,
        heads=heads,
        dropout=dropout,
        label_source=label_source,
        train=TrainConfig(
            epochs=epochs,
            patience=patience,
            validate_every=validate_every,
            validation_users=validation_users,
            objective=objective,
            negatives=negatives,
            batch_size=batch_size,
            learning_rate=learning_rate,
            lr_decay=lr_decay,
            min_epochs=min_epochs,
            average_epochs=average_epochs,
            label_smoothing=label_smoothing,
            seed=seed,
            device=device,
        ),
    )
    _check_settings(settings)
    with sealed_edit(folder.path, "datagen teacher train") as staged:  # refused on a tampered build; a kill leaves the old build or the new one
        train_teacher(BuildFolder.open(staged), settings, StepProgress(quiet=quiet), EvalSettings(users=eval_users))
    if not quiet:
        console.print((folder.path / "teacher" / "report.md").read_text())
    click.echo(str(folder.path / "teacher"))


def _check_settings(settings: TeacherSettings) -> None:
    if settings.dim % settings.heads:
        raise click.BadParameter(f"--dim {settings.dim} must be divisible by --heads {settings.heads}", param_hint="--dim")
    from datagen.teacher.train import resolve_device

    try:
        resolve_device(settings.train.device)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--device") from error


@teacher.command(
    "eval",
    epilog="""\b
Examples:
  datagen teacher eval build/steam
  datagen teacher eval build/steam --negatives 100 --k 1 --k 10 --json
""",
)
@BUILD_ARGUMENT
@click.option(
    "--checkpoint", type=click.Path(exists=True, path_type=Path), help="Another teacher of this build's data: a model.safetensors with its config.json, or their folder [default: BUILD_DIR/teacher/]."
)
@click.option("--k", "ks", type=click.IntRange(min=1), multiple=True, default=(5, 10, 20), show_default=True, help="Cut-offs for HR@K, NDCG@K and MRR@K.")
@click.option("--negatives", type=click.IntRange(min=1), default=99, show_default=True, help="Sampled protocol: negatives per target.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the sampled negatives and of the user sample.")
@EVAL_USERS_OPTION
@DEVICE_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the metrics as JSON.")
def eval_command(build_dir, checkpoint, ks, negatives, seed, eval_users, device, as_json):
    """HR@K, NDCG@K and MRR@K of the teacher, most-popular and co-occurrence.

    Full ranking over every item the user has not interacted with, and
    1 target + NEGATIVES sampled uniformly and by popularity; validation and
    test. Kang & McAuley 2018 report 1 target + 100 uniform negatives
    (--negatives 100).
    """
    from datagen.teacher.evaluate import report_markdown
    from datagen.teacher.folder import evaluate_teacher, load_teacher

    folder = resolve_build(build_dir)
    loaded = load_teacher(folder, checkpoint, device)
    settings = EvalSettings(ks=tuple(sorted(set(ks))), negatives=negatives, seed=seed, users=eval_users)
    with StepProgress(quiet=as_json).step("Evaluating"):
        report = evaluate_teacher(folder, loaded, settings)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        console.print(report_markdown(report, negatives))


@teacher.command(
    epilog="""\b
Examples:
  datagen teacher rank build/steam --user 0 --user 1
      the top 10 for users 0 and 1 after their whole history (test split input)
  datagen teacher rank build/steam --user 0 --include-category Strategy --top 5
  datagen teacher rank build/steam --split validation --exclude-category Action --out ranks.parquet
      every user, written to a parquet file
  datagen teacher rank build/steam --out ranks.parquet --workers 8
      the batches shared among 8 processes (on a GPU, --workers 1 is usually best)
"""
)
@BUILD_ARGUMENT
@click.option("--user", "users", type=int, multiple=True, help="A user_id (see sequences.parquet) [default: every user].")
@click.option("--split", type=click.Choice(SPLITS), default="test", show_default=True, help="validation: rank after the train items; test: after train + validation.")
@click.option("--top", "top_n", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--include-category", "include", multiple=True, help="Only items with one of these categories (+C).")
@click.option("--exclude-category", "exclude", multiple=True, help="No items with any of these categories (-C).")
@click.option("--checkpoint", type=click.Path(exists=True, path_type=Path), help="Another teacher of this build's data (see `teacher eval`).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write every row (with target ranks) to this parquet file.")
@click.option("--no-cache", is_flag=True, help=f"Do not read or write the ranking cache ({cache_root() / 'teacher'}).")
@click.option("--json", "as_json", is_flag=True, help="Print every user's row as a JSON line (user, target, its rank, top items with titles).")
@DEVICE_OPTION
@WORKERS_OPTION
@EXECUTOR_OPTION
def rank(build_dir, users, split, top_n, include, exclude, checkpoint, out, no_cache, as_json, device, workers, executor):
    """The teacher's top items for users, with history excluded and category filters.

    Also gives the rank of each user's held-out target (the validation or test item)
    among the allowed items.
    """
    from datagen.teacher.evaluate import split_queries
    from datagen.teacher.folder import load_teacher
    from datagen.teacher.ranking import Spread, TeacherRanker

    folder = resolve_build(build_dir)
    loaded = load_teacher(folder, checkpoint, device)
    sequences = folder.sequences
    if users:
        unknown = sorted(set(users) - set(sequences["user_id"].to_list()))
        if unknown:
            raise DataError(f"no user_id {unknown[0]} in this build (user ids are 0..{sequences.height - 1})", path=folder.path / "sequences.parquet")
        sequences = sequences.filter(pl.col("user_id").is_in(list(users)))
    queries = split_queries(sequences, split)
    target = {"validation": "valid_item_id", "test": "test_item_id"}[split]
    requests = pl.DataFrame({"history": queries.inputs, "query_items": sequences.select(pl.concat_list(target))[target]})
    if include:
        requests = requests.with_columns(include_categories=pl.lit(list(include), dtype=pl.List(pl.String)))
    if exclude:
        requests = requests.with_columns(exclude_categories=pl.lit(list(exclude), dtype=pl.List(pl.String)))
    spread = Spread(folder.path, checkpoint, device, workers, executor)
    ranker = TeacherRanker(loaded, folder.items, cache_dir=None if no_cache else writable_cache_dir("teacher"), spread=spread)
    ranked = ranker.rank(requests, top_n).with_columns(user_id=sequences["user_id"], target_item_id=sequences[target])
    ranked = ranked.with_columns(target_rank=pl.col("query_ranks").list.first()).drop("query_items", "query_ranks")
    if out:
        temporary = out.with_name(f".{out.name}.tmp-{os.getpid()}")  # a reader never sees half a file
        ranked.write_parquet(temporary)
        os.replace(temporary, out)
        click.echo(str(out))
        return
    titles = dict(zip(folder.items["item_id"].to_list(), folder.items["title"].to_list()))
    if as_json:
        for row in ranked.iter_rows(named=True):
            top = [{"item_id": item, "title": titles[item]} for item in row["top_items"]]
            line = {"user_id": row["user_id"], "split": split, "target_item_id": row["target_item_id"], "target_rank": row["target_rank"], "allowed_count": row["allowed_count"], "top": top}
            click.echo(json.dumps(line))
        return
    for row in ranked.head(20).iter_rows(named=True):
        where = f"at rank {row['target_rank']}" if row["target_rank"] is not None else "not among the allowed items"
        table = Table(title=f"user {row['user_id']}: top {top_n} of {row['allowed_count']} allowed items; {split} target {titles[row['target_item_id']]!r} {where}")
        table.add_column("#", justify="right")
        table.add_column("item_id", justify="right")
        table.add_column("title")
        for position, item in enumerate(row["top_items"], 1):
            table.add_row(str(position), str(item), titles[item])
        console.print(table)
    if ranked.height > 20:
        console.print(f"({ranked.height - 20} more users; use --out FILE.parquet for all)")
