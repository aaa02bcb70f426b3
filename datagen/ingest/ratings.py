"""Ratings a build can use: finite numbers, within the source's scale where the source has one.

A NaN, an infinity or a 500 on a 1-5 scale would pass into the tables and
then into Cao et al.'s rating task (like = rating > 3) as if it were a rating;
each is a bad row instead, named by file, line and field.

    >>> frame.with_columns(why=rating_problem(pl.col("rating"), scale=(1, 5)))  # doctest: +SKIP
    # why: "is not a finite number", "is outside the 1-5 scale", or null
"""

from __future__ import annotations

import polars as pl


def rating_problem(rating: pl.Expr, scale: tuple[float, float] | None = None) -> pl.Expr:
    """Why each rating is bad, or null (a missing rating is not bad: many catalogs have none)."""
    problem = pl.when(rating.is_nan() | rating.is_infinite()).then(pl.lit("is not a finite number"))
    if scale is not None:
        low, high = scale
        problem = problem.when(~rating.is_between(low, high)).then(pl.lit(f"is outside the {low:g}-{high:g} scale"))
    return problem
