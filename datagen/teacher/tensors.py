"""Polars list columns -> padded torch tensors, and the training windows of SASRec.

>>> pad_lists(pl.Series([[1, 2, 3], [4]]), width=2)
tensor([[ 2,  3],
        [-1,  4]])
"""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

PAD = -1


def pad_lists(lists: pl.Series, width: int) -> torch.Tensor:
    """Keep the last `width` items of each list, left-padded with -1: [rows, width]."""
    kept = lists.list.tail(width)
    lengths = kept.list.len().fill_null(0).to_numpy().astype(np.int64)
    values = kept.explode().drop_nulls().to_numpy().astype(np.int64)
    out = np.full((len(lists), width), PAD, dtype=np.int64)
    rows = np.repeat(np.arange(len(lists)), lengths)
    ends = np.cumsum(lengths)
    within = np.arange(len(values)) - np.repeat(ends - lengths, lengths)
    out[rows, width - np.repeat(lengths, lengths) + within] = values
    return torch.from_numpy(out)


def multi_hot(padded: torch.Tensor, n_items: int) -> torch.Tensor:
    """[rows, width] item ids (-1 = none) -> [rows, n_items] bool."""
    mask = torch.zeros(padded.shape[0], n_items + 1, dtype=torch.bool, device=padded.device)
    mask.scatter_(1, (padded + 1).clamp(min=0), True)
    return mask[:, 1:]


def lists_multi_hot(lists: pl.Series, n_items: int) -> torch.Tensor:
    """Every item of each list (null = none) -> [rows, n_items] bool."""
    return multi_hot(pad_lists(lists, max(int(lists.list.len().max() or 0), 1)), n_items)


def training_windows(train_lists: pl.Series, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut every train sequence into next-item windows: (inputs, targets), each [windows, width].

    A sequence of n items gives n-1 (input, next item) pairs. They are cut into
    windows of `width` pairs from the end, so the newest pairs share a window and
    every pair is trained on exactly once; windows are left-padded with -1.
    """
    lengths = train_lists.list.len().to_numpy().astype(np.int64)
    flat = train_lists.explode().to_numpy().astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    pairs = np.maximum(lengths - 1, 0)
    position = np.arange(pairs.sum()) - np.repeat(np.cumsum(pairs) - pairs, pairs)
    from_end = np.repeat(pairs, pairs) - 1 - position  # 0 = the newest pair
    window_in_user = from_end // width
    column = width - 1 - from_end % width
    windows_per_user = np.where(pairs > 0, (pairs + width - 1) // width, 0)
    first_window = np.cumsum(windows_per_user) - windows_per_user
    window = np.repeat(first_window, pairs) + window_in_user
    inputs = np.full((int(windows_per_user.sum()), width), PAD, dtype=np.int64)
    targets = inputs.copy()
    source = np.repeat(starts, pairs) + position
    inputs[window, column] = flat[source]
    targets[window, column] = flat[source + 1]
    return torch.from_numpy(inputs), torch.from_numpy(targets)
