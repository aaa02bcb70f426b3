"""Rankings for label augmentation: history excluded, constraints kept, ranks consistent, cached."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from datagen.errors import DataError
from datagen.teacher.ranking import Spread, TeacherRanker
from datagen.teacher.tensors import pad_lists


@pytest.fixture(scope="module")
def ranker(sample_teacher):
    folder, teacher = sample_teacher
    return folder, TeacherRanker(teacher, folder.items, batch_size=100)


def _category_sets(folder) -> dict[int, set[str]]:
    return dict(zip(folder.items["item_id"].to_list(), map(set, folder.items["categories"].to_list())))


def test_history_is_excluded_even_beyond_the_models_window(ranker):
    folder, rank = ranker
    # Eight users' items in a row make histories longer than the teacher reads.
    lists = folder.sequences["item_ids"].to_list()
    histories = pl.Series([list(dict.fromkeys(sum(lists[start : start + 8], []))) for start in range(0, 400, 8)])
    assert histories.list.len().min() > rank.teacher.max_history
    ranked = rank.rank(pl.DataFrame({"history": histories, "query_items": histories}), top_n=folder.n_items)
    for history, top, ranks, allowed in ranked.select("history", "top_items", "query_ranks", "allowed_count").iter_rows():
        assert not set(history) & set(top)
        assert ranks == [None] * len(history)
        assert allowed == folder.n_items - len(history) == len(top)


def test_category_filters_and_candidates_are_respected(ranker):
    folder, rank = ranker
    categories = _category_sets(folder)
    histories = folder.sequences["train_item_ids"].head(300)
    requests = pl.DataFrame(
        {
            "history": histories,
            "include_categories": [["Strategy"], ["Simulation", "RPG"], None] * 100,
            "exclude_categories": [None, ["Action"], ["Indie", "Action"]] * 100,
        }
    )
    ranked = rank.rank(requests, top_n=20)
    for include, exclude, top, allowed in ranked.select("include_categories", "exclude_categories", "top_items", "allowed_count").iter_rows():
        assert len(top) == min(20, allowed)
        for item in top:
            assert include is None or categories[item] & set(include)
            assert exclude is None or not categories[item] & set(exclude)
    candidates = [[5, 6, 7, 8]] * 3
    few = rank.rank(pl.DataFrame({"history": [[5], [1], [2]], "candidates": candidates}), top_n=10)
    assert few["top_items"].to_list()[0] and set(few["top_items"].to_list()[0]) == {6, 7, 8}
    assert few["allowed_count"].to_list() == [3, 4, 4]  # fewer than top_n: never padded with other items


def test_ranks_agree_with_the_models_scores(ranker):
    folder, rank = ranker
    histories = folder.sequences["train_item_ids"].head(20)
    probes = [[0, 10, 100, 1000]] * 20
    ranked = rank.rank(pl.DataFrame({"history": histories, "query_items": probes}), top_n=50)
    with torch.no_grad():
        scores = rank.teacher.model.score_next(pad_lists(histories, rank.teacher.max_history))
    for row, (history, top, ranks) in enumerate(ranked.select("history", "top_items", "query_ranks").iter_rows()):
        allowed = [item for item in range(folder.n_items) if item not in set(history)]
        expected = sorted(allowed, key=lambda item: (-scores[row, item].item(), item))
        assert top == expected[:50]
        for item, item_rank in zip(probes[row], ranks):
            assert item_rank == (expected.index(item) if item in allowed else None)


def test_the_last_hidden_state_is_the_full_computations_to_the_bit(ranker):
    """score_next computes only the last position (and only positions that hold an item); the labels stay the same
    only if that is exactly the full forward pass's last position, for any mix of history lengths in a batch."""
    folder, rank = ranker
    model = rank.teacher.model
    histories = folder.sequences["train_item_ids"]
    batches = [histories.head(256), histories.slice(256, 3), pl.Series([[], [7], list(range(80))], dtype=pl.List(pl.Int64))]
    with torch.inference_mode():
        for batch in batches:
            padded = pad_lists(batch, rank.teacher.max_history)
            assert torch.equal(model.last_hidden_state(padded), model.hidden_states(padded)[:, -1])


def test_two_workers_give_the_same_answers(ranker):
    folder, rank = ranker
    requests = pl.DataFrame({"history": folder.sequences["train_item_ids"].head(300), "include_categories": [["Action"]] * 300})
    spread = TeacherRanker(rank.teacher, folder.items, batch_size=100, spread=Spread(folder.path, None, "cpu", workers=2))
    assert spread.rank(requests, top_n=20).equals(rank.rank(requests, top_n=20))  # 3 batches, shared among 2 processes


def test_results_are_cached_by_data_version_and_checkpoint(sample_teacher, tmp_path):
    folder, teacher = sample_teacher
    cached = TeacherRanker(teacher, folder.items, cache_dir=tmp_path)
    requests = pl.DataFrame({"history": folder.sequences["train_item_ids"].head(64), "include_categories": [["Indie"]] * 64})
    first = cached.rank(requests, top_n=10)
    files = list(tmp_path.rglob("*.parquet"))
    assert len(files) == 1
    assert files[0].parent == tmp_path / folder.data_version / teacher.checkpoint_sha256[:16]
    assert cached.rank(requests, top_n=10).equals(first)
    assert len(list(tmp_path.rglob("*.parquet"))) == 1
    cached.rank(requests, top_n=5)
    assert len(list(tmp_path.rglob("*.parquet"))) == 2


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other rows", "one bit flipped", "no checksum"])
def test_a_corrupt_cached_ranking_is_dropped_and_recomputed(sample_teacher, tmp_path, capsys, damage):
    """Every damage is caught by the checksum written beside the file; a flipped bit in a value used to change the
    teacher's answers silently, and some flips crashed the parquet reader."""
    folder, teacher = sample_teacher
    ranker = TeacherRanker(teacher, folder.items, cache_dir=tmp_path)
    requests = pl.DataFrame({"history": folder.sequences["train_item_ids"].head(32)})
    first = ranker.rank(requests, top_n=10)
    (path,) = tmp_path.rglob("*.parquet")
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(b"PAR1" + b"\x00" * 100)
    elif damage == "other rows":
        pl.read_parquet(path).head(3).write_parquet(path)
    elif damage == "one bit flipped":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 1
        path.write_bytes(bytes(data))
    else:
        path.with_name(path.name + ".sha256").unlink()
    again = ranker.rank(requests, top_n=10)
    assert again.equals(first)
    expected = "it has no checksum beside it" if damage == "no checksum" else "its bytes do not match its checksum"
    assert f"dropped a teacher ranking in the cache ({expected})" in capsys.readouterr().err
    assert pl.read_parquet(path).height == 32  # written anew
    ranker.rank(requests, top_n=10)
    assert "dropped" not in capsys.readouterr().err


def test_bad_requests_are_clear_errors(ranker):
    folder, rank = ranker
    with pytest.raises(DataError, match="unknown category 'No Such Genre'"):
        rank.rank(pl.DataFrame({"history": [[1]], "include_categories": [["No Such Genre"]]}), top_n=5)
    with pytest.raises(DataError, match="item id out of range"):
        rank.rank(pl.DataFrame({"history": [[folder.n_items]]}), top_n=5)
    with pytest.raises(DataError, match="unknown request columns"):
        rank.rank(pl.DataFrame({"history": [[1]], "histroy": [[1]]}), top_n=5)
