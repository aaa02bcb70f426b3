"""Where datagen keeps reusable files: $DATAGEN_CACHE, default ~/.cache/datagen.

    >>> cache_root() / "raw"  # doctest: +SKIP
    PosixPath('/home/me/.cache/datagen/raw')
    >>> writable_cache_dir("teacher-training")  # doctest: +SKIP
    PosixPath('/home/me/.cache/datagen/teacher-training')

Commands that write to the cache take their folder from `writable_cache_dir`,
so a read-only or missing place fails at once with the variable named.

A cache file that is read back as it is (the teacher's training state, its
rankings) is sealed: its sha256 is written beside it after it
(`<name>.sha256`), and it is trusted only while the two match, so a flipped
bit or a file cut short is dropped and made again, never used.

    >>> seal_cache_file(path)  # doctest: +SKIP
    >>> why_untrusted(path) is None  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
from pathlib import Path

from datagen.errors import DataError
from datagen.output import check_writable, sha256, write_text

CACHE_ENV = "DATAGEN_CACHE"
RAW_CACHE = "raw"  # downloaded raw files, a folder per source


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "datagen"))


def raw_cache_dir() -> Path:
    """Where downloaded raw files live: $DATAGEN_CACHE/raw, default ~/.cache/datagen/raw."""
    return cache_root() / RAW_CACHE


def writable_cache_dir(*parts: str) -> Path:
    """cache_root()/parts, made and checked writable; a DataError naming ${CACHE_ENV} otherwise."""
    folder = cache_root().joinpath(*parts)
    try:
        check_writable(folder)
    except DataError as error:
        raise DataError(f"the cache {error.message}", path=folder, hint=f"Set ${CACHE_ENV} to a writable folder.") from None
    return folder


def _seal_path(path: Path) -> Path:
    return path.with_name(f"{path.name}.sha256")


def seal_cache_file(path: Path) -> None:
    """Write the sha256 of the (complete, renamed into place) cache file `path` beside it."""
    write_text(sha256(path) + "\n", _seal_path(path))


def why_untrusted(path: Path) -> str | None:
    """Why the cache file `path` may not be read (no seal: cut short or written by an older datagen; bytes that
    differ from its seal), or None when it matches its seal."""
    seal = _seal_path(path)
    if not seal.is_file():
        return "it has no checksum beside it"
    if seal.read_text().strip() != sha256(path):
        return "its bytes do not match its checksum"
    return None


def drop_cache_file(path: Path) -> None:
    """Remove a cache file and its seal."""
    path.unlink(missing_ok=True)
    _seal_path(path).unlink(missing_ok=True)
