"""Category labels: cleaning, and hierarchical paths turned into prefix categories.

    >>> import polars as pl
    >>> category_prefixes(pl.Series([["Movies", "Drama", "</span>"]]))[0].to_list()
    [['Movies', 'Movies, Drama']]
    >>> category_path(["Movies", "Movies, Drama"])
    'Movies, Drama'

Every prefix of a path is a category of the item ("A", "A, B", "A, B, C"), as
the paper's Movies & TV categories look ("Art House & International, By
Original Language, Chinese") and as the authors' code does, so +C on a coarse
category also covers its subcategories.
"""

from __future__ import annotations

import duckdb
import polars as pl

from datagen.ingest.text import clean_text

MAX_CATEGORY_LEVEL_CHARS = 60
# What sources write for "no value" where a title or a category belongs, whatever the source: MovieLens' "unknown"
# genre and "(no genres listed)", RecBole's misspelt "unkonwn" title. "Untitled" is not one: a Steam game has that name.
PLACEHOLDERS = frozenset({"unknown", "unkonwn", "(no genres listed)", "(no title)", "n/a", "null", "none", "nan"})


def is_placeholder(texts: pl.Series) -> pl.Series:
    """Texts that stand for a missing value (any case): PLACEHOLDERS."""
    return texts.str.strip_chars().str.to_lowercase().is_in(list(PLACEHOLDERS))


def clean_categories(lists: pl.Series) -> pl.Series:
    """Clean every label, drop empty ones, placeholders and repeats (first occurrence kept, order kept)."""
    labels = pl.DataFrame({"row": range(len(lists)), "label": lists}).explode("label").filter(pl.col("label").is_not_null())
    labels = labels.with_columns(label=clean_text(labels["label"])).filter(pl.col("label") != "")
    labels = labels.filter(~is_placeholder(labels["label"]))
    per_row = labels.unique(["row", "label"], keep="first", maintain_order=True).group_by("row", maintain_order=True).agg("label")
    return pl.DataFrame({"row": range(len(lists))}).join(per_row.cast({"row": pl.Int64}), on="row", how="left").sort("row")["label"].fill_null(pl.lit([], pl.List(pl.String))).alias(lists.name)


def category_prefixes(paths: pl.Series) -> tuple[pl.Series, int]:
    """Category paths (root already removed) -> every prefix joined by ", "; also how many paths were cut.

    The 2018 Amazon meta files leak feature bullets and markup into the path
    ("No expiration, no fees.", "</span></span>"), so a path ends at its first
    level that is empty once markup is stripped, ends with a period, or is over
    60 characters.
    """
    levels = pl.DataFrame({"row": range(len(paths)), "level": paths}).explode("level").with_columns(depth=pl.int_range(pl.len()).over("row")).filter(pl.col("level").is_not_null())
    levels = levels.with_columns(level=clean_text(levels["level"]))
    junk = (pl.col("level") == "") | pl.col("level").str.ends_with(".") | (pl.col("level").str.len_chars() > MAX_CATEGORY_LEVEL_CHARS)
    levels = levels.with_columns(junk.alias("junk"))
    first_junk = levels.filter("junk").group_by("row").agg(pl.col("depth").min().alias("cut"))
    kept = (
        levels.join(first_junk, on="row", how="left").filter(pl.col("cut").is_null() | (pl.col("depth") < pl.col("cut"))).sort("row", "depth").group_by("row", maintain_order=True).agg(pl.col("level"))
    )
    con = duckdb.connect()
    try:
        con.register("kept", kept)
        prefixes = con.sql("SELECT row, list_transform(range(1, len(level) + 1), lambda i: array_to_string(level[1:i], ', ')) AS prefixes FROM kept").pl()
    finally:
        con.close()
    prefixes = pl.DataFrame({"row": range(len(paths))}).join(prefixes.cast({"row": pl.Int64}), on="row", how="left").sort("row")["prefixes"].fill_null(pl.lit([], pl.List(pl.String)))
    return prefixes, first_junk.height


def category_path(categories: list[str] | None) -> str:
    """An item's categories as one phrase: the prefixes of a path collapse into the path, other labels are listed.

    ["A", "A, B", "A, B, C"] reads "A, B, C" (not "A, A, B, A, B, C"); a set
    such as Steam's ["Action", "Indie"] reads "Action, Indie".
    """
    labels = list(dict.fromkeys(categories or []))
    return ", ".join(label for label in labels if not any(other.startswith(label + ", ") for other in labels))
