"""Bad input: real files cut or corrupted on purpose, each giving a clear error or a counted skip."""

from __future__ import annotations

import gzip
import json
import os

import polars as pl
import pytest

from datagen.errors import DataError
from datagen.output import atomic_folder
from datagen.pipeline import BuildConfig, build


def _rewrite_lines(path, edit):
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    path.write_bytes(gzip.compress(("\n".join(edit(lines)) + "\n").encode()))


def test_a_few_malformed_lines_are_skipped_and_counted(steam_copy, tmp_path):
    def damage(lines):
        lines[4] = lines[4][:25]  # a line cut mid-record
        lines[9] = lines[9].replace("'date': '", "'date': 'yesterday")
        return lines

    _rewrite_lines(steam_copy / "reviews_v2_windows.json.gz", damage)
    result = build(BuildConfig("steam", raw_dir=steam_copy, out_dir=tmp_path / "out"))
    bad = {(b["field"], b["first_line"]): b for b in result.manifest["report"]["bad_rows"]}
    assert bad[("line", 5)]["rows"] == 1
    assert bad[("date", 10)]["reason"].startswith("missing or invalid date")


def test_too_many_bad_lines_name_file_line_and_field(steam_copy, tmp_path):
    _rewrite_lines(
        steam_copy / "reviews_v2_windows.json.gz",
        lambda lines: lines[:3] + [line.replace("'product_id'", "'productid'") for line in lines[3:1000]] + lines[1000:],
    )
    with pytest.raises(DataError) as error:
        build(BuildConfig("steam", raw_dir=steam_copy, out_dir=tmp_path / "out"))
    message = str(error.value)
    assert "reviews_v2_windows.json.gz:4: field 'product_id'" in message
    assert "--max-bad-share" in message
    assert not (tmp_path / "out").exists()
    # The same file passes when the user allows that share of bad rows.
    build(BuildConfig("steam", raw_dir=steam_copy, out_dir=tmp_path / "out", max_bad_share=0.05))


def test_truncated_gzip(steam_copy, tmp_path):
    path = steam_copy / "steam_games.json.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match=r"steam_games.json.gz: broken gzip data"):
        build(BuildConfig("steam", raw_dir=steam_copy, out_dir=tmp_path / "out"))


def test_empty_file(steam_copy, tmp_path):
    (steam_copy / "reviews_v2_windows.json.gz").write_bytes(b"")
    with pytest.raises(DataError, match=r"reviews_v2_windows.json.gz: file is empty"):
        build(BuildConfig("steam", raw_dir=steam_copy, out_dir=tmp_path / "out"))


def test_gzip_of_nothing_but_blank_lines(steam_copy, tmp_path):
    (steam_copy / "reviews_v2_windows.json.gz").write_bytes(gzip.compress(b"\n\n"))
    with pytest.raises(DataError, match="no records"):
        build(BuildConfig("steam", raw_dir=steam_copy, out_dir=tmp_path / "out"))


def test_missing_file_says_where_to_get_it(steam_copy, tmp_path):
    (steam_copy / "steam_games.json.gz").unlink()
    with pytest.raises(DataError, match="no Steam item metadata found") as error:
        build(BuildConfig("steam", raw_dir=steam_copy, out_dir=tmp_path / "out"))
    assert "datagen download steam" in str(error.value)


def test_unknown_source_option(steam_copy, tmp_path):
    with pytest.raises(DataError, match="no option 'categories'.*category_field"):
        build(BuildConfig("steam", raw_dir=steam_copy, out_dir=tmp_path / "out", options={"categories": "tags"}))


def _gift_cards_as_csv(shared_data, folder):
    """Gift Cards reviews and meta as plain CSV: a documented minimal bring-your-own catalog."""
    folder.mkdir()
    reviews = pl.read_ndjson(gzip.decompress((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes()))
    reviews.select("reviewerID", "asin", "unixReviewTime").write_csv(folder / "reviews.csv")
    meta = pl.read_ndjson(gzip.decompress((shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes()), infer_schema_length=None)
    meta.select("asin", "title", pl.col("category").list.join("|").alias("category")).write_csv(folder / "items.csv")


CSV_CONFIG = {
    "name": "giftcards-csv",
    "items": {"path": "items.csv", "format": "csv", "id": "asin", "title": "title", "categories": "category",
              "categories_split": "|", "categories_hierarchy": "path"},
    "interactions": {"path": "reviews.csv", "format": "csv", "user": "reviewerID", "item": "asin",
                     "timestamp": "unixReviewTime", "order": "timestamp"},
}


def test_table_csv_with_timestamps(shared_data, tmp_path):
    _gift_cards_as_csv(shared_data, tmp_path / "raw")
    config = tmp_path / "raw" / "catalog.yaml"
    config.write_text(json.dumps(CSV_CONFIG))
    result = build(BuildConfig(f"table:{config}", out_dir=tmp_path / "out"))
    reference = build(BuildConfig("amazon:Gift_Cards", raw_dir=shared_data / "amazon", out_dir=tmp_path / "ref"))
    assert result.manifest["stats"]["interactions"] == reference.manifest["stats"]["interactions"]


def test_table_wrong_column_mapping_names_the_column(shared_data, tmp_path):
    _gift_cards_as_csv(shared_data, tmp_path / "raw")
    config = tmp_path / "raw" / "catalog.yaml"
    broken = json.loads(json.dumps(CSV_CONFIG))
    broken["interactions"]["user"] = "reviewer_id"
    config.write_text(json.dumps(broken))
    with pytest.raises(DataError) as error:
        build(BuildConfig(f"table:{config}", out_dir=tmp_path / "out"))
    message = str(error.value)
    assert "reviews.csv: field 'reviewer_id'" in message
    assert "its columns: reviewerID, asin, unixReviewTime" in message


def test_table_unknown_config_key(tmp_path):
    config = tmp_path / "catalog.yaml"
    broken = json.loads(json.dumps(CSV_CONFIG))
    broken["items"]["titel"] = "title"
    config.write_text(json.dumps(broken))
    with pytest.raises(DataError, match=r"catalog.yaml: unknown key items.titel"):
        build(BuildConfig(f"table:{config}", out_dir=tmp_path / "out"))


def test_failed_rebuild_keeps_the_previous_output(steam_copy, tmp_path):
    out = tmp_path / "out"
    first = build(BuildConfig("steam", raw_dir=steam_copy, out_dir=out))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    (steam_copy / "steam_games.json.gz").write_bytes(b"")
    with pytest.raises(DataError):
        build(BuildConfig("steam", raw_dir=steam_copy, out_dir=out))
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["out", "steam"]
    assert first.out_dir == out


def test_crash_while_writing_leaves_nothing_half_written(tmp_path):
    target = tmp_path / "build"
    with pytest.raises(RuntimeError):
        with atomic_folder(target) as folder:
            (folder / "items.parquet").write_bytes(b"partial")
            raise RuntimeError("disk full")
    assert list(tmp_path.iterdir()) == []


def test_amazon_reviews_of_nothing_but_blank_lines(shared_data, tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Gift_Cards_5.json.gz").write_bytes(gzip.compress(b"\n \n"))
    (raw / "meta_Gift_Cards.json.gz").write_bytes((shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes())
    with pytest.raises(DataError, match=r"Gift_Cards_5.json.gz: file has no records"):
        build(BuildConfig("amazon:Gift_Cards", raw_dir=raw, out_dir=tmp_path / "out"))
