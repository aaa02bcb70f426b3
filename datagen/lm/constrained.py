"""Catalog-constrained decoding: every answer line a real title, none repeated, exactly K lines.

    >>> tree = TitleTree(catalog.titles, tokenizer)  # doctest: +SKIP
    >>> constraint = ListConstraint(tree, [ListRequest(k=5, excluded=(3, 17))], prompt_width=inputs["input_ids"].shape[1])  # doctest: +SKIP
    >>> model.generate(**inputs, logits_processor=[constraint], do_sample=False)  # doctest: +SKIP
    >>> beams = ListConstraint(tree, requests, prompt_width=inputs["input_ids"].shape[1], copies=4)  # doctest: +SKIP
    >>> model.generate(**inputs, logits_processor=[beams], num_beams=4, do_sample=False)  # doctest: +SKIP

The answer has the dataset's completion format, "1. Title\\n2. Title\\n...K. Title",
then the end-of-turn token. The numbering, the line breaks and the end are
forced; inside a line the model chooses among the tokens that continue some
title not used yet. A title that was answered, or is in the request's
`excluded` items (the shown history, when asked), can't be chosen again, and a
branch of the tree whose titles are all used is closed, so no line dead-ends.
Controls stay the model's job: the tree never filters by category.

Greedy decoding chooses a title token by token, so a title whose first token
is likely ("The ...") wins over one the model finds likelier as a whole. With
beam search (`copies` = the beams) the answer is the tree's list with the best
total log-probability that the beams found, divided by its length in tokens
(transformers' default length penalty of 1).

Titles are the catalog's, deduplicated ignoring case (the first item keeps a
title, as `checks.TitleIndex` matches); a title with a line break can't be a
line and is left out. Each title is tokenized as " " + title after the line's
"N.". SmolLM2's tokenizer splits the trained completions at the same places
(checked on all 3,685 Steam titles); where another tokenizer merges across
them, a title's forced tokens differ from its trained ones, which changes how
likely the model finds it, never whether the line is a real title.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ListRequest:
    """What one answer must be: `k` lines, none naming an item of `excluded`."""

    k: int
    excluded: tuple[int, ...] = ()

    @classmethod
    def for_row(cls, k: int, history, exclude_history: bool) -> ListRequest:
        """A row's request: its K lines, and with `exclude_history` none of the history its prompt shows."""
        return cls(k, tuple(history) if exclude_history else ())


class TitleTree:
    """A prefix tree over the catalog's titles in a tokenizer's tokens."""

    def __init__(self, titles: Sequence[str | None], tokenizer):
        self.tokenizer = tokenizer
        self.children: list[dict[int, int]] = [{}]
        self.ends: list[int | None] = [None]  # the title (its first item) that ends at each node
        self.paths: dict[int, list[int]] = {}  # a title's nodes, root excluded
        self.title_of_item: dict[int, int] = {}
        first_item: dict[str, int] = {}
        for item, title in enumerate(titles):
            if not title or "\n" in title or "\r" in title:
                continue
            key = title.casefold()
            if key in first_item:
                self.title_of_item[item] = first_item[key]
                continue
            first_item[key] = item
            self.title_of_item[item] = item
            self.paths[item] = self._insert(item, tokenizer.encode(" " + title, add_special_tokens=False))
        self.sizes = [0] * len(self.children)  # titles below each node, itself included
        for path in self.paths.values():
            for node in path:
                self.sizes[node] += 1
        self.sizes[0] = len(self.paths)
        self.longest_title = max((len(path) for path in self.paths.values()), default=0)
        self.eos = tokenizer.eos_token_id
        self._line_starts: dict[int, list[int]] = {}

    def _insert(self, item: int, tokens: list[int]) -> list[int]:
        node, path = 0, []
        for token in tokens:
            child = self.children[node].get(token)
            if child is None:
                child = len(self.children)
                self.children[node][token] = child
                self.children.append({})
                self.ends.append(None)
            node = child
            path.append(node)
        if self.ends[node] is None:  # two titles with the same tokens: the first keeps them
            self.ends[node] = item
        return path

    def line_start(self, number: int) -> list[int]:
        """The forced tokens before line `number`'s title: "1." or "\\nN."."""
        if number not in self._line_starts:
            self._line_starts[number] = self.tokenizer.encode(f"{number}." if number == 1 else f"\n{number}.", add_special_tokens=False)
        return self._line_starts[number]

    def max_new_tokens(self, k: int) -> int:
        """Enough tokens for K lines of the longest title, and the end."""
        return sum(len(self.line_start(number)) for number in range(1, k + 1)) + k * self.longest_title + 1


