"""RecBole atomic files: `NAME.inter` and `NAME.item`, the format of RecBole's public datasets.

    $ datagen build recbole:ml-100k --raw-dir data/recbole          # data/recbole/ml-100k/ml-100k.inter, or the files in data/recbole
    $ datagen build recbole:Games --raw-dir data -O categories=genre

Tab-separated, no quoting, one typed header line (`user_id:token`,
`timestamp:float`, `title:token_seq`, ...). `.inter` comes in two forms:
- one interaction per row (`user_id`, `item_id`, optional `timestamp` in unix
  seconds, optional `rating`): histories ordered by time, file order breaking ties,
  or by file order alone without a timestamp;
- the sequence form (`item_id_list:token_seq`, and optionally the next `item_id`),
  as RecBole's benchmark files `NAME.train.inter` / `.valid.inter` / `.test.inter`
  hold it, one row per prefix: a user's history is their first row's list
  followed by every row's next item, in file order (train, valid, test); its
  order is the list order.
`.item` gives titles (`-O title=FIELD`; default the first of title, movie_title,
name, app_name, item_name; with a `release_year` field, or `-O year=FIELD`, the
year is added as MovieLens writes it, "Toy Story (1995)") and categories (`-O categories=FIELD`; default the first of
categories, category, genre, genres, class). A `token_seq` category field is split
at `-O seq_separator` (RecBole's own setting, default one space); a `token` field is
one category. Without `.item` the catalog is interactions only (teacher-only build).
"""

from __future__ import annotations

import io
from pathlib import Path

import polars as pl

from datagen.cache import raw_cache_dir
from datagen.errors import DataError
from datagen.ingest.categories import category_prefixes
from datagen.ingest.ratings import rating_problem
from datagen.ingest.rawfiles import decode_strictly, read_bytes
from datagen.ingest.report import BuildReport
from datagen.ingest.timestamps import TIMESTAMP_UNITS, checked_seconds
from datagen.sources import register_source
from datagen.sources.base import RawCatalog, Source, untitled_items

TYPES = ("token", "token_seq", "float", "float_seq")
TITLE_FIELDS = ("title", "movie_title", "name", "app_name", "item_name")
CATEGORY_FIELDS = ("categories", "category", "genre", "genres", "class")
BENCHMARK_SUFFIXES = ("train", "valid", "test")


