"""Label checks of the InstructRec rows: each answer read back from its text and compared with the facts.

    >>> label_checks(rows, BuildFolder.open("build/steam-sample"), paths)["test"]["select"]["failures"]  # doctest: +SKIP
    []

- recommend, select: the answer is the target's title; select's candidates are
  distinct, hold the target exactly once, none is in the user's sequence, and
  the prompt shows them all;
- pointwise: "Yes" exactly when the candidate is the target, negatives are not
  in the user's sequence, and Yes and No are equally many;
- write_query, predict_query_and_item: the answer carries the target's category path.
"""

from __future__ import annotations

from datagen.buildfolder import BuildFolder
from datagen.family.rows import answer_text, prompt_text, run_row_checks


def label_checks(rows: dict[str, list[dict]], folder: BuildFolder, paths: list[str]) -> dict[str, dict[str, dict]]:
    titles = folder.items.sort("item_id")["title"].to_list()
    sequences = {user: set(items) for user, items in folder.sequences.select("user_id", "item_ids").rows()}
    results = run_row_checks(rows, ROW_CHECKS, {"titles": titles, "paths": paths, "sequences": sequences})
    for split, tasks in results.items():
        if "pointwise" in tasks:
            answers = [answer_text(row) for row in rows[split] if row["task"] == "pointwise"]
            tasks["pointwise"]["checked"].append("Yes and No equally many")
            if answers.count("Yes") != answers.count("No"):
                tasks["pointwise"]["failures"].append(f"Yes and No equally many: {answers.count('Yes')} vs {answers.count('No')}")
    return results


def _names_target(row: dict, context: dict) -> bool:
    return answer_text(row) == context["titles"][row["target_item_id"]]


def _candidates_fair(row: dict, context: dict) -> bool:
    candidates = row["candidate_item_ids"]
    return len(set(candidates)) == len(candidates) and candidates.count(row["target_item_id"]) == 1


def _candidates_unseen(row: dict, context: dict) -> bool:
    sequence = context["sequences"][row["user_id"]]
    return not any(item in sequence for item in row["candidate_item_ids"] if item != row["target_item_id"])


def _candidates_shown(row: dict, context: dict) -> bool:
    return all(f"'{context['titles'][item]}'" in prompt_text(row) for item in row["candidate_item_ids"])


def _yes_for_the_target(row: dict, context: dict) -> bool:
    (candidate,) = row["candidate_item_ids"]
    return (answer_text(row) == "Yes") == (candidate == row["target_item_id"]) and f"'{context['titles'][candidate]}'" in prompt_text(row)


def _carries_the_path(row: dict, context: dict) -> bool:
    path = context["paths"][row["target_item_id"]]
    return bool(path) and path in answer_text(row)


ROW_CHECKS = {
    "recommend": {"answer is the target": _names_target},
    "select": {
        "answer is the target": _names_target,
        "target once, no repeats": _candidates_fair,
        "no negative in the sequence": _candidates_unseen,
        "prompt shows the candidates": _candidates_shown,
    },  # fmt: skip
    "pointwise": {"Yes exactly for the target": _yes_for_the_target, "no negative in the sequence": _candidates_unseen},
    "write_query": {"answer is the category path": _carries_the_path},
    "predict_query_and_item": {"answer carries the category path": _carries_the_path},
}
