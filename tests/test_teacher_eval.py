"""Metrics and the evaluation protocol, on documented minimal cases and the real sample."""

from __future__ import annotations

import math

import polars as pl
import pytest
import torch

from datagen.buildfolder import BuildFolder
from datagen.teacher import scorers
from datagen.teacher.evaluate import evaluate, full_ranks, rank_metrics, sample_candidates, split_queries, user_sample
from datagen.teacher.scorers import Cooccurrence, MostPopular, train_popularity
from datagen.teacher.tensors import pad_lists


def test_hr_ndcg_and_mrr_formulas():
    metrics = rank_metrics(torch.tensor([0, 1, 9, 10, 25]), ks=(10,))
    assert metrics["HR@10"] == pytest.approx(3 / 5)
    assert metrics["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5, abs=1e-6)
    assert metrics["MRR@10"] == pytest.approx((1 + 1 / 2 + 1 / 10) / 5, abs=1e-6)


def _tiny_sequences():
    # 3 users over 6 items; popularity in train: item 0 x3, item 1 x2, item 2 x1
    return pl.DataFrame(
        {
            "train_item_ids": [[0, 1], [0, 1, 2], [0]],
            "valid_item_id": [3, 4, 1],
            "test_item_id": [5, 3, 2],
        }
    )


class EqualScores:
    """A scorer that likes every item the same: every competitor ties with the target."""

    def score(self, history):
        return torch.zeros(history.shape[0], 6)


def test_full_ranking_excludes_the_users_items():
    sequences = _tiny_sequences()
    popular = MostPopular(train_popularity(sequences["train_item_ids"], 6))
    # popularity order (ties to the lower id): 0, 1, 2, 3, 4, 5
    valid = full_ranks(popular, split_queries(sequences, "validation"), n_items=6, max_history=10)
    # user 0 saw {0, 1}, target 3 loses to 2 only; user 1 saw {0, 1, 2}, target 4 loses to 3; user 2 saw {0}, target 1 wins
    assert valid.tolist() == [1, 1, 0]
    test = full_ranks(popular, split_queries(sequences, "test"), n_items=6, max_history=10)
    # the valid item joins the history: user 0 saw {0, 1, 3}, target 5 loses to 2 and 4
    assert test.tolist() == [2, 0, 0]


def test_ties_count_against_the_target():
    ranks = full_ranks(EqualScores(), split_queries(_tiny_sequences(), "validation"), n_items=6, max_history=10)
    assert ranks.tolist() == [3, 2, 4]  # every unseen item other than the target


def test_sampled_negatives_avoid_seen_items_and_follow_the_seed(sample_build):
    sequences = sample_build.tables.sequences
    n_items = sample_build.tables.items.height
    queries = split_queries(sequences, "test")
    drawn = sample_candidates(queries, n_items, 99, None, seed=7)
    assert torch.equal(drawn, sample_candidates(queries, n_items, 99, None, seed=7))
    assert not torch.equal(drawn, sample_candidates(queries, n_items, 99, None, seed=8))
    for row, (seen, target) in enumerate(zip(queries.inputs.to_list()[:200], queries.targets.tolist()[:200])):
        negatives = drawn[row].tolist()
        assert len(set(negatives)) == 99 and target not in negatives and not set(seen) & set(negatives)
    popularity = train_popularity(sequences["train_item_ids"], n_items)
    by_popularity = sample_candidates(queries, n_items, 99, popularity, seed=7)
    assert popularity[by_popularity.flatten()].min() > 0


def test_cooccurrence_counts_pairs_within_the_window():
    lists = pl.Series([[0, 1, 2, 3]])
    model = Cooccurrence(lists, n_items=5, window=1, popularity=torch.zeros(5))
    scores = model.score(torch.tensor([[1]]))
    assert scores.floor().tolist() == [[1.0, 0.0, 1.0, 0.0, 0.0]]  # 1 is next to 0 and 2 only


def _pair_counts(lists: list[list[int]], n_items: int, window: int) -> torch.Tensor:
    """C counted the slow, obvious way: every pair of positions at most `window` apart, both orders."""
    counts = torch.zeros(n_items, n_items, dtype=torch.float64)
    for items in lists:
        for a in range(len(items)):
            for b in range(a + 1, min(a + window + 1, len(items))):
                counts[items[a], items[b]] += 1
                counts[items[b], items[a]] += 1
    return counts


def test_dense_and_sparse_cooccurrence_score_the_real_sample_alike_and_right(sample_build, monkeypatch):
    train_lists = sample_build.tables.sequences["train_item_ids"]
    n_items = sample_build.tables.items.height
    popularity = train_popularity(train_lists, n_items)
    histories = pad_lists(train_lists.slice(0, 300), 50)
    dense = Cooccurrence(train_lists, n_items, 3, popularity)
    monkeypatch.setattr(scorers, "DENSE_COUNTS_MAX_BYTES", 0)
    sparse = Cooccurrence(train_lists, n_items, 3, popularity)
    assert not dense.counts.is_sparse and sparse.counts.is_sparse
    assert torch.equal(dense.score(histories), sparse.score(histories))
    counts = _pair_counts(train_lists.to_list(), n_items, 3)
    for row in (0, 7, 299):
        present = sorted({item for item in histories[row].tolist() if item >= 0})
        assert torch.equal(dense.score(histories[row : row + 1])[0].floor(), counts[present].sum(0))


def test_a_user_sample_is_seeded_ordered_and_the_same_for_both_splits(sample_build):
    folder = BuildFolder.open(sample_build.out_dir)
    sequences = folder.sequences
    sample = user_sample(sequences, 400, seed=42)
    assert sample.height == 400 and sample.n_unique("user_id") == 400
    assert sample.equals(user_sample(sequences, 400, seed=42)) and not sample.equals(user_sample(sequences, 400, seed=43))
    assert sequences.filter(pl.col("user_id").is_in(sample["user_id"].implode())).equals(sample)  # kept in their order
    assert user_sample(sequences, sequences.height, seed=42).equals(sequences) and user_sample(sequences, None, seed=42).equals(sequences)
    train_lists = sequences["train_item_ids"]
    popularity = train_popularity(train_lists, folder.n_items)
    models = {"most-popular": MostPopular(popularity), "co-occurrence": Cooccurrence(train_lists, folder.n_items, 3, popularity)}
    on_sample = evaluate(models, sequences, folder.n_items, 10, popularity, users=400, seed=42)
    assert on_sample == evaluate(models, sample, folder.n_items, 10, popularity, seed=42)
    assert on_sample != evaluate(models, sequences, folder.n_items, 10, popularity, seed=42)
