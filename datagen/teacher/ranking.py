"""Batched teacher rankings for label augmentation and rewards, cached on disk.

A request is one row of a Polars frame:

| column | type | meaning |
|---|---|---|
| `history` | list[int] | the user's items in time order; the teacher reads the last `max_history` (its own, 50 by default), and **all** of them are excluded from the ranking |
| `exclude` | list[int], optional | more items to leave out |
| `candidates` | list[int], optional | rank only these (null: every item) |
| `include_categories` | list[str], optional | keep items with at least one of these categories (+C) |
| `exclude_categories` | list[str], optional | drop items with any of these categories (-C) |
| `query_items` | list[int], optional | items whose rank to return |

The answer adds `top_items` (at most `top_n` allowed items, best first; fewer
when fewer are allowed, never padded with items that break the constraints),
`allowed_count`, and `query_ranks` (0-based rank among the allowed items, null
for an item that is not allowed). Ties in score go to the lower item id.

The scores come from the teacher's label source: SASRec, or the co-occurrence
baseline when the build chose it (`Teacher.scorer`). Results are cached as
parquet under `<cache>/<data version>/<checkpoint sha256>[-cooccurrence]/<request hash>.parquet`,
so the same requests to the same teacher on the same data are answered from disk.

    >>> ranker = TeacherRanker(teacher, folder.items, cache_dir=Path("~/.cache/datagen/teacher"))  # doctest: +SKIP
    >>> ranker.rank(pl.DataFrame({"history": [[3, 17, 42]], "include_categories": [["Strategy"]]}), top_n=5)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import torch

from datagen.buildfolder import BuildFolder
from datagen.cache import drop_cache_file, seal_cache_file, why_untrusted
from datagen.errors import DataError
from datagen.executor import ordered_map
from datagen.output import write_parquet
from datagen.teacher.checkpoint import Teacher
from datagen.teacher.evaluate import batch_rows
from datagen.teacher.folder import load_teacher
from datagen.teacher.tensors import PAD, lists_multi_hot, pad_lists

OPTIONAL_COLUMNS = {
    "exclude": pl.List(pl.Int64),
    "candidates": pl.List(pl.Int64),
    "include_categories": pl.List(pl.String),
    "exclude_categories": pl.List(pl.String),
    "query_items": pl.List(pl.Int64),
}
# Part of every cache key: bump it when the meaning of an answer changes.
RANKING_FORMAT = 1


class CategoryIndex:
    """Which items carry which category, as a sparse [items, categories] matrix."""

    def __init__(self, items: pl.DataFrame):
        pairs = items.select("item_id", pl.col("categories").cast(pl.List(pl.String))).explode("categories").drop_nulls("categories")
        self.names = sorted(set(pairs["categories"].to_list()))
        self.ids = pl.DataFrame({"categories": self.names, "category_id": range(len(self.names))}, schema={"categories": pl.String, "category_id": pl.Int64})
        pairs = pairs.join(self.ids, on="categories")
        indices = torch.from_numpy(np.stack([pairs["item_id"].to_numpy(), pairs["category_id"].to_numpy()]).astype(np.int64))
        self.n_items = items.height
        self.matrix = torch.sparse_coo_tensor(indices, torch.ones(indices.shape[1]), (self.n_items, len(self.names)), check_invariants=True).coalesce()

    def category_ids(self, names: pl.Series, column: str) -> pl.Series:
        rows = pl.DataFrame({"row": range(len(names)), "categories": names}).explode("categories").drop_nulls("categories")
        joined = rows.join(self.ids, on="categories", how="left")
        unknown = joined.filter(pl.col("category_id").is_null())
        if unknown.height:
            raise DataError(
                f"unknown category {unknown['categories'][0]!r} in request row {unknown['row'][0]}",
                field=column,
                hint="Categories are the strings in `categories` column of the build's items (data/items/).",
            )
        grouped = joined.group_by("row").agg("category_id")
        return pl.DataFrame({"row": range(len(names))}).join(grouped, on="row", how="left").sort("row")["category_id"]

    def items_having_any(self, category_lists: pl.Series) -> torch.Tensor:
        """[rows, n_items] bool: the item has at least one of the row's categories."""
        chosen = lists_multi_hot(category_lists, len(self.names)).float()
        if not self.names:
            return torch.zeros(len(category_lists), self.n_items, dtype=torch.bool)
        return torch.sparse.mm(self.matrix, chosen.T).T > 0


ANSWER_SCHEMA = {"top_items": pl.List(pl.Int64), "allowed_count": pl.Int64, "query_ranks": pl.List(pl.Int64)}


def _read_cached(path: Path, rows: int) -> pl.DataFrame | None:
    """The cached answers at `path`; None, with a warning and the file removed, when it is not the sealed, whole
    answer file that was written (a changed byte could otherwise change the answers silently, or crash the reader)."""
    problem = why_untrusted(path)
    if problem is None:
        try:
            cached = pl.read_parquet(path)
            if dict(cached.schema) == ANSWER_SCHEMA and cached.height == rows:
                return cached
            problem = f"{cached.height} rows of {dict(cached.schema)}, not {rows} answers"
        except (pl.exceptions.PolarsError, OSError) as error:
            problem = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    print(f"WARNING: dropped a teacher ranking in the cache ({problem}); ranking again: {path}", file=sys.stderr)
    drop_cache_file(path)
    return None


