"""Ranking metrics of the candidate-list protocols (Cao et al. 2024 section 4.1, InstructRec section 3.1.2): the
target's rank among scored candidates, HR@k and NDCG@k of that rank, and the AUC of yes/no probabilities.

    >>> target_rank([0.1, 0.7, 0.7, 0.2], target=2)  # a tie with a better-scored candidate counts against the target
    2
    >>> hit_ratio(2, 1), hit_ratio(2, 3), round(ndcg(2, 3), 4)
    (0.0, 1.0, 0.6309)
    >>> auc([1, 0, 1, 0], [0.9, 0.8, 0.3, 0.1])
    0.75

With one relevant item, NDCG@k is 1 / log2(rank + 1) when rank <= k, else 0 (its ideal DCG is 1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def target_rank(scores: Sequence[float], target: int) -> int:
    """The 1-based rank of candidate `target`: 1 + the candidates scored above it + those tied with it.

    Ties are ranked pessimistically, so a scorer that gives every candidate the same score (or NaN) never
    ranks the target first; a NaN score is ranked last.
    """
    values = np.asarray(scores, dtype=np.float64)
    values = np.where(np.isnan(values), -np.inf, values)
    mine = values[target]
    others = np.delete(values, target)
    return 1 + int((others >= mine).sum()) if np.isfinite(mine) else len(values)


def hit_ratio(rank: int, k: int) -> float:
    return float(rank <= k)


def ndcg(rank: int, k: int) -> float:
    return 1.0 / math.log2(rank + 1) if rank <= k else 0.0


def ranking_metrics(ranks: Sequence[int], hr_at: Sequence[int], ndcg_at: Sequence[int]) -> dict[str, float | None]:
    """The mean HR@k and NDCG@k over rows, keyed "hr@k" and "ndcg@k"; None for no rows."""
    means: dict[str, float | None] = {}
    for name, metric, cutoffs in (("hr", hit_ratio, hr_at), ("ndcg", ndcg, ndcg_at)):
        for k in cutoffs:
            means[f"{name}@{k}"] = float(np.mean([metric(rank, k) for rank in ranks])) if ranks else None
    return means


def auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """The area under the ROC curve: the chance that a random positive scores above a random negative, a tie
    counting one half (the Mann-Whitney U statistic over both counts). None without both classes."""
    labels_array = np.asarray(labels, dtype=bool)
    values = np.asarray(scores, dtype=np.float64)
    positives, negatives = values[labels_array], values[~labels_array]
    if not len(positives) or not len(negatives):
        return None
    order = np.sort(negatives)
    below = np.searchsorted(order, positives, side="left")
    tied = np.searchsorted(order, positives, side="right") - below
    return float((below + 0.5 * tied).sum() / (len(positives) * len(negatives)))


def accuracy(labels: Sequence[int], predictions: Sequence[int]) -> float | None:
    return float(np.mean(np.asarray(labels) == np.asarray(predictions))) if len(labels) else None
