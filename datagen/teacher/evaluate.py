"""HR@K, NDCG@K and MRR@K for next-item scorers, with full ranking and with sampled candidates.

Protocol (leave-one-out, as in SASRec and all three papers):
- validation: the input is the train items, the target the validation item;
  test: the input is the train items and the validation item, the target the test item.
  The scorer sees the last `max_history` input items.
- Full ranking: the target is ranked against every item except those the user
  has already interacted with (the whole input, not only the last window).
- Sampled: the target against `negatives` items drawn without replacement from
  the items the user has not interacted with, uniformly or in proportion to
  train popularity (Gumbel top-k). The same candidates are used for every scorer.
- Users: every user, or a seeded sample of at most `users` (the same for
  both splits): at 100,000 users HR@10's standard error is below 0.0016.
- rank = the number of competing items scoring higher than the target, plus those
  scoring exactly the same (ties count against the target). HR@K = rank < K;
  NDCG@K = 1 / log2(rank + 2) when rank < K, else 0 (one relevant item);
  MRR@K = 1 / (rank + 1) when rank < K, else 0 (RecBole's MRR@K).

    >>> report = evaluate({"SASRec": scorer}, sequences, n_items=3685, max_history=10)  # doctest: +SKIP
    >>> report["full"]["test"]["SASRec"]["NDCG@10"]  # doctest: +SKIP
    0.0912
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import polars as pl
import torch

from datagen.teacher.settings import KS, SPLITS
from datagen.teacher.tensors import PAD, lists_multi_hot, pad_lists


@dataclass
class SplitQueries:
    """One split's evaluation queries: inputs (all earlier items) and targets."""

    inputs: pl.Series  # list[int] per user, time-ordered
    targets: torch.Tensor  # [users]


def user_sample(sequences: pl.DataFrame, users: int | None, seed: int) -> pl.DataFrame:
    """At most `users` rows of `sequences`, a seeded sample kept in their order; every row when `users` is None."""
    if users is None or sequences.height <= users:
        return sequences
    chosen = torch.randperm(sequences.height, generator=torch.Generator().manual_seed(seed))[:users].sort().values
    return sequences[chosen.numpy()]


def split_queries(sequences: pl.DataFrame, split: str) -> SplitQueries:
    if split == "validation":
        inputs = sequences["train_item_ids"]
        targets = sequences["valid_item_id"]
    elif split == "test":
        inputs = sequences.select(pl.concat_list("train_item_ids", "valid_item_id"))["train_item_ids"]
        targets = sequences["test_item_id"]
    else:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    return SplitQueries(inputs=inputs, targets=torch.from_numpy(targets.to_numpy().astype("int64")))


SCORES_PER_BATCH = 2**25  # rows x items per scoring batch: 128 MiB of float32 scores, whatever the catalog size