@dataclass(frozen=True)
class Spread:
    """How TeacherRanker.rank shares its batches: `workers` workers (datagen.executor), each loading the teacher of the
    build at `folder` (or `checkpoint`) onto `device`. The answers are the same for any number. One local worker
    (or one batch) ranks with the ranker's own teacher, already loaded."""

    folder: Path
    checkpoint: Path | None
    device: str
    workers: int
    executor: str = "local"


class TeacherRanker:
    def __init__(self, teacher: Teacher, items: pl.DataFrame, cache_dir: Path | None = None, batch_size: int | None = None, spread: Spread | None = None):
        self.teacher = teacher
        self.n_items = teacher.model.config.n_items
        if items.height != self.n_items:
            raise DataError(f"the teacher knows {self.n_items} items but the catalog has {items.height}")
        self.categories = CategoryIndex(items)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.batch_size = batch_size or batch_rows(self.n_items, most=512)
        self.spread = spread

    def rank(self, requests: pl.DataFrame, top_n: int) -> pl.DataFrame:
        requests = self._normalise(requests)
        cache_path = self._cache_path(requests, top_n)
        cached = _read_cached(cache_path, requests.height) if cache_path is not None and cache_path.is_file() else None
        if cached is not None:
            return pl.concat([requests, cached], how="horizontal")
        batches = [(requests.slice(start, self.batch_size), top_n) for start in range(0, requests.height, self.batch_size)]
        if self.spread is None or (self.spread.executor == "local" and min(self.spread.workers, len(batches)) <= 1):
            parts = [self._rank_batch(*batch) for batch in batches]  # this process's teacher, loaded already
        else:
            job = (self.spread.folder, self.spread.checkpoint, self.spread.device, self.batch_size)
            with ordered_map(BatchRanker, job, batches, self.spread.workers, self.spread.executor) as results:
                parts = list(results)
        results = pl.concat(parts) if parts else pl.DataFrame(schema=ANSWER_SCHEMA)
        if cache_path is not None:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            temporary = cache_path.with_name(f".{cache_path.name}.tmp-{os.getpid()}")
            write_parquet(results, temporary)
            os.replace(temporary, cache_path)
            seal_cache_file(cache_path)
        return pl.concat([requests, results], how="horizontal")

    @torch.inference_mode()
    def full_orders(self, histories: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """Every item, best first, for each history (its own items last), and how many are not in it.

        `order[i, :allowed[i]]` ranks all items but history i's; ties go to the lower id. Not cached:
        label generation asks once per sample point.
        """
        scores, seen = self._scores(pl.Series(histories, dtype=pl.List(pl.Int64)))
        scores[seen] = -torch.inf
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices.to(torch.int32)
        return order.cpu().numpy(), (self.n_items - seen.sum(1)).cpu().numpy()

    @torch.inference_mode()
    def best_first(self, histories: list[list[int]], head_size: int) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """For each history: its best `head_size` items in `full_orders`' order (fewer when fewer are allowed), how many
        items are allowed, and the [rows, n_items] scores (history items -inf) that rank the rest when a label needs more.

        The k-th best score (a partial sort) as threshold, then a stable sort of the few items at or above it: the
        same head as the full sort's, ties to the lower id included, for a fraction of its cost.
        """
        scores, seen = self._scores(pl.Series(histories, dtype=pl.List(pl.Int64)))
        scores[seen] = -torch.inf
        size = min(head_size, self.n_items)
        allowed = (self.n_items - seen.sum(1)).cpu().numpy()
        scores = scores.cpu().numpy()
        thresholds = np.partition(scores, self.n_items - size, axis=1)[:, self.n_items - size]  # 4x faster than torch.topk on CPU
        heads = []
        for row, threshold, count in zip(scores, thresholds, allowed):
            ids = np.flatnonzero(row >= threshold)
            heads.append(ids[np.argsort(-row[ids], kind="stable")][: min(size, count)].astype(np.int32))
        return heads, allowed, scores

    def _scores(self, histories: pl.Series) -> tuple[torch.Tensor, torch.Tensor]:
        """[rows, n_items] scores of the teacher's label source after each history (its last max_history items), and the history items."""
        scores = self.teacher.scorer.score(pad_lists(histories, self.teacher.max_history))
        return scores, lists_multi_hot(histories, self.n_items).to(scores.device)

    def _normalise(self, requests: pl.DataFrame) -> pl.DataFrame:
        if "history" not in requests.columns:
            raise DataError("ranking requests need a `history` column (list of item ids)", field="history")
        extra = set(requests.columns) - {"history", *OPTIONAL_COLUMNS}
        if extra:
            raise DataError(f"unknown request columns {sorted(extra)}; known: history, {', '.join(OPTIONAL_COLUMNS)}")
        columns = [pl.col("history").cast(pl.List(pl.Int64))]
        for name, dtype in OPTIONAL_COLUMNS.items():
            columns.append(pl.col(name).cast(dtype) if name in requests.columns else pl.lit(None, dtype=dtype).alias(name))
        requests = requests.select(columns)
        for name in ("history", "exclude", "candidates", "query_items"):
            ids = requests[name].explode().drop_nulls()
            if ids.len() and (ids.min() < 0 or ids.max() >= self.n_items):
                raise DataError(f"item id out of range 0..{self.n_items - 1} in requests", field=name)
        return requests

    def _cache_path(self, requests: pl.DataFrame, top_n: int) -> Path | None:
        if self.cache_dir is None:
            return None
        buffer = io.BytesIO()
        requests.write_ipc(buffer, compression="uncompressed")
        digest = hashlib.sha256(f"format={RANKING_FORMAT};top_n={top_n};".encode() + buffer.getvalue()).hexdigest()[:24]
        scorer = self.teacher.checkpoint_sha256[:16] + ("" if self.teacher.label_source == "sasrec" else f"-{self.teacher.label_source}")
        return self.cache_dir / self.teacher.data_version / scorer / f"{digest}.parquet"

    @torch.inference_mode()
    def _rank_batch(self, batch: pl.DataFrame, top_n: int) -> pl.DataFrame:
        scores, seen = self._scores(batch["history"])
        device = scores.device  # on CUDA, the masks and the sort run on the GPU too
        allowed = ~seen & ~lists_multi_hot(batch["exclude"], self.n_items).to(device)
        has_candidates = torch.from_numpy(batch["candidates"].is_not_null().to_numpy()).to(device)
        allowed &= lists_multi_hot(batch["candidates"], self.n_items).to(device) | ~has_candidates[:, None]
        include = batch["include_categories"]
        if include.is_not_null().any():
            has_include = torch.from_numpy(include.is_not_null().to_numpy()).to(device)
            having = self.categories.items_having_any(self.categories.category_ids(include, "include_categories")).to(device)
            allowed &= having | ~has_include[:, None]
        exclude = batch["exclude_categories"]
        if exclude.is_not_null().any():
            allowed &= ~self.categories.items_having_any(self.categories.category_ids(exclude, "exclude_categories")).to(device)
        scores[~allowed] = -torch.inf
        order = torch.sort(scores, dim=1, descending=True, stable=True).indices
        allowed_count = allowed.sum(1)
        width = min(top_n, self.n_items)
        top = order[:, :width]
        top = torch.where(torch.arange(width, device=device)[None, :] < allowed_count[:, None], top, PAD)
        rank_of = torch.empty_like(order)
        rank_of.scatter_(1, order, torch.arange(self.n_items, device=device).expand_as(order).contiguous())
        query_width = max(int(batch["query_items"].list.len().max() or 0), 1)
        queries = pad_lists(batch["query_items"], query_width)
        query_ranks = rank_of.gather(1, queries.clamp_min(0).to(device)).cpu()
        query_allowed = allowed.gather(1, queries.clamp_min(0).to(device)).cpu() & (queries >= 0)
        return pl.DataFrame(
            {
                "top_items": _rows_without_padding(top.cpu()),
                "allowed_count": allowed_count.cpu().numpy().astype(np.int64),
                "query_ranks": _query_lists(query_ranks, query_allowed, queries, batch["query_items"]),
            }
        )


def _rows_without_padding(padded: torch.Tensor) -> pl.Series:
    return pl.Series(padded.numpy()).arr.to_list().list.eval(pl.element().filter(pl.element() >= 0))


def _query_lists(ranks: torch.Tensor, allowed: torch.Tensor, queries: torch.Tensor, query_lists: pl.Series) -> pl.Series:
    """Back to one list per row, as long as the row's query_items; null where the item is not allowed."""
    lengths = query_lists.list.len().fill_null(0).to_numpy()
    present = (queries >= 0).numpy()
    values = np.where(allowed.numpy(), ranks.numpy(), -1)[present]
    ranked = pl.DataFrame({"row": np.repeat(np.arange(len(lengths)), lengths), "rank": values.astype(np.int64)})
    grouped = ranked.with_columns(pl.col("rank").replace(-1, None)).group_by("row", maintain_order=True).agg("rank")
    every_row = pl.DataFrame({"row": np.arange(len(lengths))}).join(grouped, on="row", how="left", maintain_order="left")
    return every_row["rank"].fill_null(pl.lit([], dtype=pl.List(pl.Int64)))


class BatchRanker:
    """A worker (datagen.executor): the teacher loaded once, then the answers to one batch of normalised requests."""

    uses_torch = True

    def __init__(self, folder_path: Path, checkpoint: Path | None, device: str, batch_size: int):
        folder = BuildFolder.open(folder_path)
        self.ranker = TeacherRanker(load_teacher(folder, checkpoint, device), folder.items, batch_size=batch_size)

    def run(self, batch: tuple[pl.DataFrame, int]) -> pl.DataFrame:
        requests, top_n = batch
        return self.ranker._rank_batch(requests, top_n)
