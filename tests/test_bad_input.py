"""Bad input: real files cut or corrupted on purpose, each giving a clear error or a counted skip."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
from click.testing import CliRunner

from datagen.buildfolder import BuildFolder
from datagen.cli import main
from datagen.errors import DataError
from datagen.ingest.report import BuildReport
from datagen.instructrec.annotator import AnnotationCache
from datagen.output import atomic_folder, clean_stale
from datagen.pipeline import BuildConfig, build
from datagen.progress import StepProgress
from datagen.sources.amazon import REVIEW_FIELDS
from datagen.teacher.folder import train_teacher
from datagen.teacher.settings import TeacherSettings, TrainConfig


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
    "items": {"path": "items.csv", "format": "csv", "id": "asin", "title": "title", "categories": "category", "categories_split": "|", "categories_hierarchy": "path"},
    "interactions": {"path": "reviews.csv", "format": "csv", "user": "reviewerID", "item": "asin", "timestamp": "unixReviewTime", "order": "timestamp"},
}


def test_table_csv_with_timestamps(shared_data, tmp_path):
    _gift_cards_as_csv(shared_data, tmp_path / "raw")
    config = tmp_path / "raw" / "catalog.yaml"
    config.write_text(json.dumps(CSV_CONFIG))
    result = build(BuildConfig(f"table:{config}", out_dir=tmp_path / "out"))
    reference = build(BuildConfig("amazon:Gift_Cards", raw_dir=shared_data / "amazon", out_dir=tmp_path / "ref"))
    assert result.manifest["stats"]["interactions"] == reference.manifest["stats"]["interactions"]


def test_table_csv_rating_that_is_not_a_number_is_a_counted_bad_row(shared_data, tmp_path):
    """A text rating in a CSV once became a null rating without a word; now it is a bad row naming the field."""
    raw = tmp_path / "raw"
    raw.mkdir()
    reviews = pl.read_ndjson(gzip.decompress((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes()))
    reviews = reviews.select("reviewerID", "asin", "unixReviewTime", pl.col("overall").cast(pl.String))
    reviews.with_columns(pl.when(pl.int_range(pl.len()) == 5).then(pl.lit("five stars")).otherwise("overall").alias("overall")).write_csv(raw / "reviews.csv")
    config = tmp_path / "c.yaml"
    config.write_text("interactions: {path: reviews.csv, format: csv, user: reviewerID, item: asin, timestamp: unixReviewTime, rating: overall, order: timestamp}\n")
    result = build(BuildConfig(f"table:{config}", raw_dir=raw, out_dir=tmp_path / "out"))
    assert [(b["field"], b["reason"], b["first_line"]) for b in result.manifest["report"]["bad_rows"]] == [("overall", "is not a number", 7)]
    assert result.tables.interactions["rating"].is_not_null().all()


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


def _gift_cards_copy(shared_data, folder, edit_reviews=None, edit_meta=None):
    """A copy of the real Gift Cards files, each record passed through an edit(index, record) -> bytes."""
    folder.mkdir()
    for name, edit in (("Gift_Cards_5.json.gz", edit_reviews), ("meta_Gift_Cards.json.gz", edit_meta)):
        lines = gzip.decompress((shared_data / "amazon" / name).read_bytes()).splitlines()
        if edit is not None:
            lines = [edit(index, json.loads(line)) for index, line in enumerate(lines)]
        (folder / name).write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    return folder


def _as_line(record) -> bytes:
    return json.dumps(record).encode()


@pytest.mark.parametrize(
    "field, value, reason",
    [
        ("reviewerID", ["A1", "A2"], "is a JSON array, not one value"),
        ("asin", {"id": "B004LLIKVU"}, "is a JSON object, not one value"),
        ("overall", "five stars", "is text that is not a number"),
        ("unixReviewTime", -86400, "time before 1990-01-01 (1969)"),
    ],
)
def test_a_review_field_of_the_wrong_type_or_an_impossible_time_is_a_counted_bad_row(shared_data, tmp_path, field, value, reason):
    def edit(index, record):
        if index == 3:
            record[field] = value
        return _as_line(record)

    result = build(BuildConfig("amazon:Gift_Cards", raw_dir=_gift_cards_copy(shared_data, tmp_path / "raw", edit), out_dir=tmp_path / "out"))
    assert result.manifest["report"]["bad_rows"] == [{"file": "Gift_Cards_5.json.gz", "what": "reviews", "field": field, "reason": reason, "rows": 1, "first_line": 4}]
    assert result.manifest["stats"]["interactions"] > 2900 and result.tables.interactions["rating"].is_not_null().all()


def test_milliseconds_mixed_into_a_seconds_field_are_counted_bad_rows(shared_data, tmp_path):
    """Two reviews written in milliseconds among seconds would sort as the year 48,000; they are counted, not reordered."""

    def edit(index, record):
        if index in (10, 20):
            record["unixReviewTime"] *= 1000
        return _as_line(record)

    result = build(BuildConfig("amazon:Gift_Cards", raw_dir=_gift_cards_copy(shared_data, tmp_path / "raw", edit), out_dir=tmp_path / "out", teacher=None))
    bad = result.manifest["report"]["bad_rows"]  # one entry per reason: the year is part of it
    assert {row["field"] for row in bad} == {"unixReviewTime"} and sum(row["rows"] for row in bad) == 2
    assert sorted(row["first_line"] for row in bad)[0] == 11 and all(row["reason"].startswith("time in the future (") for row in bad)
    assert result.tables.interactions["timestamp"].max() < 1_600_000_000


def test_bytes_that_are_not_utf8_are_counted_never_silently_replaced(shared_data, tmp_path):
    """One bad byte in 30% of the reviewer ids once merged users silently; now too many bad rows stop the build, a few are counted."""

    def edit(index, record):
        line = _as_line(record)
        return line.replace(b'"reviewerID": "', b'"reviewerID": "\xff', 1) if index % 10 < 3 else line

    others = sum(1 for index in range(2972) if index % 10 < 3) - 1  # the real file has 2,972 reviews
    with pytest.raises(DataError, match=rf"Gift_Cards_5.json.gz:1: field 'reviewerID': invalid UTF-8 \(or stray control\) byte\(s\), replaced by U\+FFFD \(and {others} more"):
        build(BuildConfig("amazon:Gift_Cards", raw_dir=_gift_cards_copy(shared_data, tmp_path / "many", edit), out_dir=tmp_path / "out"))
    few = _gift_cards_copy(shared_data, tmp_path / "few", lambda index, record: edit(index, record) if index == 0 else _as_line(record))
    result = build(BuildConfig("amazon:Gift_Cards", raw_dir=few, out_dir=tmp_path / "out"))
    assert [row["reason"] for row in result.manifest["report"]["bad_rows"]] == ["invalid UTF-8 (or stray control) byte(s), replaced by U+FFFD"]
    assert not result.tables.sequences["raw_user_id"].str.contains("\ufffd").any()


def test_bad_bytes_count_in_the_field_that_holds_them(shared_data, tmp_path):
    """A field the build does not read (reviewerName) costs nothing; a bad review text, kept with --review-texts, loses only the text."""

    def edit(index, record):
        line = _as_line(record)
        if index == 0:
            return line.replace(b'"reviewerName": "', b'"reviewerName": "\xfe', 1)
        return line.replace(b'"reviewText": "', b'"reviewText": "\xfe', 1) if index == 1 else line

    raw = _gift_cards_copy(shared_data, tmp_path / "raw", edit)
    result = build(BuildConfig("amazon:Gift_Cards", raw_dir=raw, out_dir=tmp_path / "out", teacher=None, review_texts=True))
    clean = build(BuildConfig("amazon:Gift_Cards", raw_dir=shared_data / "amazon", out_dir=tmp_path / "clean", teacher=None, review_texts=True))
    assert result.manifest["report"]["bad_rows"] == []
    assert result.manifest["stats"] == clean.manifest["stats"]
    assert result.manifest["report"]["counts"]["review_texts_dropped_reviewText_not_text_or_not_utf8"] == 1
    texts = pl.read_parquet(tmp_path / "out" / "reviews.parquet")
    assert texts.height == pl.read_parquet(tmp_path / "clean" / "reviews.parquet").height - 1
    assert not texts["review"].str.contains("\ufffd").any()


def test_the_typed_scan_and_the_line_reader_read_the_same_reviews(shared_data, tmp_path):
    """A clean file takes DuckDB's typed scan; a file with one bad line is read line by line: the good rows must not differ."""
    from datagen.sources.amazon import _read_review_lines, read_review_json

    path = shared_data / "amazon" / "Gift_Cards_5.json.gz"
    con = duckdb.connect()
    scanned = read_review_json(con, path, BuildReport())
    by_line = _read_review_lines(con, path, BuildReport(), REVIEW_FIELDS["2018"], None)
    assert scanned.height == 2972 and scanned.drop("order_key").equals(by_line.drop("order_key"))


