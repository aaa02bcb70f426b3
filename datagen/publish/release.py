"""Make a build folder a release: version, content hash, file list, code version, card.

    >>> manifest = finalize(Path("build/steam-sample"), version="1.0.0")  # doctest: +SKIP
    >>> manifest["content_hash"][:16]  # doctest: +SKIP
    '3f1c0e9a5b7d2c41'

The content hash covers exactly the files under data/ and templates/ (paths
and bytes): the rows and the prompts that made them. Anything else in the
manifest (code version, library versions) describes how they were made without
being part of what they are, so the same inputs and seed on another machine or
commit give the same hash when they give the same rows.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pyarrow.parquet as pq

from datagen import __version__
from datagen.buildfolder import load_manifest
from datagen.errors import DataError
from datagen.layout import DATA_DIR, data_files, family_reports
from datagen.output import sha256, write_json

DEFAULT_VERSION = "0.1.0"
SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$")
HASHED_DIRS = (DATA_DIR, "templates")
CARD_FILES = ("README.md", "manifest.json")  # written after the file list, from it
CARD_DIRS = ("images",)


def check_version(version: str) -> str:
    if not SEMVER.match(version):
        raise DataError(f"version {version!r} is not semantic (MAJOR.MINOR.PATCH, e.g. 1.0.0 or 1.1.0-rc.1)")
    return version


def code_version() -> dict:
    """The datagen package version, and the git commit when running from a checkout (None from a wheel)."""
    checkout = Path(__file__).resolve().parents[2]
    commit, dirty = None, None
    if (checkout / ".git").exists():
        try:
            commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
            status = subprocess.run(["git", "-C", str(checkout), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True)
            dirty = bool(status.stdout.strip())
        except (OSError, subprocess.CalledProcessError):
            commit = None
    return {"datagen": __version__, "git_commit": commit, "git_dirty": dirty}


def is_card_file(relative: str) -> bool:
    return relative in CARD_FILES or relative.split("/", 1)[0] in CARD_DIRS


def repository_files(folder: Path) -> list[str]:
    """Every file of the folder (relative, sorted) but hidden ones: what a push uploads."""
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file() and not any(part.startswith(".") for part in path.relative_to(folder).parts))


def file_entry(folder: Path, relative: str) -> dict:
    path = folder / relative
    entry = {"bytes": path.stat().st_size, "sha256": sha256(path)}
    if relative.endswith(".parquet"):
        metadata = pq.read_metadata(path)
        entry["rows"] = metadata.num_rows
        entry["schema"] = schema_of(metadata.schema.to_arrow_schema())
    return entry


def schema_of(arrow_schema) -> dict[str, str]:
    return {field.name: str(field.type) for field in arrow_schema}


def content_hash(files: dict[str, dict]) -> str:
    hashed = {name: entry["sha256"] for name, entry in sorted(files.items()) if name.split("/", 1)[0] in HASHED_DIRS}
    return hashlib.sha256(json.dumps(hashed, sort_keys=True).encode()).hexdigest()


def config_summary(folder: Path, files: dict[str, dict]) -> dict:
    """{config: {split: {"files": [...], "rows": n}}} from the data/ layout."""
    return {config: {split: {"files": paths, "rows": sum(files[p]["rows"] for p in paths)} for split, paths in splits.items()} for config, splits in data_files(folder).items()}


def task_settings(folder: Path) -> tuple[dict, list[dict]]:
    """The teacher's and each dataset family's settings, and the files the families read (a chat file), from their reports."""
    settings, inputs = {}, []
    teacher = folder / "teacher" / "report.json"
    if teacher.is_file():
        report = json.loads(teacher.read_text())
        settings["teacher"] = {
            "model": report["model_config"],
            "train": report["train_config"],
            "objective": report["training"]["objective"],
            "label_source": report["label_source"],
            "baseline_check": report["baseline_check"],
        }
    for name, report in family_reports(folder).items():
        settings[name] = report["settings"]
        inputs += report.get("inputs", [])
    return settings, inputs


def finalize(folder: Path, version: str | None = None) -> dict:
    """Record version, code, settings, files, configs and content hash in manifest.json, then write the card and seal both."""
    manifest_path = folder / "manifest.json"
    manifest = load_manifest(manifest_path)
    manifest["version"] = check_version(version or manifest.get("version") or DEFAULT_VERSION)
    manifest["code_version"] = code_version()
    manifest["task_settings"], manifest["task_inputs"] = task_settings(folder)
    files = {name: file_entry(folder, name) for name in repository_files(folder) if not is_card_file(name)}
    manifest["files"] = files
    manifest["configs"] = config_summary(folder, files)
    manifest["content_hash"] = content_hash(files)
    write_json(manifest, manifest_path)
    return write_sealed_card(folder, manifest)


def manifest_checksum(manifest: dict) -> str:
    """sha256 of the manifest's canonical JSON, its own checksum left out."""
    body = {key: value for key, value in manifest.items() if key != "manifest_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def write_sealed_card(folder: Path, manifest: dict) -> dict:
    """Write the card from `manifest`, then record the card's files and the manifest's own checksum in manifest.json.

    `datagen validate` then refuses a hand-edited card or manifest, so that what
    is pushed (and the version it is tagged with) is exactly what was built.
    """
    from datagen.publish.card import write_card

    write_card(folder, manifest)
    manifest["card_files"] = {name: file_entry(folder, name) for name in repository_files(folder) if is_card_file(name) and name != "manifest.json"}
    manifest["manifest_sha256"] = manifest_checksum(manifest)
    write_json(manifest, folder / "manifest.json")
    return manifest
