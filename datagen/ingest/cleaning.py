"""The shared cleaning every source's raw tables go through.

Each step records in the report how many rows it dropped and why.

    >>> items = clean_items(raw.items, max_title_tokens=64, report=report)  # doctest: +SKIP
    >>> inter = clean_interactions(raw.interactions, items, order="timestamp", report=report)  # doctest: +SKIP
    >>> inter = k_core(inter, user_core=5, item_core=5, report=report)  # doctest: +SKIP
"""

from __future__ import annotations

import random

import polars as pl

from datagen.errors import DataError
from datagen.ingest.categories import clean_categories, is_placeholder
from datagen.ingest.report import BuildReport
from datagen.ingest.text import cap_word_pieces, clean_text, count_word_pieces

# Leave-one-out needs a train, a valid and a test item per user.
MIN_SEQUENCE_LENGTH = 3


def clean_items(items: pl.DataFrame, *, max_title_tokens: int, report: BuildReport, has_titles: bool = True) -> pl.DataFrame:
    """Clean titles and categories; drop items without id or title; one row per id.

    An interactions-only catalog (`has_titles=False`) keeps its null titles.
    """
    if not has_titles:
        before = items.height
        items = items.filter(pl.col("raw_item_id").is_not_null() & (pl.col("raw_item_id") != "")).unique("raw_item_id", maintain_order=True)
        report.step("missing_item_id", "items", before=before, after=items.height, why="item without an id, or the same id again")
        return items
    titles = clean_text(items["title"])
    placeholder_titles = is_placeholder(titles)
    report.counts["placeholder_titles_dropped"] = int(placeholder_titles.sum())
    report.counts["placeholder_categories_dropped"] = int(is_placeholder(clean_text(items["categories"].explode().drop_nulls())).sum())
    titles = titles.zip_with(~placeholder_titles, pl.repeat("", len(titles), eager=True))  # dropped below, as empty titles
    too_long = int((count_word_pieces(titles) > max_title_tokens).sum())
    items = items.with_columns(
        title=cap_word_pieces(titles, max_title_tokens),
        categories=clean_categories(items["categories"]),
    ).with_row_index("input_row")
    report.counts["titles_capped_at_max_tokens"] = too_long

    before = items.height
    items = items.filter(pl.col("raw_item_id").is_not_null() & (pl.col("raw_item_id") != ""))
    report.step("missing_item_id", "items", before=before, after=items.height, why="item without an id")

    # A repeated id keeps its first record that has a usable title.
    before = items.height
    items = items.sort(pl.col("title") == "", "input_row").unique("raw_item_id", keep="first", maintain_order=True)
    report.step("duplicate_item_id", "items", before=before, after=items.height, why="same item id again; kept the first record with a title")

    before = items.height
    items = items.filter(pl.col("title") != "")
    report.step("empty_title", "items", before=before, after=items.height, why="title empty, only markup, or a placeholder ('unknown') once cleaned")
    if items.is_empty():
        raise DataError("no item has a usable title, so no instruction can name an item")
    return items.sort("input_row").drop("input_row")


def clean_interactions(interactions: pl.DataFrame, items: pl.DataFrame, *, report: BuildReport) -> pl.DataFrame:
    """Drop interactions with unknown items; keep each user's earliest interaction with an item."""
    before = interactions.height
    interactions = interactions.join(items.select("raw_item_id"), on="raw_item_id", how="semi", maintain_order="left")
    report.step("unknown_item", "interactions", before=before, after=interactions.height, why="item not in the catalog (no metadata, or dropped above)")
    if before and interactions.is_empty():
        raise DataError(
            f"none of the {before:,} interactions names an item of the catalog's {items.height:,}: the two files share no item id",
            hint="Check that the items (metadata) file and the interactions file are of the same catalog, e.g. meta_<Category> of the reviews' own category.",
        )

    before = interactions.height
    interactions = interactions.sort("timestamp", "order_key", nulls_last=True).unique(["raw_user_id", "raw_item_id"], keep="first", maintain_order=True)
    report.step("duplicate_interaction", "interactions", before=before, after=interactions.height, why="same (user, item) again; kept the earliest")
    return interactions


