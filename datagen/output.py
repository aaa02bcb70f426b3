"""Write a build's folder atomically: everything goes to a hidden temporary
folder beside the target, which replaces the target only once complete.

    >>> with atomic_folder(Path("build/steam")) as tmp:  # doctest: +SKIP
    ...     write_parquet(frame, tmp / "items.parquet")
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import polars as pl


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder; on success it becomes `target`, on error it is removed."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    try:
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    previous = target.parent / f".{target.name}.old-{os.getpid()}"
    if target.exists():
        os.replace(target, previous)
    os.replace(temporary, target)
    shutil.rmtree(previous, ignore_errors=True)


def write_parquet(frame: pl.DataFrame, path: Path) -> None:
    # Fixed settings so that equal frames give byte-identical files.
    frame.write_parquet(path, compression="zstd", compression_level=3, statistics=True, row_group_size=1 << 20)


def write_json(data: dict, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
