"""Markdown tables laid out like Tables 2-5 and 7 of Lu et al. 2024, one row per model.

    >>> print(paper_tables({"sft": {"i0": {"hr": 0.1, "ndcg": 0.05, "hr@5": 0.07, "ndcg@5": 0.04, "rows": 100}}}))  # doctest: +SKIP
    ### Table 2: sequential recommendation (I0)
    | model | HR@10 | NDCG@10 | HR@5 | NDCG@5 |
    ...

Percentages are printed as the paper prints them (TCP, CPA, the formatting
metrics); a value in parentheses is the same model's I0 answer scored against the
control task (the paper's "without control signals"). A dash: not evaluated.
"""

from __future__ import annotations

FORMATTING = (("correct_count", "CorrectCount(%) ↑"), ("repeat_item", "RepeatItem@K(%) ↓"), ("non_exist", "NonExist@K(%) ↓"), ("in_history", "InHistory@K(%) ↓"))


def _value(results: dict, task: str, metric: str, percent: bool = False, with_control_baseline: bool = False) -> str:
    task_results = results.get(task)
    if task_results is None or task_results.get(metric) is None:
        return "-"
    scale, digits = (100, 2) if percent else (1, 4)
    text = f"{task_results[metric] * scale:.{digits}f}"
    baseline = task_results.get("without_control", {}).get(metric) if with_control_baseline else None
    return f"{text} ({baseline * scale:.{digits}f})" if baseline is not None else text


def _table(title: str, header: list[str], results: dict[str, dict], cells) -> str:
    lines = [f"### {title}", "", "| model | " + " | ".join(header) + " |", "|---" * (len(header) + 1) + "|"]
    for model, model_results in results.items():
        lines.append(f"| {model} | " + " | ".join(cells(model_results)) + " |")
    return "\n".join(lines)


def paper_tables(results: dict[str, dict]) -> str:
    """Every table whose tasks were evaluated, plus the formatting metrics of each task."""
    evaluated = {task for model_results in results.values() for task in model_results}
    tables = []
    if "i0" in evaluated:
        tables.append(_table("Table 2: sequential recommendation (I0)", ["HR@10", "NDCG@10", "HR@5", "NDCG@5"], results, lambda r: [_value(r, "i0", m) for m in ("hr", "ndcg", "hr@5", "ndcg@5")]))
    if evaluated & {"i1_pos", "i1_neg"}:
        tables.append(
            _table(
                "Table 3: category control (I1)",
                ["I1+C HR@10", "I1+C NDCG@10", "I1+C TCP@10(%) ↑", "I1-C HR@10", "I1-C NDCG@10", "I1-C TCP@10(%) ↓"],
                results,
                lambda r: [_value(r, task, m, m == "tcp", m == "tcp") for task in ("i1_pos", "i1_neg") for m in ("hr", "ndcg", "tcp")],
            )
        )
    if evaluated & {"i2_le", "i2_approx", "i2_ge"}:
        tables.append(
            _table(
                "Table 4: category proportion control (I2)",
                [f"{name} {m}" for name in ("CP≤20%", "CP≈30%", "CP≥30%") for m in ("HR@10", "NDCG@10", "CPA(%) ↑")],
                results,
                lambda r: [_value(r, task, m, m == "cpa", m == "cpa") for task in ("i2_le", "i2_approx", "i2_ge") for m in ("hr", "ndcg", "cpa")],
            )
        )
    if "item_count" in evaluated:
        tables.append(
            _table(
                "Table 5: formatting, K = 11-15 items (never seen in training)",
                [label for _, label in FORMATTING] + ["HR@K", "NDCG@K"],
                results,
                lambda r: [_value(r, "item_count", m, True) for m, _ in FORMATTING] + [_value(r, "item_count", m) for m in ("hr", "ndcg")],
            )
        )
    if evaluated & {"i1_pos_neg", "i2_le_neg"}:
        tables.append(
            _table(
                "Table 7: combined controls",
                ["I1+C1 & I1-C2 HR@10", "TC1¬2P@10(%) ↑", "I2 C1P≤20% & I1-C2 HR@10", "C1PA(%) ↑", "TC2P@10(%) ↓"],
                results,
                lambda r: [
                    _value(r, "i1_pos_neg", "hr"),
                    _value(r, "i1_pos_neg", "tcp_not_excluded", True, True),
                    _value(r, "i2_le_neg", "hr"),
                    _value(r, "i2_le_neg", "cpa", True, True),
                    _value(r, "i2_le_neg", "tcp_excluded", True, True),
                ],
            )
        )
    for task in sorted(evaluated):
        tables.append(
            _table(
                f"Formatting on {task}",
                [label for _, label in FORMATTING] + ["empty answers", "rows"],
                results,
                lambda r, task=task: [_value(r, task, m, True) for m, _ in FORMATTING] + [str(r.get(task, {}).get("empty_answers", "-")), str(r.get(task, {}).get("rows", "-"))],
            )
        )
    return "\n\n".join(tables) + "\n"


CANDIDATE_TITLES = {
    "retrieval": "Cao et al. 2024: retrieval from the whole catalog (beam search, 20 beams)",
    "ranking": "Cao et al. 2024: ranking, the target among 100 candidates",
    "rating": "Cao et al. 2024: rating prediction, like (rating > 3) or not",
    "select": "InstructRec: selection (T3), the target among 10 candidates",
    "recommend": "InstructRec: recommendation (T2), the target and 9 random negatives",
    "pointwise": "InstructRec: pointwise (T0), Yes or No",
}


def candidate_tables(results: dict[str, dict], metrics: dict[str, tuple[str, ...]]) -> str:
    """One table per candidate task (`metrics`: task -> its metric names), models and baselines as rows; a dash: not
    evaluated or not defined (a baseline has no yes/no probability, so no accuracy)."""
    tables = []
    for task, names in metrics.items():
        scored = {model: model_results for model, model_results in results.items() if task in model_results}
        header = [name.upper().replace("ACCURACY", "Accuracy") for name in names] + ["rows"]
        cells = lambda r, task=task, names=names: [_value(r, task, name) for name in names] + [str(r[task]["rows"])]
        tables.append(_table(CANDIDATE_TITLES[task], header, scored, cells))
    return "\n\n".join(tables)
