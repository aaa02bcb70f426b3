"""The contract every source (catalog adapter) fulfils.

A source turns the raw files of one catalog format into two frames, and the
shared cleaning in `datagen.pipeline` does the rest, so an adapter stays small:

- items: raw_item_id (str), title (str, raw), categories (list[str])
- interactions: raw_user_id (str), raw_item_id (str), timestamp (i64 seconds or
  null), rating (f64 or null), order_key (i64: file or list order, the tie-break)

Review texts are large and only InstructRec's vague intentions use them, so
they never travel in the interactions frame: when the build keeps them, the
pipeline sets `review_texts_path`, and a source that has texts streams
(order_key, review) there as parquet, a chunk at a time.

    >>> from datagen.sources import get_source
    >>> source = get_source("steam")
    >>> raw = source.load(Path("data/steam"), None, {}, BuildReport())  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import polars as pl

from datagen.errors import DataError
from datagen.ingest.report import BuildReport

ITEM_SCHEMA = {"raw_item_id": pl.String, "title": pl.String, "categories": pl.List(pl.String)}
INTERACTION_SCHEMA = {
    "raw_user_id": pl.String,
    "raw_item_id": pl.String,
    "timestamp": pl.Int64,
    "rating": pl.Float64,
    "order_key": pl.Int64,
}
# DuckDB's json_type of a value that cannot be one id, title, time or rating, as an SQL list.
NOT_ONE_VALUE_JSON_TYPES = "('ARRAY', 'OBJECT', 'BOOLEAN')"


# What the McAuley lab's pages say of the Steam and Amazon data it publishes.
MCAULEY_LAB_TERMS = "Published by the McAuley lab (UCSD) for research, with no licence stated: cite its papers (below) and check its page before you redistribute."


@dataclass
class RawCatalog:
    """What a source read, before the shared cleaning."""

    items: pl.DataFrame
    interactions: pl.DataFrame
    input_files: list[Path]
    # "timestamp": histories are ordered by time, order_key breaks ties;
    # "list": the raw data has no times, order_key alone gives the order.
    order: str = "timestamp"
    category_kind: str = ""
    # Why the catalog has no titles ("" when it has them): titles are then null, and only the teacher can be built.
    untitled_because: str = ""
    # What the items are, plural, in prompts and the card: "games", "movies", "products".
    catalog_noun: str = "items"
    # Keys of datagen/publish/citations.yaml, and the user's own BibTeX (a table config's `citation`).
    citation_keys: tuple[str, ...] = ()
    citation: str | None = None
    # The data's licence as a Hub licence id (e.g. "cc-by-4.0"); None: the data states none.
    license: str | None = None
    # The terms of use its publisher states, in a sentence for the card ("" when none are known), and whether they
    # forbid redistribution: `datagen push` then refuses without --permission-to-redistribute.
    terms: str = ""
    redistribution_forbidden: bool = False
    # Which of its formats the source found, where it chose from the files: "amazon 2023", "recbole sequences".
    variant: str = ""

    @property
    def has_titles(self) -> bool:
        return not self.untitled_because

    def __post_init__(self) -> None:
        """Check the contract at the boundary, so a plug-in's mistake is named, not a Polars trace."""
        for table, schema in (("items", ITEM_SCHEMA), ("interactions", INTERACTION_SCHEMA)):
            frame = getattr(self, table)
            missing = [name for name in schema if name not in frame.columns]
            if missing:
                raise DataError(f"the source returned {table} without column(s) {', '.join(missing)}; it must return {list(schema)}")
            setattr(self, table, frame.select(pl.col(name).cast(dtype) for name, dtype in schema.items()))


class Source:
    """Base class of sources; subclasses are registered with `@register_source`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    # Text shown for SOURCE:ARG in `datagen sources`, or "" when the source takes none.
    argument: ClassVar[str] = ""
    # option name -> (default, help)
    options: ClassVar[dict[str, tuple[str | None, str]]] = {}
    # A small real sample shipped with the package, used when no raw files are given.
    sample_dir: ClassVar[Path | None] = None
    # Set by the pipeline when the build keeps review texts (see the module docstring); None: do not read them.
    review_texts_path: Path | None = None
    # Set by the pipeline: False when no family will name items (a teacher-only build), so titles may be missing.
    titles_needed: bool = True

    def dataset_name(self, argument: str | None) -> str:
        """The build's name, and so its default output folder build/<name>."""
        return f"{self.name}-{argument}" if argument else self.name

    def default_parameters(self, argument: str | None) -> dict:
        """Build parameters this catalog sets for itself (user_core, ...): above the defaults, below presets and flags."""
        return {}

    def default_raw_dir(self, argument: str | None) -> Path | None:
        """Where raw files are when the user gives no --raw-dir (None: nowhere known)."""
        return None

    def load(self, raw_dir: Path, argument: str | None, options: dict[str, str], report: BuildReport) -> RawCatalog:
        raise NotImplementedError

    def resolve_options(self, given: dict[str, str]) -> dict[str, str | None]:
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise DataError(f"source {self.name!r} has no option {unknown[0]!r} (its options: {known})")
        return {name: given.get(name, default) for name, (default, _) in self.options.items()}


def untitled_items(interactions: pl.DataFrame) -> pl.DataFrame:
    """The items of an interactions-only catalog: every id seen, no title, no categories."""
    ids = interactions["raw_item_id"].unique().sort()
    return pl.DataFrame({"raw_item_id": ids, "title": pl.Series([None] * len(ids), dtype=pl.String), "categories": pl.Series([[]] * len(ids), dtype=pl.List(pl.String))})


def require_file(raw_dir: Path, names: list[str], what: str, hint: str) -> Path:
    """The first of `names` that exists in `raw_dir`, or a clear error listing them all."""
    for name in names:
        if (raw_dir / name).is_file():
            return raw_dir / name
    raise DataError(f"no {what} found: looked for {', '.join(names)}", path=raw_dir, hint=hint)
