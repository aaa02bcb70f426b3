"""Amazon and table sources on the real shared files."""

from __future__ import annotations

import gzip
from pathlib import Path

import duckdb
import polars as pl
import pytest

from datagen.errors import DataError
from datagen.ingest.cleaning import clean_items
from datagen.ingest.report import BuildReport
from datagen.pipeline import BuildConfig, build
from datagen.sources.amazon import read_meta
from datagen.sources.table import load_config

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_a_raw_dir_with_glob_characters_is_read_literally(shared_data, tmp_path):
    """`glob[ab]` is a folder's name, not a pattern: DuckDB's reader would have read `globa/`'s file instead."""
    real = shared_data / "amazon"
    literal, decoy = tmp_path / "glob[ab]", tmp_path / "globa"
    for folder in (literal, decoy):
        folder.mkdir()
        (folder / "meta_Gift_Cards.json.gz").write_bytes((real / "meta_Gift_Cards.json.gz").read_bytes())
    (literal / "Gift_Cards_5.json.gz").write_bytes((real / "Gift_Cards_5.json.gz").read_bytes())
    lines = gzip.decompress((real / "Gift_Cards_5.json.gz").read_bytes()).splitlines(keepends=True)
    (decoy / "Gift_Cards_5.json.gz").write_bytes(gzip.compress(b"".join(lines[: len(lines) // 2])))
    from_literal = build(BuildConfig("amazon:Gift_Cards", raw_dir=literal, out_dir=tmp_path / "literal", teacher=None))
    from_real = build(BuildConfig("amazon:Gift_Cards", raw_dir=real, out_dir=tmp_path / "real", teacher=None))
    assert from_literal.manifest["content_hash"] == from_real.manifest["content_hash"], "the same tables, byte for byte"
    assert [entry["sha256"] for entry in from_literal.manifest["inputs"]] == [entry["sha256"] for entry in from_real.manifest["inputs"]]


def test_gift_cards_reviews_and_meta(shared_data, tmp_path):
    result = build(BuildConfig("amazon:Gift_Cards", raw_dir=shared_data / "amazon", out_dir=tmp_path / "gc"))
    steps = {s["step"]: s for s in result.manifest["report"]["steps"]}
    assert steps["unknown_item"]["before"] == 2972
    assert result.tables.items["categories"].explode().drop_nulls().unique().to_list() == ["Gift Cards"]
    assert "rating" in result.tables.interactions.columns
    assert result.tables.interactions["rating"].is_between(1, 5).all()


def test_reviews_without_meta_is_a_clear_error_for_a_family(shared_data, tmp_path):
    from datagen.instructrec.build import InstructRecSettings

    with pytest.raises(DataError, match="meta_All_Beauty.json.gz") as error:
        build(BuildConfig("amazon:All_Beauty", raw_dir=shared_data / "amazon", out_dir=tmp_path / "ab", families={"instructrec": InstructRecSettings()}))
    assert "datagen download amazon:All_Beauty" in str(error.value)
    assert not (tmp_path / "ab").exists()


def test_magazine_markup_titles_are_dropped_and_counted(shared_data):
    report = BuildReport()
    con = duckdb.connect()
    items = read_meta(con, shared_data / "amazon" / "meta_Magazine_Subscriptions.json.gz", report)
    cleaned = clean_items(items, max_title_tokens=64, report=report)
    steps = {s["step"]: s for s in report.steps}
    assert steps["duplicate_item_id"]["after"] == 2320  # the README: 2,320 unique asins
    assert steps["empty_title"]["dropped"] > 0
    assert not cleaned["title"].str.contains("<|&amp;").any()
    assert "Disney & Me" in cleaned["title"].to_list()


def test_ratings_only_csv(shared_data, tmp_path):
    # The ratings-only CSV of amazon_v2 (item,user,rating,timestamp), made from the real 5-core file.
    raw = tmp_path / "raw"
    raw.mkdir()
    reviews = pl.read_ndjson(gzip.decompress((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes()))
    reviews.select("asin", "reviewerID", "overall", "unixReviewTime").write_csv(raw / "Gift_Cards.csv", include_header=False)
    (raw / "meta_Gift_Cards.json.gz").write_bytes((shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes())
    from_csv = build(BuildConfig("amazon:Gift_Cards", raw_dir=raw, out_dir=tmp_path / "csv"))
    from_json = build(BuildConfig("amazon:Gift_Cards", raw_dir=shared_data / "amazon", out_dir=tmp_path / "json"))
    assert from_csv.manifest["stats"] == from_json.manifest["stats"]
    assert from_csv.tables.sequences["item_ids"].to_list() == from_json.tables.sequences["item_ids"].to_list()


def test_scientific_catalog_through_table_config(shared_data, tmp_path):
    result = build(BuildConfig(f"table:{EXAMPLES / 'scientific.yaml'}", raw_dir=shared_data / "catalogs" / "scientific", out_dir=tmp_path / "sci"))
    stats = result.manifest["stats"]
    assert (stats["users"], stats["items"], stats["interactions"]) == (8317, 4344, 58492)
    assert stats["items_without_category"] == 131
    assert result.manifest["source"]["order"] == "list"
    # List order is the time order: user "0" is [0, 1, ..., 8] in the file.
    first = result.tables.sequences.filter(pl.col("raw_user_id") == "0")
    raw_ids = dict(result.tables.items.select("item_id", "raw_item_id").iter_rows())
    assert [raw_ids[i] for i in first["item_ids"][0]] == [str(i) for i in range(9)]
    # Root dropped, every prefix a category.
    capacitor = result.tables.items.filter(pl.col("raw_item_id") == "0")["categories"][0].to_list()
    assert capacitor == [
        "Industrial Electrical",
        "Industrial Electrical, Passive Components",
        "Industrial Electrical, Passive Components, Capacitors",
    ]


def test_the_sasrec_games_file_is_a_teacher_only_catalog(shared_data, tmp_path):
    """Space-separated "user item" lines without a header or titles, kept as the SASRec paper's authors filtered them."""
    games = shared_data / "catalogs" / "amazon-games-sasrec"
    result = build(BuildConfig(f"table:{EXAMPLES / 'amazon-games-sasrec.yaml'}", raw_dir=games, out_dir=tmp_path / "games"))
    raw = pl.read_csv(games / "Video.txt", separator=" ", has_header=False, new_columns=["user", "item"])
    kept_users = raw.group_by("user").len().filter(pl.col("len") >= 3)["user"]
    stats = result.manifest["stats"]
    assert (stats["users"], stats["interactions"]) == (kept_users.len(), raw.filter(pl.col("user").is_in(kept_users.to_list())).height)
    assert stats["items"] == raw.filter(pl.col("user").is_in(kept_users.to_list()))["item"].n_unique()
    assert result.manifest["parameters"]["user_core"] == 3 and result.manifest["parameters"]["item_core"] == 1
    assert result.manifest["source"]["has_titles"] is False
    assert result.tables.items["title"].is_null().all()
    # File order is time order: user 1's items, in the file's order.
    first = result.tables.sequences.filter(pl.col("raw_user_id") == "1")
    raw_ids = dict(result.tables.items.select("item_id", "raw_item_id").iter_rows())
    assert [int(raw_ids[i]) for i in first["item_ids"][0]] == raw.filter(pl.col("user") == 1)["item"].to_list()


@pytest.mark.parametrize(
    "families, named",
    [
        ({"teacher": "yes", "controllable": "yes"}, "the controllable dataset"),
        ({"recknowledge": "yes"}, "the recknowledge dataset"),
        ({"instructrec": "yes"}, "the instructrec dataset"),
    ],
)
def test_families_that_name_items_are_refused_before_any_work(shared_data, tmp_path, families, named):
    from datagen.controllable.build import ControllableSettings
    from datagen.instructrec.build import InstructRecSettings
    from datagen.recknowledge.build import RecKnowledgeSettings
    from datagen.teacher.settings import TeacherSettings

    settings = {"teacher": TeacherSettings(), "controllable": ControllableSettings(), "recknowledge": RecKnowledgeSettings(), "instructrec": InstructRecSettings()}
    config = BuildConfig(
        f"table:{EXAMPLES / 'amazon-games-sasrec.yaml'}",
        raw_dir=shared_data / "catalogs" / "amazon-games-sasrec",
        out_dir=tmp_path / "games",
        teacher=settings["teacher"] if "teacher" in families else None,
        families={name: settings[name] for name in families if name != "teacher"},
    )
    with pytest.raises(DataError, match=f"no item titles .*so {named}.* cannot name any item"):
        build(config)
    assert not (tmp_path / "games").exists()


@pytest.mark.parametrize(
    "body, message",
    [
        ("separator: ''", "separator must be a character or a string of them"),
        ("quote: \"''\"", "quote must be one single-byte character, or null"),
        ("columns: user", "columns must be a list of column names"),
        ("format: jsonl\n  separator: ' '", "are for format csv only"),
        ("format: jsonl\n  quote: null", "are for format csv only"),
    ],
)
def test_csv_options_are_checked(tmp_path, body, message):
    config = tmp_path / "c.yaml"
    base = {"format": "csv"} if "format:" not in body else {}
    lines = [f"  {key}: {value}" for key, value in base.items()] + [f"  {body}"]
    config.write_text("interactions:\n  path: x.txt\n  user: u\n  item: i\n  order: list\n" + "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message):
        load_config(config)


def test_table_parameters_are_defaults_below_flags(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("parameters: {user_core: 3, max_history: 15}\ninteractions: {path: x.txt, format: csv, user: u, item: i, order: list}\n")
    source_defaults = load_config(config)["parameters"]
    assert BuildConfig("x").parameters(source_defaults)["user_core"] == 3
    assert BuildConfig("x").parameters(source_defaults)["max_history"] == 15
    assert BuildConfig("x", user_core=7).parameters(source_defaults)["user_core"] == 7
    assert BuildConfig("x", preset="cao2024").parameters(source_defaults)["max_history"] == 20
    config.write_text("parameters: {user_cores: 3}\ninteractions: {path: x.txt, format: csv, user: u, item: i, order: list}\n")
    with pytest.raises(DataError, match="unknown key parameters.user_cores"):
        load_config(config)
    config.write_text("parameters: {item_core: 0}\ninteractions: {path: x.txt, format: csv, user: u, item: i, order: list}\n")
    with pytest.raises(DataError, match="parameters.item_core must be a whole number >= 1"):
        load_config(config)


def test_amazon_reviews_without_meta_build_the_teacher_only(shared_data, tmp_path):
    """Titles come from the meta file, and only the families need them: a teacher-only build takes the reviews alone,
    a default build says at once that the meta file is missing, and the family commands refuse the untitled build."""
    from click.testing import CliRunner

    from datagen.cli import main

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Gift_Cards_5.json.gz").write_bytes((shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes())
    runner = CliRunner()
    refused = runner.invoke(main, ["build", "amazon:Gift_Cards", "--raw-dir", str(raw), "--out", str(tmp_path / "full")])
    assert refused.exit_code == 1 and "no metadata for Gift_Cards found" in refused.output and "--no-controllable" in refused.output
    assert "Reading" not in refused.output and not (tmp_path / "full").exists()
    out = tmp_path / "teacher-only"
    built = runner.invoke(main, ["build", "amazon:Gift_Cards", "--raw-dir", str(raw), "--out", str(out), "--no-controllable", "--teacher-epochs", "2"])
    assert built.exit_code == 0, built.output
    items = pl.read_parquet(next((out / "data" / "items").glob("*.parquet")))
    assert items.height > 0 and items["title"].is_null().all()
    assert (out / "teacher" / "report.json").is_file()
    for command in ("generate", "recknowledge", "instructrec"):
        result = runner.invoke(main, [command, str(out)])
        assert result.exit_code == 1 and f"has no item titles (its source gave none), so the {command if command != 'generate' else 'controllable'} dataset" in result.output


@pytest.mark.parametrize("hierarchy", ["path", "set"])
def test_a_list_of_category_paths_reads_as_its_paths(shared_data, tmp_path, hierarchy):
    """The real Scientific items, converted to JSON lines whose categories are lists of paths (Amazon 2014's shape):
    each item's one real path, and that path twice (repeats dropped), give the categories of the joined string."""
    import json

    from datagen.ingest.categories import category_prefixes
    from datagen.sources.table import read_items, split_categories

    objects = list(json.loads((shared_data / "catalogs" / "scientific" / "Scientific.item.json").read_text()).items())[:300]
    paths = split_categories(pl.Series("categories", [value["categories"] for _, value in objects]), ",")
    rows = [{"id": key, "title": value["title"], "paths": [path] * (1 + int(key) % 2)} for (key, value), path in zip(objects, paths.to_list())]
    (tmp_path / "items.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    spec = {"path": "items.jsonl", "format": "jsonl", "id": "id", "title": "title", "categories": "paths", "categories_hierarchy": hierarchy}
    items, _ = read_items(tmp_path / "items.jsonl", spec, tmp_path / "c.yaml", BuildReport())
    expected = category_prefixes(paths.list.slice(1))[0] if hierarchy == "path" else paths
    assert items["categories"].to_list() == expected.list.unique(maintain_order=True).to_list()
    assert any(len(value) > 1 for value in items["categories"].to_list())


def test_a_split_that_leaves_most_items_without_a_category_warns_and_names_one_that_fits(shared_data, tmp_path):
    """The real Scientific items CONVERTED to LC-Rec's other layout, names joined by ", ": read with
    categories_split ",", nearly every item would lose its categories without a word."""
    import json

    from datagen.sources.table import read_items, split_categories

    objects = list(json.loads((shared_data / "catalogs" / "scientific" / "Scientific.item.json").read_text()).items())[:500]
    paths = split_categories(pl.Series([value["categories"] for _, value in objects]), ",").to_list()
    converted = {key: {"title": value["title"], "categories": ", ".join(path)} for (key, value), path in zip(objects, paths)}
    (tmp_path / "items.json").write_text(json.dumps(converted))
    spec = {"path": "items.json", "format": "json-object", "id": "_key", "title": "title", "categories": "categories", "categories_split": ",", "categories_hierarchy": "path"}
    report = BuildReport()
    items, _ = read_items(tmp_path / "items.json", spec, tmp_path / "c.yaml", report)
    given = sum(1 for value in converted.values() if value["categories"])
    assert (items["categories"].list.len() == 0).sum() == 500 and given > 400
    assert report.warnings == [
        f"items.json: {given} of the {given} items with a 'categories' text end with no category under items.categories_split ',' and categories_hierarchy 'path'; categories_split: ', ' leaves 0"
    ]
    good = BuildReport()
    read_items(tmp_path / "items.json", {**spec, "categories_split": ", "}, tmp_path / "c.yaml", good)
    assert good.warnings == []


def test_a_double_colon_separator_and_a_title_that_opens_with_a_quote(shared_data, tmp_path):
    """ml-1m's real movies.dat ("id::title::genres", latin-1), and a copy CONVERTED so that one title opens with a
    quote mark, as LLaRA's id::name files have them."""
    from datagen.sources.table import read_items

    movies = (shared_data / "movielens" / "ml-1m" / "movies.dat").read_bytes()
    (tmp_path / "movies.dat").write_bytes(movies)
    spec = {"path": "movies.dat", "format": "csv", "separator": "::", "columns": ["id", "title", "genres"], "encoding": "latin-1",
            "id": "id", "title": "title", "categories": "genres", "categories_split": "|"}  # fmt: skip
    items, _ = read_items(tmp_path / "movies.dat", spec, tmp_path / "c.yaml", BuildReport())
    assert items.height == len(movies.splitlines()) == 3883
    assert items.row(0, named=True) == {"raw_item_id": "1", "title": "Toy Story (1995)", "categories": ["Animation", "Children's", "Comedy"]}
    quoted = movies.replace(b"1::Toy Story (1995)::", b'1::"Toy Story" (1995)::', 1)
    (tmp_path / "movies.dat").write_bytes(quoted)
    with pytest.raises(DataError, match=r"movies.dat:1: cannot read as csv: could not parse `\"Toy Story\" \(1995\)`") as error:
        read_items(tmp_path / "movies.dat", spec, tmp_path / "c.yaml", BuildReport())
    assert "set quote: null" in error.value.hint and "infer_schema_length" not in str(error.value)
    items, _ = read_items(tmp_path / "movies.dat", {**spec, "quote": None}, tmp_path / "c.yaml", BuildReport())
    assert items["title"][0] == '"Toy Story" (1995)' and items.height == 3883
