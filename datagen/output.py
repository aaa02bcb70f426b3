"""Write a build's folder atomically: everything goes to a hidden temporary
folder beside the target, which replaces the target only once complete.
Commands that change a finished build edit a staged copy of it the same way.

    >>> with atomic_folder(Path("build/steam")) as tmp:  # doctest: +SKIP
    ...     write_parquet(frame, tmp / "items.parquet")
    >>> with staged_edit(Path("build/steam")) as copy:  # doctest: +SKIP
    ...     write_json(report, copy / "reports" / "controllable.json")
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from datagen.errors import DataError

# An id that becomes a file name inside a folder (a template's, a phrase set's): names of letters, digits, `.`, `_`
# and `-`, each starting with a letter or digit, joined by `/`. So no `..`, no absolute path, nothing outside.
ID_AS_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}(/[A-Za-z0-9][A-Za-z0-9._-]{0,99}){0,4}")


def is_file_name_id(value: str) -> bool:
    """Whether `value` may name a file inside a folder (ID_AS_FILE_NAME)."""
    return ID_AS_FILE_NAME.fullmatch(value) is not None


def check_writable(folder: Path) -> None:
    """Make `folder` and write a file in it now, so a read-only or missing place fails before the work, not after."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".datagen-write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise DataError(f"cannot write here ({error.strerror or error})", path=folder, hint="Pick another folder, or make this one writable.") from None


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        pass
    return False


def clean_stale(target: Path) -> list[Path]:
    """Remove what killed runs left beside `target`: `.NAME.tmp-PID/` and `.NAME.old-PID/` of processes that are gone.

    An `.old-PID` folder with no `target` is a run killed between its two
    renames; it is renamed back, so the previous build is never lost.
    """
    cleaned = []
    for leftover in sorted(target.parent.glob(f".{target.name}.*-*")):
        kind, _, pid = leftover.name[len(target.name) + 2 :].partition("-")
        if kind not in ("tmp", "old") or not pid.isdigit() or int(pid) == os.getpid() or not _process_is_gone(int(pid)):
            continue
        if kind == "old" and not target.exists():
            os.replace(leftover, target)
        elif leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
        cleaned.append(leftover)
    return cleaned


@contextmanager
def atomic_folder(target: Path) -> Iterator[Path]:
    """Yield a temporary folder (a `scratch_folder`); on success it becomes `target`, on error it is removed.

    What killed runs left beside `target` is cleaned first (`clean_stale`).
    """
    target = Path(target)
    with scratch_folder(target) as temporary:
        yield temporary
        previous = target.parent / f".{target.name}.old-{os.getpid()}"
        if target.exists():
            os.replace(target, previous)
        os.replace(temporary, target)  # the scratch folder's removal then finds nothing
        shutil.rmtree(previous, ignore_errors=True)


@contextmanager
def held_lock(target: Path) -> Iterator[None]:
    """Hold an exclusive lock on `.NAME.lock` beside `target` for the block: processes that would make the same
    `target` (the ranks of `accelerate launch`) take turns, so the second finds the first one's."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with (target.parent / f".{target.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def scratch_folder(target: Path) -> Iterator[Path]:
    """Yield a hidden folder beside `target` (`.NAME.tmp-PID/`) for a command's working files; it is removed when
    the block ends, and one a killed run left is removed by the next (`clean_stale`)."""
    target = Path(target)
    clean_stale(target)
    scratch = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


@contextmanager
def staged_edit(target: Path) -> Iterator[Path]:
    """Yield a copy of the folder `target` to change; on success the copy replaces `target`, on error it is removed.

    A kill at any point leaves the old folder or the new one, never a mix. The
    copy is made of hard links where the file system has them (no data is
    copied), so whatever changes a file in it must write a new file and rename
    it over the old one (as `write_json` and `atomic_folder` do), never write
    into it: that would change the original too.
    """
    target = Path(target)
    links = [path for path in target.rglob("*") if path.is_symlink()]
    if links:  # copied, a link to a folder would bring that folder in, and a loop would never end
        raise DataError(
            f"the build holds a symbolic link, {links[0].relative_to(target)} (of {len(links)}); datagen writes only plain files there",
            path=target,
            hint="Remove the link (or rebuild the folder) and run the command again.",
        )
    with atomic_folder(target) as temporary:
        shutil.copytree(target, temporary, copy_function=_link_or_copy, ignore=_LEFTOVERS, dirs_exist_ok=True)
        try:
            yield temporary
        except DataError as error:  # it names the staged copy, which is about to go: say the build instead
            raise error.naming(str(temporary), str(target)) from None


_LEFTOVERS = shutil.ignore_patterns(".*.tmp-*", ".*.tmp", ".*.old-*")


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # a file system without hard links
        shutil.copy2(source, destination)


ROW_GROUP_ROWS = 1 << 20
PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}  # fixed: equal frames, equal bytes


def write_parquet(frame: pl.DataFrame, path: Path, row_group_rows: int = ROW_GROUP_ROWS) -> None:
    """Fixed settings, so equal frames give byte-identical files, in the plain types of `parquet_table`."""
    pq.write_table(parquet_table(frame), path, row_group_size=row_group_rows, **PARQUET_OPTIONS)


def parquet_table(frame: pl.DataFrame) -> pa.Table:
    """`frame` in the plain Arrow types (string, list) that `datasets` writes too, rather than Polars' large ones."""
    table = frame.to_arrow()
    return table.cast(pa.schema([field.with_type(plain_type(field.type)) for field in table.schema]))


def plain_type(arrow_type: pa.DataType) -> pa.DataType:
    if pa.types.is_large_string(arrow_type) or pa.types.is_string_view(arrow_type):
        return pa.string()
    if pa.types.is_large_binary(arrow_type) or pa.types.is_binary_view(arrow_type):
        return pa.binary()
    if any(check(arrow_type) for check in (pa.types.is_list, pa.types.is_large_list, pa.types.is_list_view, pa.types.is_large_list_view)):
        return pa.list_(arrow_type.value_field.with_type(plain_type(arrow_type.value_type)))
    if pa.types.is_struct(arrow_type):
        return pa.struct([field.with_type(plain_type(field.type)) for field in arrow_type])
    return arrow_type


def sha256(path: str | Path) -> str:
    """Hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_text(text: str, path: Path) -> None:
    """Write to a temporary file beside `path`, then rename: a reader never sees half a file."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def write_json(data: dict, path: Path) -> None:
    """`data` as indented JSON, written as `write_text` writes."""
    write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", path)