def sample_users(interactions: pl.DataFrame, *, max_users: int | None, seed: int, report: BuildReport) -> pl.DataFrame:
    """Keep `max_users` users drawn with `seed` (before k-core, so the result stays a k-core)."""
    if not max_users:
        return interactions
    users = interactions["raw_user_id"].unique().sort().to_list()
    if len(users) <= max_users:
        return interactions
    chosen = pl.DataFrame({"raw_user_id": random.Random(seed).sample(users, max_users)})
    before = interactions.height
    interactions = interactions.join(chosen, on="raw_user_id", how="semi", maintain_order="left")
    report.step("sample_users", "interactions", before=before, after=interactions.height, why=f"kept {max_users} of {len(users)} users (seed {seed})")
    return interactions


def k_core(interactions: pl.DataFrame, *, user_core: int, item_core: int, report: BuildReport) -> pl.DataFrame:
    """Iteratively drop users with < user_core and items with < item_core interactions."""
    user_core = max(user_core, MIN_SEQUENCE_LENGTH)
    before = interactions.height
    # Filtering on integer codes of the ids is cheaper than on the strings, round after round.
    result = interactions.with_columns(
        pl.col("raw_user_id").cast(pl.Categorical).to_physical().alias("user_code"),
        pl.col("raw_item_id").cast(pl.Categorical).to_physical().alias("item_code"),
    )
    rounds = 0
    while True:
        count = result.height
        result = result.filter(pl.len().over("user_code") >= user_core)
        result = result.filter(pl.len().over("item_code") >= item_core)
        rounds += 1
        if result.height == count:
            break
    result = result.drop("user_code", "item_code")
    report.counts["k_core_rounds"] = rounds
    report.step(
        "k_core",
        "interactions",
        before=before,
        after=result.height,
        why=f"user with < {user_core} or item with < {item_core} interactions ({rounds} round{'' if rounds == 1 else 's'})",
    )
    if result.is_empty():
        raise DataError(
            f"the {user_core}-user/{item_core}-item core is empty: no user keeps enough interactions",
            hint="Lower --user-core/--item-core, or use a preset made for this data (see `datagen sources`).",
        )
    return result


def unique_titles(items: pl.DataFrame, popularity: pl.DataFrame, report: BuildReport) -> pl.DataFrame:
    """Make titles unique (ignoring case): the most popular keeps its title, the others get " (2)", " (3)"...

    The LLM names items by title, so two items must never share one.
    """
    items = items.join(popularity, on="raw_item_id", how="left").with_columns(key=pl.col("title").str.to_lowercase())
    shared = items.filter(pl.col("key").is_duplicated())
    report.counts["titles_made_unique"] = 0
    if shared.is_empty():
        return items.drop("key", "popularity")
    taken = set(items["key"].to_list())
    renamed: dict[str, str] = {}
    ordered = shared.sort("key", pl.col("popularity").fill_null(0), "raw_item_id", descending=[False, True, False])
    for _key, group in ordered.group_by("key", maintain_order=True):
        rows = group.select("raw_item_id", "title").rows()
        for raw_item_id, title in rows[1:]:
            number = 2
            while f"{title} ({number})".lower() in taken:
                number += 1
            renamed[raw_item_id] = f"{title} ({number})"
            taken.add(renamed[raw_item_id].lower())
    report.counts["titles_made_unique"] = len(renamed)
    new_titles = pl.DataFrame({"raw_item_id": list(renamed), "new_title": list(renamed.values())})
    return items.join(new_titles, on="raw_item_id", how="left", maintain_order="left").with_columns(title=pl.coalesce("new_title", "title")).drop("key", "popularity", "new_title")
