"""Evaluate models on a dataset's task rows with the metrics of Lu et al. 2024 (sections 3.2-3.5).

    >>> rows = select_rows("build/steam", tasks=("i0", "i1_pos"), rows_per_task=100)  # doctest: +SKIP
    >>> answers = generate_answers(rows, make_generator("runs/sft/merged"), Path("eval/sft.jsonl"))  # doctest: +SKIP
    >>> results = score_model(rows, answers, catalog)  # doctest: +SKIP
    >>> results["i0"]["hr"]  # doctest: +SKIP
    0.05

Every selected row counts in every denominator: an empty or unparseable answer
scores 0 on CorrectCount, HR, NDCG, TCP and CPA (and on RepeatItem, NonExist and
InHistory, which are shares of the K requested slots). The same users are drawn
for every task, so each control task is also scored on that user's I0 answer:
the paper's numbers "without control signals" (in parentheses in its tables).
The SASRec teacher is scored on its own top K (it cannot read an instruction), and
the most-popular baseline on the K items most often in train, less the shown history.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

from datagen.controllable.tasks import TASKS
from datagen.errors import DataError
from datagen.lm.constrained import ListRequest, TitleTree
from datagen.output import write_json
from datagen.scoring.answers import METRICS, Facts, TitleIndex, mean_scores, parse_answer, score
from datagen.scoring.catalog import Catalog
from datagen.training.data import read_config

TEACHER = "SASRec (teacher)"
MOST_POPULAR = "most-popular"
CONTROL_TASKS = ("i1_pos", "i1_neg", "i2_le", "i2_approx", "i2_ge", "i1_pos_neg", "i2_le_neg")
TOP5 = ("hr@5", "ndcg@5")


def select_rows(path: str, tasks, split: str = "test", rows_per_task: int | None = None, seed: int = 0, revision: str | None = None) -> pl.DataFrame:
    """The rows of `tasks` for the same users: a seeded draw among users that every task has."""
    unknown = [task for task in tasks if task not in TASKS]
    if unknown:
        raise DataError(f"unknown task {unknown[0]!r}; tasks are {', '.join(TASKS)}")
    rows = read_config(path, "controllable", split, revision).filter(pl.col("task").is_in(list(tasks)))
    absent = [task for task in tasks if task not in set(rows["task"].unique().to_list())]
    if absent:
        raise DataError(f"the {split} split has no {absent[0]!r} rows", path=path)
    rows = rows.unique(["task", "user_id"], keep="first", maintain_order=True)
    users = None
    for task in tasks:
        task_users = set(rows.filter(pl.col("task") == task)["user_id"].to_list())
        users = task_users if users is None else users & task_users
    chosen = sorted(users)
    if rows_per_task is not None and rows_per_task < len(chosen):
        chosen = sorted(np.random.default_rng(seed).choice(chosen, size=rows_per_task, replace=False).tolist())
    return rows.filter(pl.col("user_id").is_in(chosen)).sort(["task", "user_id"])


def max_new_tokens(k: int) -> int:
    """Room for K numbered titles: Steam and Amazon titles take about 10 tokens; the longest lists fit in 20 a line."""
    return 20 * k + 16


def read_saved(path: Path, field: str) -> dict[str, object]:
    """Each row's `field` saved so far in a JSON-lines file of id and `field` (a crash mid-run keeps every finished
    row or batch; a torn last line is ignored)."""
    saved = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            saved[record["id"]] = record[field]
    return saved


def read_answers(path: Path) -> dict[str, str]:
    return read_saved(path, "answer")


def unanswered(rows: pl.DataFrame, path: Path) -> pl.DataFrame:
    return rows.filter(~pl.col("id").is_in(list(read_answers(path))))


def check_answers_belong_to(path: Path, identity: dict) -> None:
    """Answers are reused only for the same model and settings: `<name>.model.json` beside them records which."""
    record = path.with_suffix(".model.json")
    if path.is_file() and record.is_file() and json.loads(record.read_text()) != identity:
        raise DataError("these answers came from another model or other settings (see the .model.json beside them)", path=path, hint="delete the file, or give another --out or model name")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(identity, record)


def generate_answers(
    rows: pl.DataFrame,
    generator,
    path: Path,
    max_tokens: int | None = None,
    on_batch: Callable[[str], None] | None = None,
    tree: TitleTree | None = None,
    exclude_history: bool = False,
    beams: int = 1,
) -> dict[str, str]:
    """Answer every row not answered yet in `path` (JSON lines of id and answer), appending batch by batch;
    with `tree`, each answer is K catalog titles (`datagen.lm.constrained`), the best of `beams` beams."""
    answers = read_answers(path)
    todo = unanswered(rows, path)
    if todo.height:
        ids = todo["id"].to_list()
        room = max_new_tokens if tree is None else tree.max_new_tokens
        requests = None if tree is None else [ListRequest.for_row(k, history, exclude_history) for k, history in zip(todo["k"].to_list(), todo["history_item_ids"].to_list())]
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as handle:

            def save(batch: list[int], texts: list[str]) -> None:
                for i, text in zip(batch, texts):
                    handle.write(json.dumps({"id": ids[i], "answer": text}, ensure_ascii=False) + "\n")
                    answers[ids[i]] = text
                handle.flush()
                if on_batch is not None:
                    on_batch(f"{len(answers)} answers")

            generator.generate(todo["prompt"].to_list(), [max_tokens or room(k) for k in todo["k"].to_list()], on_batch=save, tree=tree, requests=requests, beams=beams)
    return answers


def _top5(items: list[int | None], facts: Facts, catalog: Catalog) -> dict[str, float | None]:
    scored = score(items[:5], Facts(k=5, history=facts.history, target=facts.target), catalog)
    return {"hr@5": scored["hr"], "ndcg@5": scored["ndcg"]}


def score_items(rows: pl.DataFrame, items_by_id: dict[str, list[int | None]], catalog: Catalog) -> dict[str, dict]:
    """Per task: the mean of each metric, rows and empty answers; control tasks also scored on the user's I0 answer."""
    i0_items = {row["user_id"]: items_by_id[row["id"]] for row in rows.filter(pl.col("task") == "i0").iter_rows(named=True)}
    results: dict[str, dict] = {}
    for task, task_rows in rows.group_by("task", maintain_order=True):
        task = task[0]
        scores, without_control, empty = [], [], 0
        for row in task_rows.iter_rows(named=True):
            facts = Facts.from_row(row)
            items = items_by_id[row["id"]]
            empty += not items
            scored = score(items, facts, catalog)
            if task == "i0":
                scored |= _top5(items, facts, catalog)
            scores.append(scored)
            if task in CONTROL_TASKS and row["user_id"] in i0_items:
                without_control.append(score(i0_items[row["user_id"]], facts, catalog))
        means = mean_scores(scores, (*METRICS, *TOP5) if task == "i0" else METRICS)
        results[task] = {"rows": len(scores), "empty_answers": empty, **means}
        if without_control:
            results[task]["without_control"] = mean_scores(without_control)
    return results


