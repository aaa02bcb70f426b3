"""Times in any unit -> unix seconds, and the loud check that they are plausible for that unit."""

from __future__ import annotations

import polars as pl
import pytest

from datagen.errors import DataError
from datagen.ingest.timestamps import checked_seconds, implausible, to_seconds, unit_hint

# 2018-06-17 00:00:00 UTC, the first review of the real Gift Cards 5-core file.
SECONDS = 1_529_193_600


@pytest.mark.parametrize(
    "values, unit",
    [([SECONDS], "s"), ([SECONDS * 1000], "ms"), ([SECONDS * 1_000_000], "us"), (["2018-06-17"], "iso"), ([f"{SECONDS}.75"], "s")],
)
def test_every_unit_gives_seconds(values, unit):
    assert to_seconds(pl.Series("t", values), unit).to_list() == [SECONDS]


def test_implausible_times_are_named_with_their_year():
    # Milliseconds read as seconds: 1,529,193,600,000 s / 31,556,952 s a year = 48,458.5 years after 1970.
    reasons = implausible(pl.Series([SECONDS, -1, None, SECONDS * 1000, -2_208_988_800]), "t").to_list()
    assert reasons == [None, "time before 1990-01-01 (1969)", None, "time in the future (50428)", "time before 1990-01-01 (1900)"]


def test_most_values_implausible_is_an_error_naming_the_unit_that_fits():
    with pytest.raises(DataError, match=r"f: field 't': 3 of 3 times are implausible read as 's'.*\n.*look like 'ms'"):
        checked_seconds(pl.Series("t", [SECONDS * 1000] * 3), "s", path="f", field="t")
    with pytest.raises(DataError, match=r"implausible read as 'ms'.*\n.*look like 's'"):
        checked_seconds(pl.Series("t", [SECONDS] * 3), "ms", path="f", field="t")
    assert unit_hint(pl.Series([7, 8, 9])) == ""


def test_a_few_implausible_values_are_bad_rows_not_an_error():
    seconds, reasons = checked_seconds(pl.Series("t", [SECONDS, SECONDS + 60, 0]), "s", path="f", field="t")
    assert seconds.to_list() == [SECONDS, SECONDS + 60, 0]
    assert reasons.to_list() == [None, None, "time before 1990-01-01 (1970)"]
