"""Amazon reviews, any category, from either release: 2018 ("amazon_v2") or 2023.

2018: the 5-core or full JSON lines (`reviewerID, asin, overall,
unixReviewTime` in seconds) or the ratings-only CSV (`item,user,rating,timestamp`);
titles and categories from `meta_<Category>.json.gz` (`asin`, `category`).
2023 (Hou et al. 2024): `<Category>.jsonl[.gz]` (`user_id, parent_asin, rating,
timestamp` in milliseconds, `text`) and `meta_<Category>.jsonl[.gz]`
(`parent_asin`, `title`, `categories`, `main_category`). Items are
`parent_asin`. The release is read from which files are there, or `-O release=`.

Categories: the path list (2018 `category`, 2023 `categories`) is root first.
The root (the category of the whole file) says nothing, so it is dropped, and
every prefix of the rest is a category of the item (see
`datagen.ingest.categories.category_prefixes`). Where the path is empty (often in
2023) the main category (2018 `main_cat`, 2023 `main_category`) is the item's one
category, so both releases give the same tables for the same data.

    $ datagen build amazon:Gift_Cards --raw-dir data/amazon
    $ datagen build amazon:Video_Games --raw-dir data/amazon2023 -O release=2023
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from datagen.cache import raw_cache_dir
from datagen.errors import DataError
from datagen.ingest.categories import category_prefixes, clean_categories
from datagen.ingest.ratings import rating_problem
from datagen.ingest.rawfiles import INVALID_UTF8, REPLACEMENT, has_glob_characters, iter_line_chunks, read_lines, sql_literal
from datagen.ingest.report import BuildReport
from datagen.ingest.reviews import ReviewTexts
from datagen.ingest.timestamps import checked_seconds
from datagen.sources import register_source
from datagen.sources.base import MCAULEY_LAB_TERMS, NOT_ONE_VALUE_JSON_TYPES, RawCatalog, Source, require_file, untitled_items

REVIEW_FILES = {
    "5core": "{category}_5.json.gz",
    "full": "{category}.json.gz",
    "ratings": "{category}.csv",
}
# 2023: the reviews, else the lab's benchmark CSVs (user_id,parent_asin,rating,timestamp[,history]): a split's three
# files (last_out, timestamp, their _w_his forms) or the rating-only file, whose name 2018's ratings CSV shares.
REVIEW_FILES_2023 = ["{category}.jsonl.gz", "{category}.jsonl", "{category}.train.csv", "{category}.csv"]
BENCHMARK_SPLITS_2023 = ("train", "valid", "test")
CSV_2023_COLUMNS = ("user_id", "parent_asin", "rating", "timestamp")
META_FILES = {"2018": ["meta_{category}.json.gz"], "2023": ["meta_{category}.jsonl.gz", "meta_{category}.jsonl"]}


@dataclass(frozen=True)
class ReviewFields:
    """Where a release keeps each fact of a review, and the unit of its times."""

    user: str
    item: str
    time: str
    rating: str
    review: str
    time_unit: str


RATING_SCALE = (1, 5)  # stars, in both releases
REVIEW_FIELDS = {
    "2018": ReviewFields("reviewerID", "asin", "unixReviewTime", "overall", "reviewText", "s"),
    # Items are parent_asin (the product, not its colour or size variant), as the release's own benchmarks use.
    "2023": ReviewFields("user_id", "parent_asin", "timestamp", "rating", "text", "ms"),
}
# Per release: the item id, the category path (root first) and the one main category of a meta record.
META_FIELDS = {"2018": ("asin", "category", "main_cat"), "2023": ("parent_asin", "categories", "main_category")}


@register_source
class AmazonSource(Source):
    name = "amazon"
    summary = "Amazon Review Data 2018 (amazon_v2) or Amazon Reviews 2023, one category: reviews + meta"
    argument = "CATEGORY, e.g. amazon:Gift_Cards (the file-name spelling)"
    options = {
        "release": (None, "2018 or 2023 (default: detected from the files in the raw dir)"),
        "reviews": (None, "2018: which reviews file, 5core, full or ratings (default: the first of these found)"),
    }

    def default_raw_dir(self, argument: str | None) -> Path | None:
        downloaded = raw_cache_dir() / "amazon"
        return downloaded if downloaded.is_dir() else None

    def load(self, raw_dir: Path, argument: str | None, options: dict[str, str], report: BuildReport) -> RawCatalog:
        options = self.resolve_options(options)
        category = argument
        release = options["release"] or detect_release(raw_dir, category)
        if release not in REVIEW_FIELDS:
            raise DataError(f"release must be 2018 or 2023, not {release!r}")
        if release == "2023":
            if options["reviews"]:
                raise DataError("the 2023 release has one reviews file per category; the reviews option is for 2018")
            names = [name.format(category=category) for name in REVIEW_FILES_2023]
        else:
            kinds = [options["reviews"]] if options["reviews"] else list(REVIEW_FILES)
            if any(kind not in REVIEW_FILES for kind in kinds):
                raise DataError(f"reviews must be one of {', '.join(REVIEW_FILES)}, not {options['reviews']!r}")
            names = [REVIEW_FILES[kind].format(category=category) for kind in kinds]
        download_hint = f"datagen download amazon:{category}" + (" --release 2023" if release == "2023" else "")
        reviews_path = require_file(raw_dir, names, f"Amazon {release} {category} reviews", f"Run `{download_hint}` or put the release's files in {raw_dir}.")
        meta_names = [name.format(category=category) for name in META_FILES[release]]
        meta_path = next((raw_dir / name for name in meta_names if (raw_dir / name).is_file()), None)
        if meta_path is None and self.titles_needed:
            raise DataError(
                f"no metadata for {category} found: looked for {', '.join(meta_names)}",
                path=raw_dir,
                hint=f"datagen names items by their titles, so it needs the meta_{category} file beside the reviews. "
                f"Fetch it with `{download_hint}` (the meta file is part of it) and place it in {raw_dir}; "
                "reviews alone make only the canonical tables and the teacher (--no-controllable).",
            )
        reviews_paths = [reviews_path]
        con = duckdb.connect()
        try:
            if reviews_path.suffix == ".csv" and release == "2023":
                reviews_paths = benchmark_split_files(reviews_path, category)
                interactions = read_benchmark_csv(reviews_paths, report)
            elif reviews_path.suffix == ".csv":
                interactions = read_ratings_csv(reviews_path, report)
            else:
                interactions = read_review_json(con, reviews_path, report, REVIEW_FIELDS[release], self.review_texts_path)
            items = read_meta(con, meta_path, report, release) if meta_path else untitled_items(interactions)
        finally:
            con.close()
        return RawCatalog(
            items=items,
            interactions=interactions,
            input_files=[*reviews_paths, *([meta_path] if meta_path else [])],
            untitled_because="" if meta_path else f"no {' or '.join(meta_names)} beside the reviews",
            category_kind="Amazon category path without its root, every prefix a category; the main category where the path is empty" if meta_path else "none: reviews only (no meta file)",
            catalog_noun="products",
            citation_keys=("hou2024",) if release == "2023" else ("ni2019",),
            terms=MCAULEY_LAB_TERMS,
            variant=f"amazon {release}",
        )


def is_2023_csv(path: Path) -> bool:
    """A CSV with the 2023 benchmark's header (2018's ratings CSV has none)."""
    with path.open("rb") as handle:
        return handle.readline().decode(errors="replace").strip().split(",")[: len(CSV_2023_COLUMNS)] == list(CSV_2023_COLUMNS)


def detect_release(raw_dir: Path, category: str) -> str:
    """2018 or 2023, from which release's reviews file is in `raw_dir`; both is ambiguous."""

    def present(name: str) -> bool:
        return (raw_dir / name.format(category=category)).is_file()

    csv_2023 = present("{category}.csv") and is_2023_csv(raw_dir / f"{category}.csv")
    found = {
        "2018": [name for name in REVIEW_FILES.values() if present(name) and not (name.endswith(".csv") and csv_2023)],
        "2023": [name for name in REVIEW_FILES_2023 if present(name) and (name != "{category}.csv" or csv_2023)],
    }
    present = [release for release, names in found.items() if names]
    if len(present) == 2:
        raise DataError(
            f"{raw_dir} holds reviews of both releases for {category}",
            hint="Choose one with -O release=2018 or -O release=2023.",
        )
    return present[0] if present else "2018"


