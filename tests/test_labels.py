"""The pure label functions: constrained top-k, quotas, the proportion counts of Eq. 8, candidates."""

from __future__ import annotations

import random

import numpy as np
import pytest

from datagen.controllable.labels import most_frequent_category, proportion_counts, take, take_quota, with_candidates
from datagen.scoring.answers import proportion_met


def mask(n, items):
    m = np.zeros(n, dtype=bool)
    m[list(items)] = True
    return m


RANKING = np.array([5, 2, 7, 1, 3, 0, 6])


def test_take_puts_the_target_first_only_when_it_is_kept():
    assert take(RANKING, 3, first=6) == [6, 5, 2]
    in_c = mask(8, [2, 3, 6])
    assert take(RANKING, 3, keep=in_c, first=6) == [6, 2, 3]
    assert take(RANKING, 3, keep=in_c, first=5) == [2, 3, 6]  # 5 is not in C: not first, not anywhere
    assert take(RANKING, 10, keep=in_c) == [2, 3, 6]  # never padded


def test_take_quota_keeps_teacher_order_and_exact_counts():
    in_c = mask(8, [2, 3, 0])
    label = take_quota(RANKING, 5, in_c, n_in=2, first=7)
    assert label == [7, 5, 2, 1, 3]
    assert sum(in_c[label]) == 2
    assert take_quota(RANKING, 4, in_c, n_in=0) == [5, 7, 1, 6]
    assert take_quota(RANKING, 5, in_c, n_in=0) is None  # only 4 items outside C
    assert take_quota(RANKING, 5, in_c, n_in=4) is None  # only 3 items of C
    allowed = ~mask(8, [5])
    assert take_quota(RANKING, 3, in_c, n_in=1, first=5, allowed=allowed) == [2, 7, 1]


@pytest.mark.parametrize("constraint", ["at_most", "at_least", "approximately"])
def test_proportion_counts_are_exactly_the_counts_cpa_accepts(constraint):
    for k in range(1, 16):
        for percent in range(0, 101, 5):
            lo, hi = proportion_counts(constraint, k, percent)
            accepted = [n for n in range(k + 1) if proportion_met(constraint, n, k, percent)]
            assert accepted == list(range(lo, hi + 1)), (k, percent)


def test_the_prompt_percentage_and_the_count_agree_where_the_reference_did_not():
    # The reference code showed f"{t}0%" (t = 0 gives "00%") and checked LP with n <= t - 1.
    assert proportion_counts("at_most", 10, 20) == (0, 2)
    assert proportion_counts("at_least", 10, 30) == (3, 10)
    assert proportion_counts("approximately", 10, 30) == (2, 4)
    assert proportion_counts("at_least", 7, 30) == (3, 7)  # 7 * 0.3 = 2.1: at least 3


class Categories:
    def __init__(self, table):
        self.table = table

    def categories_of(self, item):
        return self.table[item]


def test_most_frequent_category_skips_and_breaks_ties_by_first_seen():
    catalog = Categories({1: ("Action", "Indie"), 2: ("Indie",), 3: ("RPG", "Action"), 4: ("RPG",)})
    assert most_frequent_category([1, 2, 3], catalog) == "Action"  # tie 2-2: Action is met first
    assert most_frequent_category([1, 2, 3, 4], catalog, skip={"Action", "Indie"}) == "RPG"
    assert most_frequent_category([2], catalog, skip={"Indie"}) is None


def test_candidates_hold_the_label_and_distinct_unseen_negatives():
    label, history = [4, 9, 1], {0, 2, 3}
    for seed in range(50):
        candidates = with_candidates(random.Random(seed), label, np.arange(30), history, max_size=20)
        assert set(label) <= set(candidates)
        assert len(set(candidates)) == len(candidates)
        assert not set(candidates) & history
        assert len(label) < len(candidates) <= 20
    same = [with_candidates(random.Random(7), label, np.arange(30), history, 20) for _ in range(2)]
    assert same[0] == same[1]
    assert with_candidates(random.Random(0), [1], np.array([1, 2]), {2}, 20) is None  # nothing left to offer
