"""What every generated dataset config shares: its chat columns, its per-row label checks, writing it out, and naming items beside a row.

    >>> chat_columns("", "Which game next?", "I42")["prompt"]
    [{'role': 'user', 'content': 'Which game next?'}]
    >>> named_items([3, 7], ["Portal"] * 3 + ["Portal 2"] + ["Dota 2"] * 3 + ["Terraria"])
    'Portal 2 [3]; Terraria [7]'
    >>> write_generated(folder, "toy", rows_tables(rows, schema), library, report, markdown)  # doctest: +SKIP

`write_generated` writes `<build>/data/<config>/`, `templates/<config>/` and
`reports/<config>.{json,md}`, each replaced only once complete.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, fields
from pathlib import Path

import polars as pl
import pyarrow as pa

from datagen.buildfolder import BuildFolder
from datagen.errors import DataError
from datagen.family.spilled import SpilledSplit
from datagen.layout import DATA_DIR, write_split
from datagen.output import atomic_folder, write_json, write_text
from datagen.templating import TemplateLibrary

MAX_EXAMPLES = 3  # failing row ids a check names
MAX_FAILURES_SHOWN = 10  # failed checks an error lists
RowCheck = Callable[[dict, dict], bool]


def chat_columns(system: str, user: str, answer: str) -> dict[str, list[dict]]:
    """messages, and the same split as prompt/completion; no system message when `system` is empty."""
    prompt = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
    completion = [{"role": "assistant", "content": answer}]
    return {"messages": prompt + completion, "prompt": prompt, "completion": completion}


def answer_text(row: dict) -> str:
    """The answer of a row made with `chat_columns`."""
    return row["completion"][0]["content"]


def prompt_text(row: dict) -> str:
    """The user message of a row made with `chat_columns`."""
    return row["prompt"][-1]["content"]


def settings_dict(settings) -> dict:
    """A generator's settings dataclass as JSON for its report: template folders as strings, and without the fields
    marked `metadata={"recorded": False}` (how the work is spread: workers, executor), which change no output."""
    values = asdict(settings)
    recorded = {entry.name: values[entry.name] for entry in fields(settings) if entry.metadata.get("recorded", True)}
    recorded["template_dirs"] = [str(path) for path in settings.template_dirs]
    return recorded


class RowCheckTally:
    """Per split and task, the rows checked and, per check, how many failed it and the ids of the first few; rows
    are added a chunk at a time, and chunks' tallies merged in chunk order give what one pass over all rows gives,
    so the report is the same for any number of workers."""

    def __init__(self, splits: tuple[str, ...] = ()):
        self.tasks: dict[str, dict[str, dict]] = {split: {} for split in splits}  # split -> task -> {"rows", "checked", "failed": {check: [count, ids]}}

    def add(self, rows: dict[str, list[dict]], checks: dict[str, dict[str, RowCheck]], context: dict) -> None:
        """Each check of a row's task on each of `rows` (split -> its rows)."""
        for split, split_rows in rows.items():
            by_task = defaultdict(list)
            for row in split_rows:
                by_task[row["task"]].append(row)
            chunk = {}
            for task, task_rows in by_task.items():
                failed = {}
                for name, check in checks.get(task, {}).items():
                    ids = [row["id"] for row in task_rows if not check(row, context)]
                    if ids:
                        failed[name] = [len(ids), ids[:MAX_EXAMPLES]]
                chunk[task] = {"rows": len(task_rows), "checked": list(checks.get(task, {})), "failed": failed}
            self._merge_split(split, chunk)

    def merge(self, other: RowCheckTally) -> None:
        """Add the tally of later rows (a chunk's)."""
        for split, tasks in other.tasks.items():
            self._merge_split(split, tasks)

    def _merge_split(self, split: str, tasks: dict[str, dict]) -> None:
        mine = self.tasks.setdefault(split, {})
        for task, result in tasks.items():
            if task not in mine:
                mine[task] = {"rows": 0, "checked": result["checked"], "failed": {}}
            mine[task]["rows"] += result["rows"]
            for name, (count, ids) in result["failed"].items():
                total, examples = mine[task]["failed"].get(name, [0, []])
                mine[task]["failed"][name] = [total + count, (examples + ids)[:MAX_EXAMPLES]]

    def results(self) -> dict[str, dict[str, dict]]:
        """{split: {task: {"rows", "checked", "failures"}}}; a failure names the check, how many rows and a few ids."""
        return {
            split: {
                task: {"rows": result["rows"], "checked": list(result["checked"]), "failures": [_failure(name, *result["failed"][name]) for name in result["checked"] if name in result["failed"]]}
                for task, result in tasks.items()
            }
            for split, tasks in self.tasks.items()
        }


