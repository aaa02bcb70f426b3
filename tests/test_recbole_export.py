"""`datagen export recbole`: the sample build's tables as RecBole atomic files, and back through `datagen build
recbole:NAME` to the same tables; the benchmark split alone to the same histories."""

from __future__ import annotations

import shutil

import polars as pl
import pytest
from click.testing import CliRunner

from datagen.buildfolder import BuildFolder
from datagen.cli import main
from datagen.layout import read_split

SPLITS = ("train", "validation", "test")


@pytest.fixture(scope="module")
def exported(sample_build, tmp_path_factory):
    out = tmp_path_factory.mktemp("recbole")
    result = CliRunner().invoke(main, ["export", "recbole", str(sample_build.out_dir), "--out", str(out), "--name", "steam"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out / "steam")
    return BuildFolder.open(sample_build.out_dir), out


def rebuild(raw_dir, out):
    arguments = ["build", "recbole:steam", "--raw-dir", str(raw_dir), "-O", "seq_separator=|", "--user-core", "5", "--item-core", "5", "--no-teacher", "--out", str(out), "--quiet"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    return BuildFolder.open(out)


def test_the_export_read_back_gives_the_same_tables(exported, tmp_path):
    original, out = exported
    assert sorted(path.name for path in (out / "steam").iterdir()) == ["steam.inter", "steam.item", "steam.test.inter", "steam.train.inter", "steam.valid.inter", "steam.yaml"]
    again = rebuild(out, tmp_path / "again")
    assert again.items.equals(original.items)
    assert again.sequences.equals(original.sequences)
    for split in SPLITS:
        assert read_split(again.path, "interactions", split).equals(read_split(original.path, "interactions", split)), split
    assert again.manifest["stats"] == original.manifest["stats"]


def test_the_benchmark_split_alone_gives_the_same_histories_and_split(exported, tmp_path):
    original, out = exported
    only_split = tmp_path / "split"
    shutil.copytree(out / "steam", only_split)
    (only_split / "steam.inter").unlink()
    again = rebuild(only_split, tmp_path / "again")
    columns = ["user_id", "raw_user_id", "item_ids", "train_item_ids", "valid_item_id", "test_item_id"]
    assert again.sequences.select(columns).equals(original.sequences.select(columns))
    valid = pl.read_csv(out / "steam" / "steam.valid.inter", separator="\t", quote_char=None, infer_schema=False)
    assert valid.height == original.sequences.height, "one validation row a user"
    train = pl.read_csv(out / "steam" / "steam.train.inter", separator="\t", quote_char=None, infer_schema=False)
    assert train.height == int((original.sequences["train_item_ids"].list.len() - 1).sum()), "every prefix of a train part"


def test_a_value_the_files_cannot_carry_is_named(sample_build, tmp_path):
    copy = tmp_path / "build"
    shutil.copytree(sample_build.out_dir, copy)
    items_dir = copy / "data" / "items"
    (shard,) = items_dir.glob("*.parquet")
    items = pl.read_parquet(shard)
    items.with_columns(categories=pl.when(pl.col("item_id") == 3).then(pl.lit(["Action|Indie"])).otherwise(pl.col("categories"))).write_parquet(shard)
    result = CliRunner().invoke(main, ["export", "recbole", str(copy), "--out", str(tmp_path / "out")])
    assert result.exit_code != 0 and f"item '{items['raw_item_id'][3]}'" in result.output and "Action|Indie" in result.output
    assert not (tmp_path / "out" / "build").exists(), "nothing half-written"
