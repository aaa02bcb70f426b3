"""Clean item titles and category names, column-wise.

    >>> import polars as pl
    >>> clean_text(pl.Series(["Disney &amp; Me", '<span class="a-size-medium"', " A\\tB\\n "])).to_list()
    ['Disney & Me', '', 'A B']

Titles are capped at `max_tokens` word pieces. No tokenizer is loaded at build
time, so a "token" here is a run of up to 16 word characters or one punctuation
mark (`\\w{1,16}|[^\\w\\s]`); LLM tokenizers split at least that finely, so a capped
title is close to the paper's "at most 64 tokens" for any model.
"""

from __future__ import annotations

import html
import re

import polars as pl

_TAG = r"<[^<>]*>"
# An opening fragment cut off before its `>`, as in Amazon's broken titles.
_UNTERMINATED_TAG = r"<[A-Za-z/!][^<>]*$"
_CONTROL = r"[\x00-\x1f\x7f-\x9f]"
_ENTITY = r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);?"
# A word of more than 16 characters counts as several pieces, as a subword tokenizer splits it,
# so a 10,000-character "word" is capped like any long title.
WORD_PIECE = r"\w{1,16}|[^\w\s]"
_WORD_PIECE = re.compile(WORD_PIECE)


def clean_text(texts: pl.Series) -> pl.Series:
    """Unescape HTML entities, drop tags and control characters, collapse whitespace."""
    texts = texts.fill_null("")
    needs_unescape = texts.str.contains(_ENTITY)
    if needs_unescape.any():
        positions = needs_unescape.arg_true()
        texts = texts.scatter(positions, [html.unescape(text) for text in texts.gather(positions)])
    return texts.str.replace_all(_TAG, " ").str.replace_all(_UNTERMINATED_TAG, " ").str.replace_all(_CONTROL, " ").str.replace_all(r"\s+", " ").str.strip_chars()


def count_word_pieces(texts: pl.Series) -> pl.Series:
    return texts.str.count_matches(WORD_PIECE)


def cap_word_pieces(texts: pl.Series, max_tokens: int) -> pl.Series:
    """Cut each text after its first `max_tokens` word pieces (the few too long, in Python: a regex
    repeating a piece `max_tokens` times outgrows the regex engine's size limit)."""
    too_long = count_word_pieces(texts) > max_tokens
    if not too_long.any():
        return texts
    positions = too_long.arg_true()
    cut = [_first_pieces(text, max_tokens) for text in texts.gather(positions)]
    return texts.scatter(positions, cut)


def _first_pieces(text: str, max_tokens: int) -> str:
    for index, piece in enumerate(_WORD_PIECE.finditer(text)):
        if index == max_tokens - 1:
            return text[: piece.end()].strip()
    return text
