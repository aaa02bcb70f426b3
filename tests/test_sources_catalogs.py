"""The catalogs users bring: MovieLens, Amazon 2023, RecBole atomic files, catalogs without categories.

Every build here reads real files: the shared GroupLens and Amazon files, or
conversions of them written field by field into another published format.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from datagen.controllable.build import ControllableSettings
from datagen.controllable.tasks import NO_CATEGORIES
from datagen.errors import DataError
from datagen.instructrec.build import InstructRecSettings
from datagen.pipeline import BuildConfig, build
from datagen.progress import StepProgress
from datagen.recknowledge.build import RecKnowledgeSettings
from datagen.sources.table import load_config
from datagen.teacher.settings import TeacherSettings, TrainConfig

CSV_COLUMNS_2023 = ("user_id", "parent_asin", "rating", "timestamp")
FIXTURES = Path(__file__).resolve().parent / "fixtures"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QUICK_TEACHER = TeacherSettings(dim=32, inner_dim=64, train=TrainConfig(epochs=3, batch_size=64, learning_rate=3e-3))


def every_family() -> dict:
    """BuildConfig's arguments for the teacher and every dataset family."""
    families = {"controllable": ControllableSettings(), "recknowledge": RecKnowledgeSettings(validation_users=200), "instructrec": InstructRecSettings(validation_users=200)}
    return {"teacher": QUICK_TEACHER, "families": families}


def reports(folder: Path) -> dict[str, dict]:
    return {name: json.loads((folder / "reports" / f"{name}.json").read_text()) for name in ("controllable", "recknowledge", "instructrec")}


def assert_every_label_check_passes(folder: Path) -> None:
    for name, report in reports(folder).items():
        assert report["label_checks"] and report["label_check_failures"] == [], (name, report["label_check_failures"][:3])


@pytest.fixture(scope="module")
def ml100k(shared_data, tmp_path_factory):
    """ml-100k as GroupLens publishes it, every family, 300 sampled users (the full build is in bench/)."""
    out = tmp_path_factory.mktemp("ml") / "ml-100k"
    return build(BuildConfig("movielens:ml-100k", raw_dir=shared_data / "movielens" / "ml-100k", out_dir=out, max_users=300, **every_family()))


def test_movielens_100k_builds_every_family(ml100k, shared_data):
    assert_every_label_check_passes(ml100k.out_dir)
    rows = reports(ml100k.out_dir)
    assert rows["controllable"]["rows"]["test"]["i1_pos"] > 0 and rows["instructrec"]["rows"]["test"]["recommend"] > 0
    items = ml100k.tables.items
    titles = items["title"].to_list()
    # latin-1 as published: "Double vie de Véronique, La (...)" reads as written, never U+FFFD.
    assert any(title.startswith("Double vie de Véronique, La") for title in titles) and not any("\ufffd" in title for title in titles)
    toy_story = items.filter(pl.col("raw_item_id") == "1").row(0, named=True)
    assert toy_story["title"] == "Toy Story (1995)" and toy_story["categories"] == ["Animation", "Children's", "Comedy"]
    assert "unknown" not in items["categories"].explode().to_list()
    bad = {row["reason"]: row for row in ml100k.manifest["report"]["bad_rows"]}
    assert bad["placeholder title 'unknown'"]["first_line"] == 267
    assert ml100k.manifest["source"]["catalog_noun"] == "movies"
    card = (ml100k.out_dir / "README.md").read_text()
    assert "a list of\nmovies" in card and "Harper, F. Maxwell" in card


