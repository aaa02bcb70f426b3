"""Read raw line-per-record files (plain or gzip) into a frame of (line, text).

Every source parses from this frame, so each record keeps its 1-based line
number and errors can name it.

    >>> frame = read_lines("steam_games.json.gz")  # doctest: +SKIP
    >>> frame.columns
    ['line', 'text']
"""

from __future__ import annotations

import gzip
import hashlib
import io
import zlib
from pathlib import Path

import polars as pl

from datagen.errors import DataError

# Lines are read as one column: a separator no text file of ours contains.
_NO_SEPARATOR = "\x1f"


def read_lines(path: str | Path) -> pl.DataFrame:
    """Return the non-blank lines of `path` with their 1-based line numbers."""
    raw = read_bytes(path)
    frame = pl.read_csv(
        io.BytesIO(raw),
        has_header=False,
        separator=_NO_SEPARATOR,
        quote_char=None,
        new_columns=["text"],
        schema={"text": pl.String},
        encoding="utf8-lossy",
        truncate_ragged_lines=True,
    )
    del raw
    frame = (
        frame.with_row_index("line", offset=1)
        .with_columns(pl.col("text").str.strip_chars())
        .filter(pl.col("text").is_not_null() & (pl.col("text") != ""))
    )
    if frame.is_empty():
        raise DataError("file has no records (only blank lines)", path=path)
    return frame


def read_bytes(path: str | Path) -> bytes:
    """The file's content, gunzipped when it is gzip; clear errors for missing, empty or broken files."""
    path = Path(path)
    if not path.is_file():
        raise DataError("file not found", path=path)
    raw = path.read_bytes()
    if not raw:
        raise DataError("file is empty (0 bytes); the download may have failed", path=path)
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise DataError(
                f"broken gzip data ({error})",
                path=path,
                hint="The file is truncated or corrupt: download it again (`datagen download ...`).",
            ) from None
        if not raw:
            raise DataError("file is empty once decompressed", path=path)
    return raw


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
