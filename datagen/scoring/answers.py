"""Score an answer as Lu et al. 2024 do: parse it back into items, then the metrics of sections 3.1-3.4.

Used on the generated labels (every build reports them), in evaluation and in RL rewards.

    >>> catalog_titles = ["Portal", "Portal 2", "Dota 2"]
    >>> parse_answer("1. Portal 2\\n2. dota 2\\n- Half-Life 3", TitleIndex(catalog_titles))
    [1, 2, None]

Per answer, with K the requested item count and only the first K lines scored
(CorrectCount looks at all of them):

| metric | value |
|---|---|
| `correct_count` | 1 if the answer has exactly K lines |
| `repeat_item`, `non_exist`, `in_history`, `not_in_candidates` | share of the K slots holding a repeat, an unknown title, an item of the shown history, an item outside the candidates |
| `hr`, `ndcg` | HR@K = 1 if the target is there; NDCG@K = 1/log2(position + 2) (position from 0) |
| `tcp` | TCP@K (Eq. 7) = items of the target category / K; `tcp_excluded` the same for the excluded category |
| `tcp_not_excluded` | Table 7's TC1¬2P@K: items of the target category and not of the excluded one / K |
| `cpa` | CPA (Eq. 8): n = distinct items of the category; at_most n <= K*m, at_least n >= K*m, approximately abs(n - K*m) <= 1 |

A metric that does not apply to the task (no target, no category, no proportion) is None.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from rapidfuzz import fuzz, process

from datagen.scoring.catalog import Catalog

LINE_MARKER = re.compile(r"^\s*(?:\d+\s*[.):]|[-*•])\s*")
QUOTES = "'\"“”‘’"
FUZZY_THRESHOLD = 90.0
METRICS = ("correct_count", "repeat_item", "non_exist", "in_history", "not_in_candidates", "hr", "ndcg", "tcp", "tcp_excluded", "tcp_not_excluded", "cpa")


class TitleIndex:
    """Exact title match (ignoring case) first, then the closest title by rapidfuzz ratio >= threshold."""

    def __init__(self, titles: Sequence[str], fuzzy_threshold: float | None = FUZZY_THRESHOLD):
        self.titles = list(titles)
        self.exact: dict[str, int] = {}
        for item, title in enumerate(self.titles):
            self.exact.setdefault(title.casefold(), item)
        self.fuzzy_threshold = fuzzy_threshold

    def match(self, text: str) -> int | None:
        found = self.exact.get(text.casefold())
        if found is not None or self.fuzzy_threshold is None:
            return found
        best = process.extractOne(text, self.titles, scorer=fuzz.ratio, score_cutoff=self.fuzzy_threshold)
        return None if best is None else best[2]


def answer_line_spans(text: str) -> list[tuple[str, int]]:
    """Each non-empty line of an answer without its "1." / "2)" / "-" / "*" marker and quotes, and where it ends in `text`."""
    spans, start = [], 0
    for raw in text.splitlines(keepends=True):
        line = _bare(raw)
        if line:
            spans.append((line, start + raw.rindex(line[-1]) + 1))
        start += len(raw)
    return spans


def answer_lines(text: str) -> list[str]:
    """The non-empty lines of an answer, each without its marker and quotes."""
    return [line for line in map(_bare, text.splitlines()) if line]


def _bare(line: str) -> str:
    return LINE_MARKER.sub("", line, count=1).strip().strip(QUOTES).strip()


def parse_answer(text: str, index: TitleIndex) -> list[int | None]:
    """Item ids in answer order; None for a line that names no known item (NonExist)."""
    return [index.match(line) for line in answer_lines(text)]


@dataclass(frozen=True)
class Facts:
    """What a row knows about its task: enough to score any answer."""

    k: int
    history: Sequence[int] = ()
    target: int | None = None
    constraint: str = "none"
    category: str | None = None
    excluded_category: str | None = None
    proportion: int | None = None
    candidates: Sequence[int] | None = None

    @classmethod
    def from_row(cls, row: dict) -> Facts:
        return cls(
            k=row["k"],
            history=row["history_item_ids"] or (),
            target=row["target_item_id"],
            constraint=row["constraint"],
            category=row["target_category"],
            excluded_category=row["excluded_category"],
            proportion=row["proportion"],
            candidates=row["candidate_item_ids"],
        )


def proportion_met(constraint: str, count_in: int, k: int, percent: int) -> bool:
    """Eq. 8 with m = percent / 100, in integers."""
    if constraint.startswith("at_most"):
        return count_in * 100 <= k * percent
    if constraint.startswith("at_least"):
        return count_in * 100 >= k * percent
    return abs(count_in * 100 - k * percent) <= 100


def score(items: Sequence[int | None], facts: Facts, catalog: Catalog) -> dict[str, float | None]:
    k = facts.k
    top = list(items[:k])
    known = [item for item in top if item is not None]
    distinct = list(dict.fromkeys(known))
    history = set(facts.history)
    categories = [catalog.categories_of(item) for item in known]

    def share_in(category: str | None) -> float | None:
        if category is None:
            return None
        return sum(category in of_item for of_item in categories) / k

    def not_in_candidates(candidates: set[int]) -> float:
        return sum(item not in candidates for item in known) / k

    position = top.index(facts.target) if facts.target is not None and facts.target in top else None
    result: dict[str, float | None] = {
        "correct_count": float(len(items) == k),
        "repeat_item": (len(known) - len(distinct)) / k,
        "non_exist": (len(top) - len(known)) / k,
        "in_history": sum(item in history for item in known) / k,
        "not_in_candidates": None if facts.candidates is None else not_in_candidates(set(facts.candidates)),
        "hr": None if facts.target is None else float(position is not None),
        "ndcg": None if facts.target is None else (0.0 if position is None else 1 / math.log2(position + 2)),
        "tcp": share_in(facts.category),
        "tcp_excluded": share_in(facts.excluded_category),
        "tcp_not_excluded": None
        if facts.category is None or facts.excluded_category is None
        else sum(facts.category in of_item and facts.excluded_category not in of_item for of_item in categories) / k,
        "cpa": None,
    }
    if facts.proportion is not None and facts.category is not None:
        count_in = sum(facts.category in catalog.categories_of(item) for item in distinct)
        result["cpa"] = float(proportion_met(facts.constraint, count_in, k, facts.proportion))
    return result


def mean_scores(scores: Sequence[dict[str, float | None]], metrics: Sequence[str] = METRICS) -> dict[str, float | None]:
    """Each metric's mean over the answers it applies to (None when it applies to none)."""
    means = {}
    for metric in metrics:
        values = [s[metric] for s in scores if s[metric] is not None]
        means[metric] = sum(values) / len(values) if values else None
    return means
