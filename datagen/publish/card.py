"""The dataset card (README.md): YAML metadata for the Hub, then a body for readers.

Generated from manifest.json, the reports and the data files, never edited by
hand; `datagen card FOLDER` writes it again (after a text or template change).

    >>> write_card(Path("build/steam"), manifest)  # doctest: +SKIP

The YAML header is written with `datasets`' and `huggingface_hub`'s own classes
(`DatasetInfosDict`, `MetadataConfigs`, `DatasetCardData`), as `push_to_hub` does.
The body is `card.md.jinja`, rendered in Jinja's sandbox with strict undefined.
"""

from __future__ import annotations

import json
import re
from importlib.resources import files
from pathlib import Path

import jinja2
import polars as pl
import pyarrow.parquet as pq
import yaml
from jinja2.sandbox import SandboxedEnvironment

from datagen.layout import family_reports, first_rows_by_task, read_split, skipped_per_template
from datagen.output import write_text

CARD_TEMPLATE = "card.md.jinja"
SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                   (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]  # fmt: skip
CANONICAL_ABOUT = {
    "items": "The item catalog: dense item_id, the source's id, title, categories",
    "interactions": "User-item interactions, split leave-one-out: each user's last item is test, the one before validation",
}
CANONICAL_CONFIGS = tuple(CANONICAL_ABOUT)
FAMILY_CONFIGS = ("controllable", "recknowledge", "instructrec")  # the instruction rows, which TRL trains on
LABEL_RANKERS = {"sasrec": "the SASRec teacher", "cooccurrence": "the co-occurrence baseline"}  # by the teacher report's label_source
TOP_LABELLED = 10  # the limitations' measure of popularity: the share of answer slots the 10 most named items fill
# Where each source's terms of use are stated, for the header's license_link when the licence is `other`.
TERMS_PAGES = {
    "steam": "https://cseweb.ucsd.edu/~jmcauley/datasets.html",
    "amazon": "https://cseweb.ucsd.edu/~jmcauley/datasets.html",
    "movielens": "https://grouplens.org/datasets/movielens/",
}
TAGS = ["recommendation", "recommender-systems", "instruction-tuning", "sequential-recommendation", "datagen"]
SAMPLE_SPLITS = ("test", "train", "validation")

ENVIRONMENT = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True)
ENVIRONMENT.filters["n"] = lambda value: f"{value:,}" if isinstance(value, int) else value
ENVIRONMENT.filters["f"] = lambda value, digits=4: "" if value is None else f"{value:.{digits}f}"
ENVIRONMENT.filters["skipped_per_template"] = skipped_per_template


def size_category(rows: int) -> str:
    return next((name for limit, name in SIZE_CATEGORIES if rows < limit), "n>1B")


def card_metadata(folder: Path, manifest: dict):
    """The YAML header: license, task categories, size, tags, configs and dataset_info, as push_to_hub writes them."""
    from datasets import DatasetInfo, Features
    from datasets.info import DatasetInfosDict
    from datasets.splits import SplitDict, SplitInfo
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCardData

    configs = manifest["configs"]
    task_configs = [name for name in configs if name not in CANONICAL_CONFIGS]
    default = default_config(manifest)
    metadata = DatasetCardData(
        pretty_name=pretty_name(manifest),
        **license_fields(manifest),
        language=["en"],
        task_categories=["text-generation"],
        annotations_creators=["machine-generated" if task_configs else "no-annotation"],
        source_datasets=[f"extended|{manifest['source']['name']}"],
        size_categories=[size_category(sum(split["rows"] for name in (task_configs or ["interactions"]) for split in configs[name].values()))],
        tags=[*TAGS, manifest["source"]["name"]],
    )
    infos = {}
    for name, splits in configs.items():
        first = folder / next(iter(splits.values()))["files"][0]
        features = Features.from_arrow_schema(pq.read_schema(first))
        split_infos, download, in_memory = {}, 0, 0
        for split, entry in splits.items():
            num_bytes = sum(uncompressed_bytes(folder / path) for path in entry["files"])
            split_infos[split] = SplitInfo(split, num_bytes=num_bytes, num_examples=entry["rows"])
            download += sum(manifest["files"][path]["bytes"] for path in entry["files"])
            in_memory += num_bytes
        infos[name] = DatasetInfo(features=features, config_name=name, splits=SplitDict(split_infos), download_size=download, dataset_size=in_memory)
    DatasetInfosDict(infos).to_dataset_card_data(metadata)
    MetadataConfigs(
        {name: {"data_files": [{"split": split, "path": f"data/{name}/{split}-*"} for split in splits], **({"default": True} if name == default else {})} for name, splits in configs.items()}
    ).to_dataset_card_data(metadata)
    return metadata


def uncompressed_bytes(path: Path) -> int:
    """The data's size before compression (the parquet row groups' total_byte_size), standing in
    for the in-memory size that push_to_hub reports as num_bytes, without reading the data."""
    metadata = pq.read_metadata(path)
    return sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))