class _Answer:
    """Where one answer stands: its line, the forced tokens left, its node in the tree, the titles it may not use."""

    def __init__(self, tree: TitleTree, request: ListRequest):
        self.tree, self.k = tree, request.k
        self.used: set[int] = set()
        self.spent: dict[int, int] = {}  # node -> used titles below it
        for item in request.excluded:
            title = tree.title_of_item.get(item)
            if title is not None:
                self._use(title)
        self.line = 1
        self.forced = tree.line_start(1)
        self.node: int | None = None
        self.finished = request.k <= 0

    def fork(self) -> _Answer:
        """A copy to advance on its own, as a beam continues its parent's answer."""
        forked = copy.copy(self)
        forked.used, forked.spent = set(self.used), dict(self.spent)
        return forked

    def _use(self, title: int) -> None:
        if title in self.used or title not in self.tree.paths:
            return
        self.used.add(title)
        for node in self.tree.paths[title]:
            self.spent[node] = self.spent.get(node, 0) + 1

    def _open(self, node: int) -> bool:
        return self.tree.sizes[node] - self.spent.get(node, 0) > 0

    def _line_end(self) -> int:
        """After this line's title: the next line's break, or the end after the last line or the last unused title."""
        last_title = len(self.tree.paths) - len(self.used) <= 1
        return self.tree.eos if self.line == self.k or last_title else self.tree.line_start(self.line + 1)[0]

    def allowed(self) -> list[int]:
        if self.finished:
            return [self.tree.eos]
        if self.forced:
            return [self.forced[0]]
        node = 0 if self.node is None else self.node
        tokens = [token for token, child in self.tree.children[node].items() if self._open(child)]
        title = self.tree.ends[node]
        if node and title is not None and title not in self.used:
            tokens.append(self._line_end())
        return tokens or [self.tree.eos]  # the catalog has fewer unused titles than lines

    def advance(self, token: int) -> None:
        if self.finished:
            return
        if self.forced:
            self.forced = self.forced[1:]
            return
        node = 0 if self.node is None else self.node
        child = self.tree.children[node].get(token)
        if child is not None and self._open(child):
            self.node = child
            return
        self._use(self.tree.ends[node])
        self.node = None
        if self.line == self.k or token == self.tree.eos:
            self.finished = True
        else:
            self.line += 1
            self.forced = self.tree.line_start(self.line)[1:]


class ListConstraint:
    """A transformers logits processor: each row of the batch may only continue its answer within the tree.

    Rows come `copies` to a request, in order (generate()'s beams, or its
    sampled sequences of one prompt). A row's place in its answer is worked out
    from the tokens it has generated so far, its parent's place advanced by the
    last token, never kept per row index: beam search reorders and copies
    rows between steps.
    """

    def __init__(self, tree: TitleTree, requests: Sequence[ListRequest], prompt_width: int, copies: int = 1):
        self.tree, self.requests, self.copies = tree, list(requests), copies
        self.prompt_width = prompt_width
        self.answers: dict[tuple[int, tuple[int, ...]], _Answer] = {}  # (request, tokens so far) -> where that answer stands

    def _answer(self, request: int, tokens: tuple[int, ...]) -> _Answer:
        known = self.answers.get((request, tokens))
        if known is not None:
            return known
        if not tokens:
            return _Answer(self.tree, self.requests[request])
        answer = self._answer(request, tokens[:-1]).fork()
        answer.advance(tokens[-1])
        return answer

    def __call__(self, input_ids, scores):
        import torch

        answers = {}
        mask = torch.full_like(scores, float("-inf"))
        for row, tokens in enumerate(input_ids[:, self.prompt_width :].tolist()):
            key = (row // self.copies, tuple(tokens))
            answers[key] = answers.get(key) or self._answer(*key)
            mask[row, answers[key].allowed()] = 0.0
        self.answers = answers  # the next step's rows continue these
        return scores + mask
