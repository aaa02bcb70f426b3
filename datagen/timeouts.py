"""How long one network request may wait for a server, from an environment variable.

>>> seconds_from_env("DATAGEN_DOWNLOAD_TIMEOUT", 30.0)  # doctest: +SKIP
30.0
"""

from __future__ import annotations

import os

from datagen.errors import DataError


def seconds_from_env(name: str, default: float) -> float:
    """$name as seconds above 0, `default` when unset; a clear error for anything else."""
    text = os.environ.get(name, str(default))
    try:
        seconds = float(text)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise DataError(f"${name} must be a number of seconds above 0, not {text!r}")
    return seconds
