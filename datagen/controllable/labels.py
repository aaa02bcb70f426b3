"""Label lists under constraints, from a teacher ranking: pure functions, no I/O.

A `ranking` is a numpy array of item ids, best first, that already leaves out
every item of the user's history. Masks are [n_items] bool arrays.

    >>> ranking = np.array([5, 2, 7, 1, 3])
    >>> in_c = np.zeros(8, dtype=bool); in_c[[2, 3]] = True
    >>> take(ranking, 3, keep=~in_c, first=7)
    [7, 5, 1]
    >>> take_quota(ranking, 3, in_c, n_in=1, first=2)
    [2, 5, 7]
    >>> proportion_counts("at_most", k=10, percent=20)
    (0, 2)
"""

from __future__ import annotations

import random

import numpy as np

from datagen.scoring.catalog import Catalog


def take(ranking: np.ndarray, n: int, keep: np.ndarray | None = None, first: int | None = None) -> list[int]:
    """`first` (when given and kept) and then the best kept items, `n` in all at most."""
    label = [first] if first is not None and (keep is None or keep[first]) else []
    rest = ranking[ranking != first] if first is not None else ranking
    if keep is not None:
        rest = rest[keep[rest]]
    return label + rest[: n - len(label)].tolist()


def take_quota(ranking: np.ndarray, k: int, in_mask: np.ndarray, n_in: int, first: int | None = None, allowed: np.ndarray | None = None) -> list[int] | None:
    """k items, exactly `n_in` of them in `in_mask`, the best of each kind, in ranking order.

    `first` leads the list when it fits the quota. None when too few items of a kind are left.
    """
    pool = ranking[allowed[ranking]] if allowed is not None else ranking
    need_in, need_out = n_in, k - n_in
    label = []
    if first is not None and (allowed is None or allowed[first]) and (need_in if in_mask[first] else need_out) > 0:
        label.append(first)
        need_in, need_out = (need_in - 1, need_out) if in_mask[first] else (need_in, need_out - 1)
        pool = pool[pool != first]
    flags = in_mask[pool]
    chosen_in, chosen_out = np.flatnonzero(flags)[:need_in], np.flatnonzero(~flags)[:need_out]
    if len(chosen_in) < need_in or len(chosen_out) < need_out:
        return None
    return label + pool[np.sort(np.concatenate([chosen_in, chosen_out]))].tolist()


def proportion_counts(constraint: str, k: int, percent: int) -> tuple[int, int]:
    """The in-category counts n (lo, hi) of a k-item list that satisfy Eq. 8 of Lu et al. for m = percent/100.

    at_most: n <= k*m; at_least: n >= k*m; approximately: |n - k*m| <= 1. Integer arithmetic, no rounding.
    """
    km100 = k * percent
    if constraint == "at_most":
        return 0, km100 // 100
    if constraint == "at_least":
        return -(-km100 // 100), k
    if constraint == "approximately":
        return max(0, -(-(km100 - 100) // 100)), min(k, (km100 + 100) // 100)
    raise ValueError(f"not a proportion constraint: {constraint}")


def most_frequent_category(items, catalog: Catalog, skip: set[str] = frozenset()) -> str | None:
    """The category most items carry, ties to the one met first; None when every category is skipped."""
    counts: dict[str, int] = {}  # in the order first met
    for item in items:
        for category in catalog.categories_of(item):
            counts[category] = counts.get(category, 0) + 1
    for category in skip:
        counts.pop(category, None)
    if not counts:
        return None
    best = max(counts.values())
    return next(category for category, count in counts.items() if count == best)


def negatives(rng: random.Random, pool: np.ndarray, n: int, forbidden: set[int]) -> list[int]:
    """Up to n items of `pool` (ids), none in `forbidden`, drawn without replacement."""
    picked: list[int] = []
    # n + |forbidden| draws always hold n allowed items when the pool has them.
    order = rng.sample(range(len(pool)), min(len(pool), n + len(forbidden)))
    for index in order:
        item = int(pool[index])
        if item not in forbidden:
            picked.append(item)
            if len(picked) == n:
                break
    return picked


def with_candidates(rng: random.Random, label: list[int], pool: np.ndarray, forbidden: set[int], max_size: int) -> list[int] | None:
    """The label items plus negatives from `pool`, shuffled: between len(label)+1 and max_size in all.

    None when the pool has no negative to offer.
    """
    total = rng.randint(len(label) + 1, max(len(label) + 1, max_size))
    drawn = negatives(rng, pool, total - len(label), forbidden | set(label))
    if not drawn:
        return None
    candidates = label + drawn
    rng.shuffle(candidates)
    return candidates
