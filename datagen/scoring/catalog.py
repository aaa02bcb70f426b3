"""The item facts the task generators read: titles, categories, and per-category item masks.

>>> catalog = Catalog(BuildFolder.open("build/steam-sample").items)  # doctest: +SKIP
>>> catalog.titles[0], catalog.categories_of(0), int(catalog.mask("Indie").sum())  # doctest: +SKIP
('Portal', ('Action',), 812)
"""

from __future__ import annotations

import numpy as np
import polars as pl


class Catalog:
    def __init__(self, items: pl.DataFrame):
        items = items.sort("item_id")
        self.n_items = items.height
        self.titles: list[str] = items["title"].to_list()
        self.item_categories: list[tuple[str, ...]] = [tuple(sorted(set(c or []))) for c in items["categories"].to_list()]
        self.category_names = sorted({c for cats in self.item_categories for c in cats})
        self._masks: dict[str, np.ndarray] = {}

    def categories_of(self, item: int) -> tuple[str, ...]:
        return self.item_categories[item]

    def mask(self, category: str) -> np.ndarray:
        """[n_items] bool: the items of `category`."""
        if category not in self._masks:
            self._masks[category] = np.fromiter((category in cats for cats in self.item_categories), dtype=bool, count=self.n_items)
        return self._masks[category]