@register_source
class RecBoleSource(Source):
    name = "recbole"
    summary = "RecBole atomic files NAME.inter (+ NAME.item): per-interaction or item_id_list sequences"
    argument = "NAME, e.g. recbole:ml-100k (the files' stem)"
    options = {
        "title": (None, f"the .item field with titles (default: the first of {', '.join(TITLE_FIELDS)})"),
        "categories": (None, f"the .item field with categories, or 'none' (default: the first of {', '.join(CATEGORY_FIELDS)})"),
        "year": (None, "the .item field with the release year, added to titles as MovieLens writes them, 'Toy Story (1995)'; 'none' to leave them (default: release_year when there is one)"),
        "seq_separator": (" ", "what separates the tokens of a token_seq field (RecBole's seq_separator)"),
        "categories_hierarchy": (None, "set: each name a category; path: the names are a path, root first, and each prefix a category (default: path for quoted lists, else set)"),
        "keep_root": ("false", "with categories_hierarchy=path: keep the path's root level (true or false)"),
        "timestamp_unit": ("s", f"the unit of the timestamp field: {', '.join(TIMESTAMP_UNITS)}"),
        "catalog_noun": ("items", "what the items are, plural, in the prompts and the card: movies, products, games"),
        "license": (None, "the data's licence as a Hub licence id (e.g. cc-by-4.0), for the card"),
    }

    def default_raw_dir(self, argument: str | None) -> Path | None:
        downloaded = raw_cache_dir() / "recbole"  # where `datagen download recbole:NAME` unpacks
        return downloaded if downloaded.is_dir() else None

    def load(self, raw_dir: Path, argument: str | None, options: dict[str, str], report: BuildReport) -> RawCatalog:
        options = self.resolve_options(options)
        folder = raw_dir / argument if (raw_dir / argument).is_dir() else raw_dir
        inter_paths = interaction_files(folder, argument)
        frames = [read_atomic(path) for path in inter_paths]
        separator = options["seq_separator"]
        if "item_id_list" in frames[0][1]:
            interactions, order = sequences_to_rows(frames, inter_paths, separator), "list"
        else:
            if len(frames) > 1:
                raise DataError("benchmark files (.train/.valid/.test.inter) must be in the sequence form (item_id_list)", path=inter_paths[0])
            interactions, order = read_rows(frames[0], inter_paths[0], report, options["timestamp_unit"])
        variant = "recbole sequences (item_id_list)" if "item_id_list" in frames[0][1] else "recbole interactions"
        item_path = folder / f"{argument}.item"
        if not item_path.is_file():
            return RawCatalog(
                items=untitled_items(interactions),
                interactions=interactions,
                input_files=inter_paths,
                order=order,
                category_kind="none: interactions only (no .item file)",
                untitled_because=f"no {item_path.name} beside the interactions",
                variant=variant,
            )
        items, category_field = read_items(item_path, options)
        return RawCatalog(
            items=items,
            interactions=interactions,
            input_files=[*inter_paths, item_path],
            order=order,
            category_kind=f"RecBole .item field {category_field!r}" if category_field else "none: no category field in the .item file",
            variant=variant,
            catalog_noun=options["catalog_noun"],
            license=options["license"],
        )


def interaction_files(folder: Path, name: str) -> list[Path]:
    """NAME.inter, else the benchmark split NAME.{train,valid,test}.inter."""
    single = folder / f"{name}.inter"
    if single.is_file():
        return [single]
    split = [folder / f"{name}.{suffix}.inter" for suffix in BENCHMARK_SUFFIXES]
    if all(path.is_file() for path in split):
        return split
    if any(path.is_file() for path in split):
        missing = ", ".join(path.name for path in split if not path.is_file())
        raise DataError(f"the benchmark split is incomplete: {missing} missing beside {', '.join(path.name for path in split if path.is_file())}", path=folder)
    raise DataError(
        f"no {name}.inter (nor {name}.train/.valid/.test.inter) found",
        path=folder,
        hint=f"Pass --raw-dir the folder holding {name}.inter, or its parent holding {name}/.",
    )


def read_atomic(path: Path) -> tuple[pl.DataFrame, dict[str, str]]:
    """An atomic file as text columns named by field (with `line`), and each field's type."""
    text = decode_strictly(read_bytes(path), "utf-8", path)
    header, _, body = text.partition("\n")
    types = {}
    for column in header.rstrip("\r").split("\t"):
        name, _, kind = column.partition(":")
        if kind not in TYPES:
            raise DataError(f"header field {column!r} is not NAME:TYPE with TYPE one of {', '.join(TYPES)}", path=path, line=1)
        types[name] = kind
    try:
        frame = pl.read_csv(io.StringIO(body), separator="\t", quote_char=None, has_header=False, new_columns=list(types), infer_schema=False)
    except pl.exceptions.PolarsError as error:
        raise DataError(f"cannot read as a tab-separated atomic file: {error}", path=path) from None
    if frame.width != len(types):
        raise DataError(f"rows have {frame.width} fields but the header names {len(types)}", path=path)
    return frame.with_row_index("line", offset=2), types


def _require(types: dict[str, str], field: str, path: Path) -> None:
    if field not in types:
        raise DataError(f"no {field} field (the header has {', '.join(types)})", path=path, line=1)