def score_model(rows: pl.DataFrame, answers: dict[str, str], catalog: Catalog, index: TitleIndex | None = None) -> dict[str, dict]:
    index = index or TitleIndex(catalog.titles)
    return score_items(rows, {row_id: parse_answer(answers.get(row_id, ""), index) for row_id in rows["id"].to_list()}, catalog)


def score_teacher(rows: pl.DataFrame, catalog: Catalog) -> dict[str, dict]:
    """The teacher's own top K for each row (its ranking ignores the instruction)."""
    items = {row["id"]: list(row["teacher_item_ids"][: row["k"]]) for row in rows.select("id", "k", "teacher_item_ids").iter_rows(named=True)}
    return score_items(rows, items, catalog)


def item_popularity(path: str, n_items: int, revision: str | None = None) -> np.ndarray:
    """How often each item occurs in the dataset's train interactions."""
    items = read_config(path, "interactions", "train", revision)["item_id"].to_numpy()
    return np.bincount(items, minlength=n_items)


def score_most_popular(rows: pl.DataFrame, catalog: Catalog, popularity: np.ndarray) -> dict[str, dict]:
    """The baseline a recommender must beat: the K items most often in train (ties to the lower id), leaving out the shown history."""
    ranking = np.lexsort((np.arange(len(popularity)), -popularity)).tolist()
    items = {}
    for row in rows.select("id", "k", "history_item_ids").iter_rows(named=True):
        shown = set(row["history_item_ids"])
        items[row["id"]] = [item for item in ranking[: row["k"] + len(shown)] if item not in shown][: row["k"]]
    return score_items(rows, items, catalog)


def load_catalog(path: str, revision: str | None = None) -> Catalog:
    return Catalog(read_config(path, "items", "train", revision))
