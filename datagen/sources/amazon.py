"""Amazon Review Data 2018 ("amazon_v2"), any category.

Reviews come from the 5-core or full JSON lines (`reviewerID, asin, overall,
unixReviewTime`) or the ratings-only CSV (`item,user,rating,timestamp`);
titles and categories from `meta_<Category>.json.gz`.

Categories: the `category` list is a path, root first. The root (the category
of the whole file) says nothing, so it is dropped, and every prefix of the rest
is a category of the item (see `datagen.categories.category_prefixes`).

    $ datagen build amazon:Gift_Cards --raw-dir data/amazon
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from datagen.categories import category_prefixes
from datagen.download import cache_dir
from datagen.errors import DataError
from datagen.rawfiles import iter_line_chunks, read_lines
from datagen.report import BuildReport
from datagen.sources import register_source
from datagen.sources.base import RawCatalog, Source, require_file

REVIEW_FILES = {
    "5core": "{category}_5.json.gz",
    "full": "{category}.json.gz",
    "ratings": "{category}.csv",
}


@register_source
class AmazonSource(Source):
    name = "amazon"
    summary = "Amazon Review Data 2018 (amazon_v2), one category: reviews or ratings + meta"
    argument = "CATEGORY, e.g. amazon:Gift_Cards (the file-name spelling)"
    options = {
        "reviews": (None, "which reviews file: 5core, full or ratings (default: the first of these found)"),
    }

    def default_raw_dir(self, argument: str | None) -> Path | None:
        downloaded = cache_dir() / "amazon"
        return downloaded if downloaded.is_dir() else None

    def load(self, raw_dir: Path, argument: str | None, options: dict[str, str], report: BuildReport) -> RawCatalog:
        options = self.resolve_options(options)
        category = argument
        kinds = [options["reviews"]] if options["reviews"] else list(REVIEW_FILES)
        if any(kind not in REVIEW_FILES for kind in kinds):
            raise DataError(f"reviews must be one of {', '.join(REVIEW_FILES)}, not {options['reviews']!r}")
        reviews_path = require_file(
            raw_dir,
            [REVIEW_FILES[kind].format(category=category) for kind in kinds],
            f"Amazon {category} reviews",
            f"Run `datagen download amazon {category}` or put the amazon_v2 files in {raw_dir}.",
        )
        meta_path = require_file(
            raw_dir,
            [f"meta_{category}.json.gz"],
            f"metadata for {category}",
            f"datagen names items by their titles, so it needs meta_{category}.json.gz beside the reviews. "
            f"Fetch it with `datagen download amazon {category}` (the meta file is part of it) "
            f"and place it in {raw_dir}; reviews alone cannot make an instruction dataset.",
        )
        con = duckdb.connect()
        try:
            if reviews_path.suffix == ".csv":
                interactions = read_ratings_csv(reviews_path, report)
            else:
                interactions = read_review_json(con, reviews_path, report)
            items = read_meta(con, meta_path, report)
        finally:
            con.close()
        return RawCatalog(
            items=items,
            interactions=interactions,
            input_files=[reviews_path, meta_path],
            category_kind="Amazon category path without its root; every prefix is a category",
            catalog_noun="products",
            citation_keys=("ni2019",),
        )


def _split_valid_json(con: duckdb.DuckDBPyConnection, lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    con.register("lines", lines)
    valid = con.sql("SELECT line, text FROM lines WHERE json_valid(text) AND starts_with(text, '{')").pl()
    invalid = con.sql(
        "SELECT line, 'line' AS field, 'not a JSON object' AS reason FROM lines "
        "WHERE NOT (json_valid(text) AND starts_with(text, '{'))"
    ).pl()
    con.unregister("lines")
    return valid, invalid


def read_review_json(con: duckdb.DuckDBPyConnection, path: Path, report: BuildReport) -> pl.DataFrame:
    parsed_chunks, invalid_chunks, total = [], [], 0
    for lines in iter_line_chunks(path):
        total += lines.height
        valid, invalid = _split_valid_json(con, lines)
        con.register("valid", valid)
        parsed_chunks.append(
            con.sql(
                """
                SELECT line,
                       text ->> '$.reviewerID' AS raw_user_id,
                       text ->> '$.asin' AS raw_item_id,
                       TRY_CAST(text ->> '$.unixReviewTime' AS BIGINT) AS timestamp,
                       TRY_CAST(text ->> '$.overall' AS DOUBLE) AS rating,
                       text ->> '$.reviewText' AS review
                FROM valid
                """
            ).pl()
        )
        con.unregister("valid")
        invalid_chunks.append(invalid)
    return _keep_complete_interactions(pl.concat(parsed_chunks), pl.concat(invalid_chunks), total, path, report)


def read_ratings_csv(path: Path, report: BuildReport) -> pl.DataFrame:
    lines = read_lines(path)
    fields = pl.col("text").str.split(",")
    parsed = lines.select(
        "line",
        fields.list.get(1, null_on_oob=True).alias("raw_user_id"),
        fields.list.get(0, null_on_oob=True).alias("raw_item_id"),
        fields.list.get(3, null_on_oob=True).cast(pl.Int64, strict=False).alias("timestamp"),
        fields.list.get(2, null_on_oob=True).cast(pl.Float64, strict=False).alias("rating"),
        (fields.list.len() != 4).alias("wrong_width"),
    )
    invalid = parsed.filter("wrong_width").select("line", pl.lit("line").alias("field"), pl.lit("not 4 comma-separated fields (item,user,rating,timestamp)").alias("reason"))
    return _keep_complete_interactions(parsed.filter(~pl.col("wrong_width")), invalid, lines.height, path, report)


def _keep_complete_interactions(parsed: pl.DataFrame, invalid: pl.DataFrame, total: int, path: Path, report: BuildReport) -> pl.DataFrame:
    problem = (
        pl.when(pl.col("raw_user_id").is_null() | (pl.col("raw_user_id") == "")).then(pl.lit("reviewerID"))
        .when(pl.col("raw_item_id").is_null() | (pl.col("raw_item_id") == "")).then(pl.lit("asin"))
        .when(pl.col("timestamp").is_null()).then(pl.lit("unixReviewTime"))
    )
    parsed = parsed.with_columns(problem.alias("field"))
    missing = parsed.filter(pl.col("field").is_not_null()).select(
        "line", "field", pl.format("missing or invalid {}", pl.col("field")).alias("reason")
    )
    report.skip_bad_rows(pl.concat([invalid.cast({"line": pl.UInt32}), missing.cast({"line": pl.UInt32})]), total=total, path=path, what="reviews")
    return parsed.filter(pl.col("field").is_null()).select(
        "raw_user_id", "raw_item_id", "timestamp", "rating", *[c for c in ("review",) if c in parsed.columns], pl.col("line").cast(pl.Int64).alias("order_key")
    )


def read_meta(con: duckdb.DuckDBPyConnection, path: Path, report: BuildReport) -> pl.DataFrame:
    lines = read_lines(path)
    valid, invalid = _split_valid_json(con, lines)
    con.register("valid", valid)
    parsed = con.sql(
        """
        SELECT line,
               text ->> '$.asin' AS raw_item_id,
               text ->> '$.title' AS title,
               CASE WHEN json_type(text, '$.category') = 'ARRAY'
                    THEN from_json(text -> '$.category', '["VARCHAR"]') ELSE [] END AS path
        FROM valid
        """
    ).pl()
    con.unregister("valid")
    report.skip_bad_rows(invalid.cast({"line": pl.UInt32}), total=lines.height, path=path, what="meta records")
    report.step("parse", "items", before=parsed.height, after=parsed["raw_item_id"].is_not_null().sum(), why="meta record without an asin")
    parsed = parsed.filter(pl.col("raw_item_id").is_not_null())
    prefixes, cut = category_prefixes(parsed["path"].list.slice(1))
    report.counts["category_paths_cut_at_junk_level"] = cut
    return parsed.select("raw_item_id", "title", prefixes.alias("categories"))
