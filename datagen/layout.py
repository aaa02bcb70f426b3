"""The file layout of a Hugging Face dataset repository, as `push_to_hub` writes it.

One folder per config under data/, one or more parquet shards per split:

    data/controllable/train-00000-of-00001.parquet
    data/interactions/validation-00000-of-00001.parquet

    >>> write_split(frame, Path("build/steam/data/items"), "train")  # doctest: +SKIP
    [PosixPath('build/steam/data/items/train-00000-of-00001.parquet')]
    >>> data_files(Path("build/steam"))["interactions"]  # doctest: +SKIP
    {'train': ['data/interactions/train-00000-of-00001.parquet'], 'validation': [...], 'test': [...]}
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq

from datagen.errors import DataError
from datagen.output import ROW_GROUP_ROWS, write_parquet

DATA_DIR = "data"
REVIEWS_FILE = "reviews.parquet"  # the review texts beside the canonical tables, when the source has them
SPLIT_ORDER = ("train", "validation", "test")
MAX_SHARD_BYTES = 500 << 20  # push_to_hub's default max_shard_size ("500MB"), measured in memory as there
SHARD_NAME = re.compile(r"^(?P<split>\w+)-(?P<index>\d{5})-of-(?P<count>\d{5})\.parquet$")


def shard_name(split: str, index: int, count: int) -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def write_split(frame: pl.DataFrame, config_dir: Path, split: str, max_shard_bytes: int = MAX_SHARD_BYTES, row_group_rows: int = ROW_GROUP_ROWS) -> list[Path]:
    """Write `frame` as the shards of one split into a config's folder; equal frames give equal bytes."""
    config_dir.mkdir(parents=True, exist_ok=True)
    shards = shard_rows(frame.estimated_size(), frame.height, max_shard_bytes)
    paths = []
    for index, (start, rows) in enumerate(shards):
        path = config_dir / shard_name(split, index, len(shards))
        write_parquet(frame.slice(start, rows), path, row_group_rows)
        paths.append(path)
    return paths


def shard_rows(estimated_bytes: int, rows: int, max_shard_bytes: int = MAX_SHARD_BYTES) -> list[tuple[int, int]]:
    """(first row, rows) of each shard of a split of `rows` rows taking `estimated_bytes` in memory: as many shards
    as hold it at `max_shard_bytes` each, the rows shared evenly (the last may hold fewer, even none)."""
    count = max(1, math.ceil(estimated_bytes / max_shard_bytes))
    per_shard = math.ceil(rows / count) if rows else 0
    return [(min(index * per_shard, rows), max(0, min(per_shard, rows - index * per_shard))) for index in range(count)]


def data_files(folder: Path) -> dict[str, dict[str, list[str]]]:
    """{config: {split: [shard paths relative to folder]}}, configs by name, splits train/validation/test first."""
    configs: dict[str, dict[str, list[str]]] = {}
    for config_dir in sorted(p for p in (folder / DATA_DIR).glob("*") if p.is_dir()):
        splits: dict[str, list[str]] = {}
        for path in sorted(config_dir.glob("*.parquet")):
            match = SHARD_NAME.match(path.name)
            if match:
                splits.setdefault(match["split"], []).append(path.relative_to(folder).as_posix())
        order = {split: rank for rank, split in enumerate(SPLIT_ORDER)}
        configs[config_dir.name] = dict(sorted(splits.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    return configs


def read_split(folder: Path, config: str, split: str, columns: list[str] | None = None) -> pl.DataFrame:
    paths = data_files(folder).get(config, {}).get(split)
    if not paths:
        raise DataError(f"no {config}/{split} data in this folder", path=folder / DATA_DIR / config)
    return pl.concat([pl.read_parquet(folder / path, columns=columns) for path in paths])


def first_rows_by_task(folder: Path, config: str, split: str, batch_rows: int = 4096) -> dict[str, dict]:
    """{task: the split's first row of that task}, read a batch of rows at a time until each task is found: a split
    (ml-100k's recknowledge train, 1 GiB in memory) need not fit in memory for the card to show a row of it."""
    tasks = set(read_split(folder, config, split, columns=["task"])["task"].to_list())
    firsts: dict[str, dict] = {}
    for path in data_files(folder)[config][split]:
        for batch in pq.ParquetFile(folder / path).iter_batches(batch_size=batch_rows):
            frame = pl.from_arrow(batch)
            for task in sorted(tasks - firsts.keys()):
                found = frame.filter(pl.col("task") == task)
                if found.height:
                    firsts[task] = found.row(0, named=True)
            if len(firsts) == len(tasks):
                return firsts
    return firsts


def family_reports(folder: Path) -> dict[str, dict]:
    """{family: its report} for each dataset family in the build: the reports with a `card` block (datagen.family.spec.card_block)."""
    reports = {path.stem: json.loads(path.read_text()) for path in sorted((folder / "reports").glob("*.json"))}
    return {name: report for name, report in reports.items() if "card" in report}


def skipped_per_template(report: dict) -> dict[tuple[str, str], int]:
    """(template, reason) -> rows not made, over all splits."""
    totals: Counter = Counter()
    for entry in report["skipped"]:
        totals[(entry["template"], entry["reason"])] += entry["count"]
    return dict(sorted(totals.items()))
