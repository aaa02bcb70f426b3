"""A family's rows made a chunk at a time by workers, each chunk checked, counted and spilled to disk where it was
made, then gathered by the driver in chunk order: no process holds every row, and 1, 2 or N workers give the same
files and the same report.

    >>> part = spill_chunk(rows, number=3, scratch=scratch, schema=ARROW_SCHEMA, checks=CHECKS, context=context)  # doctest: +SKIP
    >>> gathered = Gathered(scratch, SPLITS, ARROW_SCHEMA)  # doctest: +SKIP
    >>> gathered.add(part)  # doctest: +SKIP
    >>> write_generated(folder, "recknowledge", gathered.splits, library, report, markdown)  # doctest: +SKIP

A worker (datagen.executor) makes a chunk's rows as dicts, split -> rows, and
returns `spill_chunk` of them; the driver adds each chunk's part to a
`Gathered`, in the chunks' order, and writes its splits (SpilledSplit).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from datagen.family.rows import RowCheck, RowCheckTally, answer_text, rows_table
from datagen.family.spilled import SpilledSplit, SpilledTable, spill


@dataclass
class ChunkPart:
    """What a chunk of rows left for the driver: each split's rows in a file, per split their count per (task,
    template id) and per (task, answer) of the tasks whose answers are counted, their label checks' tally, and the
    samples the chunk did not make (the family's own keys)."""

    spilled: dict[str, SpilledTable]
    templates: dict[str, Counter]
    answers: dict[str, Counter]
    checks: RowCheckTally
    dropped: Counter = field(default_factory=Counter)


def spill_chunk(
    rows: dict[str, list[dict]],
    number: int,
    scratch: Path,
    schema: pa.Schema,
    checks: dict[str, dict[str, RowCheck]],
    context: dict,
    counted_answers: tuple[str, ...] = (),
    dropped: Counter | None = None,
) -> ChunkPart:
    """Check chunk `number`'s rows (split -> rows), count them, and spill each split to `scratch`; `rows` is emptied
    as it goes, so that a split's dicts are freed once written."""
    tally = RowCheckTally()
    tally.add(rows, checks, context)
    templates = {split: Counter((row["task"], row["template_id"]) for row in split_rows) for split, split_rows in rows.items()}
    answers = {split: Counter((row["task"], answer_text(row)) for row in split_rows if row["task"] in counted_answers) for split, split_rows in rows.items()}
    spilled = {split: spill(rows_table(rows.pop(split), schema), scratch / f"chunk-{number:06d}-{split}.arrow") for split in list(rows)}
    return ChunkPart(spilled, templates, answers, tally, Counter() if dropped is None else dropped)


class Gathered:
    """Every chunk's part, added in chunk order: each split's spilled rows, their counts, checks and dropped samples."""

    def __init__(self, scratch: Path, splits: tuple[str, ...], schema: pa.Schema):
        self.splits = {split: SpilledSplit(scratch, split, schema) for split in splits}
        self.templates = {split: Counter() for split in splits}
        self.answers = {split: Counter() for split in splits}
        self.checks = RowCheckTally(splits)
        self.dropped: Counter = Counter()

    def add(self, part: ChunkPart) -> None:
        for split, table in part.spilled.items():
            self.splits[split].add(table)
            self.templates[split].update(part.templates[split])
            self.answers[split].update(part.answers[split])
        self.checks.merge(part.checks)
        self.dropped.update(part.dropped)

    def rows_per_task(self, split: str) -> Counter:
        """Task -> rows, tasks in the order they first came."""
        tasks = Counter()
        for (task, _), count in self.templates[split].items():
            tasks[task] += count
        return tasks

    def rows_per_template(self, split: str) -> Counter:
        templates = Counter()
        for (_, template_id), count in self.templates[split].items():
            templates[template_id] += count
        return templates
