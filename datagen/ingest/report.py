"""What a build did to the data: rows dropped at each step and why, bad rows skipped.

The report ends up in `manifest.json`, so every number in it must be deterministic.

    >>> report = BuildReport(max_bad_share=0.01)
    >>> report.step("dedupe", "interactions", before=10, after=8, why="same (user, item) again; kept the earliest")
    >>> report.steps[0]["dropped"]
    2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from datagen.errors import DataError

_EXAMPLES_KEPT = 5


@dataclass
class BuildReport:
    max_bad_share: float = 0.01
    steps: list[dict] = field(default_factory=list)
    bad_rows: list[dict] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # settings that read the data wrong, said on stderr and kept here

    def step(self, name: str, table: str, *, before: int, after: int, why: str) -> None:
        """Record that step `name` took `table` from `before` to `after` rows."""
        self.steps.append({"step": name, "table": table, "before": before, "after": after, "dropped": before - after, "why": why})

    def skip_bad_rows(self, bad: pl.DataFrame, *, total: int, path: str | Path, what: str) -> None:
        """Skip the rows in `bad` (columns line, field, reason), or fail if they are too many.

        Single bad rows are tolerated up to `max_bad_share` of the file's rows; past
        that the file is wrong as a whole, and the error names its first bad row.
        """
        if bad.is_empty():
            return
        bad = bad.sort("line")
        first = bad.row(0, named=True)
        if bad.height > self.max_bad_share * total:
            raise DataError(
                f"{first['reason']} (and {bad.height - 1} more bad {what} of {total}: more than the {self.max_bad_share:.2%} allowed)",
                path=path,
                line=first["line"],
                field=first["field"],
                hint="Fix the file, check it is the format this source reads, or pass --max-bad-share to skip more bad rows.",
            )
        by_reason = bad.group_by("field", "reason").agg(pl.len().alias("rows"), pl.col("line").min().alias("first_line"))
        for row in by_reason.sort("first_line").iter_rows(named=True):
            self.bad_rows.append(
                {
                    "file": Path(path).name,
                    "what": what,
                    "field": row["field"],
                    "reason": row["reason"],
                    "rows": row["rows"],
                    "first_line": row["first_line"],
                }
            )

    def bad_row_total(self) -> int:
        return sum(entry["rows"] for entry in self.bad_rows)

    def as_dict(self) -> dict:
        return {
            "steps": self.steps,
            "bad_rows": self.bad_rows,
            "counts": dict(sorted(self.counts.items())),
            **({"warnings": self.warnings} if self.warnings else {}),
        }
