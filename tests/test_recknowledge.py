"""The recommendation-knowledge dataset (Cao et al. 2024) on real builds: Amazon Gift_Cards (ratings) and the Steam sample."""

from __future__ import annotations

import json
import random
import re
import shutil

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from datagen.buildfolder import BuildFolder
from datagen.cli import main
from datagen.family.rows import run_row_checks
from datagen.layout import read_split
from datagen.pipeline import BuildConfig, build
from datagen.recknowledge.build import RecKnowledgeSettings, generate_recknowledge, load_library
from datagen.recknowledge.checks import CHECKS, check_context
from datagen.recknowledge.samples import corrupt_spans, numpy_rng, popularity_negatives, uncorrupt, windows


@pytest.fixture(scope="module")
def gift_cards(shared_data, tmp_path_factory) -> BuildFolder:
    """The real Amazon Gift_Cards 5-core (it has ratings), canonical tables only, with two epochs of auxiliary tasks."""
    out = tmp_path_factory.mktemp("gift") / "gift-cards"
    build(BuildConfig("amazon:Gift_Cards", raw_dir=shared_data / "amazon", out_dir=out, families={"recknowledge": RecKnowledgeSettings(epochs=2)}))
    return BuildFolder.open(out)


def _rows(folder: BuildFolder, split: str) -> pl.DataFrame:
    return read_split(folder.path, "recknowledge", split)


def test_every_label_check_passes_and_counts_follow_the_windows(gift_cards):
    report = json.loads((gift_cards.path / "reports" / "recknowledge.json").read_text())
    assert report["label_check_failures"] == []
    sequences = gift_cards.sequences
    windows_per_user = [max(1, length - 2 - 20 + 1) for length in sequences["length"].to_list() if length - 2 >= 2]
    assert report["rows"]["train"]["retrieval"] == sum(windows_per_user)
    assert report["rows"]["train"]["mim"] == 2 * sum(windows_per_user)  # two epochs
    assert report["rows"]["test"]["ranking"] == sequences.height  # every user
    assert report["rows"]["validation"]["rating"] == min(3000, sequences.height)
    assert "mim" not in report["rows"]["test"]  # auxiliary tasks are train only


def test_rating_labels_match_the_interactions(gift_cards):
    test = _rows(gift_cards, "test").filter(pl.col("task") == "rating")
    ratings = read_split(gift_cards.path, "interactions", "test").select("user_id", "item_id", "rating")
    joined = test.join(ratings, left_on=["user_id", "target_item_id"], right_on=["user_id", "item_id"])
    assert joined.height == test.height > 400
    answers = joined["completion"].list.get(0).struct.field("content").to_list()
    assert answers == ["yes" if rating > 3 else "no" for rating in joined["rating"]]
    assert set(answers) == {"yes", "no"}  # both labels occur on the real data


def test_ranking_candidates_hold_the_target_once_and_nothing_the_user_had(gift_cards):
    items_of = dict(gift_cards.sequences.select("user_id", "item_ids").rows())
    for row in _rows(gift_cards, "test").filter(pl.col("task") == "ranking").iter_rows(named=True):
        candidates = row["candidate_item_ids"]
        assert len(candidates) == len(set(candidates)) == 100
        assert candidates.count(row["target_item_id"]) == 1
        assert not set(candidates) & (set(items_of[row["user_id"]]) - {row["target_item_id"]})
        assert not set(candidates) & set(row["history_item_ids"])
    positions = [row["candidate_item_ids"].index(row["target_item_id"]) for row in _rows(gift_cards, "test").filter(pl.col("task") == "ranking").iter_rows(named=True)]
    assert len(set(positions)) > 50  # the target's position is random


def test_mim_answers_are_the_masked_items_and_epochs_draw_new_masks(gift_cards):
    mim = _rows(gift_cards, "train").filter(pl.col("task") == "mim")
    short = dict(read_split(gift_cards.path, "recknowledge_items", "train").select("item_id", "short_id").rows())
    for row in mim.iter_rows(named=True):
        answer = row["completion"][0]["content"]
        assert re.findall(r"Item ID: (I\d+),", answer) == [short[i] for i in row["label_item_ids"]]
        assert row["prompt"][-1]["content"].count("[masked item]") == len(row["masked_positions"])
    by_epoch = {epoch: dict(mim.filter(pl.col("epoch") == epoch).select("user_id", "masked_positions").rows()) for epoch in (0, 1)}
    assert sum(by_epoch[0][user] != by_epoch[1][user] for user in by_epoch[0]) > len(by_epoch[0]) / 3


def test_the_checks_catch_a_wrong_label(gift_cards):
    rows = {split: _rows(gift_cards, split).to_dicts() for split in ("train", "validation", "test")}
    ids = read_split(gift_cards.path, "recknowledge_items", "train").sort("item_id")["short_id"].to_list()
    ranking = next(row for row in rows["test"] if row["task"] == "ranking")
    ranking["completion"] = [
        {"role": "assistant", "content": ids[ranking["candidate_item_ids"][0] if ranking["candidate_item_ids"][0] != ranking["target_item_id"] else ranking["candidate_item_ids"][1]]}
    ]
    rating = next(row for row in rows["test"] if row["task"] == "rating")
    rating["completion"] = [{"role": "assistant", "content": "no" if rating["completion"][0]["content"] == "yes" else "yes"}]
    mlm = next(row for row in rows["train"] if row["task"] == "mlm")
    spans = mlm["completion"][0]["content"].split()
    mlm["completion"] = [{"role": "assistant", "content": " ".join([spans[0], "WRONG", *spans[2:]])}]  # spans[1]: the first masked word
    checks = run_row_checks(rows, CHECKS, check_context(gift_cards, ids))
    assert checks["test"]["ranking"]["failures"] == [f"answer is the target: 1 rows, e.g. {ranking['id']}"]
    assert checks["test"]["rating"]["failures"] == [f"yes exactly when the rating > 3: 1 rows, e.g. {rating['id']}"]
    assert checks["train"]["mlm"]["failures"] == [f"spans restore the text: 1 rows, e.g. {mlm['id']}"]


