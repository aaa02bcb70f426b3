"""Read raw line-per-record files (plain or gzip) into a frame of (line, text).

Every source parses from this frame, so each record keeps its 1-based line
number and errors can name it.

    >>> frame = read_lines("steam_games.json.gz")  # doctest: +SKIP
    >>> frame.columns
    ['line', 'text']
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from datagen.errors import DataError

# Lines are read as one column, split at a byte no text line holds; where one does (random bytes),
# it becomes a byte that is not UTF-8, so its line is a counted bad row, never a parser error.
_NO_SEPARATOR = "\x1f"
_GZIP_MAGIC = b"\x1f\x8b"


def read_lines(path: str | Path) -> pl.DataFrame:
    """Return the non-blank lines of `path` with their 1-based line numbers."""
    return pl.concat(iter_line_chunks(path))


def iter_line_chunks(path: str | Path, chunk_bytes: int = 64 << 20) -> Iterator[pl.DataFrame]:
    """Yield the non-blank lines of `path` as frames of (line, text), about `chunk_bytes` of text each.

    Big files (the 7.8M-line Steam reviews) are parsed chunk by chunk, so memory
    holds one chunk of text at a time. A file with no non-blank line is an error.
    """
    path = Path(path)
    _check_file(path)
    with open(path, "rb") as handle:
        opener = gzip.open if handle.read(2) == _GZIP_MAGIC else open
    first_line = 1
    records = 0
    rest = b""
    try:
        with opener(path, "rb") as handle:
            while True:
                block = handle.read(chunk_bytes)
                if not block:
                    break
                block = rest + block
                cut = block.rfind(b"\n") + 1
                if cut == 0:
                    rest = block
                    continue
                rest = block[cut:]
                frame, first_line = _lines_frame(block[:cut], first_line)
                records += frame.height
                yield frame
    except (OSError, EOFError, zlib.error) as error:
        raise _broken_gzip(path, error) from None
    if first_line == 1 and not rest:
        raise DataError("file is empty once decompressed", path=path)
    if rest:
        frame, first_line = _lines_frame(rest + b"\n", first_line)
        records += frame.height
        yield frame
    if records == 0:
        raise DataError("file has no records (only blank lines)", path=path)


def _lines_frame(block: bytes, first_line: int) -> tuple[pl.DataFrame, int]:
    """Parse a block of whole lines (ending in a newline) into (line, text), blank lines dropped."""
    if _NO_SEPARATOR.encode() in block:
        block = block.replace(_NO_SEPARATOR.encode(), b"\xff")
    frame = pl.read_csv(
        io.BytesIO(block),
        has_header=False,
        separator=_NO_SEPARATOR,
        quote_char=None,
        new_columns=["text"],
        schema={"text": pl.String},
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
    )
    next_line = first_line + block.count(b"\n")
    frame = frame.with_row_index("line", offset=first_line).with_columns(pl.col("text").str.strip_chars()).filter(pl.col("text").is_not_null() & (pl.col("text") != ""))
    return frame, next_line


# What a byte that is not UTF-8 becomes in a line (read lossily, so one bad byte cannot stop a big file).
REPLACEMENT = "\ufffd"
INVALID_UTF8 = "invalid UTF-8 (or stray control) byte(s), replaced by U+FFFD"


def has_invalid_utf8(texts: pl.Expr | str = "text") -> pl.Expr:
    """True for a line that held bytes that are not UTF-8 (or U+FFFD itself, the mark of an earlier such repair)."""
    column = pl.col(texts) if isinstance(texts, str) else texts
    return column.str.contains(REPLACEMENT, literal=True)


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise DataError("file not found", path=path)
    if path.stat().st_size == 0:
        raise DataError("file is empty (0 bytes); the download may have failed", path=path)


def _broken_gzip(path: Path, error: Exception) -> DataError:
    return DataError(
        f"broken gzip data ({error})",
        path=path,
        hint="The file is truncated or corrupt: download it again (`datagen download ...`).",
    )


def read_bytes(path: str | Path) -> bytes:
    """The file's content, gunzipped when it is gzip; clear errors for missing, empty or broken files."""
    path = Path(path)
    _check_file(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise _broken_gzip(path, error) from None
        if not raw:
            raise DataError("file is empty once decompressed", path=path)
    return raw


def decode_strictly(raw: bytes, encoding: str, path: str | Path, hint: str | None = None) -> str:
    """The text, decoded strictly: a byte the encoding cannot read is an error naming its line."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        raise DataError(
            f"byte {raw[error.start : error.start + 1]!r} is not {encoding} ({error.reason})",
            path=path,
            line=raw.count(b"\n", 0, error.start) + 1,
            hint=hint,
        ) from None


GLOB_CHARACTERS = frozenset("*?[]{}")


def has_glob_characters(path: str | Path) -> bool:
    """Whether DuckDB's readers would take `path` as a pattern (`*`, `?`, `[...]`, `{...}`) rather than one file: such a
    path must be read by Python's own file reading, which takes it literally."""
    return not GLOB_CHARACTERS.isdisjoint(str(path))


def sql_literal(path: str | Path) -> str:
    """The path as the text of a DuckDB string literal (quotes doubled), for read_json('...') and the like."""
    return str(path).replace("'", "''")
