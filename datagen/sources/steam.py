"""Steam (Kang & McAuley 2018): UCSD `steam_games.json.gz` + v2 reviews.

Both files hold one Python dict literal per line. Only `username`,
`product_id` and `date` of a review are relied on; every other field is
optional. The reviews file can be the 7.8M-line original, so its fields are
pulled out with vectorised regexes instead of `ast.literal_eval` per line; the
usernames are kept exactly as written (escapes included), which identifies users
consistently without decoding.

    $ datagen build steam --raw-dir data/steam --option category_field=tags
"""

from __future__ import annotations

import ast
from pathlib import Path

import polars as pl

from datagen.cache import raw_cache_dir
from datagen.errors import DataError
from datagen.ingest.rawfiles import INVALID_UTF8, has_invalid_utf8, iter_line_chunks, read_lines
from datagen.ingest.report import BuildReport
from datagen.ingest.timestamps import checked_seconds
from datagen.shipped import SAMPLE_DATA_DIR
from datagen.sources import register_source
from datagen.sources.base import MCAULEY_LAB_TERMS, RawCatalog, Source, require_file

REVIEW_FILES = ["steam_reviews.json.gz", "steam_new.json.gz", "reviews_v2_windows.json.gz"]
GAMES_FILES = ["steam_games.json.gz"]
SAMPLE_DIR = SAMPLE_DATA_DIR / "steam"

_QUOTED = r"""(?:u?'((?:[^'\\]|\\.)*)'|u?"((?:[^"\\]|\\.)*)")"""
_USERNAME = r"""['"]username['"]\s*:\s*""" + _QUOTED
_PRODUCT_ID = r"""['"]product_id['"]\s*:\s*u?['"]?(\d+)"""
_DATE = r"""['"]date['"]\s*:\s*u?['"](\d{4}-\d{2}-\d{2})['"]"""


@register_source
class SteamSource(Source):
    name = "steam"
    summary = "Steam games and v2 reviews (UCSD, Kang & McAuley 2018)"
    options = {
        "category_field": ("genres", "item field used as categories: genres or tags"),
        "reviews": (None, f"reviews file name in the raw dir (default: first of {', '.join(REVIEW_FILES)})"),
    }
    sample_dir = SAMPLE_DIR

    def default_raw_dir(self, argument: str | None) -> Path | None:
        downloaded = raw_cache_dir() / "steam"
        return downloaded if (downloaded / GAMES_FILES[0]).is_file() else None

    def load(self, raw_dir: Path, argument: str | None, options: dict[str, str], report: BuildReport) -> RawCatalog:
        options = self.resolve_options(options)
        if options["category_field"] not in ("genres", "tags"):
            raise DataError(f"category_field must be genres or tags, not {options['category_field']!r}")
        hint = f"Run `datagen download steam`, or put the UCSD files in {raw_dir} (or pass --raw-dir)."
        review_names = [options["reviews"]] if options["reviews"] else REVIEW_FILES
        reviews_path = require_file(raw_dir, review_names, "Steam reviews file", hint)
        games_path = require_file(raw_dir, GAMES_FILES, "Steam item metadata", hint)
        return RawCatalog(
            items=read_games(games_path, options["category_field"], report),
            interactions=read_reviews(reviews_path, report),
            input_files=[games_path, reviews_path],
            category_kind=f"Steam {options['category_field']} (an item can have several)",
            catalog_noun="games",
            citation_keys=("kang2018",),
            terms=MCAULEY_LAB_TERMS,
        )


