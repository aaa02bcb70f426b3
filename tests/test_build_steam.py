"""The Steam source and the shared pipeline, on the real sample shipped in the package."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from datagen.pipeline import BuildConfig, build
from datagen.sources.steam import SAMPLE_DIR


def test_sample_build_writes_canonical_tables(sample_build):
    out = sample_build.out_dir
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and "images" not in p.parts) == [
        "README.md",
        "data/interactions/test-00000-of-00001.parquet",
        "data/interactions/train-00000-of-00001.parquet",
        "data/interactions/validation-00000-of-00001.parquet",
        "data/items/train-00000-of-00001.parquet",
        "manifest.json",
        "sequences.parquet",
        "stats.md",
    ]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["from_shipped_sample"] is True
    assert manifest["name"] == "steam-sample"
    assert [entry["file"] for entry in manifest["inputs"]] == ["steam_games.json.gz", "reviews_v2_windows.json.gz"]
    for name, entry in manifest["outputs"].items():
        assert pl.read_parquet(out / name).height == entry["rows"]
    stats = manifest["stats"]
    assert stats["interactions"] == sum(pl.read_parquet(path).height for path in (out / "data" / "interactions").glob("*.parquet"))
    assert stats["sparsity"] == pytest.approx(1 - stats["interactions"] / (stats["users"] * stats["items"]), abs=1e-6)
    # Every step's counts chain: what one step keeps, the next starts from.
    inter_steps = [s for s in manifest["report"]["steps"] if s["table"] == "interactions"]
    for earlier, later in zip(inter_steps, inter_steps[1:]):
        assert later["before"] == earlier["after"]
    assert inter_steps[-1]["after"] == stats["interactions"]


def test_histories_are_k_core_deduplicated_time_ordered_and_split(sample_build):
    interactions = sample_build.tables.interactions
    sequences = sample_build.tables.sequences
    assert interactions.select("user_id", "item_id").is_duplicated().sum() == 0
    assert interactions.group_by("user_id").len()["len"].min() >= 5
    assert interactions.group_by("item_id").len()["len"].min() >= 5
    ordered = interactions.sort("user_id", "position")
    assert (ordered.group_by("user_id", maintain_order=True).agg(pl.col("timestamp").diff().min())["timestamp"].drop_nulls() >= 0).all()
    for row in sequences.head(200).iter_rows(named=True):
        assert row["train_item_ids"] + [row["valid_item_id"], row["test_item_id"]] == row["item_ids"]
        assert row["timestamps"] == sorted(row["timestamps"])
    splits = interactions.group_by("split").len().sort("split")
    assert dict(splits.iter_rows()) == {"test": sequences.height, "valid": sequences.height, "train": interactions.height - 2 * sequences.height}


def test_titles_are_clean_and_unique_ignoring_case(sample_build):
    items = sample_build.tables.items
    titles = items["title"]
    assert titles.str.to_lowercase().n_unique() == items.height
    assert not titles.str.contains(r"<|>|\s\s|^\s|\s$|&amp;").any()
    assert (titles.str.len_chars() > 0).all()


@pytest.mark.integration  # two builds of the sample
def test_same_inputs_and_seed_give_byte_identical_files(tmp_path):
    outputs = []
    for run in ("a", "b"):
        result = build(BuildConfig("steam", raw_dir=SAMPLE_DIR, out_dir=tmp_path / run, max_users=800, seed=7))
        outputs.append({p.relative_to(result.out_dir): p.read_bytes() for p in result.out_dir.rglob("*") if p.is_file()})
    assert outputs[0] == outputs[1]
    other = build(BuildConfig("steam", raw_dir=SAMPLE_DIR, out_dir=tmp_path / "c", max_users=800, seed=8))
    assert (other.out_dir / "sequences.parquet").read_bytes() != outputs[0][Path("sequences.parquet")]


def test_tags_option_changes_categories(tmp_path, sample_build):
    tags = build(BuildConfig("steam", raw_dir=SAMPLE_DIR, out_dir=tmp_path / "tags", options={"category_field": "tags"}))
    assert tags.manifest["stats"]["categories"] > sample_build.manifest["stats"]["categories"]
    assert tags.manifest["source"]["options"]["category_field"] == "tags"


def test_lu2024_preset_on_windowed_data_is_a_clear_error(tmp_path):
    # The shared Steam windows have at most 13 reviews a user: no user survives a 25-core.
    from datagen.errors import DataError

    with pytest.raises(DataError, match="25-user/10-item core is empty"):
        build(BuildConfig("steam", raw_dir=SAMPLE_DIR, out_dir=tmp_path / "lu", preset="lu2024"))
    assert not (tmp_path / "lu").exists()


def test_real_steam_files(shared_data, tmp_path):
    result = build(BuildConfig("steam", raw_dir=shared_data / "steam", out_dir=tmp_path / "steam"))
    assert result.manifest["source"]["from_shipped_sample"] is False
    steps = {s["step"]: s for s in result.manifest["report"]["steps"]}
    assert steps["unknown_item"]["before"] == 205_517  # every review line parsed
    assert steps["duplicate_interaction"]["dropped"] > 0  # the README: duplicates occur
    assert result.manifest["stats"]["users"] > 10_000
