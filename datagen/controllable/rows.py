"""Dataset rows: a `Sample` rendered through its template, in chat form and as prompt/completion.

Every row carries the structured facts to score any answer without deriving
them again (see docs/controllable.md for the columns).

    >>> row = sample_row(sample, catalog, split="test")  # doctest: +SKIP
    >>> row["completion"][0]["content"].splitlines()[0]  # doctest: +SKIP
    '1. Portal 2'
"""

from __future__ import annotations

import polars as pl

from datagen.controllable.tasks import TASKS, Sample
from datagen.scoring.catalog import Catalog

MESSAGE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
IDS = pl.List(pl.Int64)
SCHEMA = {
    "id": pl.String,
    "task": pl.String,
    "family": pl.String,
    "template_id": pl.String,
    "user_id": pl.Int64,
    "k": pl.Int64,
    "history_item_ids": IDS,
    "target_item_id": pl.Int64,
    "target_category": pl.String,
    "excluded_category": pl.String,
    "constraint": pl.String,
    "proportion": pl.Int64,
    "candidate_item_ids": IDS,
    "teacher_item_ids": IDS,
    "label_item_ids": IDS,
    "messages": MESSAGE,
    "prompt": MESSAGE,
    "completion": MESSAGE,
}


def quoted(titles: list[str]) -> str:
    return ", ".join(f"'{title}'" for title in titles)


def item_list(titles: list[str]) -> str:
    """The answer format: one item per line, "1. Title"."""
    return "\n".join(f"{number}. {title}" for number, title in enumerate(titles, start=1))


def template_values(sample: Sample, catalog: Catalog) -> dict:
    titles = catalog.titles
    history_titles = [titles[i] for i in sample.history]
    values = {
        # The reference code's history format: quoted titles in time order, joined by arrows.
        "history": " → ".join(f"'{title}'" for title in history_titles),
        "history_titles": history_titles,
        "item_count": sample.k,
        "target_category": sample.category,
        "excluded_category": sample.excluded_category,
        "synthetic_intention": sample.intention,
        "negative_intention": sample.negative_intention,
        "category_proportion": None if sample.proportion is None else f"{sample.proportion}%",
    }
    if sample.candidates is not None:
        candidate_titles = [titles[i] for i in sample.candidates]
        values.update(candidate_titles=quoted(candidate_titles), candidate_title_list=candidate_titles)
    return {name: value for name, value in values.items() if value is not None}


def sample_row(sample: Sample, catalog: Catalog, split: str, copy: int = 0) -> dict:
    values = template_values(sample, catalog)
    system, user = sample.template.render({name: values[name] for name in sample.template.variables if name in values})
    answer = item_list([catalog.titles[i] for i in sample.label])
    prompt = [{"role": "system", "content": system}, {"role": "user", "content": user}]
    completion = [{"role": "assistant", "content": answer}]
    owner = sample.user_id if sample.user_id is not None else f"item{sample.target}"
    return {
        "id": f"{split}/{sample.task}/{owner}/{copy}",
        "task": sample.task,
        "family": TASKS[sample.task].group,
        "template_id": sample.template.id,
        "user_id": sample.user_id,
        "k": sample.k,
        "history_item_ids": sample.history,
        "target_item_id": sample.target,
        "target_category": sample.category,
        "excluded_category": sample.excluded_category,
        "constraint": sample.constraint,
        "proportion": sample.proportion,
        "candidate_item_ids": sample.candidates,
        "teacher_item_ids": sample.teacher,
        "label_item_ids": sample.label,
        "messages": prompt + completion,
        "prompt": prompt,
        "completion": completion,
    }
