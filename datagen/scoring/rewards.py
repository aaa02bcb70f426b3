"""The rule-based RL rewards of Lu et al. 2024 (section 2.3, Eq. 1-5, Algorithm 1), for one parsed answer.

    >>> catalog = Catalog(pl.DataFrame({"item_id": [0, 1, 2], "title": ["Portal", "Dota 2", "Quake"], "categories": [["Puzzle"], ["MOBA"], ["Shooter"]]}))
    >>> ranks = teacher_ranks([2, 0, 1])  # the teacher's full ranking, best first -> each item's rank
    >>> answer_rewards([2, 2, None], Facts(k=2, target=0), catalog, ranks).scores  # Quake (ranked first), a repeat, a line past k naming nothing
    [0.6309297535714575, -1.0, -1.0]

Each answer line is an item (`parse_answer` of `datagen.scoring.answers`, the parser the
evaluation uses). Item i (from 1) is illegal when it names no known item, repeats
an item of lines 1..i-1, is in the user's shown history, or i > k.

- Scores (Eq. 1): -1 illegal; +1 the target; else 1/log2(Rank_i + 3), Rank_i
  the item's 0-based rank in the teacher's full ranking for this user.
- Scores_ctl (Algorithm 1): -1 illegal; else by the task's control (below).
- R_item = 0.5 Scores + 0.5 Scores_ctl (Eq. 2), one per line.
- Scores* (Eq. 3): -1 illegal; else Scores_i / log2(i + 2), i from 1 as in the
  paper's item_1..item_N.
- Score_list_ctl (Eq. 4), R_list = 0.5 sum(Scores*) + 0.5 Score_list_ctl (Eq. 5).
- `sequence_reward` = sum(R_item) + 10 R_list: the paper amplifies R_list by 10
  so the item rewards do not drown it; the sum is what a sequence-level
  learner (GRPO) gets.

Count_in and Count_out count the legal items in and out of the instruction's
category C (for I1-C, C is the excluded category: `Facts.category` of an
`exclude` row), so far (Algorithm 1) or in all (Eq. 4); m = proportion / 100.

Where the paper and the reference code (RecLM-gen rl/reward.py) differ, this
follows the paper:
- Algorithm 1, CP >= m, line 16 reads "if Count_in > k then s = 0.5". Count_in
  counts legal items, which sit at positions <= k, so the branch never fires
  and an item of C always scores 1.0. The reference tests Count_in > k*m.
- The reference's CP <= m rule is off by one against its list rule, normalises
  sum(Scores*) by the ideal DCG, mixes rank into Score_list_ctl, gives I0 items
  no control term and uses other Eq. 4 formulas; none of that is here.
- The reference discounts Eq. 3 with i from 0 (log2(2) for the first item);
  the paper numbers items from 1.
The paper defines rules for I0, I1 and I2 only; the combined controls of
Table 7 and I3 have none, and asking for them is an error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from datagen.scoring.answers import Facts
from datagen.scoring.catalog import Catalog

LIST_AMPLIFICATION = 10.0
RULES = ("none", "include", "exclude", "at_most", "at_least", "approximately")


@dataclass(frozen=True)
class AnswerRewards:
    """Every part of the reward for one answer; the lists have one entry per answer line."""

    scores: list[float]
    scores_ctl: list[float]
    item: list[float]
    scores_star: list[float]
    list_ctl: float
    list: float

    @property
    def sequence(self) -> float:
        return sum(self.item) + LIST_AMPLIFICATION * self.list

    @property
    def illegal_share(self) -> float:
        """The share of answer lines that break a rule (Eq. 1's -1; legal lines score above 0)."""
        return sum(score == -1.0 for score in self.scores) / len(self.scores) if self.scores else 0.0


def teacher_ranks(order: Sequence[int]) -> np.ndarray:
    """Each item's 0-based rank, from the teacher's full ranking (item ids, best first)."""
    order = np.asarray(order)
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def illegal_lines(items: Sequence[int | None], facts: Facts) -> list[bool]:
    history, seen, flags = set(facts.history), set(), []
    for position, item in enumerate(items, start=1):
        flags.append(item is None or item in seen or item in history or position > facts.k)
        if item is not None:
            seen.add(item)
    return flags


def preference_scores(items: Sequence[int | None], illegal: Sequence[bool], target: int | None, ranks: Sequence[int]) -> list[float]:
    """Eq. 1."""
    return [-1.0 if bad else 1.0 if item == target else 1 / math.log2(int(ranks[item]) + 3) for item, bad in zip(items, illegal)]


def control_scores(items: Sequence[int | None], illegal: Sequence[bool], scores: Sequence[float], facts: Facts, catalog: Catalog) -> list[float]:
    """Algorithm 1, line by line; k*m compared in integers (count * 100 against k * percent)."""
    rule, k = facts.constraint, facts.k
    km100 = k * (facts.proportion or 0)
    count_in = count_out = 0
    result = []
    for item, bad, score in zip(items, illegal, scores):
        if bad:
            result.append(-1.0)
            continue
        inside = rule != "none" and facts.category in catalog.categories_of(item)
        count_in += inside
        count_out += not inside
        if rule == "none":
            s = score
        elif rule == "include":
            s = float(inside)
        elif rule == "exclude":
            s = float(not inside)
        elif rule == "at_most":
            s = 0.5 if count_out * 100 > k * 100 - km100 else 1.0 if not inside else 0.5 if count_in * 100 < km100 else 0.0
        elif rule == "at_least":
            s = 0.5 if count_in > k else 1.0 if inside else 0.5 if count_out * 100 < k * 100 - km100 else 0.0
        else:  # approximately
            if inside:
                s = 1.0 if count_in * 100 <= km100 else 0.0
            else:
                s = 1.0 if count_in * 100 >= km100 else 0.5 if count_out * 100 <= k * 100 - km100 else 0.0
        result.append(s)
    return result


def list_control_score(scores_star: Sequence[float], count_in: int, count_out: int, facts: Facts) -> float:
    """Eq. 4."""
    rule, k = facts.constraint, facts.k
    km = k * (facts.proportion or 0) / 100
    if rule == "none":
        return sum(scores_star)
    gap = {
        "include": k - count_in,
        "exclude": k - count_out,
        "at_most": max(count_in - km, 0),
        "at_least": max(km - count_in, 0),
        "approximately": abs(count_in - km),
    }[rule]
    return 1 / math.log2(gap + 2)


def answer_rewards(items: Sequence[int | None], facts: Facts, catalog: Catalog, ranks: Sequence[int]) -> AnswerRewards:
    """Eq. 1-5 for one parsed answer; `ranks[item]` is the item's 0-based rank in the teacher's full ranking."""
    if facts.constraint not in RULES:
        raise ValueError(f"Lu et al. 2024 define no reward for the {facts.constraint!r} control (only I0, I1 and I2: {', '.join(RULES)})")
    if facts.constraint != "none" and facts.category is None:
        raise ValueError(f"a {facts.constraint!r} row needs its category")
    if facts.constraint in RULES[3:] and facts.proportion is None:
        raise ValueError(f"a {facts.constraint!r} row needs its proportion")
    illegal = illegal_lines(items, facts)
    scores = preference_scores(items, illegal, facts.target, ranks)
    scores_ctl = control_scores(items, illegal, scores, facts, catalog)
    scores_star = [-1.0 if bad else score / math.log2(position + 2) for position, (score, bad) in enumerate(zip(scores, illegal), start=1)]
    legal = [item for item, bad in zip(items, illegal) if not bad]
    count_in = sum(facts.category in catalog.categories_of(item) for item in legal) if facts.category is not None else 0
    list_ctl = list_control_score(scores_star, count_in, len(legal) - count_in, facts)
    return AnswerRewards(
        scores=scores,
        scores_ctl=scores_ctl,
        item=[0.5 * s + 0.5 * c for s, c in zip(scores, scores_ctl)],
        scores_star=scores_star,
        list_ctl=list_ctl,
        list=0.5 * sum(scores_star) + 0.5 * list_ctl,
    )
