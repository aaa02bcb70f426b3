"""Metrics and the evaluation protocol, on documented minimal cases and the real sample."""

from __future__ import annotations

import math

import polars as pl
import pytest
import torch

from datagen.teacher.evaluate import full_ranks, rank_metrics, sample_candidates, split_queries
from datagen.teacher.scorers import Cooccurrence, MostPopular, train_popularity


def test_hr_and_ndcg_formulas():
    metrics = rank_metrics(torch.tensor([0, 1, 9, 10, 25]), ks=(10,))
    assert metrics["HR@10"] == pytest.approx(3 / 5)
    assert metrics["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(11)) / 5, abs=1e-6)


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
