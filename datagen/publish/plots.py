"""The card's plots, as PNG files in the repository's images/ folder.

    >>> write_plots(Path("build/steam"), task_counts(folder, manifest))  # doctest: +SKIP
    {'history_length': 'images/history_length.png', 'categories': 'images/categories.png', 'rows_per_task': ...}

Matplotlib's Agg backend with fixed size, dpi and no timestamp in the PNG, so a
rebuild with the same data gives the same bytes.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the backend)
import polars as pl  # noqa: E402

from datagen.layout import read_split  # noqa: E402

IMAGES_DIR = "images"
TOP_CATEGORIES = 20
COLORS = {"train": "#4c72b0", "validation": "#dd8452", "test": "#55a868"}


def _save(figure, path: Path) -> None:
    figure.tight_layout()
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")  # a new file, renamed over the old (see output.staged_edit)
    figure.savefig(temporary, dpi=100, format=path.suffix[1:], metadata={"Software": None})
    plt.close(figure)
    os.replace(temporary, path)


def history_length(folder: Path, path: Path) -> None:
    lengths = pl.read_parquet(folder / "sequences.parquet", columns=["length"])["length"]
    counts = lengths.value_counts().sort("length")
    figure, axes = plt.subplots(figsize=(7, 3.2))
    axes.bar(counts["length"].to_list(), counts["count"].to_list(), color=COLORS["train"])
    axes.set_xlabel("interactions per user (after cleaning; the last two are validation and test)")
    axes.set_ylabel("users")
    axes.set_title(f"History length: {lengths.len():,} users, median {lengths.median():g}, max {lengths.max()}")
    _save(figure, path)


def categories(folder: Path, path: Path) -> bool:
    """Items and interactions per category; False (nothing drawn) for a catalog without categories."""
    items = read_split(folder, "items", "train").select("item_id", "categories")
    item_counts = Counter(category for row in items["categories"].to_list() for category in (row or []))
    if not item_counts:
        return False
    interactions = pl.concat([read_split(folder, "interactions", split).select("item_id") for split in ("train", "validation", "test")])
    per_item = interactions.group_by("item_id").len().join(items, on="item_id")
    interaction_counts: Counter = Counter()
    for row in per_item.iter_rows(named=True):
        for category in row["categories"] or []:
            interaction_counts[category] += row["len"]
    top = sorted(item_counts, key=lambda c: (-item_counts[c], c))[:TOP_CATEGORIES]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 0.28 * len(top) + 1.4), sharey=True)
    positions = list(range(len(top)))[::-1]
    left.barh(positions, [item_counts[c] for c in top], color=COLORS["train"])
    left.set_yticks(positions, top)
    left.set_xlabel("items")
    right.barh(positions, [interaction_counts[c] for c in top], color=COLORS["test"])
    right.set_xlabel("interactions")
    shown = f"the {len(top)} largest of {len(item_counts)}" if len(item_counts) > len(top) else f"all {len(item_counts)}"
    figure.suptitle(f"Categories ({shown}; an item can have several)")
    _save(figure, path)
    return True


def rows_per_task(task_rows: list[dict], path: Path) -> bool:
    """Rows per task and split (`task_rows` as `card.task_counts` gives them); False when there are none."""
    counts: dict[tuple[str, str], int] = {}
    for entry in task_rows:
        for split, n in entry["rows"].items():
            key = (f"{entry['config']}/{entry['task']}", split)
            counts[key] = counts.get(key, 0) + n
    if not counts:
        return False
    tasks = sorted({task for task, _ in counts}, reverse=True)
    splits = [s for s in COLORS if any(split == s for _, split in counts)]
    height = 0.8 / len(splits)
    figure, axes = plt.subplots(figsize=(8, 0.32 * len(tasks) * len(splits) + 1.2))
    for offset, split in enumerate(splits):
        axes.barh(
            [i + ((len(splits) - 1) / 2 - offset) * height for i in range(len(tasks))],  # the first split on top, as in the legend
            [counts.get((task, split), 0) for task in tasks],
            height=height,
            color=COLORS[split],
            label=split,
        )
    axes.set_yticks(range(len(tasks)), tasks)
    axes.set_xlabel("rows")
    axes.legend(loc="lower right")
    axes.set_title("Rows per task and split")
    _save(figure, path)
    return True


def write_plots(folder: Path, task_rows: list[dict]) -> dict[str, str]:
    """Draw the plots into folder/images/; {name: relative path} of those drawn."""
    images = folder / IMAGES_DIR
    images.mkdir(exist_ok=True)
    drawn = {}
    history_length(folder, images / "history_length.png")
    drawn["history_length"] = f"{IMAGES_DIR}/history_length.png"
    if categories(folder, images / "categories.png"):
        drawn["categories"] = f"{IMAGES_DIR}/categories.png"
    else:
        (images / "categories.png").unlink(missing_ok=True)
    if rows_per_task(task_rows, images / "rows_per_task.png"):
        drawn["rows_per_task"] = f"{IMAGES_DIR}/rows_per_task.png"
    else:
        (images / "rows_per_task.png").unlink(missing_ok=True)
    return drawn
