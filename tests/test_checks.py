"""Parsing answers back into items, and the metrics of Lu et al. on hand-made answers."""

from __future__ import annotations

import math

import polars as pl
import pytest

from datagen.scoring.answers import Facts, TitleIndex, answer_lines, parse_answer, score
from datagen.scoring.catalog import Catalog

ITEMS = pl.DataFrame(
    {
        "item_id": [0, 1, 2, 3, 4, 5],
        "title": ["Portal", "Portal 2", "Dota 2", "Half-Life 2", "Stardew Valley", "Celeste"],
        "categories": [["Action", "Puzzle"], ["Action", "Puzzle"], ["Strategy"], ["Action"], ["Indie", "RPG"], ["Indie"]],
    }
)
CATALOG = Catalog(ITEMS)
INDEX = TitleIndex(CATALOG.titles)


def test_numbered_and_bulleted_lines_parse_exactly_then_fuzzily():
    text = "Here you go:\n1. Portal 2\n2) dota 2\n- 'Celeste'\n* Stardew Valey\n3. Half-Life 3: Episode One\n\n"
    assert answer_lines(text)[1:] == ["Portal 2", "dota 2", "Celeste", "Stardew Valey", "Half-Life 3: Episode One"]
    assert parse_answer(text, INDEX) == [None, 1, 2, 5, 4, None]
    assert parse_answer("1. Stardew Valey", TitleIndex(CATALOG.titles, fuzzy_threshold=None)) == [None]


def test_a_title_that_starts_with_a_number_keeps_it():
    assert answer_lines("1. 2. Portal") == ["2. Portal"]


def test_accuracy_and_format_metrics():
    facts = Facts(k=4, history=[3], target=2)
    result = score([1, 2, 2, None, 5], facts, CATALOG)
    assert result["correct_count"] == 0.0  # 5 lines for k = 4
    assert result["hr"] == 1.0 and result["ndcg"] == pytest.approx(1 / math.log2(3))
    assert result["repeat_item"] == 0.25 and result["non_exist"] == 0.25 and result["in_history"] == 0.0
    assert score([3, 0, 1, 4], facts, CATALOG)["in_history"] == 0.25
    assert score([0, 1, 4, 5], facts, CATALOG)["hr"] == 0.0
    assert score([0, 1, 4, 5], Facts(k=4), CATALOG)["hr"] is None


def test_tcp_is_eq7_and_cpa_is_eq8():
    include = Facts(k=4, constraint="include", category="Action")
    assert score([0, 1, 3, 4], include, CATALOG)["tcp"] == 0.75
    assert score([0, 1], include, CATALOG)["tcp"] == 0.5  # K counts the missing slots
    at_most = Facts(k=5, constraint="at_most", category="Indie", proportion=20)
    assert score([4, 0, 1, 2, 3], at_most, CATALOG)["cpa"] == 1.0  # 1 <= 5 * 0.2
    assert score([4, 5, 1, 2, 3], at_most, CATALOG)["cpa"] == 0.0
    at_least = Facts(k=5, constraint="at_least", category="Indie", proportion=30)
    assert score([4, 5, 1, 2, 3], at_least, CATALOG)["cpa"] == 1.0  # 2 >= 1.5
    assert score([4, 4, 1, 2, 3], at_least, CATALOG)["cpa"] == 0.0  # a repeat counts once
    approx = Facts(k=5, constraint="approximately", category="Action", proportion=30)
    assert [score(items, approx, CATALOG)["cpa"] for items in ([2, 4, 5, None, None], [0, 2, 4, 5, None], [0, 1, 2, 4, 5], [0, 1, 3, 2, 4])] == [0.0, 1.0, 1.0, 0.0]
    combined = Facts(k=3, constraint="include_and_exclude", category="Action", excluded_category="Puzzle")
    assert score([3, 0, 4], combined, CATALOG)["tcp_excluded"] == pytest.approx(1 / 3)


def test_candidates_are_sets_of_items_not_substrings():
    facts = Facts(k=2, candidates=[1, 2])  # "Portal" is a substring of the candidate "Portal 2"
    assert score([0, 2], facts, CATALOG)["not_in_candidates"] == 0.5