def test_movielens_terms_reach_the_card_and_stop_a_push_without_permission(ml100k, tmp_path):
    """GroupLens' README forbids redistribution without permission: the card says so, and push refuses (before any
    request) unless the user states the permission; the dry run names the rule."""
    from click.testing import CliRunner

    from datagen.cli import main

    source = ml100k.manifest["source"]
    assert source["redistribution_forbidden"] is True and "may not be redistributed" in source["terms"]
    card = (ml100k.out_dir / "README.md").read_text()
    assert "| terms of use | GroupLens' usage licence" in card and "forbid redistribution without permission" in card
    refused = CliRunner().invoke(main, ["push", str(ml100k.out_dir), "--repo", "me/ml-100k"], env={"HF_TOKEN": "", "HF_HUB_OFFLINE": "1"})
    assert refused.exit_code != 0 and "forbid redistributing it without permission" in refused.output and "--permission-to-redistribute" in refused.output
    plan = CliRunner().invoke(main, ["push", str(ml100k.out_dir), "--repo", "me/ml-100k", "--dry-run", "--json"])
    assert plan.exit_code == 0 and "GroupLens" in json.loads(plan.output)["refused"]
    command = [sys.executable, "-m", "datagen", "push", str(ml100k.out_dir), "--repo", "me/ml-100k", "--permission-to-redistribute"]
    permitted = subprocess.run(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, capture_output=True, text=True, timeout=120)
    assert permitted.returncode != 0 and "HF_HUB_OFFLINE is set" in permitted.stderr, "past the terms, stopped only by the offline switch"


def _grouplens_1m_files(shared_data: Path, folder: Path) -> None:
    """ml-1m's real movies.dat beside a ratings.dat CONVERTED from ml-100k's u.data (ml-1m's own could not be had).

    ml-100k movie ids map to ml-1m ids through identical titles; ratings of movies without a match are left out.
    """
    folder.mkdir()
    movies = (shared_data / "movielens" / "ml-1m" / "movies.dat").read_bytes()
    (folder / "movies.dat").write_bytes(movies)
    ml1m_ids = {title: movie for movie, title, _ in (line.split("::") for line in movies.decode("latin-1").splitlines())}
    ml100k_titles = {fields[0]: fields[1] for fields in (line.split("|") for line in (shared_data / "movielens" / "ml-100k" / "u.item").read_bytes().decode("latin-1").splitlines())}
    lines = []
    for line in (shared_data / "movielens" / "ml-100k" / "u.data").read_text().splitlines():
        user, item, rating, time = line.split("\t")
        if ml100k_titles[item] in ml1m_ids:
            lines.append(f"{user}::{ml1m_ids[ml100k_titles[item]]}::{rating}::{time}\n")
    (folder / "ratings.dat").write_bytes("".join(lines).encode("latin-1"))


def test_movielens_1m_double_colon_files(shared_data, tmp_path):
    _grouplens_1m_files(shared_data, tmp_path / "ml-1m")
    result = build(BuildConfig("movielens:ml-1m", raw_dir=tmp_path, out_dir=tmp_path / "out"))  # finds tmp_path/ml-1m/
    items = result.tables.items
    assert items.filter(pl.col("raw_item_id") == "1").row(0, named=True)["categories"] == ["Animation", "Children's", "Comedy"]
    assert result.manifest["stats"]["users"] > 900 and result.tables.interactions["rating"].is_between(1, 5).all()


def test_movielens_csv_release_matches_the_old_files(ml100k, shared_data, tmp_path):
    """ml-100k rewritten as the CSV releases are (ratings.csv, movies.csv, UTF-8, quoted titles) builds the same tables."""
    folder = tmp_path / "ml-latest-small"
    folder.mkdir()
    ratings = pl.read_csv(shared_data / "movielens" / "ml-100k" / "u.data", separator="\t", has_header=False, new_columns=["userId", "movieId", "rating", "timestamp"])
    ratings.write_csv(folder / "ratings.csv")
    genre_names = [line.split("|")[0] for line in (shared_data / "movielens" / "ml-100k" / "u.genre").read_text().splitlines() if line]
    movies = []
    for line in (shared_data / "movielens" / "ml-100k" / "u.item").read_bytes().decode("latin-1").splitlines():
        fields = line.split("|")
        genres = "|".join(name for name, flag in zip(genre_names, fields[5:]) if flag == "1" and name != "unknown") or "(no genres listed)"
        movies.append({"movieId": int(fields[0]), "title": fields[1], "genres": genres})
    pl.DataFrame(movies).write_csv(folder / "movies.csv")
    assert b'"Usual Suspects, The (1995)"' in (folder / "movies.csv").read_bytes()
    result = build(BuildConfig("movielens:ml-latest-small", raw_dir=folder, out_dir=tmp_path / "out", max_users=300))
    assert result.tables.items.equals(ml100k.tables.items)
    assert result.tables.sequences.equals(ml100k.tables.sequences)


