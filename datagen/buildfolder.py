"""Read a finished `datagen build` folder: its manifest, tables and data version.

The canonical tables are the items and interactions configs of the dataset
repository (data/items/, data/interactions/), plus sequences.parquet (a row a
user, with the leave-one-out split). The data version names their exact files
(a hash of their sha256s), so anything derived from them (a teacher
checkpoint, cached rankings) can say which data it belongs to.

    >>> folder = BuildFolder.open("build/steam-sample")  # doctest: +SKIP
    >>> folder.data_version, folder.n_items  # doctest: +SKIP
    ('55289be03a99e202', 1753)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import polars as pl

from datagen.errors import DataError
from datagen.layout import REVIEWS_FILE, read_split


def load_manifest(path: Path) -> dict:
    """A build's manifest.json as a dict; a clear error when it is not one (cut short, or edited into something else)."""
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"not valid JSON at line {error.lineno}, column {error.colno} ({error.msg}): cut short or edited", path=path, hint="Rebuild the folder with `datagen build`.") from None
    except UnicodeDecodeError:
        raise DataError("not UTF-8 text: damaged or not a manifest", path=path, hint="Rebuild the folder with `datagen build`.") from None
    if not isinstance(manifest, dict):
        raise DataError(f"holds a JSON {type(manifest).__name__}, not the manifest's mapping", path=path, hint="Rebuild the folder with `datagen build`.")
    return manifest


def data_version(outputs: dict) -> str:
    """A short hash of the canonical tables' checksums (the manifest's `outputs`); review texts are not part of it."""
    checksums = {name: outputs[name]["sha256"] for name in sorted(outputs) if name.endswith(".parquet") and name != REVIEWS_FILE}
    return hashlib.sha256(json.dumps(checksums, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class BuildFolder:
    path: Path
    manifest: dict

    @classmethod
    def open(cls, path: Path | str) -> BuildFolder:
        path = Path(path)
        manifest_path = path / "manifest.json"
        if not manifest_path.is_file():
            raise DataError(
                "not a datagen build folder (no manifest.json)",
                path=path,
                hint="Run `datagen build SOURCE` first; it prints the folder it wrote.",
            )
        manifest = load_manifest(manifest_path)
        for name in manifest.get("outputs", {}):
            if not (path / name).is_file():
                raise DataError(f"build folder lacks {name}", path=path, hint="Rebuild it with `datagen build`.")
        return cls(path=path, manifest=manifest)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def data_version(self) -> str:
        return data_version(self.manifest["outputs"])

    @property
    def max_history(self) -> int:
        return self.manifest["parameters"]["max_history"]

    @cached_property
    def items(self) -> pl.DataFrame:
        return read_split(self.path, "items", "train")

    @cached_property
    def sequences(self) -> pl.DataFrame:
        return pl.read_parquet(self.path / "sequences.parquet")

    @property
    def n_items(self) -> int:
        return self.items.height