def _interaction_sql(fields: ReviewFields, values: str, key: str) -> str:
    """SQL over `values` (one JSON value column per field: u, i, t, r) -> the interaction's columns and,
    as 'field|why', the first field of the wrong JSON type or with bytes that were not UTF-8 (else NULL)."""
    named = (("u", fields.user), ("i", fields.item), ("t", fields.time), ("r", fields.rating))
    cases = [f"WHEN json_type({column}) IN {NOT_ONE_VALUE_JSON_TYPES} THEN '{name}|is a JSON ' || lower(json_type({column})) || ', not one value'" for column, name in named]
    cases.append(f"WHEN json_type(r) = 'VARCHAR' AND TRY_CAST(r ->> '$' AS DOUBLE) IS NULL THEN '{fields.rating}|is text that is not a number'")
    cases += [f"WHEN contains({column} ->> '$', '{REPLACEMENT}') THEN '{name}|{INVALID_UTF8}'" for column, name in named[:2]]
    return f"""
        SELECT {key}
               u ->> '$' AS raw_user_id,
               i ->> '$' AS raw_item_id,
               TRY_CAST(t ->> '$' AS BIGINT) AS raw_time,
               TRY_CAST(r ->> '$' AS DOUBLE) AS rating,
               CASE {" ".join(cases)} END AS wrong_type
        FROM {values}
        """