def test_unknown_movielens_release_is_named(tmp_path):
    with pytest.raises(DataError, match="unknown MovieLens release 'ml-3m'.*ml-100k"):
        build(BuildConfig("movielens:ml-3m", raw_dir=tmp_path, out_dir=tmp_path / "out"))


def test_amazon_2023_fixture_is_the_conversion_of_the_real_2018_files(shared_data, tmp_path):
    subprocess.run(
        [sys.executable, str(FIXTURES / "amazon2023" / "convert_from_2018.py"), str(shared_data / "amazon"), "Gift_Cards", str(tmp_path)],
        check=True,
        capture_output=True,
    )
    for name in ("Gift_Cards.jsonl.gz", "meta_Gift_Cards.jsonl.gz"):
        assert (tmp_path / name).read_bytes() == (FIXTURES / "amazon2023" / name).read_bytes()


def test_gift_cards_through_both_releases_gives_the_same_tables(shared_data, tmp_path):
    from_2023 = build(BuildConfig("amazon:Gift_Cards", raw_dir=FIXTURES / "amazon2023", out_dir=tmp_path / "2023", **every_family()))
    from_2018 = build(BuildConfig("amazon:Gift_Cards", raw_dir=shared_data / "amazon", out_dir=tmp_path / "2018"))
    assert from_2023.manifest["data_version"] == from_2018.manifest["data_version"]
    assert from_2023.manifest["outputs"] == from_2018.manifest["outputs"]
    assert from_2023.manifest["source"]["citation_keys"] == ["hou2024"] and from_2018.manifest["source"]["citation_keys"] == ["ni2019"]
    assert (from_2023.manifest["source"]["variant"], from_2018.manifest["source"]["variant"]) == ("amazon 2023", "amazon 2018")
    assert_every_label_check_passes(from_2023.out_dir)


@pytest.mark.parametrize("layout", ["last_out_w_his", "rating_only"])
def test_amazon_2023_benchmark_csvs_give_the_tables_of_the_reviews(tmp_path, layout):
    """The 2023 fixture's reviews CONVERTED to the lab's benchmark CSVs (user_id,parent_asin,rating,timestamp in ms,
    and for last_out_w_his a history column and each user's last item in test, the one before in valid): the same
    tables as the reviews file."""
    lines = gzip.decompress((FIXTURES / "amazon2023" / "Gift_Cards.jsonl.gz").read_bytes()).splitlines()
    records = pl.DataFrame([{column: json.loads(line)[column] for column in CSV_COLUMNS_2023} for line in lines])
    (tmp_path / "meta_Gift_Cards.jsonl.gz").write_bytes((FIXTURES / "amazon2023" / "meta_Gift_Cards.jsonl.gz").read_bytes())
    if layout == "rating_only":
        records.write_csv(tmp_path / "Gift_Cards.csv")
    else:
        ordered = records.with_row_index("file_order").sort("user_id", "timestamp", "file_order")
        ordered = ordered.with_columns(place=pl.int_range(pl.len()).over("user_id"), count=pl.len().over("user_id"))
        ordered = ordered.with_columns(history=pl.col("parent_asin").cumulative_eval(pl.element().head(pl.len() - 1).str.join(" ")).over("user_id"))
        for split, keep in (("train", pl.col("place") < pl.col("count") - 2), ("valid", pl.col("place") == pl.col("count") - 2), ("test", pl.col("place") == pl.col("count") - 1)):
            ordered.filter(keep).sort("file_order").select(*CSV_COLUMNS_2023, "history").write_csv(tmp_path / f"Gift_Cards.{split}.csv")
    from_csv = build(BuildConfig("amazon:Gift_Cards", raw_dir=tmp_path, out_dir=tmp_path / "csv"))
    from_reviews = build(BuildConfig("amazon:Gift_Cards", raw_dir=FIXTURES / "amazon2023", out_dir=tmp_path / "reviews"))
    assert from_csv.manifest["source"]["variant"] == "amazon 2023"
    assert from_csv.tables.sequences.select("raw_user_id", "item_ids").sort("raw_user_id").equals(from_reviews.tables.sequences.select("raw_user_id", "item_ids").sort("raw_user_id"))
    assert from_csv.manifest["stats"] == from_reviews.manifest["stats"]