def read_reviews(path: Path, report: BuildReport) -> pl.DataFrame:
    parsed = pl.concat(_parse_review_chunk(chunk) for chunk in iter_line_chunks(path))
    seconds, time_problems = checked_seconds(parsed["date"].cast(pl.Datetime("ms")).dt.epoch("s"), "s", path=path, field="date")
    parsed = parsed.with_columns(timestamp=seconds, field=pl.coalesce("field", pl.when(time_problems.is_not_null()).then(pl.lit("date"))))
    reasons = {
        "bad_bytes": INVALID_UTF8,
        "line": "not a dict literal",
        "username": "missing or empty username",
        "product_id": "missing or non-numeric product_id",
        "date": "missing or invalid date (want 'YYYY-MM-DD')",
    }
    bad = (
        parsed.with_columns(time_problem=time_problems)
        .filter(pl.col("field").is_not_null())
        .select(
            "line",
            pl.col("field").replace("bad_bytes", "line"),
            pl.coalesce("time_problem", pl.col("field").replace_strict(reasons)).alias("reason"),
        )
    )
    report.skip_bad_rows(bad, total=parsed.height, path=path, what="reviews")
    return parsed.filter(pl.col("field").is_null()).select(
        "raw_user_id",
        "raw_item_id",
        "timestamp",
        pl.lit(None, pl.Float64).alias("rating"),
        pl.col("line").cast(pl.Int64).alias("order_key"),
    )


def _parse_review_chunk(lines: pl.DataFrame) -> pl.DataFrame:
    """(line, text) -> the three fields relied on, and the first missing one per line."""
    parsed = lines.select(
        "line",
        pl.coalesce(pl.col("text").str.extract(_USERNAME, 1), pl.col("text").str.extract(_USERNAME, 2)).alias("raw_user_id"),
        pl.col("text").str.extract(_PRODUCT_ID, 1).alias("raw_item_id"),
        pl.col("text").str.extract(_DATE, 1).str.to_date("%Y-%m-%d", strict=False).alias("date"),
        (pl.col("text").str.starts_with("{") & pl.col("text").str.ends_with("}")).alias("is_record"),
        has_invalid_utf8().alias("bad_bytes"),
    )
    problem = (
        pl.when(pl.col("bad_bytes"))
        .then(pl.lit("bad_bytes"))
        .when(~pl.col("is_record"))
        .then(pl.lit("line"))
        .when(pl.col("raw_user_id").is_null() | (pl.col("raw_user_id") == ""))
        .then(pl.lit("username"))
        .when(pl.col("raw_item_id").is_null())
        .then(pl.lit("product_id"))
        .when(pl.col("date").is_null())
        .then(pl.lit("date"))
    )
    return parsed.with_columns(problem.alias("field")).drop("is_record", "bad_bytes")


def _wrong_game_field(game: dict, category_field: str) -> tuple[str, str] | None:
    """(field, reason) of a game record's first field of the wrong type, else None: an id that is not text or a whole
    number, a title that is not text, categories that are not a list of texts."""
    if game.get("id") is not None and (isinstance(game["id"], bool) or not isinstance(game["id"], (str, int))):
        return "id", f"not text or a whole number but {type(game['id']).__name__}"
    for field in ("title", "app_name"):
        if game.get(field) is not None and not isinstance(game[field], str):
            return field, f"not text but {type(game[field]).__name__}"
    values = game.get(category_field)
    if values is not None and not (isinstance(values, list) and all(isinstance(value, str) for value in values)):
        return category_field, "not a list of texts"
    return None


def read_games(path: Path, category_field: str, report: BuildReport) -> pl.DataFrame:
    lines = read_lines(path)
    ids, titles, categories, bad_rows = [], [], [], []
    for line, text in lines.iter_rows():
        try:
            game = ast.literal_eval(text)
            if not isinstance(game, dict):
                raise ValueError
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            bad_rows.append((line, "line", "not a Python dict literal"))
            continue
        wrong = _wrong_game_field(game, category_field)
        if wrong:
            bad_rows.append((line, *wrong))
            continue
        if not game.get("id"):
            continue
        ids.append(str(game["id"]))
        titles.append(game.get("title") or game.get("app_name") or "")
        categories.append(game.get(category_field) or [])
    bad = pl.DataFrame(bad_rows, schema={"line": pl.UInt32, "field": pl.String, "reason": pl.String}, orient="row")
    report.skip_bad_rows(bad, total=lines.height, path=path, what="games")
    report.step("parse", "items", before=lines.height - len(bad_rows), after=len(ids), why="game without an id")
    return pl.DataFrame(
        {"raw_item_id": ids, "title": titles, "categories": categories},
        schema={"raw_item_id": pl.String, "title": pl.String, "categories": pl.List(pl.String)},
    )