def test_the_same_seed_gives_the_same_bytes(gift_cards, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(gift_cards.path, copy)
    generate_recknowledge(BuildFolder.open(copy), RecKnowledgeSettings(epochs=2))
    for path in sorted((gift_cards.path / "data" / "recknowledge").glob("*.parquet")):
        assert (copy / "data" / "recknowledge" / path.name).read_bytes() == path.read_bytes(), path.name


def test_steam_has_no_ratings_so_rating_is_skipped_and_counted(sample_build, tmp_path):
    copy = tmp_path / "steam"
    shutil.copytree(sample_build.out_dir, copy)
    report = generate_recknowledge(BuildFolder.open(copy), RecKnowledgeSettings())
    assert report["label_check_failures"] == []
    assert "rating" not in report["rows"]["test"]
    skipped = {(d["split"], d["task"]): (d["reason"], d["count"]) for d in report["dropped"]}
    assert skipped[("test", "rating")] == ("the catalog has no ratings", BuildFolder.open(copy).sequences.height)
    prompt = _rows(BuildFolder.open(copy), "test")["prompt"][0][-1]["content"]
    assert prompt.startswith("A user has purchased the following Steam games (arranged in chronological order")


def test_the_wording_is_table_11s(shared_data):
    paper = (shared_data.parent / "papers" / "004_69e228c7869bf498.txt").read_text()
    for template in load_library().templates:
        placeholders = {name: "{" + name + "}" for name in template.variables}
        placeholders["catalog_noun"] = "Amazon products"
        _, text = template.render(placeholders)
        for fragment in re.split(r"\{\w+\}", text):
            assert fragment.strip(" :.") in paper, (template.id, fragment)


def test_cli_generates_and_renders(gift_cards, tmp_path):
    copy = tmp_path / "gift"
    shutil.copytree(gift_cards.path, copy)
    runner = CliRunner()
    made = runner.invoke(main, ["recknowledge", str(copy), "--epochs", "1", "--candidates", "20", "-q"])
    assert made.exit_code == 0, made.output
    assert _rows(BuildFolder.open(copy), "test").filter(pl.col("task") == "ranking")["candidate_item_ids"].list.len().unique().to_list() == [20]
    shown = runner.invoke(main, ["render", str(copy), "--family", "recknowledge", "--task", "bpr", "--n", "1"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "Which of the following two items would the user buy next?" in " ".join(shown.output.split())
    card = (copy / "README.md").read_text()
    assert "## The recommendation-knowledge tasks (Cao et al. 2024)" in card and "config_name: recknowledge_items" in card


def test_windows_negatives_and_spans():
    assert windows([1, 2], w=20) == [[1, 2]]
    assert len(windows(list(range(25)), w=20)) == 6
    weights = np.array([100.0, 1, 1, 1, 1, 1])
    drawn = popularity_negatives(numpy_rng(0), weights, 3, forbidden=[1, 2])
    assert len(set(drawn)) == 3 and not {1, 2} & set(drawn)
    assert popularity_negatives(numpy_rng(0), weights, 5, forbidden=[1, 2]) is None
    first = [popularity_negatives(numpy_rng(seed), weights, 1, forbidden=[])[0] for seed in range(200)]
    assert first.count(0) > 150  # proportional to popularity: item 0 has 100 of 105
    text = "Item ID: I3, Title: Portal 2; Item ID: I7, Title: Half-Life; Item ID: I9, Title: Dota 2;"
    for seed in range(20):
        source, target = corrupt_spans(random.Random(seed), text, density=0.2, mean_span=3)
        assert "<extra_id_0>" in source and uncorrupt(source, target) == text


def test_a_failed_label_check_fails_the_command_and_leaves_the_build_as_it_was(gift_cards, tmp_path, monkeypatch):
    """A row a check rejects (here one rating row, as a wrong label would be) stops `datagen recknowledge` before
    anything is written: it exits 1, names the check and the row, and the build keeps every byte."""
    rating_checks = dict(CHECKS["rating"])
    rating_checks["rating label"] = lambda row, context: row["id"] != "test/rating/0/0"
    monkeypatch.setitem(CHECKS, "rating", rating_checks)
    copy = tmp_path / gift_cards.path.name
    shutil.copytree(gift_cards.path, copy)
    before = {path: path.read_bytes() for path in sorted(copy.rglob("*")) if path.is_file()}
    result = CliRunner().invoke(main, ["recknowledge", str(copy), "-q", "--workers", "1"])  # in this process, which sees the patched check
    assert result.exit_code == 1
    assert "recknowledge: 1 label check(s) failed, so nothing was written" in result.output
    assert "test/rating: rating label: 1 rows, e.g. test/rating/0/0" in result.output
    assert {path: path.read_bytes() for path in sorted(copy.rglob("*")) if path.is_file()} == before