def _failure(check: str, count: int, ids: list[str]) -> str:
    return f"{check}: {count} rows, e.g. {', '.join(ids)}"


def run_row_checks(rows: dict[str, list[dict]], checks: dict[str, dict[str, RowCheck]], context: dict) -> dict[str, dict[str, dict]]:
    """{split: {task: {"rows", "checked", "failures"}}}: each check of a row's task on each row; a failure names a few rows."""
    tally = RowCheckTally()
    tally.add(rows, checks, context)
    return tally.results()


def check_failures(checks: dict[str, dict[str, dict]]) -> list[str]:
    return [f"{split}/{task}: {problem}" for split, tasks in checks.items() for task, result in tasks.items() for problem in result["failures"]]


def refuse_failed_checks(family: str, failures: list[str]) -> None:
    """Stop a family's generation whose labels fail their checks, before anything is written: the command fails
    and the build stays as it was, so a build never holds (nor `datagen push` sends) rows its own checks reject."""
    if failures:
        shown = "\n  ".join(failures[:MAX_FAILURES_SHOWN]) + (f"\n  ... and {len(failures) - MAX_FAILURES_SHOWN} more" if len(failures) > MAX_FAILURES_SHOWN else "")
        raise DataError(
            f"{family}: {len(failures)} label check(s) failed, so nothing was written:\n  {shown}",
            hint="This is a datagen bug, or a teacher or input that changed under it: please report it with the command you ran.",
        )


def rows_table(rows: list[dict], schema: pa.Schema) -> pa.Table:
    # pyarrow builds nested columns from dicts about 5x faster than polars does.
    return pa.Table.from_pylist(rows, schema=schema)


def rows_tables(rows: dict[str, list[dict]], schema: pa.Schema) -> dict[str, pa.Table]:
    """Each split's rows as a table. It empties `rows` as it goes, so that a split's dicts are freed once converted."""
    return {split: rows_table(rows.pop(split), schema) for split in list(rows)}


def write_generated(folder: BuildFolder, config: str, splits: dict[str, pa.Table | SpilledSplit], library: TemplateLibrary, report: dict, markdown: str) -> None:
    """`splits`: split -> its rows, in memory (which may be gathered from many chunks) or spilled to disk."""

    def write(split: str) -> list[Path]:
        rows = splits[split]
        if isinstance(rows, SpilledSplit):
            return rows.write(out, split)
        return write_split(pl.from_arrow(rows).rechunk(), out, split)

    with atomic_folder(folder.path / DATA_DIR / config) as out, ThreadPoolExecutor(len(splits)) as writers:
        # Arrow compresses and writes without holding the GIL, so the splits are written at once.
        list(writers.map(write, splits))
    with atomic_folder(folder.path / "templates" / config) as out:
        library.write_sources(out)
    reports = folder.path / "reports"
    reports.mkdir(exist_ok=True)
    write_json(report, reports / f"{config}.json")
    write_text(markdown, reports / f"{config}.md")


def named_items(ids: list[int] | None, titles: list[str]) -> str:
    """ "Title [id]; ..." for the facts table, or "-"."""
    return "; ".join(f"{titles[i]} [{i}]" for i in ids) if ids else "-"
