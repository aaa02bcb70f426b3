"""Place an answer's rewards on the tokens the model sampled (Lu et al. 2024, Eq. 6), for any tokenizer.

    >>> ends = token_char_ends(tokenizer, sampled_ids)  # doctest: +SKIP
    >>> per_token = place_rewards(ends, answer_text, parts)  # doctest: +SKIP

R_item of line i goes on the token that completes the line's title; 10 x R_list
on the last sampled token. Token boundaries come from decoding the sampled ids
themselves, prefix by prefix, never from re-tokenizing the text (which can split
it differently, and would train on tokens the model never sampled) nor from a
fixed newline id as the reference code does.
"""

from __future__ import annotations

from collections.abc import Sequence

from datagen.scoring.answers import answer_line_spans
from datagen.scoring.rewards import LIST_AMPLIFICATION, AnswerRewards


def token_char_ends(tokenizer, token_ids: Sequence[int]) -> list[int]:
    """For each sampled token, the length of the decoded text up to and including it (special tokens decode to nothing)."""
    ids = list(token_ids)
    return [len(tokenizer.decode(ids[: i + 1], skip_special_tokens=True)) for i in range(len(ids))]


def place_rewards(char_ends: Sequence[int], text: str, parts: AnswerRewards) -> list[float]:
    """One reward per sampled token: R_item at each title's last token, 10 x R_list added on the final one.

    `text` is the decoded answer (`tokenizer.decode(ids, skip_special_tokens=True)`) and
    `parts` its rewards, one item reward per line of `answer_line_spans(text)`.
    """
    rewards = [0.0] * len(char_ends)
    if not rewards:
        return rewards
    spans = answer_line_spans(text)
    if len(spans) != len(parts.item):
        raise ValueError(f"{len(parts.item)} item rewards for {len(spans)} answer lines")
    token = 0
    for (_, end), reward in zip(spans, parts.item):
        while token < len(char_ends) - 1 and char_ends[token] < end:
            token += 1
        rewards[token] += reward
    rewards[-1] += LIST_AMPLIFICATION * parts.list
    return rewards
