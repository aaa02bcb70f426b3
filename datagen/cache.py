"""Where datagen keeps reusable files: $DATAGEN_CACHE, default ~/.cache/datagen.

    >>> cache_root() / "raw"  # doctest: +SKIP
    PosixPath('/home/me/.cache/datagen/raw')
    >>> writable_cache_dir("teacher-training")  # doctest: +SKIP
    PosixPath('/home/me/.cache/datagen/teacher-training')

Commands that write to the cache take their folder from `writable_cache_dir`,
so a read-only or missing place fails at once with the variable named.
"""

from __future__ import annotations

import os
from pathlib import Path

from datagen.errors import DataError
from datagen.output import check_writable

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
