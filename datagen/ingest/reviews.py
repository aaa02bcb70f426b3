"""Review texts of a build: `reviews.parquet` (user_id, item_id, review), written only when asked.

Texts are most of a review file and only InstructRec's vague intentions read
them, so the build does not read them unless asked (`datagen build
--review-texts`); then the source streams (order_key, review) to a spill file
and this module joins it with the split interactions, out of core, in the
interactions' order.

    >>> rows = write_review_texts(spill, tables.interactions, folder / "reviews.parquet")  # doctest: +SKIP
    >>> read_review_texts(folder).columns  # doctest: +SKIP
    ['user_id', 'item_id', 'review']
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datagen.ingest.rawfiles import REPLACEMENT, sql_literal
from datagen.ingest.report import BuildReport
from datagen.layout import REVIEWS_FILE

SCHEMA = pa.schema([("user_id", pa.int32()), ("item_id", pa.int32()), ("review", pa.string())])
SPILL_SCHEMA = pa.schema([("order_key", pa.int64()), ("review", pa.string())])
MEMORY_LIMIT = "1GB"  # DuckDB sorts past this on disk, beside the spill


class ReviewTexts:
    """A source's side: review texts streamed to the spill (order_key, review), a chunk of (order_key, text_value) at a time.

    A text that is not one JSON string, or held bytes that were not UTF-8, is
    dropped and counted, never its interaction; empty texts are left out.
    """

    def __init__(self, path: Path | None, field: str):
        self.path, self.field = path, field
        self.writer: pq.ParquetWriter | None = None
        self.dropped = 0

    def write(self, chunk: pl.DataFrame) -> None:
        value = pl.col("text_value")  # the field's JSON value, null when absent
        is_text = value.str.starts_with('"')
        text = pl.when(is_text).then(value).str.json_decode(pl.String)
        usable = is_text & ~text.str.contains(REPLACEMENT, literal=True)
        self.dropped += chunk.filter(value.is_not_null() & (value != "null") & ~usable).height
        kept = chunk.filter(usable).select(pl.col("order_key").cast(pl.Int64), text.alias("review")).filter(pl.col("review") != "")
        table = kept.to_arrow().cast(SPILL_SCHEMA)
        if self.writer is None:
            self.writer = pq.ParquetWriter(self.path, SPILL_SCHEMA, compression="zstd")
        self.writer.write_table(table)

    def close(self, report: BuildReport) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.dropped:
            report.counts[f"review_texts_dropped_{self.field}_not_text_or_not_utf8"] = self.dropped


def write_review_texts(spill: Path, interactions: pl.DataFrame, path: Path) -> int:
    """Join the spill (order_key, review) with the kept interactions; write `path` in (user_id, position) order. Returns its rows."""
    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
        con.execute(f"SET temp_directory = '{sql_literal(spill.parent / 'duckdb-tmp')}'")
        con.register("kept", interactions.select("user_id", "item_id", "position", "order_key"))
        batches = con.sql(f"SELECT k.user_id, k.item_id, r.review FROM read_parquet('{sql_literal(spill)}') r JOIN kept k USING (order_key) ORDER BY k.user_id, k.position").to_arrow_reader(1 << 16)
        rows = 0
        with pq.ParquetWriter(path, SCHEMA, compression="zstd", compression_level=3) as writer:
            for batch in batches:
                writer.write_table(pa.Table.from_batches([batch]).cast(SCHEMA), row_group_size=1 << 20)
                rows += batch.num_rows
    finally:
        con.close()
    return rows


def read_review_texts(folder: Path) -> pl.DataFrame | None:
    """The build's review texts, None when it was built without them."""
    path = Path(folder) / REVIEWS_FILE
    return pl.read_parquet(path) if path.is_file() else None
