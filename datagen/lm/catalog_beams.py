"""Retrieval from a whole catalog by beam search (Cao et al. 2024, section 4.1): the model writes one item's name,
each step allowed only the tokens that continue some name of the catalog, and its `width` finished beams, best
first, are its ranking of the catalog.

    >>> beams = CatalogBeams(model, tokenizer, names=["I0", "I1", "I2"], width=20)  # doctest: +SKIP
    >>> beams.rank([{"role": "user", "content": "..."}])  # item ids, best first, at most `width`
    [2, 0, 1]

A name is tokenized as the assistant's turn writes it (`datagen.lm.likelihood`), and ends with the end-of-turn
token, so a name that is a prefix of another ("I12", "I123") is a beam of its own. Beams are ranked by their
summed log-probability (no length penalty), the likelihood `datagen eval` ranks candidates by elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence

from datagen.lm.likelihood import CandidateScorer, Prompt


class NameTree:
    """A prefix tree over token sequences: each node's children by token, and the item whose name ends there."""

    def __init__(self, sequences: Sequence[list[int]]):
        self.children: list[dict[int, int]] = [{}]
        self.item_at: dict[int, int] = {}
        for item, tokens in enumerate(sequences):
            node = 0
            for token in tokens:
                node = self.children[node].setdefault(token, len(self.children))
                if node == len(self.children):
                    self.children.append({})
            self.item_at.setdefault(node, item)
        self.depth = max(map(len, sequences))

    def walk(self, tokens: Sequence[int]) -> int | None:
        """The node `tokens` lead to from the root, or None when they leave the tree."""
        node = 0
        for token in tokens:
            node = self.children[node].get(token)
            if node is None:
                return None
        return node


class CatalogBeams:
    def __init__(self, model, tokenizer, names: Sequence[str], width: int = 20):
        self.scorer = CandidateScorer(model, tokenizer)
        self.width = min(width, len(names))
        self.end = tokenizer.eos_token_id
        # A turn depends on the chat template, not on the prompt before it: one tree serves every prompt.
        _, turns = self.scorer.continuations([{"role": "user", "content": "?"}], names)
        self.tree = NameTree([turn[: turn.index(self.end) + 1] if self.end in turn else [*turn, self.end] for turn in turns])

    def rank(self, prompt: Prompt) -> list[int]:
        """The items of the finished beams, best first."""
        import torch

        head, _ = self.scorer.continuations(prompt, [])
        tree = self.tree

        def allowed(batch_id: int, generated: torch.Tensor) -> list[int]:
            node = tree.walk(generated[len(head) :].tolist())
            return list(tree.children[node]) if node is not None and tree.children[node] else [self.end]

        inputs = torch.tensor([head], device=self.scorer.device)
        with torch.inference_mode():
            output = self.scorer.model.generate(
                inputs,
                attention_mask=torch.ones_like(inputs),
                max_new_tokens=tree.depth,
                num_beams=self.width,
                num_return_sequences=self.width,
                length_penalty=0.0,
                early_stopping=True,
                do_sample=False,
                prefix_allowed_tokens_fn=allowed,
                pad_token_id=self.scorer.pad_id,
                eos_token_id=self.end,
            )
        ranked: list[int] = []
        for sequence in output[:, len(head) :].tolist():
            node = tree.walk(sequence[: sequence.index(self.end) + 1] if self.end in sequence else sequence)
            item = tree.item_at.get(node) if node is not None else None
            if item is not None and item not in ranked:
                ranked.append(item)
        return ranked