def read_rows(atomic: tuple[pl.DataFrame, dict[str, str]], path: Path, report: BuildReport, timestamp_unit: str = "s") -> tuple[pl.DataFrame, str]:
    frame, types = atomic
    for field in ("user_id", "item_id"):
        _require(types, field, path)
    has_time = "timestamp" in types
    seconds, time_problems = (
        checked_seconds(frame["timestamp"], timestamp_unit, path=path, field="timestamp", unit_setting="-O timestamp_unit")
        if has_time
        else (pl.repeat(None, frame.height, dtype=pl.Int64, eager=True), pl.repeat(None, frame.height, dtype=pl.String, eager=True))
    )
    raw_rating = frame["rating"] if "rating" in types else pl.repeat(None, frame.height, dtype=pl.String, eager=True)
    rating = raw_rating.cast(pl.Float64, strict=False)
    parsed = frame.select("line", pl.col("user_id").alias("raw_user_id"), pl.col("item_id").alias("raw_item_id")).with_columns(timestamp=seconds, time_problem=time_problems, rating=rating)
    parsed = parsed.with_columns(
        rating_problem=pl.when(raw_rating.is_not_null() & (raw_rating.cast(pl.String) != "") & rating.is_null()).then(pl.lit("is not a number")).otherwise(rating_problem(pl.col("rating")))
    )
    problem = (
        pl.when(pl.col("raw_user_id").is_null() | (pl.col("raw_user_id") == "")).then(pl.lit("user_id"))
        .when(pl.col("raw_item_id").is_null() | (pl.col("raw_item_id") == "")).then(pl.lit("item_id"))
        .when(pl.lit(has_time) & (pl.col("timestamp").is_null() | pl.col("time_problem").is_not_null())).then(pl.lit("timestamp"))
        .when(pl.col("rating_problem").is_not_null()).then(pl.lit("rating"))
    )  # fmt: skip
    parsed = parsed.with_columns(problem.alias("field"))
    reason = pl.coalesce("time_problem", pl.when(pl.col("field") == "rating").then("rating_problem"), pl.format("missing or invalid {}", "field"))
    bad = parsed.filter(pl.col("field").is_not_null()).select(pl.col("line").cast(pl.UInt32), "field", reason.alias("reason"))
    report.skip_bad_rows(bad, total=parsed.height, path=path, what="interactions")
    kept = parsed.filter(pl.col("field").is_null()).select("raw_user_id", "raw_item_id", "timestamp", "rating", pl.col("line").cast(pl.Int64).alias("order_key"))
    return kept, "timestamp" if has_time else "list"


def sequences_to_rows(atomics: list[tuple[pl.DataFrame, dict[str, str]]], paths: list[Path], separator: str) -> pl.DataFrame:
    """Each user's history: their first row's item_id_list, then the next item_id of every row in file order.

    RecBole's benchmark rows are the prefixes of a history, each list cut to its
    last MAX_ITEM_LIST_LENGTH items, so the longest list alone can lose the start.
    """
    parts = []
    for number, ((frame, types), path) in enumerate(zip(atomics, paths)):
        for field in ("user_id", "item_id_list"):
            _require(types, field, path)
        items = pl.col("item_id_list").fill_null("").str.split(separator).list.eval(pl.element().filter(pl.element() != ""))
        following = pl.col("item_id") if "item_id" in types else pl.lit(None, pl.String)
        parts.append(frame.select(pl.col("user_id").alias("raw_user_id"), items.alias("items"), following.alias("next"), pl.lit(number).alias("file"), "line"))
    rows = pl.concat(parts).sort("file", "line")
    per_user = rows.group_by("raw_user_id", maintain_order=True).agg(pl.col("items").first(), pl.col("next").drop_nulls())
    sequences = per_user.select("raw_user_id", pl.concat_list("items", "next").alias("raw_item_id"))
    return sequences.explode("raw_item_id").drop_nulls("raw_item_id").with_columns(timestamp=pl.lit(None, pl.Int64), rating=pl.lit(None, pl.Float64), order_key=pl.int_range(pl.len(), dtype=pl.Int64))