def default_config(manifest: dict) -> str:
    """The first task config (what most users load), else the first config."""
    names = list(manifest["configs"])
    return next((name for name in names if name not in CANONICAL_CONFIGS), names[0])


def type_name(arrow_type) -> str:
    """A column's type as a reader says it: `int32`, `string`, `list of int32`, `list of {role, content}`."""
    import pyarrow as pa

    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"list of {type_name(arrow_type.value_type)}"
    if pa.types.is_struct(arrow_type):
        return "{" + ", ".join(field.name for field in arrow_type) + "}"
    return {"large_string": "string", "double": "float64", "float": "float32"}.get(str(arrow_type), str(arrow_type))


def data_fields(folder: Path, manifest: dict) -> list[dict]:
    """Each config's columns with their type and what they hold (fields.yaml)."""
    about = yaml.safe_load(files("datagen.publish").joinpath("fields.yaml").read_text())
    found = []
    for config, splits in manifest["configs"].items():
        schema = pq.read_schema(folder / next(iter(splits.values()))["files"][0])
        meanings = {**about["common"], **about.get(config, {})}
        found.append({"config": config, "fields": [{"name": field.name, "type": type_name(field.type), "about": meanings.get(field.name, "")} for field in schema]})
    return found


def card_license(manifest: dict) -> str:
    """`datagen card --license`, else the source's own licence, else "other" (the text then says to check the terms)."""
    return manifest.get("card", {}).get("license") or manifest["source"].get("license") or "other"


def most_common_category(folder: Path) -> str | None:
    """The category most items carry (ties to the first by name): the card's example of a control."""
    names = read_split(folder, "items", "train", columns=["categories"])["categories"].explode().drop_nulls()
    if names.is_empty():
        return None
    counts = names.value_counts().sort(["count", "categories"], descending=[True, False])
    return counts["categories"][0]


def pretty_name(manifest: dict) -> str:
    """What the folder holds: instructions, or (no family built) the canonical tables and the teacher."""
    if any(name in FAMILY_CONFIGS for name in manifest["configs"]):
        return f"{manifest['name']} instructions for LLM recommenders (datagen)"
    return f"{manifest['name']} interactions and items for recommenders (datagen)"


def read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def task_counts(folder: Path, manifest: dict) -> list[dict]:
    """Rows per config, task, template and split."""
    counts: dict[tuple[str, str, str], dict[str, int]] = {}
    for config, splits in manifest["configs"].items():
        for split in splits:
            columns = pl.read_parquet_schema(folder / splits[split]["files"][0]).names()
            if "template_id" not in columns:
                break
            frame = read_split(folder, config, split, columns=["task", "template_id"]).with_columns(pl.col("template_id").fill_null(""))
            for task, template_id, n in frame.group_by("task", "template_id").len().iter_rows():
                counts.setdefault((config, task, template_id), {})[split] = n
    return [{"config": c, "task": t, "template_id": tid, "rows": rows} for (c, t, tid), rows in sorted(counts.items())]


def sample_rows(folder: Path, manifest: dict) -> list[dict]:
    """The first row of each task (test first, then train, then validation), with its messages."""
    samples, seen = [], set()
    for config, splits in manifest["configs"].items():
        for split in SAMPLE_SPLITS:
            if split not in splits or "task" not in pl.read_parquet_schema(folder / splits[split]["files"][0]).names():
                continue
            firsts = first_rows_by_task(folder, config, split)
            for task in sorted(firsts):
                if (config, task) in seen:
                    continue
                seen.add((config, task))
                row = firsts[task]
                facts = {key: value for key, value in row.items() if key not in ("messages", "prompt", "completion") and value not in (None, [])}
                samples.append({"config": config, "split": split, "task": task, "facts": facts, "messages": row["messages"]})
    return samples


def label_concentration(folder: Path, manifest: dict) -> dict | None:
    """How much of the first family config's train answers the TOP_LABELLED most named items fill."""
    configs = manifest["configs"]
    with_labels = [name for name in FAMILY_CONFIGS if "train" in configs.get(name, {}) and "label_item_ids" in pq.read_schema(folder / configs[name]["train"]["files"][0]).names]
    config = next(iter(with_labels), None)
    if config is None:
        return None
    labels = read_split(folder, config, "train", columns=["label_item_ids"])["label_item_ids"].explode().drop_nulls()
    if labels.is_empty():
        return None
    counts = labels.value_counts(sort=True)["count"]
    return {"config": config, "top": TOP_LABELLED, "top_share": 100.0 * counts.head(TOP_LABELLED).sum() / len(labels), "distinct": len(counts)}


