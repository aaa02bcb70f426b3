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
