"""Label checks of the InstructRec rows: each answer read back from its text and compared with the facts.

    >>> tally = RowCheckTally()  # doctest: +SKIP
    >>> tally.add(rows, ROW_CHECKS, check_context(BuildFolder.open("build/steam-sample"), paths))  # doctest: +SKIP
    >>> tally.results()["test"]["select"]["failures"]  # doctest: +SKIP
    []

- recommend, select: the answer is the target's title; select's candidates are
  distinct, hold the target exactly once, none is in the user's sequence, and
  the prompt shows them all;
- pointwise: "Yes" exactly when the candidate is the target, negatives are not
  in the user's sequence, and Yes and No are equally many;
- write_query, predict_query_and_item: the answer carries the target's category path.
"""

from __future__ import annotations

from collections import Counter

from datagen.buildfolder import BuildFolder
from datagen.family.rows import answer_text, prompt_text


def check_context(folder: BuildFolder, paths: list[str]) -> dict:
    """What the row checks compare a row with: the titles, the category paths and each user's items."""
    titles = folder.items.sort("item_id")["title"].to_list()
    sequences = {user: set(items) for user, items in folder.sequences.select("user_id", "item_ids").rows()}
    return {"titles": titles, "paths": paths, "sequences": sequences}


def balance_checks(checks: dict[str, dict[str, dict]], answers: dict[str, Counter]) -> None:
    """Add to each split's pointwise checks that Yes and No are equally many (`answers`: split -> (task, answer) counts)."""
    for split, tasks in checks.items():
        if "pointwise" in tasks:
            yes, no = answers[split][("pointwise", "Yes")], answers[split][("pointwise", "No")]
            tasks["pointwise"]["checked"].append("Yes and No equally many")
            if yes != no:
                tasks["pointwise"]["failures"].append(f"Yes and No equally many: {yes} vs {no}")


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