def templates_used(folder: Path) -> list[dict]:
    """The prompt templates copied into the repository's templates/ folder."""
    found = []
    for path in sorted((folder / "templates").rglob("*")):
        if path.suffix in (".jinja", ".yaml"):
            found.append({"path": path.relative_to(folder).as_posix(), "text": path.read_text(encoding="utf-8").strip()})
    return found


def paper_links(bibtex_entries: list[str]) -> list[tuple[str, str]]:
    """(title, https://arxiv.org/abs/ID) of each cited work on arXiv: the Hub links a dataset to the papers its card names so."""
    links = []
    for entry in bibtex_entries:
        arxiv = re.search(r"arXiv:(\d{4}\.\d{4,5})|eprint\s*=\s*\{(\d{4}\.\d{4,5})\}", entry)
        title = re.search(r"title\s*=\s*\{(.+?)\},?\n", entry)
        if arxiv and title:
            links.append((title.group(1), f"https://arxiv.org/abs/{arxiv.group(1) or arxiv.group(2)}"))
    return links


def license_fields(manifest: dict) -> dict[str, str]:
    """The header's licence; with `other`, the `license_name` and `license_link` the Hub asks for (where the source's terms are)."""
    license_id = card_license(manifest)
    if license_id != "other":
        return {"license": license_id}
    source = manifest["source"]["name"]
    link = TERMS_PAGES.get(source)  # a source without a page of terms gets none (a link to the card itself says nothing)
    return {"license": "other", "license_name": f"{source}-data-terms", **({"license_link": link} if link else {})}


def citations(manifest: dict, families: dict[str, dict]) -> list[str]:
    bibtex = yaml.safe_load(files("datagen.publish").joinpath("citations.yaml").read_text())
    keys = [key for report in families.values() for key in report["card"]["citations"]]
    keys += manifest["source"].get("citation_keys", [])
    keys += ["kang2018"] if "teacher/report.json" in manifest["files"] else []
    own = manifest["source"].get("citation")
    entries = [bibtex[key].strip() for key in dict.fromkeys(keys)] + ([own.strip()] if own else [])
    by_key = {}  # a user's own BibTeX may repeat a shipped entry's key: one entry a key, the first kept
    for entry in entries:
        key = re.match(r"@\w+\{([^,]+),", entry)
        by_key.setdefault(key.group(1).strip() if key else entry, entry)
    return list(by_key.values())


def card_body(folder: Path, manifest: dict, plots: dict[str, str], task_rows: list[dict]) -> str:
    template = ENVIRONMENT.from_string(files("datagen.publish").joinpath(CARD_TEMPLATE).read_text())
    card = manifest.get("card", {})
    families = family_reports(folder)
    cited = citations(manifest, families)
    label_source = manifest.get("task_settings", {}).get("teacher", {}).get("label_source", "sasrec")
    shared = {
        "manifest": manifest,
        "plots": plots,
        "task_counts": task_rows,
        "catalog_noun": manifest["source"].get("catalog_noun", "items"),
        "label_ranker": LABEL_RANKERS.get(label_source, label_source),
    }
    sections = [family_section(name, report, shared) for name, report in families.items()]
    teacher = read_json(folder / "teacher" / "report.json")
    return template.render(
        **shared,
        pretty_name=pretty_name(manifest),
        repo=card.get("repo") or "ORG/NAME",
        license=card_license(manifest),
        example_category=most_common_category(folder),
        configs=manifest["configs"],
        default_config=default_config(manifest),
        config_about={**CANONICAL_ABOUT, **{config: about for report in families.values() for config, about in report["card"]["configs"].items()}},
        family_sections=sections,
        teacher=teacher,
        teacher_test=(teacher or {}).get("evaluation", {}).get("full", {}).get("test", {}).get("SASRec"),
        samples=sample_rows(folder, manifest),
        templates=templates_used(folder),
        data_fields=data_fields(folder, manifest),
        family_configs=[name for name in manifest["configs"] if name in FAMILY_CONFIGS],
        label_concentration=label_concentration(folder, manifest),
        citations=cited,
        papers=paper_links(cited),
        json=lambda value, indent=None: json.dumps(value, ensure_ascii=False, indent=indent),
    )


def family_section(name: str, report: dict, shared: dict) -> str:
    """The card's section on one family's config, from the card.md.jinja its package ships, given its report as `name`."""
    section = ENVIRONMENT.from_string(files(report["card"]["package"]).joinpath(CARD_TEMPLATE).read_text())
    return section.render(**shared, **{name: report}).strip()


def write_card(folder: Path, manifest: dict) -> Path:
    """Draw the plots and write README.md (atomically)."""
    from datagen.publish.plots import write_plots  # matplotlib: imported when a card is drawn, not with the CLI

    task_rows = task_counts(folder, manifest)
    plots = write_plots(folder, task_rows)
    text = f"---\n{card_metadata(folder, manifest).to_yaml()}\n---\n\n{card_body(folder, manifest, plots, task_rows).strip()}\n"
    path = folder / "README.md"
    write_text(text, path)
    return path
