"""Check a dataset folder against its manifest before a push.

    >>> problems = validate(Path("build/steam"))  # doctest: +SKIP
    >>> problems  # doctest: +SKIP
    []

Every file the manifest lists must be there with its size, sha256, and for
parquet its row count and schema; no data file may be unlisted; the content
hash must match the files; README.md's configs must match data/, with the
row counts of its dataset_info; manifest.json must match its own checksum, and
README.md and images/ the ones the card wrote (so a hand-edited version or card
is caught before a push tags it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from datagen.buildfolder import load_manifest
from datagen.errors import DataError
from datagen.layout import data_files
from datagen.output import sha256, staged_edit
from datagen.publish.release import content_hash, finalize, is_card_file, manifest_checksum, repository_files, schema_of


def read_manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    if not path.is_file():
        raise DataError("not a datagen dataset folder (no manifest.json)", path=folder, hint="`datagen build SOURCE` writes one.")
    manifest = load_manifest(path)
    if "files" not in manifest:
        raise DataError("manifest.json has no file list (built by an older datagen)", path=path, hint="Rebuild the folder with `datagen build`.")
    return manifest


def check_files(folder: Path, manifest: dict) -> list[str]:
    problems = []
    for name, expected in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
            continue
        if path.stat().st_size != expected["bytes"] or sha256(path) != expected["sha256"]:
            problems.append(f"{name}: changed since the build (size or sha256 differs from manifest.json)")
            continue
        if name.endswith(".parquet"):
            metadata = pq.read_metadata(path)
            if metadata.num_rows != expected["rows"]:
                problems.append(f"{name}: {metadata.num_rows} rows, manifest.json says {expected['rows']}")
            if schema_of(metadata.schema.to_arrow_schema()) != expected["schema"]:
                problems.append(f"{name}: schema differs from manifest.json")
    for name in repository_files(folder):
        if name not in manifest["files"] and not is_card_file(name):
            problems.append(f"{name}: not in manifest.json (added after the build?)")
    if content_hash(manifest["files"]) != manifest["content_hash"]:
        problems.append("manifest.json: content_hash does not match its file list")
    return problems


def check_configs(folder: Path, manifest: dict) -> list[str]:
    problems = []
    layout = data_files(folder)
    recorded = {config: {split: entry["files"] for split, entry in splits.items()} for config, splits in manifest["configs"].items()}
    if layout != recorded:
        problems.append(f"data/: configs and shards {sorted(layout)} differ from manifest.json's {sorted(recorded)}")
    for config, splits in recorded.items():
        schemas = {repr(manifest["files"][path]["schema"]) for paths in splits.values() for path in paths if path in manifest["files"]}
        if len(schemas) > 1:
            problems.append(f"data/{config}: its splits have different schemas")
    return problems


def check_card(folder: Path, manifest: dict) -> list[str]:
    path = folder / "README.md"
    if not path.is_file():
        return ["README.md: missing (`datagen card FOLDER` writes it)"]
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n") or "\n---\n" not in text[4:]:
        return ["README.md: no YAML header"]
    header = yaml.safe_load(text[4 : text.index("\n---\n", 4)])
    problems = []
    declared = {entry["config_name"]: {f["split"]: f["path"] for f in entry["data_files"]} for entry in header.get("configs", [])}
    expected = {config: {split: f"data/{config}/{split}-*" for split in splits} for config, splits in manifest["configs"].items()}
    if declared != expected:
        problems.append("README.md: its configs do not match data/ (run `datagen card FOLDER`)")
    infos = header.get("dataset_info", [])
    for info in infos if isinstance(infos, list) else [infos]:
        for split in info.get("splits", []):
            rows = manifest["configs"].get(info.get("config_name"), {}).get(split["name"], {}).get("rows")
            if rows != split["num_examples"]:
                problems.append(f"README.md: {info.get('config_name')}/{split['name']} says {split['num_examples']} rows, the data has {rows}")
    for key in ("license", "task_categories", "size_categories", "tags"):
        if not header.get(key):
            problems.append(f"README.md: no {key} in the YAML header")
    return problems


def check_seal(folder: Path, manifest: dict, card: bool = True) -> list[str]:
    """manifest.json against its own checksum and (with `card`) README.md and images/ against the ones generated."""
    if "manifest_sha256" not in manifest:
        return ["manifest.json: has no checksum of its own (built by an older datagen: build the folder again)"]
    if manifest_checksum(manifest) != manifest["manifest_sha256"]:
        return ["manifest.json: edited after the build (its own checksum differs); what a push would tag is not what was built"]
    if not card:
        return []
    problems = []
    generated = manifest.get("card_files", {})
    present = {name for name in repository_files(folder) if is_card_file(name) and name != "manifest.json"}
    for name in sorted(present | set(generated)):
        if name not in generated:
            problems.append(f"{name}: not written by the card (run `datagen card FOLDER`)")
        elif name not in present:
            problems.append(f"{name}: missing (run `datagen card FOLDER`)")
        elif sha256(folder / name) != generated[name]["sha256"]:
            problems.append(f"{name}: edited by hand since it was generated (run `datagen card FOLDER` to write it again)")
    return problems


def validate(folder: Path) -> list[str]:
    """Every problem found, as 'file: what is wrong'; empty when the folder is ready to push."""
    manifest = read_manifest(folder)
    return check_files(folder, manifest) + check_configs(folder, manifest) + check_card(folder, manifest) + check_seal(folder, manifest)


@contextmanager
def sealed_edit(folder: Path, command: str) -> Iterator[Path]:
    """Edit a finished build as `command` does: refused when the build fails `datagen validate` (sealing it anew would
    vouch for what was changed by hand), else on a staged copy that is sealed again (`finalize`) and swapped in whole."""
    problems = validate(folder)
    if problems:
        raise DataError(
            f"the build fails `datagen validate` ({len(problems)} problem(s), first: {problems[0]}); `{command}` would seal it anew as if it had been built so",
            path=folder,
            hint="`datagen validate BUILD` lists what changed: put it back, rebuild (`datagen build`), or for a hand-edited card run `datagen card BUILD` first.",
        )
    with staged_edit(folder) as staged:  # a kill leaves the old build or the new one
        yield staged
        finalize(staged)
