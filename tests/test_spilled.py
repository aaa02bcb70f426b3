"""A split gathered on disk a table at a time writes the bytes `write_split` writes of the whole split in memory."""

import polars as pl
import pytest

from datagen.controllable.build import ARROW_SCHEMA
from datagen.family.spilled import SpilledSplit, spill
from datagen.layout import write_split
from datagen.output import scratch_folder


@pytest.mark.parametrize(("shards", "row_group_rows", "table_rows"), [(1, 1 << 20, 1000), (3, 500, 997), (7, 64, 333), (2, 1000, 11)])
def test_spilled_rows_write_the_shards_and_row_groups_of_the_split_in_memory(sample_generated, tmp_path, shards, row_group_rows, table_rows):
    rows = sample_generated[2]["train"].head(6000)
    # Half a shard from a boundary: the tables' summed estimates differ from the frame's by a few bytes each.
    max_shard_bytes = int(rows.estimated_size() / (shards - 0.5))
    in_memory = write_split(rows, tmp_path / "in-memory", "train", max_shard_bytes, row_group_rows)
    spilled = SpilledSplit(tmp_path, "train", rows.to_arrow().schema)
    for start in range(0, rows.height, table_rows):
        spilled.add(spill(rows.slice(start, table_rows).to_arrow(), spilled.next_path()))
    on_disk = spilled.write(tmp_path / "spilled", "train", max_shard_bytes, row_group_rows)
    assert [path.name for path in on_disk] == [path.name for path in in_memory] and len(on_disk) == shards
    assert [path.read_bytes() for path in on_disk] == [path.read_bytes() for path in in_memory]


def test_an_empty_spilled_split_writes_the_empty_shard_of_an_empty_frame(tmp_path):
    in_memory = write_split(pl.from_arrow(ARROW_SCHEMA.empty_table()), tmp_path / "in-memory", "validation")
    on_disk = SpilledSplit(tmp_path, "validation", ARROW_SCHEMA).write(tmp_path / "spilled", "validation")
    assert [path.read_bytes() for path in on_disk] == [path.read_bytes() for path in in_memory]


def test_a_scratch_folder_is_gone_after_its_block_and_a_killed_runs_is_cleaned(tmp_path):
    left_by_a_killed_run = tmp_path / ".rows.tmp-999999999"  # no such process
    left_by_a_killed_run.mkdir()
    with pytest.raises(RuntimeError), scratch_folder(tmp_path / "rows") as scratch:
        (scratch / "train.arrow").write_bytes(b"rows")
        assert not left_by_a_killed_run.exists()
        raise RuntimeError("the command failed")
    assert list(tmp_path.iterdir()) == []


def test_check_tallies_of_chunks_merged_in_order_are_one_pass_over_every_row():
    from datagen.family.rows import RowCheckTally, run_row_checks

    rows = {"train": [{"id": f"r{n}", "task": "odd" if n % 2 else "even", "value": n} for n in range(40)], "test": []}
    checks = {"odd": {"below 30": lambda row, _: row["value"] < 30, "not 7": lambda row, _: row["value"] != 7}, "even": {"below 10": lambda row, _: row["value"] < 10}}
    merged = RowCheckTally(("train", "test"))
    for start in range(0, 40, 6):
        chunk = RowCheckTally()
        chunk.add({"train": rows["train"][start : start + 6], "test": []}, checks, {})
        merged.merge(chunk)
    whole = run_row_checks(rows, checks, {})
    assert merged.results() == whole
    # "not 7" fails first (row 7), yet is listed in the checks' order, after "below 30"
    assert whole["train"]["odd"]["failures"] == ["below 30: 5 rows, e.g. r31, r33, r35", "not 7: 1 rows, e.g. r7"]
    assert whole["train"]["even"]["failures"] == ["below 10: 15 rows, e.g. r10, r12, r14"] and whole["test"] == {}


def test_the_first_row_of_each_task_is_found_a_batch_at_a_time(sample_generated, tmp_path):
    from datagen.layout import first_rows_by_task

    rows = sample_generated[2]["train"]
    write_split(rows, tmp_path / "data" / "controllable", "train", max_shard_bytes=rows.estimated_size() // 3)
    firsts = first_rows_by_task(tmp_path, "controllable", "train", batch_rows=100)
    assert sorted(firsts) == sorted(set(rows["task"])) and len(list((tmp_path / "data" / "controllable").iterdir())) >= 3
    for task, row in firsts.items():
        assert row == rows.filter(pl.col("task") == task).row(0, named=True)
