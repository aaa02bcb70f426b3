"""`datagen build`: raw files of a source -> canonical tables, split, manifest.

    >>> from datagen.pipeline import BuildConfig, build
    >>> result = build(BuildConfig("amazon:Gift_Cards", raw_dir=Path("data/amazon")))  # doctest: +SKIP
    >>> result.manifest["stats"]["users"]  # doctest: +SKIP
    458

Output folder (written to a temporary folder, renamed into place when complete):
a Hugging Face dataset repository. data/items/ and data/interactions/ (the
canonical tables), sequences.parquet, manifest.json, stats.md (and, with
`review_texts=True`, reviews.parquet: see `datagen.ingest.reviews`); with
`BuildConfig(teacher=TeacherSettings())` the SASRec teacher in teacher/ (reused
from the previous build when data and settings are unchanged), and with
`families={"controllable": ControllableSettings()}` as well the dataset of Lu
et al. in data/controllable/ with its templates and report (any family of
`datagen.families` likewise); last, the content hash, file
list and card (`datagen.publish.release.finalize`).
"""

from __future__ import annotations

import os
import platform
import re
import tempfile
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import polars as pl

from datagen import __version__
from datagen.buildfolder import BuildFolder, data_version
from datagen.errors import DataError
from datagen.families import FAMILIES, family_named
from datagen.ingest.cleaning import clean_interactions, clean_items, k_core, sample_users, unique_titles
from datagen.ingest.presets import DEFAULT_PARAMETERS, PRESETS
from datagen.ingest.report import BuildReport
from datagen.ingest.reviews import write_review_texts
from datagen.ingest.split import CanonicalTables, split_tables
from datagen.ingest.stats import table1, table1_markdown
from datagen.layout import DATA_DIR, REVIEWS_FILE, write_split
from datagen.output import atomic_folder, check_writable, sha256, write_json, write_parquet
from datagen.progress import StepProgress
from datagen.publish.release import DEFAULT_VERSION, check_version, finalize
from datagen.sources import get_source
from datagen.teacher.settings import TeacherSettings

