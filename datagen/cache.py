"""Where datagen keeps reusable files: $DATAGEN_CACHE, default ~/.cache/datagen.

    >>> cache_root() / "raw"  # doctest: +SKIP
    PosixPath('/home/me/.cache/datagen/raw')
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "DATAGEN_CACHE"


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "datagen"))