def batch_rows(n_items: int, most: int = 1024, scores: int = SCORES_PER_BATCH) -> int:
    """Rows per batch so that a batch's [rows, n_items] scores stay within `scores` on large catalogs."""
    return max(1, min(most, scores // n_items))


def _batches(queries: SplitQueries, batch_size: int):
    for start in range(0, len(queries.inputs), batch_size):
        inputs = queries.inputs.slice(start, batch_size)
        yield start, inputs, queries.targets[start : start + batch_size]


def protocol_ranks(scorer, queries: SplitQueries, n_items: int, max_history: int, sampled: dict[str, torch.Tensor] | None = None, batch_size: int | None = None) -> dict[str, torch.Tensor]:
    """Target ranks under full ranking ("full") and against each `sampled` set of negatives, scoring each batch once."""
    sampled = sampled or {}
    ranks: dict[str, list[torch.Tensor]] = {"full": [], **{protocol: [] for protocol in sampled}}
    for start, inputs, targets in _batches(queries, batch_size or batch_rows(n_items)):
        scores = scorer.score(pad_lists(inputs, max_history))  # on the scorer's device: masks and counts run there too
        targets = targets.to(scores.device)
        target_scores = scores.gather(1, targets[:, None])
        competing = ~lists_multi_hot(inputs, n_items).to(scores.device)
        competing.scatter_(1, targets[:, None], False)
        ranks["full"].append(((scores >= target_scores) & competing).sum(1).cpu())
        for protocol, negatives in sampled.items():
            drawn = negatives[start : start + len(targets)].to(scores.device)
            negative_scores = scores.gather(1, drawn.clamp_min(0))
            ranks[protocol].append(((negative_scores >= target_scores) & (drawn >= 0)).sum(1).cpu())
    return {protocol: torch.cat(parts) for protocol, parts in ranks.items()}


def full_ranks(scorer, queries: SplitQueries, n_items: int, max_history: int, batch_size: int | None = None) -> torch.Tensor:
    return protocol_ranks(scorer, queries, n_items, max_history, batch_size=batch_size)["full"]


def sample_candidates(queries: SplitQueries, n_items: int, negatives: int, weights: torch.Tensor | None, seed: int, batch_size: int | None = None) -> torch.Tensor:
    """[users, negatives] unseen non-target items (-1 where a user has too few), drawn without replacement."""
    generator = torch.Generator().manual_seed(seed)
    log_weights = torch.zeros(n_items, dtype=torch.float64) if weights is None else weights.double().log()
    drawn = []
    for _, inputs, targets in _batches(queries, batch_size or batch_rows(n_items)):
        uniform = torch.rand(len(targets), n_items, generator=generator, dtype=torch.float64)
        keys = log_weights - torch.log(-torch.log(uniform.clamp_min(1e-300)))
        excluded = lists_multi_hot(inputs, n_items)
        excluded.scatter_(1, targets[:, None], True)
        keys[excluded] = -math.inf
        top_keys, top_items = keys.topk(min(negatives, n_items), dim=1)
        drawn.append(torch.where(torch.isfinite(top_keys), top_items, PAD))
    return torch.cat(drawn)


def rank_metrics(ranks: torch.Tensor, ks=KS) -> dict[str, float]:
    ranks = ranks.double()
    hits = {k: (ranks < k).double() for k in ks}
    gains = 1.0 / torch.log2(ranks + 2)
    metrics = {f"HR@{k}": hits[k].mean().item() for k in ks}
    metrics.update({f"NDCG@{k}": (gains * hits[k]).mean().item() for k in ks})
    metrics.update({f"MRR@{k}": (hits[k] / (ranks + 1)).mean().item() for k in ks})
    return {name: round(value, 6) for name, value in metrics.items()}


def evaluate(
    scorers: dict,
    sequences: pl.DataFrame,
    n_items: int,
    max_history: int,
    popularity: torch.Tensor,
    ks=KS,
    negatives: int = 99,
    samplings=("uniform", "popularity"),
    seed: int = 42,
    batch_size: int | None = None,
    users: int | None = None,
) -> dict:
    """{protocol: {split: {scorer name: {metric: value}}}}; protocols are `full` and `sampled-<sampling>`.

    With `users`, both splits are evaluated on the same seeded sample of at most that many users.
    """
    protocols = ["full", *(f"sampled-{sampling}" for sampling in samplings)]
    report: dict = {protocol: {} for protocol in protocols}
    sequences = user_sample(sequences, users, seed)
    for index, split in enumerate(SPLITS):
        queries = split_queries(sequences, split)
        sampled = {f"sampled-{sampling}": sample_candidates(queries, n_items, negatives, popularity if sampling == "popularity" else None, seed + index, batch_size) for sampling in samplings}
        by_scorer = {name: protocol_ranks(scorer, queries, n_items, max_history, sampled, batch_size) for name, scorer in scorers.items()}
        for protocol in protocols:
            report[protocol][split] = {name: rank_metrics(ranks[protocol], ks) for name, ranks in by_scorer.items()}
    return report


def report_markdown(report: dict, negatives: int) -> str:
    lines = []
    for protocol, by_split in report.items():
        title = "Full ranking (all items the user has not interacted with)" if protocol == "full" else (f"Sampled: 1 target + {negatives} {protocol.removeprefix('sampled-')}-sampled negatives")
        lines.append(f"### {title}\n")
        metric_names = list(next(iter(next(iter(by_split.values())).values())))
        lines.append("| split | model | " + " | ".join(metric_names) + " |")
        lines.append("|---|---|" + "---:|" * len(metric_names))
        for split, by_scorer in by_split.items():
            for name, metrics in by_scorer.items():
                lines.append(f"| {split} | {name} | " + " | ".join(f"{metrics[m]:.4f}" for m in metric_names) + " |")
        lines.append("")
    return "\n".join(lines)