DATA_ENV = "DATAGEN_DATA"
# A build's name is a folder under build/ and part of a Hub repository id.
DATASET_NAME = re.compile(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
MANIFEST_FORMAT = "datagen.canonical/2"
INTERACTION_SPLITS = {"train": "train", "validation": "valid", "test": "test"}  # HF split: the leave-one-out split


@dataclass
class BuildConfig:
    source: str  # "steam", "amazon:Gift_Cards", "table:catalog.yaml"
    raw_dir: Path | None = None
    out_dir: Path | None = None
    preset: str | None = None
    user_core: int | None = None
    item_core: int | None = None
    max_title_tokens: int | None = None
    max_users: int | None = None
    seed: int = 42
    max_bad_share: float = 0.01
    options: dict[str, str] = field(default_factory=dict)
    teacher: TeacherSettings | None = None  # None: canonical tables only
    # {family name: its settings} for the dataset families to generate (datagen.families), e.g.
    # {"controllable": ControllableSettings()}; those that need the teacher are skipped without one.
    families: dict[str, Any] = field(default_factory=dict)
    version: str = DEFAULT_VERSION  # the dataset's semantic version, chosen by the user
    review_texts: bool = False  # keep the reviews' texts in reviews.parquet (InstructRec's vague intentions read them)

    def parameters(self, source_defaults: dict | None = None) -> dict:
        """Defaults, then the source's own (a table config's `parameters`), then the preset, then the flags."""
        if self.preset is not None and self.preset not in PRESETS:
            raise DataError(f"unknown preset {self.preset!r}; presets: {', '.join(PRESETS)}")
        chosen = {**DEFAULT_PARAMETERS, **(source_defaults or {})}
        if self.preset:
            chosen.update({k: v for k, v in PRESETS[self.preset].items() if k != "about"})
        for key in ("user_core", "item_core", "max_title_tokens"):
            if getattr(self, key) is not None:
                chosen[key] = getattr(self, key)
        return {
            **chosen,
            "preset": self.preset,
            "max_users": self.max_users,
            "seed": self.seed,
            "max_bad_share": self.max_bad_share,
        }


@dataclass
class BuildResult:
    out_dir: Path
    manifest: dict
    tables: CanonicalTables


def parse_source_spec(spec: str) -> tuple[str, str | None]:
    name, _, argument = spec.partition(":")
    return name, argument or None


def build(config: BuildConfig, progress: StepProgress | None = None) -> BuildResult:
    progress = progress or StepProgress(quiet=True)
    if not config.review_texts:
        return _build(config, progress, review_spill=None)
    with tempfile.TemporaryDirectory(prefix="datagen-review-texts-") as spill_dir:
        return _build(config, progress, review_spill=Path(spill_dir) / "review-texts.parquet")


def _build(config: BuildConfig, progress: StepProgress, review_spill: Path | None) -> BuildResult:
    """`build`, with `review_spill` the file a source streams review texts to (None: texts are not read)."""
    name, argument = parse_source_spec(config.source)
    source = get_source(name)
    if source.argument and not argument:
        raise DataError(f"source {name!r} needs an argument: {name}:{source.argument}")
    parameters = config.parameters(source.default_parameters(argument))
    check_version(config.version)
    for family_name in config.families:
        family_named(family_name)  # an unknown name fails before any work
    raw_dir, from_sample = resolve_raw_dir(source, argument, config.raw_dir)
    dataset_name = source.dataset_name(argument) + ("-sample" if from_sample else "")
    if not DATASET_NAME.fullmatch(dataset_name):
        raise DataError(
            f"the build's name {dataset_name!r} is not a plain name (letters, digits, '.', '_', '-'; no '/' or '..')",
            hint="It names the folder build/<name> and the Hub repository: fix `name` in the table config, or the source's argument.",
        )
    if from_sample:
        progress.warn(
            f"NOTE: no raw {name} files given, so this builds the small sample shipped with datagen ({raw_dir}). For the real data pass --raw-dir, set ${DATA_ENV}, or run `datagen download {name}`."
        )
    out_dir = Path(config.out_dir) if config.out_dir else Path("build") / dataset_name
    check_writable(out_dir.parent)
    report = BuildReport(max_bad_share=config.max_bad_share)

    source.review_texts_path = review_spill
    source.titles_needed = bool(_titled_families(config))
    with progress.step(f"Reading {name} files from {raw_dir}"):
        raw = source.load(raw_dir, argument, config.options, report)
    for warning in report.warnings:
        progress.warn(f"WARNING: {warning}")
    has_review_texts = review_spill is not None and review_spill.is_file()
    if review_spill is not None and not has_review_texts:
        progress.warn(f"NOTE: the {name} source has no review texts, so the build has no {REVIEWS_FILE}.")
    if not raw.has_titles:
        _refuse_titled_families(config, raw.untitled_because)
    with progress.step("Cleaning items and interactions"):
        items = clean_items(raw.items, max_title_tokens=parameters["max_title_tokens"], report=report, has_titles=raw.has_titles)
        interactions = clean_interactions(raw.interactions, items, report=report)
        interactions = sample_users(interactions, max_users=config.max_users, seed=config.seed, report=report)
    with progress.step(f"{parameters['user_core']}-user / {parameters['item_core']}-item core filtering"):
        interactions = k_core(interactions, user_core=parameters["user_core"], item_core=parameters["item_core"], report=report)
    with progress.step("Unique titles, ids and leave-one-out split"):
        popularity = interactions.group_by("raw_item_id").agg(pl.len().alias("popularity"))
        items = items.join(popularity, on="raw_item_id", how="semi")
        if raw.has_titles:
            items = unique_titles(items, popularity, report)
        tables = split_tables(items, interactions)
    has_categories = bool(tables.items["categories"].list.len().sum())
    if raw.has_titles and not has_categories:
        progress.warn(
            "NOTE: no item of this catalog has a category, so the tasks that name one (Lu et al.'s I1-I3 and the "
            "combined controls, InstructRec's specific intentions) are skipped and counted in reports/ and the card; "
            "I0, item-count and the families that need no category are made."
        )
    stats = table1(tables)
    manifest = {
        "format": MANIFEST_FORMAT,
        "name": dataset_name,
        "datagen_version": __version__,
        "source": {
            "name": name,
            "argument": argument,
            "options": source.resolve_options(config.options),
            "from_shipped_sample": from_sample,
            "order": raw.order,
            "categories": raw.category_kind,
            "has_titles": raw.has_titles,
            "has_categories": has_categories,
            "catalog_noun": raw.catalog_noun,
            "citation_keys": list(raw.citation_keys),
            "citation": raw.citation,
            "license": raw.license,
            "terms": raw.terms,
            "redistribution_forbidden": raw.redistribution_forbidden,
            "variant": raw.variant,
        },
        "inputs": [{"file": path.name, "bytes": path.stat().st_size, "sha256": sha256(path)} for path in raw.input_files],
        "parameters": parameters,
        "library_versions": {
            "python": platform.python_version(),
            **{package: version(package) for package in ("polars", "duckdb", "pyarrow")},
        },
        "stats": stats,
        "report": report.as_dict(),
    }
    with atomic_folder(out_dir) as folder:
        with progress.step(f"Writing {out_dir}"):
            outputs = {}
            written = write_canonical_tables(tables, folder)
            if has_review_texts:
                written.append((folder / REVIEWS_FILE, write_review_texts(review_spill, tables.interactions, folder / REVIEWS_FILE)))
            for path, rows in written:
                outputs[path.relative_to(folder).as_posix()] = {"rows": rows, "sha256": sha256(path)}
            manifest["outputs"] = outputs
            manifest["data_version"] = data_version(outputs)
            write_json(manifest, folder / "manifest.json")
            (folder / "stats.md").write_text(table1_markdown(dataset_name, stats))
        if config.teacher is not None:
            from datagen.teacher.folder import reuse_teacher, train_teacher  # torch: only for builds that train

            written = BuildFolder.open(folder)
            if reuse_teacher(out_dir, written, config.teacher):
                progress.done(f"Reused the SASRec teacher of {out_dir} (same data version and settings)")
            else:
                train_teacher(written, config.teacher, progress)
        for family in FAMILIES:
            if family.name not in config.families:
                continue
            if family.needs_teacher and config.teacher is None:
                progress.warn(f"No teacher (--no-teacher), so no {family.name} dataset: its labels come from the teacher.")
            else:
                family.generate(BuildFolder.open(folder), config.families[family.name], progress)
        with progress.step("Content hash, file list and dataset card"):
            manifest = finalize(folder, config.version)
    return BuildResult(out_dir=out_dir, manifest=manifest, tables=tables)


def _titled_families(config: BuildConfig) -> list[str]:
    """The families this build will generate: each names items by their titles."""
    return [family.name for family in FAMILIES if family.name in config.families and (config.teacher is not None or not family.needs_teacher)]


def _refuse_titled_families(config: BuildConfig, untitled_because: str) -> None:
    """A catalog without titles cannot make a family whose prompts name items by title: say so before any cleaning."""
    asked = [f"the {name} dataset" for name in _titled_families(config)]
    if asked:
        raise DataError(
            f"this catalog has no item titles ({untitled_because}), so {' and '.join(asked)} cannot name any item",
            hint="Build its canonical tables and SASRec teacher only (--no-controllable), or give the catalog its titles.",
        )


def write_canonical_tables(tables: CanonicalTables, folder: Path) -> list[tuple[Path, int]]:
    """The items and interactions configs of the dataset repository, and sequences.parquet for the build's own use."""
    written = [(path, tables.items.height) for path in write_split(tables.items, folder / DATA_DIR / "items", "train")]
    for split, name in INTERACTION_SPLITS.items():
        part = tables.interactions.filter(pl.col("split") == name).drop("split", "order_key")
        written += [(path, part.height) for path in write_split(part, folder / DATA_DIR / "interactions", split)]
    write_parquet(tables.sequences, folder / "sequences.parquet")
    return [*written, (folder / "sequences.parquet", tables.sequences.height)]


def resolve_raw_dir(source, argument: str | None, raw_dir: Path | None) -> tuple[Path, bool]:
    """--raw-dir, else $DATAGEN_DATA/<source>, else the download cache, else the shipped sample."""
    sample = source.sample_dir
    if raw_dir is not None:
        raw_dir = Path(raw_dir)
        if not raw_dir.is_dir():
            raise DataError("raw folder not found", path=raw_dir)
        return raw_dir, sample is not None and raw_dir.resolve() == sample.resolve()
    if os.environ.get(DATA_ENV) and (Path(os.environ[DATA_ENV]) / source.name).is_dir():
        return Path(os.environ[DATA_ENV]) / source.name, False
    found = source.default_raw_dir(argument)
    if found is not None:
        return found, False
    if sample is not None:
        return sample, True
    raise DataError(
        f"no raw files for {source.name}",
        hint=f"Pass --raw-dir FOLDER, set ${DATA_ENV} to a folder holding {source.name}/, or run `datagen download {source.name} ...` first.",
    )