def _split_valid_json(con: duckdb.DuckDBPyConnection, lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Lines that are JSON objects, and the others as bad rows (line, field, reason)."""
    con.register("lines", lines)
    is_object = "json_valid(text) AND starts_with(text, '{')"
    valid = con.sql(f"SELECT line, text FROM lines WHERE {is_object}").pl()
    invalid = con.sql(f"SELECT line, 'line' AS field, 'not a JSON object' AS reason FROM lines WHERE NOT ({is_object})").pl()
    con.unregister("lines")
    return valid, invalid


def read_review_json(con: duckdb.DuckDBPyConnection, path: Path, report: BuildReport, fields: ReviewFields = REVIEW_FIELDS["2018"], review_texts: Path | None = None) -> pl.DataFrame:
    """The reviews' interactions; with `review_texts`, also every review's text, streamed there as parquet (order_key, review).

    A file DuckDB reads whole without one bad value (the common case) is read
    in one typed scan of the four fields; any other file, or one whose texts
    are kept, line by line, so every bad row is named by its line.
    """
    if review_texts is None:
        interactions = _read_clean_review_json(con, path, fields)
        if interactions is not None:
            return interactions
    return _read_review_lines(con, path, report, fields, review_texts)


def _read_clean_review_json(con: duckdb.DuckDBPyConnection, path: Path, fields: ReviewFields) -> pl.DataFrame | None:
    """One typed DuckDB scan of the fields the build needs; None when the file has a line or a value that is not clean,
    or when its path would be a pattern to DuckDB (`has_glob_characters`): the line reader reads it literally."""
    if has_glob_characters(path):
        return None
    columns = ", ".join(f"{name}: 'JSON'" for name in (fields.user, fields.item, fields.time, fields.rating))
    scan = f"""(SELECT {fields.user} AS u, {fields.item} AS i, {fields.time} AS t, {fields.rating} AS r
               FROM read_json('{sql_literal(path)}', format='newline_delimited', columns={{{columns}}}, maximum_object_size=1048576))"""
    try:
        parsed = con.sql(_interaction_sql(fields, scan, key="")).pl().with_row_index("line")
    except duckdb.Error:  # malformed JSON, bytes that are not UTF-8, a line that is not an object: read line by line
        return None
    if parsed.is_empty():  # the line reader says why (no records, only blank lines)
        return None
    parsed = _with_problems(_with_checked_times(parsed, path, fields), fields)
    if parsed["field"].is_not_null().any():
        return None
    return _interactions(parsed)


def _read_review_lines(con: duckdb.DuckDBPyConnection, path: Path, report: BuildReport, fields: ReviewFields, review_texts: Path | None) -> pl.DataFrame:
    paths = ", ".join(f"'$.{name}'" for name in (fields.user, fields.item, fields.time, fields.rating, fields.review))
    values = f"(SELECT line, j[1] AS u, j[2] AS i, j[3] AS t, j[4] AS r, j[5] AS text_value FROM (SELECT line, json_extract(text, [{paths}]) AS j FROM valid))"
    parsed_chunks, invalid_chunks, total = [], [], 0
    texts = ReviewTexts(review_texts, fields.review)
    try:
        for lines in iter_line_chunks(path):
            total += lines.height
            valid, invalid = _split_valid_json(con, lines)
            con.register("valid", valid)
            parsed_chunks.append(con.sql(_interaction_sql(fields, values, key="line,")).pl())
            if review_texts is not None:
                texts.write(con.sql(f"SELECT line AS order_key, text_value FROM {values}").pl())
            con.unregister("valid")
            invalid_chunks.append(invalid)
    finally:
        texts.close(report)
    parsed = _with_problems(_with_checked_times(pl.concat(parsed_chunks), path, fields), fields)
    return _skip_bad_rows(parsed, pl.concat(invalid_chunks), total, path, report)


def _with_checked_times(parsed: pl.DataFrame, path: Path, fields: ReviewFields) -> pl.DataFrame:
    """raw_time -> timestamp (unix seconds) and time_problem (why a time is implausible, else null)."""
    seconds, time_problems = checked_seconds(parsed["raw_time"], fields.time_unit, path=path, field=fields.time)
    return parsed.drop("raw_time").with_columns(timestamp=seconds, time_problem=time_problems)


def benchmark_split_files(path: Path, category: str) -> list[Path]:
    """The rating-only CSV alone, or a benchmark split's three files (train first), each required."""
    if not path.name.endswith(".train.csv"):
        return [path]
    files = [path.with_name(f"{category}.{split}.csv") for split in BENCHMARK_SPLITS_2023]
    missing = [file.name for file in files if not file.is_file()]
    if missing:
        raise DataError(f"the benchmark split is incomplete: {', '.join(missing)} missing beside {path.name}", path=path.parent)
    return files


def read_benchmark_csv(paths: list[Path], report: BuildReport) -> pl.DataFrame:
    """Interactions from the 2023 benchmark CSVs, in file order (train, valid, test), timestamps in milliseconds;
    a `history` column is left aside (each user's rows hold the same history). The build splits leave-one-out by
    time, which is the `last_out` split; the `timestamp` split's absolute cut is not kept."""
    fields, frames, offset = REVIEW_FIELDS["2023"], [], 0
    for path in paths:
        try:
            frame = pl.read_csv(path, infer_schema=False)
        except pl.exceptions.PolarsError as error:
            raise DataError(f"cannot read as the 2023 benchmark CSV: {str(error).splitlines()[0]}", path=path) from None
        missing = [column for column in CSV_2023_COLUMNS if column not in frame.columns]
        if missing:
            raise DataError(f"no {', '.join(missing)} column (the header has {', '.join(frame.columns)})", path=path, line=1)
        parsed = frame.with_row_index("line", offset=2).select(
            "line",
            pl.col("user_id").alias("raw_user_id"),
            pl.col("parent_asin").alias("raw_item_id"),
            pl.col("timestamp").cast(pl.Int64, strict=False).alias("timestamp"),
            pl.col("rating").cast(pl.Float64, strict=False).alias("rating"),
        )
        seconds, time_problems = checked_seconds(parsed["timestamp"], fields.time_unit, path=path, field="timestamp")
        parsed = _with_problems(parsed.with_columns(timestamp=seconds, time_problem=time_problems), fields)
        no_rows = pl.DataFrame(schema={"line": pl.UInt32, "field": pl.String, "reason": pl.String})
        frames.append(_skip_bad_rows(parsed, no_rows, frame.height, path, report).with_columns(pl.col("order_key") + offset))
        offset += frame.height + 2
    return pl.concat(frames)


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
    user, item = REVIEW_FIELDS["2018"].user, REVIEW_FIELDS["2018"].item
    bad_bytes = pl.when(pl.col("raw_user_id").str.contains(REPLACEMENT, literal=True)).then(pl.lit(f"{user}|{INVALID_UTF8}"))
    parsed = parsed.with_columns(bad_bytes.when(pl.col("raw_item_id").str.contains(REPLACEMENT, literal=True)).then(pl.lit(f"{item}|{INVALID_UTF8}")).alias("wrong_type"))
    invalid = parsed.filter("wrong_width").select("line", pl.lit("line").alias("field"), pl.lit("not 4 comma-separated fields (item,user,rating,timestamp)").alias("reason"))
    parsed = parsed.filter(~pl.col("wrong_width"))
    seconds, time_problems = checked_seconds(parsed["timestamp"], "s", path=path, field="timestamp")
    parsed = parsed.with_columns(timestamp=seconds, time_problem=time_problems)
    return _skip_bad_rows(_with_problems(parsed, REVIEW_FIELDS["2018"]), invalid, lines.height, path, report)


def _with_problems(parsed: pl.DataFrame, fields: ReviewFields) -> pl.DataFrame:
    """Add `field` (the first bad field of each row, else null) and `reason`."""
    if "wrong_type" not in parsed.columns:
        parsed = parsed.with_columns(wrong_type=pl.lit(None, pl.String))
    parsed = parsed.with_columns(pl.col("wrong_type").str.split_exact("|", 1).struct.rename_fields(["wrong_field", "wrong_why"])).unnest("wrong_type")
    parsed = parsed.with_columns(rating_problem=rating_problem(pl.col("rating"), RATING_SCALE))
    problem = (
        pl.when(pl.col("wrong_field").is_not_null()).then("wrong_field")
        .when(pl.col("raw_user_id").is_null() | (pl.col("raw_user_id") == "")).then(pl.lit(fields.user))
        .when(pl.col("raw_item_id").is_null() | (pl.col("raw_item_id") == "")).then(pl.lit(fields.item))
        .when(pl.col("timestamp").is_null() | pl.col("time_problem").is_not_null()).then(pl.lit(fields.time))
        .when(pl.col("rating_problem").is_not_null()).then(pl.lit(fields.rating))
    )  # fmt: skip
    parsed = parsed.with_columns(problem.alias("field"))
    rating_reason = pl.when(pl.col("field") == fields.rating).then("rating_problem")
    return parsed.with_columns(pl.coalesce("wrong_why", "time_problem", rating_reason, pl.format("missing or invalid {}", pl.col("field"))).alias("reason"))


def _skip_bad_rows(parsed: pl.DataFrame, invalid: pl.DataFrame, total: int, path: Path, report: BuildReport) -> pl.DataFrame:
    missing = parsed.filter(pl.col("field").is_not_null()).select("line", "field", "reason")
    report.skip_bad_rows(pl.concat([invalid.cast({"line": pl.UInt32}), missing.cast({"line": pl.UInt32})]), total=total, path=path, what="reviews")
    return _interactions(parsed.filter(pl.col("field").is_null()))


def _interactions(parsed: pl.DataFrame) -> pl.DataFrame:
    return parsed.select("raw_user_id", "raw_item_id", "timestamp", "rating", pl.col("line").cast(pl.Int64).alias("order_key"))


def read_meta(con: duckdb.DuckDBPyConnection, path: Path, report: BuildReport, release: str = "2018") -> pl.DataFrame:
    """Items with titles and categories: the path (root dropped, every prefix), else the main category."""
    item, path_field, main_field = META_FIELDS[release]
    lines = read_lines(path)
    valid, invalid = _split_valid_json(con, lines)
    con.register("valid", valid)
    parsed = con.sql(
        f"""
        SELECT line,
               text ->> '$.{item}' AS raw_item_id,
               text ->> '$.title' AS title,
               CASE WHEN json_type(text, '$.{path_field}') = 'ARRAY'
                    THEN from_json(text -> '$.{path_field}', '["VARCHAR"]') ELSE [] END AS path,
               CASE WHEN json_type(text, '$.{main_field}') = 'VARCHAR'
                    THEN [text ->> '$.{main_field}'] ELSE [] END AS main,
               CASE WHEN json_type(text, '$.{item}') IN {NOT_ONE_VALUE_JSON_TYPES} THEN '{item}'
                    WHEN json_type(text, '$.title') IN {NOT_ONE_VALUE_JSON_TYPES} THEN 'title'
                    WHEN json_type(text, '$.{path_field}') NOT IN ('ARRAY', 'NULL') THEN '{path_field}'
                    WHEN contains(text ->> '$.{item}', '{REPLACEMENT}') THEN '{item}|bytes'
                    WHEN contains(text ->> '$.title', '{REPLACEMENT}') THEN 'title|bytes'
                    WHEN contains(CAST(text -> '$.{path_field}' AS VARCHAR), '{REPLACEMENT}') THEN '{path_field}|bytes'
                    WHEN contains(text ->> '$.{main_field}', '{REPLACEMENT}') THEN '{main_field}|bytes' END AS wrong_field
        FROM valid
        """
    ).pl()
    con.unregister("valid")
    wrong = parsed.filter(pl.col("wrong_field").is_not_null()).select(
        "line",
        pl.col("wrong_field").str.strip_suffix("|bytes").alias("field"),
        pl.when(pl.col("wrong_field").str.ends_with("|bytes")).then(pl.lit(INVALID_UTF8))
        .when(pl.col("wrong_field") == path_field).then(pl.lit("is not a JSON list of category names"))
        .otherwise(pl.lit("is a JSON list, object or boolean, not one value")).alias("reason"),
    )  # fmt: skip
    parsed = parsed.filter(pl.col("wrong_field").is_null())
    report.skip_bad_rows(pl.concat([invalid.cast({"line": pl.UInt32}), wrong.cast({"line": pl.UInt32})]), total=lines.height, path=path, what="meta records")
    report.step("parse", "items", before=parsed.height, after=parsed["raw_item_id"].is_not_null().sum(), why=f"meta record without {item}")
    parsed = parsed.filter(pl.col("raw_item_id").is_not_null())
    prefixes, cut = category_prefixes(parsed["path"].list.slice(1))
    report.counts["category_paths_cut_at_junk_level"] = cut
    main = clean_categories(parsed["main"])
    categories = pl.when(prefixes.list.len() > 0).then(prefixes).otherwise(main)
    return parsed.select("raw_item_id", "title", categories.alias("categories"))
