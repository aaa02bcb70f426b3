"""Label checks of the recommendation-knowledge rows: every answer parsed back from its text and compared.

    >>> tally = RowCheckTally()  # doctest: +SKIP
    >>> tally.add(rows, CHECKS, check_context(BuildFolder.open("build/steam-sample"), ids))  # doctest: +SKIP
    >>> tally.results()["train"]["ranking"]["failures"]  # doctest: +SKIP
    []

What holds for a correct dataset, per task:
- retrieval, ranking, BPR: the answer names the target; ranking and BPR
  candidates are distinct, hold the target exactly once, and none is in the
  user's sequence;
- rating: the answer is "yes" exactly when the user's rating of the target,
  read from the interactions config, is above 3;
- MIM: the answer names exactly the masked items, in order, and the prompt hides
  exactly that many;
- MLM: putting the spans back into the prompt gives the sub-sequence's text.
"""

from __future__ import annotations

import re
from collections import defaultdict

import polars as pl

from datagen.buildfolder import BuildFolder
from datagen.family.rows import answer_text, prompt_text
from datagen.layout import read_split
from datagen.recknowledge.samples import MASK, YES, ItemText, uncorrupt

SHORT_ID = re.compile(r"\bI\d+\b")
ITEM_ID = re.compile(r"Item ID: (I\d+), Title: ")


def check_context(folder: BuildFolder, ids: list[str]) -> dict:
    """What the checks compare a row with: the short ids, the item texts, each user's items and the ratings."""
    return {
        "item_of": {short: item for item, short in enumerate(ids)},
        "text": ItemText(ids, folder.items.sort("item_id")["title"].to_list()),
        "sequences": {user: set(items) for user, items in folder.sequences.select("user_id", "item_ids").rows()},
        "ratings": _ratings(folder),
    }


def _ratings(folder: BuildFolder) -> dict[tuple[int, int], set[float]] | None:
    parts = [read_split(folder.path, "interactions", split) for split in ("train", "validation", "test")]
    if "rating" not in parts[0].columns:
        return None
    ratings = defaultdict(set)
    for user, item, rating in pl.concat(parts).select("user_id", "item_id", "rating").rows():
        ratings[(user, item)].add(rating)
    return ratings


def _named(row: dict, context: dict) -> list[int | None]:
    """The items an answer names: "Item ID: I1, Title: ...;" entries, or a bare short id."""
    answer = answer_text(row)
    shorts = ITEM_ID.findall(answer) if "Item ID: " in answer else [answer] if SHORT_ID.fullmatch(answer) else []
    return [context["item_of"].get(short) for short in shorts]


def _candidates_fair(row: dict, context: dict) -> bool:
    candidates = row["candidate_item_ids"]
    return len(set(candidates)) == len(candidates) and candidates.count(row["target_item_id"]) == 1


def _candidates_unseen(row: dict, context: dict) -> bool:
    sequence = context["sequences"][row["user_id"]]
    return not any(item in sequence and item != row["target_item_id"] for item in row["candidate_item_ids"])


def _candidates_shown(row: dict, context: dict) -> bool:
    return SHORT_ID.findall(prompt_text(row))[-len(row["candidate_item_ids"]) :] == [context["text"].ids[i] for i in row["candidate_item_ids"]]


def _names_target(row: dict, context: dict) -> bool:
    return _named(row, context) == [row["target_item_id"]]


def _rating_label(row: dict, context: dict) -> bool:
    user_ratings = context["ratings"].get((row["user_id"], row["target_item_id"]), set())
    return row["target_rating"] in user_ratings and (answer_text(row) == YES) == (row["target_rating"] > 3)


def _mim_answer(row: dict, context: dict) -> bool:
    return _named(row, context) == row["label_item_ids"] and row["label_item_ids"] == [row["history_item_ids"][p] for p in row["masked_positions"]]


def _mim_prompt(row: dict, context: dict) -> bool:
    return prompt_text(row).count(MASK) == len(row["label_item_ids"])


def _mlm_spans(row: dict, context: dict) -> bool:
    return uncorrupt(prompt_text(row), answer_text(row)) == context["text"].items(row["history_item_ids"])


CHECKS = {
    "retrieval": {"answer is the target": _names_target},
    "ranking": {
        "answer is the target": _names_target,
        "target once, no repeats": _candidates_fair,
        "no candidate in the sequence": _candidates_unseen,
        "prompt lists the candidates": _candidates_shown,
    },  # fmt: skip
    "rating": {"yes exactly when the rating > 3": _rating_label},
    "mim": {"answer is the masked items": _mim_answer, "prompt hides that many": _mim_prompt},
    "mlm": {"spans restore the text": _mlm_spans},
    "bpr": {"answer is the target": _names_target, "target once, no repeats": _candidates_fair, "negative not in the sequence": _candidates_unseen},
}
