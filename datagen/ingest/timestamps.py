"""Interaction times in any unit -> unix seconds, with a loud check that they are plausible.

    >>> import polars as pl
    >>> to_seconds(pl.Series("ts", [1_523_000_000_000]), "ms").to_list()
    [1523000000]
    >>> implausible(pl.Series([1_523_000_000_000 // 1000, -1]), "ts").to_list()
    [None, 'time before 1990-01-01 (1969)']

A timestamp read in the wrong unit does not fail, it reorders histories
(milliseconds taken as seconds put a 2018 review in the year 50,000), so every
source passes its times through `checked_seconds`: when most values are
implausible for the unit the build stops and names the unit that fits; a few
implausible values (a placeholder date, a negative number) are bad rows,
counted under --max-bad-share.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import polars as pl

from datagen.errors import DataError

UNITS = {"s": 1, "ms": 1_000, "us": 1_000_000}
TIMESTAMP_UNITS = (*UNITS, "iso")
# No recommendation log predates the web: earlier times are placeholders ("1900-01-01", 0).
EARLIEST = int(datetime(1990, 1, 1, tzinfo=timezone.utc).timestamp())
# A day of slack for clocks and time zones; later times are in the future.
SLACK_SECONDS = 86_400
# Clipped to about 63,000 years either side of 1970, any value has a year to show (polars counts microseconds).
YEAR_RANGE_SECONDS = 2 * 10**12


def to_seconds(values: pl.Series, unit: str) -> pl.Series:
    """Unix seconds (Int64, floored) from numbers in `unit` or ISO date/datetime text ("iso"); null where unparseable."""
    if unit == "iso":
        text = values.cast(pl.String)
        return text.str.to_datetime(strict=False, time_unit="ms").dt.epoch("s").rename(values.name)
    numbers = values.cast(pl.Float64, strict=False) if values.dtype == pl.String else values.cast(pl.Float64)
    finite = pl.select(pl.when(numbers.is_finite()).then(numbers)).to_series()  # NaN and infinity: null, a bad row
    return (finite / UNITS[unit]).floor().cast(pl.Int64).rename(values.name)


def _latest() -> int:
    return int(datetime.now(timezone.utc).timestamp()) + SLACK_SECONDS


def implausible(seconds: pl.Series, field: str) -> pl.Series:
    """Per value: why it cannot be an interaction time, or null when it can (nulls stay null)."""
    years = pl.from_epoch(seconds.clip(-YEAR_RANGE_SECONDS, YEAR_RANGE_SECONDS), time_unit="s").dt.year()
    frame = pl.DataFrame({"seconds": seconds, "year": years})
    return frame.select(
        pl.when(pl.col("seconds") < EARLIEST).then(pl.format("time before 1990-01-01 ({})", "year")).when(pl.col("seconds") > _latest()).then(pl.format("time in the future ({})", "year")).alias(field)
    ).to_series()


def unit_hint(numbers: pl.Series) -> str:
    """The numeric unit that puts most of `numbers` in 1990..now, or "" when none does."""
    shares = {}
    for unit, scale in UNITS.items():
        seconds = numbers.cast(pl.Float64, strict=False) / scale
        shares[unit] = float(((seconds >= EARLIEST) & (seconds <= _latest())).mean() or 0.0)
    best = max(shares, key=shares.get)
    return best if shares[best] > 0.5 else ""


def checked_seconds(values: pl.Series, unit: str, *, path: str | Path, field: str, unit_setting: str | None = None) -> tuple[pl.Series, pl.Series]:
    """(seconds, why each is bad or null): most values implausible for `unit` is an error naming a better one, and
    the source's `unit_setting` that picks it (None: the format fixes the unit, so the file is not of that format)."""
    if unit not in TIMESTAMP_UNITS:
        raise DataError(f"timestamp unit must be one of {', '.join(TIMESTAMP_UNITS)}, not {unit!r}", path=path, field=field)
    try:
        seconds = to_seconds(values, unit)
    except pl.exceptions.ComputeError:  # not one value parses as a date, so Polars finds no format to infer
        raise DataError(
            f"times cannot be read as ISO dates (e.g. {values.drop_nulls()[0]!r})",
            path=path,
            field=field,
            hint=_unit_hint(unit, unit_hint(values.cast(pl.Float64, strict=False)), unit_setting),
        ) from None
    reasons = implausible(seconds, field)
    present = seconds.is_not_null().sum()
    wrong = reasons.is_not_null().sum()
    if present and wrong > present / 2:
        example = values.filter(reasons.is_not_null())[0]
        better = unit_hint(values) if unit != "iso" else ""
        raise DataError(
            f"{wrong:,} of {present:,} times are implausible read as {unit!r} (e.g. {example!r}: {reasons.drop_nulls()[0]})",
            path=path,
            field=field,
            hint=_unit_hint(unit, better, unit_setting),
        )
    return seconds, reasons


def _unit_hint(unit: str, better: str, unit_setting: str | None) -> str:
    looks = f"These look like {better!r}" if better and better != unit else "No unit fits them"
    if unit_setting is None:
        return f"{looks}, but this format holds {unit!r} only: is the file of this source's format?"
    return f"{looks}: set {unit_setting} to {better!r}." if better and better != unit else f"{looks}: check {unit_setting} and the field."