@pytest.mark.parametrize("field, value, reason", [("title", ["Gift", "Card"], "is a JSON list, object or boolean, not one value"), ("category", "Gift Cards", "is not a JSON list of category names")])
def test_a_meta_field_of_the_wrong_type_is_a_counted_bad_row(shared_data, tmp_path, field, value, reason):
    def edit(index, record):
        if index == 2:
            record[field] = value
        return _as_line(record)

    result = build(BuildConfig("amazon:Gift_Cards", raw_dir=_gift_cards_copy(shared_data, tmp_path / "raw", edit_meta=edit), out_dir=tmp_path / "out"))
    assert result.manifest["report"]["bad_rows"] == [{"file": "meta_Gift_Cards.json.gz", "what": "meta records", "field": field, "reason": reason, "rows": 1, "first_line": 3}]


def test_a_meta_title_with_bytes_that_are_not_utf8_is_a_counted_bad_row(shared_data, tmp_path):
    def edit(index, record):
        line = _as_line(record)
        return line.replace(b'"title": "', b'"title": "\xfe', 1) if index == 2 else line

    result = build(BuildConfig("amazon:Gift_Cards", raw_dir=_gift_cards_copy(shared_data, tmp_path / "raw", edit_meta=edit), out_dir=tmp_path / "out", teacher=None))
    assert result.manifest["report"]["bad_rows"] == [
        {"file": "meta_Gift_Cards.json.gz", "what": "meta records", "field": "title", "reason": "invalid UTF-8 (or stray control) byte(s), replaced by U+FFFD", "rows": 1, "first_line": 3}
    ]


