"""A split's rows gathered on disk a table at a time, then written as its shards, so that no process holds them all.

    >>> with scratch_folder(folder.path / "controllable-rows") as scratch:  # doctest: +SKIP
    ...     train = SpilledSplit(scratch / "train.arrow", ARROW_SCHEMA)
    ...     for table in tables:
    ...         train.add(table)
    ...     train.write(folder.path / "data" / "controllable", "train")
    [PosixPath('build/steam/data/controllable/train-00000-of-00001.parquet')]

The tables go to an Arrow stream file as they come. `write` makes the shards
`write_split` would make of all the rows in one frame, reading the file once,
a row group at a time: the shard count from the rows' size in memory (Polars'
estimate, summed over the tables), the rows shared evenly, row groups of
ROW_GROUP_ROWS. Equal tables in equal order give equal bytes, however they
were cut.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datagen.output import PARQUET_OPTIONS, ROW_GROUP_ROWS, parquet_table
from datagen.publish.layout import MAX_SHARD_BYTES, shard_name, shard_rows


class SpilledSplit:
    """One split's rows in an Arrow stream file at `path`, added a table at a time, then written as its shards."""

    def __init__(self, path: Path, schema: pa.Schema):
        self.path = path
        self.schema = schema
        self.rows = 0
        self.estimated_bytes = 0
        self._file = pa.OSFile(str(path), "wb")
        self._stream = pa.ipc.new_stream(self._file, schema)

    def add(self, table: pa.Table, estimated_bytes: int | None = None) -> None:
        """Append `table`; `estimated_bytes` is its `estimated_size`, when whoever made it has it (a worker)."""
        self._stream.write_table(table)
        self.rows += table.num_rows
        self.estimated_bytes += estimated_size(table) if estimated_bytes is None else estimated_bytes

    def write(self, config_dir: Path, split: str, max_shard_bytes: int = MAX_SHARD_BYTES, row_group_rows: int = ROW_GROUP_ROWS) -> list[Path]:
        """Write the rows as the shards of `split` into a config's folder (once every table is added)."""
        self._stream.close()
        self._file.close()
        config_dir.mkdir(parents=True, exist_ok=True)
        shards = shard_rows(self.estimated_bytes, self.rows, max_shard_bytes)
        empty = parquet_table(pl.from_arrow(self.schema.empty_table()))
        paths = []
        with pa.memory_map(str(self.path)) as source:  # batches read from the map are views of it, not copies
            rows = _RowTaker(pa.ipc.open_stream(source))
            for index, (_, shard_size) in enumerate(shards):
                path = config_dir / shard_name(split, index, len(shards))
                with pq.ParquetWriter(path, empty.schema, **PARQUET_OPTIONS) as writer:
                    if not shard_size:  # as pq.write_table writes an empty table: one empty row group
                        writer.write_table(empty)
                    for start in range(0, shard_size, row_group_rows):
                        group = rows.take(min(row_group_rows, shard_size - start))
                        writer.write_table(parquet_table(pl.from_arrow(group).rechunk()), row_group_size=row_group_rows)
                paths.append(path)
        return paths


def estimated_size(table: pa.Table) -> int:
    """The table's size in memory as Polars estimates it: what decides the shard count."""
    return pl.from_arrow(table).estimated_size()


class _RowTaker:
    """The rows of a stream of record batches, taken in tables of any length."""

    def __init__(self, reader: pa.ipc.RecordBatchStreamReader):
        self._batches = iter(reader)
        self._pending = pa.Table.from_batches([], schema=reader.schema)

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