def read_items(path: Path, options: dict) -> tuple[pl.DataFrame, str | None]:
    frame, types = read_atomic(path)
    _require(types, "item_id", path)
    title = options["title"] or next((field for field in TITLE_FIELDS if field in types), None)
    if title is None or title not in types:
        raise DataError(f"no title field {title or ''!r} in the .item file (it has {', '.join(types)})", path=path, line=1, hint="Name it with -O title=FIELD.")
    year = options["year"] or ("release_year" if "release_year" in types else "none")
    if year != "none":
        if year not in types:
            raise DataError(f"no year field {year!r} in the .item file (it has {', '.join(types)})", path=path, line=1, hint="Name it with -O year=FIELD, or -O year=none.")
        frame = frame.with_columns(titled_with_year(pl.col(title), pl.col(year)).alias(title))
    chosen = options["categories"]
    category = None if chosen == "none" else chosen or next((field for field in CATEGORY_FIELDS if field in types), None)
    if category is not None and category not in types:
        raise DataError(f"no category field {category!r} in the .item file (it has {', '.join(types)})", path=path, line=1)
    hierarchy, keep_root = options["categories_hierarchy"], options["keep_root"]
    if hierarchy not in (None, "set", "path") or keep_root not in ("true", "false"):
        raise DataError(f"-O categories_hierarchy is set or path (not {hierarchy!r}) and -O keep_root true or false (not {keep_root!r})", path=path)
    if category is None:
        return frame.select(pl.col("item_id").alias("raw_item_id"), pl.col(title).alias("title"), pl.lit([], pl.List(pl.String)).alias("categories")), None
    if types[category] == "token_seq" and _holds_quoted_lists(frame[category]):
        names, hierarchy = _quoted_names(frame[category]), hierarchy or "path"
    elif types[category] == "token_seq":
        names = frame[category].fill_null("").str.split(options["seq_separator"]).list.eval(pl.element().filter(pl.element() != ""))
    else:
        names = frame.select(pl.concat_list(pl.col(category)).list.drop_nulls())[category]
    if hierarchy == "path":  # every prefix of the path a category, root dropped unless kept, as the table source
        names, _ = category_prefixes(names if keep_root == "true" else names.list.slice(1))
    return pl.DataFrame({"raw_item_id": frame["item_id"], "title": frame[title], "categories": names}), category


def titled_with_year(title: pl.Expr, year: pl.Expr) -> pl.Expr:
    """ "Toy Story" and 1995 as MovieLens writes them, "Toy Story (1995)": RecBole's MovieLens files keep the year
    apart, and without it two films of one name ("That Darn Cat!", 1965 and 1997) would become "(2)" and "(3)".
    A title that already ends with a year, or an item with no year, keeps its title."""
    given = year.cast(pl.String).str.strip_chars()
    has_year = given.is_not_null() & (given != "") & ~title.str.contains(r"\(\d{4}\)$")
    return pl.when(has_year).then(pl.format("{} ({})", title, given)).otherwise(title)


QUOTED_NAME = r"'[^']*'|\"[^\"]*\""  # 'Skin Care', or "Men's" (Python's repr quotes a name holding ' with ")


def _holds_quoted_lists(values: pl.Series) -> bool:
    """RecBole's Amazon .item files write a category path as a Python list's text: 'Beauty', 'Skin Care', 'Face'."""
    given = values.drop_nulls().str.strip_chars().filter(values.drop_nulls().str.strip_chars() != "")
    return given.len() > 0 and bool(given.str.contains(r"^(?:'|\"|\"\")").mean() > 0.5)


def _quoted_names(values: pl.Series) -> pl.Series:
    """Each quoted list's names ('Beauty', 'Skin Care'), CSV's doubled quotes undone."""
    text = values.fill_null("").str.replace_all('""', '"', literal=True)
    return text.str.extract_all(QUOTED_NAME).list.eval(pl.element().str.slice(1, pl.element().str.len_chars() - 2))