def test_the_meta_file_of_another_category_is_named_as_the_mismatch(shared_data, tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "Gift_Cards_5.json.gz").write_bytes((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes())
    (folder / "meta_Gift_Cards.json.gz").write_bytes((shared_data / "amazon" / "meta_Magazine_Subscriptions.json.gz").read_bytes())
    with pytest.raises(DataError, match="none of the 2,972 interactions names an item of the catalog's .*share no item id") as error:
        build(BuildConfig("amazon:Gift_Cards", raw_dir=folder, out_dir=tmp_path / "out"))
    assert "same catalog" in str(error.value)


def test_a_one_word_title_of_10000_characters_is_capped(shared_data, tmp_path):
    def edit(index, record):
        if index == 0:
            record["title"] = "Gift" * 2500
        return _as_line(record)

    result = build(BuildConfig("amazon:Gift_Cards", raw_dir=_gift_cards_copy(shared_data, tmp_path / "raw", edit_meta=edit), out_dir=tmp_path / "out"))
    assert result.tables.items["title"].str.len_chars().max() <= 64 * 16
    assert result.manifest["report"]["counts"]["titles_capped_at_max_tokens"] == 1


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"] + [
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]"
        for i in range(8)
    ]
    config = tmp_path / "bomb.yaml"
    config.write_text("\n".join(bomb) + "\ninteractions: {path: x.csv, format: csv, user: u, item: i, order: list}\n")
    with pytest.raises(DataError, match=r"bomb.yaml: YAML aliases \(\*name\) are not allowed in a table config \(line 2\)"):
        build(BuildConfig(f"table:{config}", raw_dir=tmp_path, out_dir=tmp_path / "out"))