def test_amazon_2023_milliseconds_read_as_seconds_is_a_loud_error(shared_data, tmp_path):
    (tmp_path / "Gift_Cards.jsonl.gz").write_bytes((FIXTURES / "amazon2023" / "Gift_Cards.jsonl.gz").read_bytes())
    (tmp_path / "meta_Gift_Cards.jsonl.gz").write_bytes((FIXTURES / "amazon2023" / "meta_Gift_Cards.jsonl.gz").read_bytes())
    records = [json.loads(line) for line in gzip.decompress((tmp_path / "Gift_Cards.jsonl.gz").read_bytes()).splitlines()]
    as_2018 = [{"reviewerID": r["user_id"], "asin": r["parent_asin"], "overall": r["rating"], "unixReviewTime": r["timestamp"]} for r in records]
    (tmp_path / "Gift_Cards_5.json.gz").write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in as_2018).encode()))
    (tmp_path / "meta_Gift_Cards.json.gz").write_bytes((shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes())
    with pytest.raises(DataError, match="both releases"):
        build(BuildConfig("amazon:Gift_Cards", raw_dir=tmp_path, out_dir=tmp_path / "out"))
    with pytest.raises(DataError, match=r"2,972 of 2,972 times are implausible read as 's'") as error:
        build(BuildConfig("amazon:Gift_Cards", raw_dir=tmp_path, out_dir=tmp_path / "out", options={"release": "2018"}))
    assert "look like 'ms'" in str(error.value) and "unixReviewTime" in str(error.value)
    assert not (tmp_path / "out").exists()


def _recbole_ml100k(shared_data: Path, folder: Path) -> None:
    """ml-100k CONVERTED field by field into RecBole's atomic files, as RecBole's own ml-100k is laid out:
    the year moves from the title to release_year, genres are a space-separated token_seq, and the placeholder
    movie 267 is kept as RecBole keeps it: title "unkonwn", class "unknown"."""
    folder.mkdir(parents=True)
    genre_names = [line.split("|")[0] for line in (shared_data / "movielens" / "ml-100k" / "u.genre").read_text().splitlines() if line]
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += (shared_data / "movielens" / "ml-100k" / "u.data").read_text().splitlines()
    (folder / "ml-100k.inter").write_text("\n".join(inter) + "\n")
    items = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for line in (shared_data / "movielens" / "ml-100k" / "u.item").read_bytes().decode("latin-1").splitlines():
        fields = line.split("|")
        if fields[1] == "unknown":
            items.append(f"{fields[0]}\tunkonwn\t\tunknown")
            continue
        title, year = re.fullmatch(r"(.*?)(?: \((\d{4})\))?", fields[1]).groups()
        genres = " ".join(name for name, flag in zip(genre_names, fields[5:]) if flag == "1")
        items.append(f"{fields[0]}\t{title}\t{year or ''}\t{genres}")
    (folder / "ml-100k.item").write_text("\n".join(items) + "\n")


def test_recbole_atomic_files(ml100k, shared_data, tmp_path):
    _recbole_ml100k(shared_data, tmp_path / "ml-100k")
    result = build(BuildConfig("recbole:ml-100k", raw_dir=tmp_path, out_dir=tmp_path / "out", max_users=300, options={"catalog_noun": "movies"}))
    assert result.manifest["source"]["catalog_noun"] == "movies"
    assert result.manifest["report"]["counts"]["placeholder_titles_dropped"] == 1, "movie 267, dropped by the rule every source shares"
    assert result.tables.sequences.equals(ml100k.tables.sequences)
    assert result.tables.items["categories"].to_list() == ml100k.tables.items["categories"].to_list()
    # the year back on the title, as MovieLens writes it: the same titles, "That Darn Cat! (1965)" and "(1997)" apart
    assert result.tables.items["title"].to_list() == ml100k.tables.items["title"].to_list()
    assert result.tables.items.filter(pl.col("raw_item_id") == "1")["title"][0] == "Toy Story (1995)"
    assert {"That Darn Cat! (1965)", "That Darn Cat! (1997)"} <= set(result.tables.items["title"])
    without_year = build(BuildConfig("recbole:ml-100k", raw_dir=tmp_path, out_dir=tmp_path / "bare", max_users=300, options={"year": "none"}))
    assert without_year.tables.items.filter(pl.col("raw_item_id") == "1")["title"][0] == "Toy Story"


def test_recbole_sequence_form_benchmark_files(ml100k, tmp_path):
    """RecBole's benchmark split (.train/.valid/.test.inter, item_id_list cut to 50 + next item_id, one row per prefix) gives back each history."""
    sequences = ml100k.tables.sequences
    raw_item = dict(ml100k.tables.items.select("item_id", "raw_item_id").iter_rows())
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    files = {split: ["user_id:token\titem_id_list:token_seq\titem_id:token"] for split in ("train", "valid", "test")}
    for user, items in sequences.select("raw_user_id", "item_ids").iter_rows():
        raw = [raw_item[item] for item in items]
        for end in range(1, len(raw)):
            split = "test" if end == len(raw) - 1 else "valid" if end == len(raw) - 2 else "train"
            files[split].append(f"{user}\t{' '.join(raw[max(0, end - 50) : end])}\t{raw[end]}")  # RecBole's MAX_ITEM_LIST_LENGTH
    for split, lines in files.items():
        (folder / f"ml-100k.{split}.inter").write_text("\n".join(lines) + "\n")
    (folder / "ml-100k.item").write_text("item_id:token\ttitle:token_seq\n" + "".join(f"{raw}\tMovie {raw}\n" for raw in raw_item.values()))
    result = build(BuildConfig("recbole:ml-100k", raw_dir=folder, out_dir=tmp_path / "out", user_core=1, item_core=1))
    assert result.manifest["source"]["order"] == "list"
    assert result.manifest["source"]["variant"] == "recbole sequences (item_id_list)"
    rebuilt_raw = dict(result.tables.items.select("item_id", "raw_item_id").iter_rows())
    rebuilt = {user: [rebuilt_raw[item] for item in items] for user, items in result.tables.sequences.select("raw_user_id", "item_ids").iter_rows()}
    assert rebuilt == {user: [raw_item[item] for item in items] for user, items in sequences.select("raw_user_id", "item_ids").iter_rows()}


@pytest.fixture(scope="module")
def scientific_without_categories(shared_data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("nocat")
    config = folder / "scientific-no-categories.yaml"
    config.write_text(
        "name: scientific-no-categories\ncatalog_noun: products\n"
        "items: {path: Scientific.item.json, format: json-object, id: _key, title: title}\n"
        "interactions: {path: Scientific.inter.json, format: json-object, user: _key, item: _value, order: list}\n"
    )
    progress = StepProgress(quiet=True)
    return build(
        BuildConfig(f"table:{config}", raw_dir=shared_data / "catalogs" / "scientific", out_dir=folder / "out", max_users=2000, item_core=1, **every_family()),
        progress,
    )


def test_a_catalog_without_categories_builds_what_needs_none(scientific_without_categories):
    folder = scientific_without_categories.out_dir
    assert scientific_without_categories.manifest["source"]["has_categories"] is False
    assert_every_label_check_passes(folder)
    made = reports(folder)
    controllable = made["controllable"]
    assert controllable["rows"]["test"]["i0"] > 0 and controllable["rows"]["test"]["item_count"] > 0
    skipped = {(row["split"], row["job"]): row for row in controllable["dropped"] if row["reason"] == NO_CATEGORIES}
    assert {"i1_pos", "i1_neg", "i2_le_20", "i2_approx_30", "i2_ge_30", "i1_pos_neg", "i2_le_neg_20"} <= {job for split, job in skipped if split == "test"}
    assert ("train", "i3") in skipped
    assert made["recknowledge"]["rows"]["test"]["retrieval"] > 0
    assert made["instructrec"]["rows"]["test"]["recommend"] > 0
    card = (folder / "README.md").read_text()
    assert "carry no\ncategories" in card and NO_CATEGORIES in card
    assert "categories.png" not in card and not (folder / "images" / "categories.png").exists(), "no empty plot"
    assert "license_link" not in card, "no terms page known: no link (it pointed at the card itself)"


def test_a_recbole_file_in_milliseconds_names_the_unit_and_its_option(shared_data, tmp_path):
    reviews = pl.read_ndjson(gzip.decompress((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes()))
    rows = reviews.select(pl.col("reviewerID").alias("user_id:token"), pl.col("asin").alias("item_id:token"), (pl.col("unixReviewTime") * 1000).alias("timestamp:float"))
    (tmp_path / "gift").mkdir()
    rows.write_csv(tmp_path / "gift" / "gift.inter", separator="\t")
    with pytest.raises(DataError, match=r"implausible read as 's'.*\n.*look like 'ms': set -O timestamp_unit to 'ms'"):
        build(BuildConfig("recbole:gift", raw_dir=tmp_path, out_dir=tmp_path / "s", user_core=1, item_core=1))
    in_ms = build(BuildConfig("recbole:gift", raw_dir=tmp_path, out_dir=tmp_path / "ms", user_core=1, item_core=1, options={"timestamp_unit": "ms"}))
    assert in_ms.tables.interactions["timestamp"].max() == reviews["unixReviewTime"].max()


def test_recbole_amazon_categories_read_as_the_paths_they_are(shared_data, tmp_path):
    """Gift Cards' real meta CONVERTED field by field to a RecBole Amazon .item, whose categories:token_seq holds each
    path as a Python list's text ('Gift Cards', 'Gift Cards'), one name CSV-quoted as RecBole's files have them: read
    as the paths, root dropped, every prefix a category, as the amazon source reads the meta itself."""
    import json

    from datagen.ingest.categories import category_prefixes
    from datagen.sources.recbole import read_items as read_recbole_items

    metas = [json.loads(line) for line in gzip.decompress((shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes()).decode().splitlines()]
    paths = [meta.get("category") or [] for meta in metas]
    paths[0] = [*paths[0], "Men's"]
    texts = [", ".join(repr(name) for name in path).replace('"', '""') for path in paths]
    (tmp_path / "gift.item").write_text("item_id:token\ttitle:token_seq\tcategories:token_seq\n" + "".join(f"{meta['asin']}\t{meta['title']}\t{text}\n" for meta, text in zip(metas, texts)))
    defaults = {"title": None, "year": None, "categories": None, "seq_separator": " ", "categories_hierarchy": None, "keep_root": "false"}
    items, field = read_recbole_items(tmp_path / "gift.item", defaults)
    as_paths = pl.Series(paths, dtype=pl.List(pl.String))
    expected, _ = category_prefixes(as_paths.list.slice(1))
    assert field == "categories" and items["categories"].to_list() == expected.to_list()
    assert items["categories"][0].to_list()[-1].endswith("Men's") and not any("'" == name[0] for names in items["categories"].to_list() for name in names)
    # the table source's path options: the root kept, or every name a category
    with_root, _ = read_recbole_items(tmp_path / "gift.item", {**defaults, "keep_root": "true"})
    assert with_root["categories"].to_list() == category_prefixes(as_paths)[0].to_list() and with_root["categories"][0][0] == "Gift Cards"
    as_set, _ = read_recbole_items(tmp_path / "gift.item", {**defaults, "categories_hierarchy": "set"})
    assert as_set["categories"].to_list() == as_paths.to_list()
    with pytest.raises(DataError, match="categories_hierarchy is set or path"):
        read_recbole_items(tmp_path / "gift.item", {**defaults, "categories_hierarchy": "tree"})


def test_an_incomplete_recbole_benchmark_split_names_what_is_missing(tmp_path):
    from datagen.sources.recbole import interaction_files

    for split in ("valid", "test"):
        (tmp_path / f"ml.{split}.inter").write_text("user_id:token\titem_id_list:token_seq\titem_id:token\n")
    with pytest.raises(DataError, match=r"the benchmark split is incomplete: ml.train.inter missing beside ml.valid.inter, ml.test.inter"):
        interaction_files(tmp_path, "ml")


def test_table_timestamp_units_and_plausibility(shared_data, tmp_path):
    reviews = pl.read_ndjson(gzip.decompress((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes()))
    interactions = reviews.select("reviewerID", "asin", (pl.col("unixReviewTime") * 1000).alias("ms"))
    interactions.write_csv(tmp_path / "reviews.csv")
    spec = "interactions: {path: reviews.csv, format: csv, user: reviewerID, item: asin, timestamp: ms, order: timestamp%s}\n"
    config = tmp_path / "c.yaml"
    config.write_text(spec % "")
    with pytest.raises(DataError, match=r"implausible read as 's'.*\n.*look like 'ms': set interactions.timestamp_unit in the config to 'ms'"):
        build(BuildConfig(f"table:{config}", raw_dir=tmp_path, out_dir=tmp_path / "out", user_core=1, item_core=1))
    config.write_text(spec % ", timestamp_unit: ms")
    with_ms = build(BuildConfig(f"table:{config}", raw_dir=tmp_path, out_dir=tmp_path / "ms", user_core=1, item_core=1))
    assert with_ms.tables.interactions["timestamp"].max() == reviews["unixReviewTime"].max()
    # A placeholder date among real ones is a counted bad row, named by line and field.
    dated = interactions.with_columns(pl.from_epoch(pl.col("ms"), time_unit="ms").dt.strftime("%Y-%m-%d").alias("date"))
    dated = dated.with_columns(pl.when(pl.int_range(pl.len()) == 4).then(pl.lit("1900-01-01")).otherwise("date").alias("date"))
    dated.write_csv(tmp_path / "reviews.csv")
    config.write_text(spec.replace("timestamp: ms", "timestamp: date") % ", timestamp_unit: iso")
    result = build(BuildConfig(f"table:{config}", raw_dir=tmp_path, out_dir=tmp_path / "iso", user_core=1, item_core=1))
    assert result.manifest["report"]["bad_rows"] == [{"file": "reviews.csv", "what": "interactions", "field": "date", "reason": "time before 1990-01-01 (1900)", "rows": 1, "first_line": 6}]


def test_table_encoding_and_comma_categories(shared_data, tmp_path):
    config = tmp_path / "ml.yaml"
    body = (
        "items: {path: u.item, format: csv, separator: '|', columns: [id, title, date, video, url], id: id, title: title%s}\n"
        'interactions: {path: u.data, format: csv, separator: "\\t", columns: [user, item, rating, time], user: user, item: item, timestamp: time, order: timestamp}\n'
    )
    (tmp_path / "u.data").write_bytes((shared_data / "movielens" / "ml-100k" / "u.data").read_bytes())
    # Only the first five columns: the genre flags are left out of this config.
    lines = (shared_data / "movielens" / "ml-100k" / "u.item").read_bytes().splitlines()
    (tmp_path / "u.item").write_bytes(b"\n".join(b"|".join(line.split(b"|")[:5]) for line in lines) + b"\n")
    config.write_text(body % "")
    with pytest.raises(DataError, match=r"u.item:\d+: byte b'\\x\w\w' is not utf-8") as error:
        load_and_build(config, tmp_path)
    assert "items.encoding" in str(error.value)
    config.write_text(body % ", encoding: latin-1")
    result = load_and_build(config, tmp_path)
    assert "Nénette et Boni (1996)" in result.tables.items["title"].to_list()
    # The same file converted to UTF-8, still declared latin-1: refused, where it would read "é" as "Ã©".
    latin = (tmp_path / "u.item").read_bytes()
    (tmp_path / "u.item").write_bytes(latin.decode("latin-1").encode("utf-8"))
    with pytest.raises(DataError, match=r"u.item:\d+: the file is UTF-8, not latin-1 as items.encoding says: latin-1 would read '.+' as '.*Ã.*'") as error:
        load_and_build(config, tmp_path)
    assert "Drop items.encoding" in error.value.hint
    (tmp_path / "u.item").write_bytes(latin)
    # LC-Rec joins Amazon category names with a bare comma; names keep their own ", ".
    scientific = build(BuildConfig(f"table:{EXAMPLES / 'scientific.yaml'}", raw_dir=shared_data / "catalogs" / "scientific", out_dir=tmp_path / "sci"))
    names = set(scientific.tables.items["categories"].explode().drop_nulls().to_list())
    assert "Tapes, Adhesives & Sealants" in names and "Tapes" not in names


def load_and_build(config: Path, raw_dir: Path):
    load_config(config)
    return build(BuildConfig(f"table:{config}", raw_dir=raw_dir, out_dir=raw_dir / "out"))


def test_instructrec_skips_a_point_with_too_few_items_outside_its_sequence(shared_data, tmp_path):
    """1,500 sampled Scientific users, 5-cored, leave a catalog so small that some users have seen nearly all of it:
    their select and pointwise rows are skipped and counted, where drawing negatives once looped forever."""
    from datagen.instructrec.build import TOO_FEW_NEGATIVES

    result = build(
        BuildConfig(f"table:{EXAMPLES / 'scientific.yaml'}", raw_dir=shared_data / "catalogs" / "scientific", out_dir=tmp_path / "sci", max_users=1500, families={"instructrec": InstructRecSettings()})
    )
    report = json.loads((result.out_dir / "reports" / "instructrec.json").read_text())
    assert result.manifest["stats"]["items"] < 20
    assert any(row["reason"] == TOO_FEW_NEGATIVES for row in report["skipped"])
    assert report["rows"]["test"]["recommend"] > 0 and report["label_check_failures"] == []


def test_table_list_column_keep_root_and_the_cards_citation(shared_data, tmp_path):
    """Scientific's users as one csv row each (`items` text split at " "), paths that keep their root, the data's own BibTeX and licence."""
    scientific = shared_data / "catalogs" / "scientific"
    users = json.loads((scientific / "Scientific.inter.json").read_text())
    pl.DataFrame({"user": list(users), "items": [" ".join(str(item) for item in items) for items in users.values()]}).write_csv(tmp_path / "users.csv")
    (tmp_path / "Scientific.item.json").write_bytes((scientific / "Scientific.item.json").read_bytes())
    citation = "@misc{scientific2024,\n  title = {Industrial and Scientific, as LC-Rec prepared it}\n}"
    config = tmp_path / "rows.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "scientific-rows",
                "catalog_noun": "products",
                "citation": citation,
                "license": "cc-by-4.0",
                "items": {"path": "Scientific.item.json", "format": "json-object", "id": "_key", "title": "title", "categories": "categories",
                          "categories_split": ",", "categories_hierarchy": "path", "keep_root": True},
                "interactions": {"path": "users.csv", "format": "csv", "user": "user", "item": "items", "item_split": " ", "order": "list"},
            }
        )
    )  # fmt: skip
    rows = build(BuildConfig(f"table:{config}", raw_dir=tmp_path, out_dir=tmp_path / "rows"))
    reference = build(BuildConfig(f"table:{EXAMPLES / 'scientific.yaml'}", raw_dir=scientific, out_dir=tmp_path / "reference"))
    assert rows.tables.sequences.equals(reference.tables.sequences)
    with_root = set(rows.tables.items["categories"].explode().drop_nulls())
    assert "Industrial & Scientific" in with_root and "Industrial & Scientific" not in set(reference.tables.items["categories"].explode().drop_nulls())
    card = (rows.out_dir / "README.md").read_text()
    assert "license: cc-by-4.0" in card and "@misc{scientific2024," in card
    assert rows.manifest["source"]["redistribution_forbidden"] is False and rows.manifest["source"]["terms"] == ""


@pytest.mark.parametrize(
    "extra, message",
    [
        ("interactions: {encoding: klingon}", "interactions.encoding: unknown encoding 'klingon'"),
        ("interactions: {format: parquet, encoding: latin-1}", "encoding is for text formats"),
        ("interactions: {timestamp: t, timestamp_unit: days}", "timestamp_unit must be one of s, ms, us, iso"),
        ("items: {keep_root: true}", "keep_root is true or false, and only for categories_hierarchy: path"),
        ("catalog_noun: ''", "catalog_noun must be a non-empty string"),
        ("licence: mit", "unknown key 'licence'"),
        ("redistribution: never", "redistribution must be allowed or forbidden, not 'never'"),
        ("terms: ''", "terms must be a non-empty string"),
    ],
)
def test_new_table_keys_are_checked(tmp_path, extra, message):
    config = {
        "items": {"path": "i.csv", "format": "csv", "id": "id", "title": "title"},
        "interactions": {"path": "x.csv", "format": "csv", "user": "u", "item": "i", "order": "list"},
    }
    for key, value in yaml.safe_load(extra).items():
        config[key] = {**config[key], **value} if isinstance(value, dict) else value
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(DataError, match=message):
        load_config(path)
