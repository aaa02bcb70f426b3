"""Single cleaning steps, each on real data or a documented minimal case."""

from __future__ import annotations

import polars as pl

from datagen.ingest.cleaning import k_core, unique_titles
from datagen.ingest.rawfiles import iter_line_chunks, read_lines
from datagen.ingest.report import BuildReport
from datagen.sources.steam import SAMPLE_DIR


def test_chunked_reading_keeps_every_line_and_its_number():
    path = SAMPLE_DIR / "reviews_v2_windows.json.gz"
    whole = read_lines(path)
    chunks = list(iter_line_chunks(path, chunk_bytes=50_000))
    assert len(chunks) > 10
    assert pl.concat(chunks).equals(whole)
    assert whole["line"].to_list() == list(range(1, whole.height + 1))


def _interactions(pairs):
    return pl.DataFrame(
        {
            "raw_user_id": [u for u, _ in pairs],
            "raw_item_id": [i for _, i in pairs],
            "timestamp": list(range(len(pairs))),
            "rating": [None] * len(pairs),
            "order_key": list(range(len(pairs))),
        },
        schema_overrides={"rating": pl.Float64},
    )


def test_k_core_iterates_until_stable():
    # Minimal case: users a, b, c have items x, y, z; user d has x, y, w.
    # Item w (1 user) goes in round 1; d then has 2 < 3 items and goes in round 2;
    # what is left is a 3-user/3-item core.
    pairs = [(u, i) for u in "abc" for i in "xyz"] + [("d", "x"), ("d", "y"), ("d", "w")]
    report = BuildReport()
    core = k_core(_interactions(pairs), user_core=3, item_core=3, report=report)
    assert sorted(core["raw_user_id"].unique()) == ["a", "b", "c"]
    assert sorted(core["raw_item_id"].unique()) == ["x", "y", "z"]
    assert report.counts["k_core_rounds"] == 3  # two that drop, one that finds nothing to drop
    assert report.steps[-1]["dropped"] == 3


def test_unique_titles_keeps_the_most_popular_bare():
    # Minimal case: three items share a title up to case; "Doom (2)" is already taken.
    items = pl.DataFrame({"raw_item_id": ["1", "2", "3", "4"], "title": ["Doom", "DOOM", "Doom", "Doom (2)"], "categories": [[], [], [], []]})
    popularity = pl.DataFrame({"raw_item_id": ["1", "2", "3", "4"], "popularity": [5, 9, 5, 1]}, schema_overrides={"popularity": pl.UInt32})
    report = BuildReport()
    titles = dict(unique_titles(items, popularity, report).select("raw_item_id", "title").iter_rows())
    assert titles == {"2": "DOOM", "1": "Doom (3)", "3": "Doom (4)", "4": "Doom (2)"}
    assert report.counts["titles_made_unique"] == 2
