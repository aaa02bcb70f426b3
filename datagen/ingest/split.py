"""Dense ids, per-user order and the leave-one-out split (all three papers use it).

A user's history is ordered by timestamp, ties broken by the source's order
(file line, or list position); the last item is test, the one before it
valid, the rest train.

    >>> tables = split_tables(items, interactions)  # doctest: +SKIP
    >>> tables.sequences.columns[:4]
    ['user_id', 'raw_user_id', 'item_ids', 'timestamps']
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import polars as pl


@dataclass
class CanonicalTables:
    items: pl.DataFrame
    interactions: pl.DataFrame  # with the source's order_key, which joins review texts and is not published
    sequences: pl.DataFrame


def split_tables(items: pl.DataFrame, interactions: pl.DataFrame) -> CanonicalTables:
    """Assign ids by sorted raw id, order histories, and split each user leave-one-out."""
    con = duckdb.connect()
    try:
        con.register("items_in", items)
        con.register("inter_in", interactions)
        con.execute(
            """
            CREATE TABLE item_ids AS
            SELECT (row_number() OVER (ORDER BY raw_item_id) - 1)::INTEGER AS item_id, raw_item_id
            FROM items_in WHERE raw_item_id IN (SELECT raw_item_id FROM inter_in)
            """
        ).fetchall()
        con.execute(
            """
            CREATE TABLE user_ids AS
            SELECT (row_number() OVER (ORDER BY raw_user_id) - 1)::INTEGER AS user_id, raw_user_id
            FROM (SELECT DISTINCT raw_user_id FROM inter_in)
            """
        ).fetchall()
        con.execute(
            """
            CREATE TABLE ordered AS
            SELECT u.user_id, i.item_id, x.timestamp, x.rating, x.order_key,
                   (row_number() OVER (PARTITION BY u.user_id ORDER BY x.timestamp NULLS LAST, x.order_key) - 1)::INTEGER AS position,
                   count(*) OVER (PARTITION BY u.user_id)::INTEGER AS length
            FROM inter_in x JOIN user_ids u USING (raw_user_id) JOIN item_ids i USING (raw_item_id)
            """
        ).fetchall()
        interactions_out = con.sql(
            """
            SELECT user_id, item_id, timestamp, rating, position, order_key,
                   CASE WHEN position = length - 1 THEN 'test'
                        WHEN position = length - 2 THEN 'valid' ELSE 'train' END AS split
            FROM ordered ORDER BY user_id, position
            """
        ).pl()
        items_out = con.sql(
            """
            SELECT i.item_id, i.raw_item_id, x.title, x.categories
            FROM item_ids i JOIN items_in x USING (raw_item_id) ORDER BY i.item_id
            """
        ).pl()
        sequences = con.sql(
            """
            SELECT user_id, raw_user_id,
                   list(item_id ORDER BY position) AS item_ids,
                   list(timestamp ORDER BY position) AS timestamps,
                   count(*)::INTEGER AS length
            FROM ordered JOIN user_ids USING (user_id)
            GROUP BY user_id, raw_user_id ORDER BY user_id
            """
        ).pl()
    finally:
        con.close()
    sequences = sequences.with_columns(
        train_item_ids=pl.col("item_ids").list.head(pl.col("length") - 2),
        valid_item_id=pl.col("item_ids").list.get(-2),
        test_item_id=pl.col("item_ids").list.get(-1),
    )
    if interactions_out["rating"].null_count() == interactions_out.height:
        interactions_out = interactions_out.drop("rating")
    if interactions_out["timestamp"].null_count() == interactions_out.height:
        interactions_out = interactions_out.drop("timestamp")
        sequences = sequences.drop("timestamps")
    return CanonicalTables(items=items_out, interactions=interactions_out, sequences=sequences)
