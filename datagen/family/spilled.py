"""A split's rows gathered on disk a table at a time, then written as its shards, so that no process holds them all.

    >>> with scratch_folder(folder.path / "controllable-rows") as scratch:  # doctest: +SKIP
    ...     train = SpilledSplit(scratch, "train", ARROW_SCHEMA)
    ...     train.add(spill(table, train.next_path()))             # a table made here
    ...     train.add(spill(table, scratch / "chunk-000001-train.arrow"))  # in a worker
    ...     train.write(folder.path / "data" / "controllable", "train")
    [PosixPath('build/steam/data/controllable/train-00000-of-00001.parquet')]

Each table goes to an Arrow stream file of its own, written by whoever made it
(a worker writes its chunk's rows itself, so they never travel through the
driver). `write` makes the shards `write_split` would make of all the rows in
one frame, reading the files once, in the order they were added, a row group
at a time: the shard count from the rows' size in memory (Polars' estimate,
summed over the tables), the rows shared evenly, row groups of ROW_GROUP_ROWS.
Equal tables in equal order give equal bytes, however they were cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datagen.layout import MAX_SHARD_BYTES, shard_name, shard_rows
from datagen.output import PARQUET_OPTIONS, ROW_GROUP_ROWS, parquet_table


@dataclass(frozen=True)
class SpilledTable:
    """A table written to an Arrow stream file: its path, its rows, and its size in memory as Polars estimates it."""

    path: Path
    rows: int
    estimated_bytes: int


def spill(table: pa.Table, path: Path, estimated_bytes: int | None = None) -> SpilledTable:
    """Write `table` to an Arrow stream file at `path`; `estimated_bytes` is its `estimated_size`, when known."""
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    return SpilledTable(path, table.num_rows, estimated_size(table) if estimated_bytes is None else estimated_bytes)


class SpilledSplit:
    """One split's rows in Arrow stream files, added a table at a time, then written as its shards. Tables made in
    this process go to files in `scratch` (`next_path`)."""

    def __init__(self, scratch: Path, split: str, schema: pa.Schema):
        self.scratch = scratch
        self.split = split
        self.schema = schema
        self.tables: list[SpilledTable] = []
        self.rows = 0
        self.estimated_bytes = 0

    def next_path(self) -> Path:
        """Where to spill the next table made in this process."""
        return self.scratch / f"{self.split}-{len(self.tables):06d}.arrow"

    def add(self, table: SpilledTable) -> None:
        self.tables.append(table)
        self.rows += table.rows
        self.estimated_bytes += table.estimated_bytes

    def write(self, config_dir: Path, split: str, max_shard_bytes: int = MAX_SHARD_BYTES, row_group_rows: int = ROW_GROUP_ROWS) -> list[Path]:
        """Write the rows as the shards of `split` into a config's folder (once every table is added)."""
        config_dir.mkdir(parents=True, exist_ok=True)
        shards = shard_rows(self.estimated_bytes, self.rows, max_shard_bytes)
        empty = parquet_table(pl.from_arrow(self.schema.empty_table()))
        rows = _RowTaker(self._batches(), self.schema)
        paths = []
        for index, (_, shard_size) in enumerate(shards):
            path = config_dir / shard_name(split, index, len(shards))
            with pq.ParquetWriter(path, empty.schema, **PARQUET_OPTIONS) as writer:
                if not shard_size:  # as pq.write_table writes an empty table: one empty row group
                    writer.write_table(empty)
                for start in range(0, shard_size, row_group_rows):
                    # cast piece by piece, then one contiguous table: what write_split writes of a frame
                    group = rows.take(min(row_group_rows, shard_size - start)).cast(empty.schema).combine_chunks()
                    writer.write_table(group, row_group_size=row_group_rows)
                    del group
            paths.append(path)
        return paths

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for table in self.tables:
            # Read, not memory-mapped: a map's pages would stay resident until the whole shard is written.
            with pa.OSFile(str(table.path)) as source:
                yield from pa.ipc.open_stream(source)


def estimated_size(table: pa.Table) -> int:
    """The table's size in memory as Polars estimates it: what decides the shard count."""
    return pl.from_arrow(table).estimated_size()


class _RowTaker:
    """The rows of a stream of record batches, taken in tables of any length."""

    def __init__(self, batches: Iterator[pa.RecordBatch], schema: pa.Schema):
        self._batches = batches
        self._pending = pa.Table.from_batches([], schema=schema)

    def take(self, count: int) -> pa.Table:
        pieces, taken = [], 0
        while taken < count:
            if not self._pending.num_rows:
                self._pending = pa.Table.from_batches([next(self._batches)])
            piece = self._pending.slice(0, count - taken)
            self._pending = self._pending.slice(piece.num_rows)
            pieces.append(piece)
            taken += piece.num_rows
        return pa.concat_tables(pieces)
