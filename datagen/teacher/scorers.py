"""Next-item scorers over all items: the SASRec teacher and the two baselines it must beat.

Every scorer maps left-padded histories [batch, length] (-1 = padding) to
scores [batch, n_items]; higher is better. Ties between equal scores count
against the target in evaluation, so the baselines break their own ties by
popularity and item id rather than gain from them.

    >>> popular = MostPopular(popularity)  # doctest: +SKIP
    >>> popular.score(histories).shape  # doctest: +SKIP
    torch.Size([512, 3685])
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
import torch

from datagen.errors import DataError
from datagen.teacher.sasrec import SASRec
from datagen.teacher.tensors import multi_hot


def train_popularity(train_lists: pl.Series, n_items: int) -> torch.Tensor:
    """How often each item appears in the train split: [n_items] float."""
    counts = torch.zeros(n_items, dtype=torch.float64)
    items = torch.from_numpy(train_lists.explode().drop_nulls().to_numpy().astype(np.int64))
    counts.index_add_(0, items, torch.ones_like(items, dtype=torch.float64))
    return counts


def _tie_breaker(popularity: torch.Tensor) -> torch.Tensor:
    """A value in [0, 1) ordering items by popularity, then by lower item id."""
    n_items = popularity.numel()
    order = torch.argsort(popularity * n_items - torch.arange(n_items, dtype=popularity.dtype), stable=True)
    rank = torch.empty(n_items, dtype=torch.float64)
    rank[order] = torch.arange(n_items, dtype=torch.float64)
    return rank / n_items


class MostPopular:
    """Recommends the items seen most often in the train split, to everyone."""

    name = "most-popular"

    def __init__(self, popularity: torch.Tensor):
        self.ranking_scores = popularity.floor() + _tie_breaker(popularity)

    def score(self, history: torch.Tensor) -> torch.Tensor:
        return self.ranking_scores.to(history.device).expand(history.shape[0], -1)


DENSE_COUNTS_MAX_BYTES = 2**28  # 256 MiB: up to 5,792 items; on 5,000 items a dense C scored a batch 4x faster than a sparse one


class Cooccurrence:
    """Item-to-item co-occurrence: score(j) = sum over history items i of C[i, j].

    C[i, j] counts the train sequences' position pairs (i, j) at most `window`
    steps apart, in either order. Ties (often zero) are broken by popularity.
    Scores are float64 so that counts plus the [0, 1) tie-breaker stay exact,
    and so the same whatever the order of the sums. C is dense up to
    DENSE_COUNTS_MAX_BYTES, sparse beyond; the histories are sparse rows, so a
    batch costs its history items times C's row length, not C's size times the batch.
    """

    name = "co-occurrence"

    def __init__(self, train_lists: pl.Series, n_items: int, window: int, popularity: torch.Tensor):
        lengths = train_lists.list.len().to_numpy().astype(np.int64)
        flat = train_lists.explode().drop_nulls().to_numpy().astype(np.int64)
        user = np.repeat(np.arange(len(lengths)), lengths)
        pairs = []
        for offset in range(1, window + 1):
            same_user = user[offset:] == user[:-offset]
            pairs.append(np.stack([flat[:-offset][same_user], flat[offset:][same_user]]))
        pairs = np.concatenate(pairs, axis=1)
        pairs = np.concatenate([pairs, pairs[::-1]], axis=1)
        counts = pl.DataFrame({"i": pairs[0], "j": pairs[1]}).group_by("i", "j").len().sort("i", "j")
        indices = torch.from_numpy(np.stack([counts["i"].to_numpy(), counts["j"].to_numpy()]).astype(np.int64))
        values = torch.from_numpy(counts["len"].to_numpy().astype(np.float64))
        pair_counts = torch.sparse_coo_tensor(indices, values, (n_items, n_items), check_invariants=True).coalesce()
        self.counts = pair_counts.to_dense() if n_items * n_items * values.element_size() <= DENSE_COUNTS_MAX_BYTES else pair_counts
        self.tie_breaker = _tie_breaker(popularity)
        self.n_items = n_items

    def score(self, history: torch.Tensor) -> torch.Tensor:
        present = multi_hot(history.cpu(), self.n_items).double().to_sparse()
        with warnings.catch_warnings():  # sparse x sparse goes through torch's CSR kernels, which warn that CSR is in beta
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            summed = torch.sparse.mm(present, self.counts)
        return ((summed.to_dense() if summed.is_sparse else summed) + self.tie_breaker).to(history.device)


class SASRecScorer:
    name = "SASRec"

    def __init__(self, model: SASRec):
        self.model = model

    @torch.inference_mode()
    def score(self, history: torch.Tensor) -> torch.Tensor:
        """Scores of every item; an error when any is NaN or infinite, which would otherwise rank as ties (a NaN
        teacher evaluated as perfect) and order items at random."""
        self.model.eval()
        device = next(self.model.parameters()).device
        scores = self.model.score_next(history.to(device)).float()
        if not torch.isfinite(scores).all():
            raise DataError(
                "the SASRec teacher's scores hold NaN or infinity: its weights are broken (a damaged cache entry or a training that diverged)",
                hint="Train it again: `datagen teacher train BUILD` (with a fresh $DATAGEN_CACHE if the cache is suspect).",
            )
        return scores