def test_a_config_name_cannot_write_outside_build(shared_data, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "escape.yaml"
    config.write_text("name: ../../escaped\ninteractions: {path: Video.txt, format: csv, separator: ' ', columns: [u, i], user: u, item: i, order: list}\n")
    with pytest.raises(DataError, match=r"the build's name '../../escaped' is not a plain name"):
        build(BuildConfig(f"table:{config}", raw_dir=shared_data / "catalogs" / "amazon-games-sasrec"))
    assert sorted(path.name for path in tmp_path.parent.iterdir() if path.name == "escaped") == []


def test_random_bytes_in_a_gzip_are_bad_rows_not_a_traceback(shared_data, tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "Gift_Cards_5.json.gz").write_bytes(gzip.compress(os.urandom(1 << 17)))
    (folder / "meta_Gift_Cards.json.gz").write_bytes((shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes())
    with pytest.raises(DataError, match=r"Gift_Cards_5.json.gz:\d+: field 'line': .* more than the 1.00% allowed"):
        build(BuildConfig("amazon:Gift_Cards", raw_dir=folder, out_dir=tmp_path / "out"))


def test_steam_placeholder_dates_and_bad_bytes_are_counted(steam_copy, tmp_path):
    """A placeholder date ("1900-01-01", as in a public Steam reviews CSV) and a username with a byte that is not UTF-8."""
    path = steam_copy / "reviews_v2_windows.json.gz"
    lines = gzip.decompress(path.read_bytes()).splitlines()
    lines[5] = re.sub(rb"'date': '\d{4}-\d{2}-\d{2}'", b"'date': '1900-01-01'", lines[5])
    lines[8] = lines[8].replace(b"'username': '", b"'username': '\xfe", 1)
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    result = build(BuildConfig("steam", raw_dir=steam_copy, out_dir=tmp_path / "out"))
    assert [(b["field"], b["reason"], b["first_line"]) for b in result.manifest["report"]["bad_rows"]] == [
        ("date", "time before 1990-01-01 (1900)", 6),
        ("line", "invalid UTF-8 (or stray control) byte(s), replaced by U+FFFD", 9),
    ]


def test_table_jsonl_values_of_the_wrong_type_are_counted_bad_rows(shared_data, tmp_path):
    """Real Gift Cards reviews as jsonl, one reviewer id a list and one asin an object: Polars alone would read them as text."""
    reviews = [json.loads(line) for line in gzip.decompress((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes()).splitlines()]
    reviews[3]["reviewerID"] = ["A1", "A2"]
    reviews[7]["asin"] = {"asin": reviews[7]["asin"]}
    (tmp_path / "reviews.jsonl").write_text("".join(json.dumps(review) + "\n" for review in reviews))
    config = tmp_path / "c.yaml"
    config.write_text("interactions: {path: reviews.jsonl, format: jsonl, user: reviewerID, item: asin, timestamp: unixReviewTime, order: timestamp}\n")
    result = build(BuildConfig(f"table:{config}", raw_dir=tmp_path, out_dir=tmp_path / "out"))
    assert [(b["field"], b["first_line"], b["reason"]) for b in result.manifest["report"]["bad_rows"]] == [
        ("reviewerID", 4, "is a JSON list, object or boolean, not one value"),
        ("asin", 8, "is a JSON list, object or boolean, not one value"),
    ]
    assert not result.tables.sequences["raw_user_id"].str.contains("[", literal=True).any()


def _dead_pid() -> int:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    return int(finished.stdout)


def test_what_killed_runs_left_is_cleaned_and_a_half_swap_restored(tmp_path):
    target = tmp_path / "steam"
    dead = _dead_pid()
    (tmp_path / f".steam.tmp-{dead}").mkdir()
    (tmp_path / f".steam.tmp-{dead}" / "half.parquet").write_bytes(b"half")
    (tmp_path / f".steam.old-{dead}").mkdir()  # killed between its two renames: the previous build
    (tmp_path / f".steam.old-{dead}" / "manifest.json").write_text("{}")
    alive = tmp_path / f".steam.tmp-{os.getppid()}"  # a running process's: kept
    alive.mkdir()
    (tmp_path / ".other.tmp-1").mkdir()  # another target's: not ours to judge
    cleaned = clean_stale(target)
    assert sorted(path.name for path in cleaned) == [f".steam.old-{dead}", f".steam.tmp-{dead}"]
    assert (target / "manifest.json").read_text() == "{}"  # renamed back
    assert alive.is_dir() and (tmp_path / ".other.tmp-1").is_dir()
    assert not (tmp_path / f".steam.tmp-{dead}").exists()
    with atomic_folder(target) as temporary:
        (temporary / "manifest.json").write_text('{"new": 1}')
    assert json.loads((target / "manifest.json").read_text()) == {"new": 1}
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted([".other.tmp-1", alive.name, "steam"])


@pytest.mark.parametrize("where", ["under a file", "under /proc"])
def test_an_unwritable_out_fails_before_any_reading(shared_data, tmp_path, where):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "steam" if where == "under a file" else Path("/proc/datagen-test/steam")
    started = []

    class Steps(StepProgress):
        def step(self, text):
            started.append(text)
            return super().step(text)

    with pytest.raises(DataError, match=r"cannot write here") as error:
        build(BuildConfig("steam", raw_dir=shared_data / "steam", out_dir=out), Steps(quiet=True))
    assert str(out.parent) in str(error.value)
    assert started == []  # before the first step, reading the files


def test_an_unwritable_cache_is_a_clear_error_naming_the_variable(sample_build, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("DATAGEN_CACHE", str(blocker / "cache"))
    with pytest.raises(DataError, match=r"the cache cannot write here") as error:
        train_teacher(BuildFolder.open(sample_build.out_dir), TeacherSettings(train=TrainConfig(epochs=1)), StepProgress(quiet=True))
    assert "$DATAGEN_CACHE" in str(error.value) and str(blocker / "cache") in str(error.value)
    with pytest.raises(DataError, match=r"the cache cannot write here"):
        AnnotationCache()
    downloaded = CliRunner().invoke(main, ["download", "steam", "--base-url", "http://127.0.0.1:9/"])
    assert downloaded.exit_code == 1 and "the cache cannot write here" in downloaded.output and "$DATAGEN_CACHE" in downloaded.output


def test_ratings_that_are_not_finite_or_off_the_scale_are_counted_bad_rows(shared_data, tmp_path):
    """A NaN, an infinity, a 500 on Amazon's 1-5 stars or a word once passed as ratings (or became a null without a
    word); each is now a bad row naming file, line and field, in Amazon's reviews and in RecBole's .inter."""
    lines = gzip.decompress((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes()).decode().splitlines()
    for number, value in ((3, '"NaN"'), (5, "500"), (8, "1e999")):  # JSON has no NaN literal: a text "NaN" casts to one
        lines[number - 1] = re.sub(r'"overall": [0-9.]+', f'"overall": {value}', lines[number - 1])
    (tmp_path / "amazon").mkdir()
    (tmp_path / "amazon" / "Gift_Cards_5.json.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    (tmp_path / "amazon" / "meta_Gift_Cards.json.gz").write_bytes((shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes())
    amazon = build(BuildConfig("amazon:Gift_Cards", raw_dir=tmp_path / "amazon", out_dir=tmp_path / "a"))
    found = [(b["field"], b["reason"], b["rows"], b["first_line"]) for b in amazon.manifest["report"]["bad_rows"]]
    assert found == [("overall", "is not a finite number", 2, 3), ("overall", "is outside the 1-5 scale", 1, 5)]
    assert amazon.tables.interactions["rating"].is_between(1, 5).all()

    reviews = pl.read_ndjson(gzip.decompress((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes())).head(400)
    ratings = reviews["overall"].cast(pl.String).scatter([2, 7, 9], ["nan", "inf", "great"])
    atomic = pl.DataFrame({"user_id:token": reviews["reviewerID"], "item_id:token": reviews["asin"], "rating:float": ratings, "timestamp:float": reviews["unixReviewTime"]})
    (tmp_path / "rb").mkdir()
    atomic.write_csv(tmp_path / "rb" / "gift.inter", separator="\t")
    recbole = build(BuildConfig("recbole:gift", raw_dir=tmp_path / "rb", out_dir=tmp_path / "r", user_core=1, item_core=1, max_bad_share=0.05))
    found = [(b["field"], b["reason"], b["rows"], b["first_line"]) for b in recbole.manifest["report"]["bad_rows"]]
    assert found == [("rating", "is not a finite number", 2, 4), ("rating", "is not a number", 1, 11)]
    assert recbole.tables.interactions["rating"].is_finite().all()


@pytest.mark.parametrize(
    ("change", "outcome"),
    [
        ("nan and inf times", "skipped"),
        ("timestamp_unit: iso on numbers", r"field 't': times cannot be read as ISO dates \(e.g. '\d+'\)\n  These look like 's': set interactions.timestamp_unit in the config to 's'"),
        ("encoding: rot13", r"interactions.encoding: 'rot13' is not a text encoding"),
        ("path: a list", r"interactions.path must be one file's path \(text\), not \['r.csv'\]"),
    ],
)
def test_table_times_codecs_and_paths_of_the_wrong_kind_are_clear(shared_data, tmp_path, change, outcome):
    """Each of these was a Polars, codecs or pathlib traceback."""
    reviews = pl.read_ndjson(gzip.decompress((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes())).head(300)
    times = reviews["unixReviewTime"].cast(pl.String)
    if change == "nan and inf times":
        times = times.scatter([3, 5], ["nan", "inf"])
    pl.DataFrame({"u": reviews["reviewerID"], "i": reviews["asin"], "t": times}).write_csv(tmp_path / "r.csv")
    extra = {"timestamp_unit: iso on numbers": ", timestamp_unit: iso", "encoding: rot13": ", encoding: rot13"}.get(change, "")
    path = "[r.csv]" if change == "path: a list" else "r.csv"
    config = tmp_path / "c.yaml"
    config.write_text(f"interactions: {{path: {path}, format: csv, user: u, item: i, timestamp: t, order: timestamp{extra}}}\n")
    arguments = ["build", f"table:{config}", "--raw-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--no-teacher", "--no-controllable", "--user-core", "1", "--item-core", "1"]
    result = CliRunner().invoke(main, arguments)
    assert "Traceback" not in result.output and not isinstance(result.exception, (TypeError, LookupError, pl.exceptions.PolarsError)), result.output
    if outcome == "skipped":
        assert result.exit_code == 0, result.output
        bad = json.loads((tmp_path / "out" / "manifest.json").read_text())["report"]["bad_rows"]
        assert [(b["field"], b["rows"], b["first_line"]) for b in bad] == [("t", 2, 5)]
    else:
        assert result.exit_code == 1 and re.search(outcome, result.output), result.output


def test_a_steam_game_field_of_the_wrong_type_is_a_counted_bad_row(steam_copy, tmp_path):
    import ast

    def damage(lines):
        for number, (field, value) in zip((3, 6, 9), (("genres", "Action"), ("title", 1999), ("id", ["761140"]))):
            game = ast.literal_eval(lines[number - 1])
            lines[number - 1] = repr({**game, field: value})
        return lines

    _rewrite_lines(steam_copy / "steam_games.json.gz", damage)
    result = build(BuildConfig("steam", raw_dir=steam_copy, out_dir=tmp_path / "out", teacher=None))
    bad = [(row["field"], row["reason"], row["first_line"]) for row in result.manifest["report"]["bad_rows"] if row["file"] == "steam_games.json.gz"]
    assert sorted(bad) == [("genres", "not a list of texts", 3), ("id", "not text or a whole number but list", 9), ("title", "not text but int", 6)]
