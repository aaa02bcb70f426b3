"""Read a dataset's configs (a local build folder or a Hub repo) and mix task rows for training.

    >>> rows = read_config("build/steam", "controllable", "test")  # doctest: +SKIP
    >>> train = training_rows(recipe.dataset)  # doctest: +SKIP
    >>> train.column_names  # doctest: +SKIP
    ['prompt', 'completion']

A mixture entry's `weight` is its share of the training stream: entries are
interleaved at random in those proportions (seeded, as
`datasets.interleave_datasets` does) until the first runs out, so no row is
repeated. Without weights, the entries are concatenated and shuffled.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl

from datagen.errors import DataError
from datagen.layout import data_files, read_split
from datagen.training.recipe import Component, DatasetSpec

TRAIN_COLUMNS = ["prompt", "completion"]


def read_config(path: str, config: str, split: str, revision: str | None = None) -> pl.DataFrame:
    """One split of one config, from a local dataset folder or (by repo id and revision) from the Hub."""
    local = Path(path)
    if local.is_dir():
        available = data_files(local)
        if split not in available.get(config, {}):
            have = ", ".join(f"{c}/{s}" for c in sorted(available) for s in available[c]) or "none"
            raise DataError(f"no {config}/{split} data; the folder has {have}", path=local)
        return read_split(local, config, split)
    if looks_local(path):
        sample = Path(f"{path.rstrip('/')}-sample")  # what `datagen build steam` makes from the shipped sample
        hint = (
            f"The shipped sample's build is {sample}: `dataset.path={sample}` for `datagen train`, `--dataset {sample}` for `datagen eval`."
            if sample.is_dir()
            else f"Run `datagen build SOURCE --out {path}` first (`datagen build` writes build/<name> by default), or point at another: `dataset.path=FOLDER` for `datagen train`, `--dataset FOLDER` for `datagen eval`."
        )
        raise DataError("no such dataset folder", path=local, hint=hint)
    import datasets

    try:
        loaded = datasets.load_dataset(path, config, split=split, revision=revision)
    except Exception as error:
        raise DataError(
            f"{path!r} is not a local folder, and as a Hub dataset its {config}/{split} could not be loaded (revision {revision or 'main'}): {type(error).__name__}: {error}",
            hint=f"For a local dataset run `datagen build SOURCE --out {path}` first (or point at another: `dataset.path=FOLDER` for `datagen train`, `--dataset FOLDER` for `datagen eval`); offline, Hub repos cannot be read.",
        ) from None
    return pl.from_arrow(loaded.with_format("arrow")[:])


def looks_local(path: str) -> bool:
    """A path, not a Hub repo id: it starts at `.`, `..`, `/` or `~`, or its first folder is here (`build/steam` when build/ exists)."""
    first = Path(path).parts[0] if Path(path).parts else ""
    return path.startswith((".", "/", "~")) or (len(Path(path).parts) > 1 and Path(first).is_dir())


def component_rows(spec: DatasetSpec, component: Component, split: str | None = None) -> pl.DataFrame:
    rows = read_config(spec.path, component.config, split or component.split, spec.revision)
    missing = [column for column in TRAIN_COLUMNS if column not in rows.columns]
    if missing:
        raise DataError(f"config {component.config!r} has no {'/'.join(missing)} column: it holds no chat rows to train on", path=spec.path)
    if component.tasks is not None:
        present = set(rows["task"].unique().to_list())
        absent = [task for task in component.tasks if task not in present]
        if absent and split is None:
            raise DataError(f"no rows of task {absent[0]!r} in {component.config}/{component.split}; it has {', '.join(sorted(present))}", path=spec.path)
        rows = rows.filter(pl.col("task").is_in(list(component.tasks)))
    return rows


def _as_dataset(rows: pl.DataFrame):
    import datasets

    return datasets.Dataset(rows.to_arrow())


def interleave(parts: list[pl.DataFrame], weights: list[float], seed: int) -> pl.DataFrame:
    """Rows drawn part by part with probabilities `weights` until the first part runs out
    (`datasets.interleave_datasets`' first_exhausted), done in Polars because the chat
    columns are nested and `datasets`' index mapping over them is slow."""
    rng = np.random.default_rng(seed)
    probabilities = np.asarray(weights, dtype=float) / sum(weights)
    draws = rng.choice(len(parts), size=sum(part.height for part in parts), p=probabilities)
    taken = [0] * len(parts)
    order = []
    for part in draws.tolist():
        if taken[part] == parts[part].height:
            break
        order.append((part, taken[part]))
        taken[part] += 1
    stacked = pl.concat([part.head(count) for part, count in zip(parts, taken)], how="vertical_relaxed")
    offsets = np.cumsum([0, *taken[:-1]])
    return stacked[[int(offsets[part] + row) for part, row in order]]


def rows_read(training: dict, rows_per_example: int = 1, processes: int | None = None) -> int | None:
    """How many rows of the stream a run of `max_steps` steps reads: steps x per-device batch x gradient accumulation
    x processes (`$WORLD_SIZE`, which `accelerate launch` sets), divided by `rows_per_example` (GRPO's answers per
    prompt); None for a run counted in epochs, which reads the whole stream."""
    steps = int(training.get("max_steps", -1))
    if steps <= 0:
        return None
    processes = processes or int(os.environ.get("WORLD_SIZE", "1"))
    per_step = int(training.get("per_device_train_batch_size", 8)) * int(training.get("gradient_accumulation_steps", 1)) * processes
    return max(1, steps * per_step // rows_per_example)


def training_rows(spec: DatasetSpec, columns: list[str] = TRAIN_COLUMNS, limit: int | None = None):
    """The training stream as a `datasets.Dataset` of `columns` (prompt/completion for SFT); `limit` keeps its first
    rows (`rows_read`), so a short run tokenizes only what it trains on."""
    parts = [component_rows(spec, component).select(columns).sample(fraction=1.0, shuffle=True, seed=spec.seed + number) for number, component in enumerate(spec.mixture)]
    if spec.mixture[0].weight is not None and len(parts) > 1:
        mixed = interleave(parts, [component.weight for component in spec.mixture], spec.seed)
    else:
        mixed = pl.concat(parts, how="vertical_relaxed").sample(fraction=1.0, shuffle=True, seed=spec.seed)
    for cap in (spec.max_train_rows, limit):
        if cap is not None:
            mixed = mixed.head(cap)
    return _as_dataset(mixed)


def evaluation_rows(spec: DatasetSpec, limit: int | None = None):
    """Held-out rows for the eval loss: the mixture's tasks in `eval_split`, or None when there are none; at most
    `eval_rows`, and at most `limit` (a short run's training rows: its eval shows the loss is computed, no more)."""
    if spec.eval_split is None:
        return None
    parts = []
    for component in spec.mixture:
        try:
            rows = component_rows(spec, component, spec.eval_split)
        except DataError:  # this config has no such split (training already read every config it names)
            continue
        parts.append(rows.select(TRAIN_COLUMNS))
    held_out = pl.concat(parts, how="vertical_relaxed").sample(fraction=1.0, shuffle=True, seed=spec.seed) if parts else None
    if held_out is None or held_out.height == 0:
        return None
    for cap in (spec.eval_rows, limit):
        if cap is not None:
            held_out = held_out.head(cap)
    return _as_dataset(held_out)
