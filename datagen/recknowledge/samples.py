"""The samples of Cao et al. 2024 (Algorithm 1, Table 11): windows, negatives, masks and their texts.

Pure functions of a user's item ids and a seeded random source. Items are
written as in Table 11, "Item ID: I123, Title: ...;", with the short random ids
of `short_ids`.

    >>> windows([4, 8, 15, 16, 23], w=3)
    [[4, 8, 15], [8, 15, 16], [15, 16, 23]]
    >>> mask_positions(random.Random(0), 10, ratio=0.2)
    [6, 9]
    >>> corrupt_spans(random.Random(0), "a b c d e f g h i j", density=0.2, mean_span=3)
    ('a b c d e f g h <extra_id_0>', '<extra_id_0> i j <extra_id_1>')

Where the paper is silent the choices are written in docs/recknowledge.md.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

import numpy as np

MASK = "[masked item]"
YES, NO = "yes", "no"


def short_ids(n_items: int, seed: int) -> list[str]:
    """Item id -> its short id "I<n>": the items shuffled (seeded) and numbered, as Algorithm 1 line 1."""
    order = list(range(n_items))
    random.Random(f"{seed}/recknowledge/short-ids").shuffle(order)
    names = [""] * n_items
    for number, item in enumerate(order):
        names[item] = f"I{number}"
    return names


def windows(sequence: list[int], w: int) -> list[list[int]]:
    """Every sub-sequence of `w` consecutive items, or the whole sequence when it is shorter (Algorithm 1 line 6)."""
    if len(sequence) <= w:
        return [list(sequence)]
    return [list(sequence[start : start + w]) for start in range(len(sequence) - w + 1)]


def numpy_rng(*key: object) -> np.random.Generator:
    # A digest of the key, not hash(): stable across runs and Python versions.
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def popularity_negatives(rng: np.random.Generator, weights: np.ndarray, n: int, forbidden: list[int]) -> list[int] | None:
    """n distinct items drawn with probability proportional to `weights`, none in `forbidden`; None if too few remain.

    Weighted sampling without replacement (Efraimidis and Spirakis 2006): the n largest u^(1/weight).
    """
    keys = np.log(rng.random(len(weights))) / weights
    keys[forbidden] = -np.inf
    if np.isfinite(keys).sum() < n:
        return None
    top = np.argpartition(-keys, n - 1)[:n]
    return top[np.argsort(-keys[top], kind="stable")].tolist()


def mask_positions(rng: random.Random, length: int, ratio: float) -> list[int]:
    """round(ratio * length) positions (at least one, never all), sorted."""
    count = min(max(1, round(ratio * length)), length - 1)
    return sorted(rng.sample(range(length), count))


def _partition(rng: random.Random, total: int, parts: int) -> list[int]:
    """`total` split into `parts` positive lengths, uniformly over the cut points."""
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total])]


def corrupt_spans(rng: random.Random, text: str, density: float, mean_span: float) -> tuple[str, str]:
    """T5 span corruption (Raffel et al. 2020) over words: (input with sentinels, the spans after their sentinels).

    About `density` of the words are masked, in spans of `mean_span` words on average;
    the text starts with kept words, as T5's random_spans_noise_mask.
    """
    words = text.split()
    noise = min(max(1, round(density * len(words))), len(words) - 1)
    spans = max(1, min(round(noise / mean_span), len(words) - noise))
    noise_lengths, kept_lengths = _partition(rng, noise, spans), _partition(rng, len(words) - noise, spans)
    source, target, position = [], [], 0
    for index, (kept, masked) in enumerate(zip(kept_lengths, noise_lengths)):
        source += words[position : position + kept] + [f"<extra_id_{index}>"]
        position += kept
        target += [f"<extra_id_{index}>"] + words[position : position + masked]
        position += masked
    return " ".join(source), " ".join(target + [f"<extra_id_{spans}>"])


def uncorrupt(source: str, target: str) -> str:
    """The text `corrupt_spans` started from: each sentinel of `source` replaced by its span in `target`."""
    spans, current = {}, None
    for word in target.split():
        if word.startswith("<extra_id_") and word.endswith(">"):
            current = word
            spans[current] = []
        elif current is not None:
            spans[current].append(word)
    return " ".join(" ".join(spans[word]) if word in spans else word for word in source.split())


@dataclass(frozen=True)
class ItemText:
    """Table 11's item text: ids and titles of the catalog."""

    ids: list[str]
    titles: list[str]

    def item(self, item: int) -> str:
        return f"Item ID: {self.ids[item]}, Title: {self.titles[item]}"

    def items(self, items: list[int]) -> str:
        """ "Item ID: I1, Title: A; Item ID: I2, Title: B;" """
        return " ".join(f"{self.item(item)};" for item in items)

    def masked(self, items: list[int], masked: list[int]) -> str:
        hidden = set(masked)
        return " ".join(MASK + ";" if position in hidden else f"{self.item(item)};" for position, item in enumerate(items))
