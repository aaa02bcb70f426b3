"""Any catalog, described by a small YAML file: no Python needed.

    $ datagen build table:examples/scientific.yaml --raw-dir data/catalogs/scientific

The config names two files (items and interactions), their format (parquet,
csv, jsonl, or json-object: one JSON object keyed by id), which column holds
what, how categories are split, and whether a user's order comes from a
timestamp or from list order. See examples/scientific.yaml for every key.
Paths are relative to --raw-dir, or to the config's folder without one.

A csv file may use another `separator` and have no header (`columns` names
them). Without an `items` section the catalog is interactions only: items have
no titles, so the build can train and evaluate the teacher but no family that
names items (examples/amazon-games-sasrec.yaml). `parameters` sets the build's
defaults for this catalog (user_core, item_core, max_title_tokens,
max_history); --preset and the command-line flags still override them.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import yaml

from datagen.categories import category_prefixes
from datagen.errors import DataError
from datagen.rawfiles import read_bytes
from datagen.report import BuildReport
from datagen.sources import register_source
from datagen.sources.base import RawCatalog, Source

FORMATS = ("parquet", "csv", "jsonl", "json-object")
KEY = "_key"  # json-object: the object's key
VALUE = "_value"  # json-object interactions: each element of the key's list

FILE_KEYS = {"path", "format", "separator", "columns"}
ITEM_KEYS = FILE_KEYS | {"id", "title", "categories", "categories_split", "categories_hierarchy"}
INTERACTION_KEYS = FILE_KEYS | {"user", "item", "timestamp", "rating", "order"}
PARAMETER_KEYS = {"user_core": 1, "item_core": 1, "max_title_tokens": 1, "max_history": 1}  # name: least value


@register_source
class TableSource(Source):
    name = "table"
    summary = "any catalog described by a YAML config (parquet, csv, jsonl or json-object files)"
    argument = "CONFIG.yaml, e.g. table:examples/scientific.yaml"

    def default_raw_dir(self, argument: str | None) -> Path | None:
        return Path(argument).parent if argument else None

    def dataset_name(self, argument: str | None) -> str:
        if not argument:
            return self.name
        return str(load_config(Path(argument)).get("name") or Path(argument).stem)

    def default_parameters(self, argument: str | None) -> dict:
        return dict(load_config(Path(argument)).get("parameters") or {}) if argument else {}

    def load(self, raw_dir: Path, argument: str | None, options: dict[str, str], report: BuildReport) -> RawCatalog:
        self.resolve_options(options)
        config_path = Path(argument)
        config = load_config(config_path)
        interactions_path = raw_dir / config["interactions"]["path"]
        interactions, order = read_interactions(interactions_path, config["interactions"], config_path, report)
        if "items" not in config:
            return RawCatalog(
                items=untitled_items(interactions),
                interactions=interactions,
                input_files=[config_path, interactions_path],
                order=order,
                category_kind="none: an interactions-only catalog",
                has_titles=False,
            )
        items_path = raw_dir / config["items"]["path"]
        items, hierarchy = read_items(items_path, config["items"], config_path, report)
        return RawCatalog(
            items=items,
            interactions=interactions,
            input_files=[config_path, items_path, interactions_path],
            order=order,
            category_kind=f"{hierarchy} categories from the config {config_path.name}",
        )


def untitled_items(interactions: pl.DataFrame) -> pl.DataFrame:
    """The items of an interactions-only catalog: every id seen, no title, no categories."""
    ids = interactions["raw_item_id"].unique().sort()
    return pl.DataFrame(
        {"raw_item_id": ids, "title": pl.Series([None] * len(ids), dtype=pl.String), "categories": pl.Series([[]] * len(ids), dtype=pl.List(pl.String))}
    )


def load_config(path: Path) -> dict:
    if not path.is_file():
        raise DataError("table config not found", path=path)
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise DataError(f"not valid YAML: {error}", path=path) from None
    if not isinstance(config, dict):
        raise DataError("the config must be a mapping with `items` and `interactions`", path=path)
    unknown = set(config) - {"name", "items", "interactions", "parameters"}
    if unknown:
        raise DataError(f"unknown key {sorted(unknown)[0]!r}", path=path, hint="Top-level keys: name, items, interactions, parameters.")
    _check_parameters(config.get("parameters"), path)
    for section, allowed, required in (
        ("items", ITEM_KEYS, ("path", "format", "id", "title")),
        ("interactions", INTERACTION_KEYS, ("path", "format", "user", "item", "order")),
    ):
        body = config.get(section)
        if body is None and section == "items":
            continue  # an interactions-only catalog
        if not isinstance(body, dict):
            raise DataError(f"missing section {section!r}", path=path)
        for key in sorted(set(body) - allowed):
            raise DataError(f"unknown key {section}.{key}", path=path, hint=f"{section} takes: {', '.join(sorted(allowed))}.")
        for key in required:
            if body.get(key) is None:
                raise DataError(f"{section}.{key} is required", path=path)
        if body["format"] not in FORMATS:
            raise DataError(f"{section}.format must be one of {', '.join(FORMATS)}, not {body['format']!r}", path=path)
        if ("separator" in body or "columns" in body) and body["format"] != "csv":
            raise DataError(f"{section}.separator and {section}.columns are for format csv only", path=path)
        if "separator" in body and not (isinstance(body["separator"], str) and len(body["separator"].encode()) == 1):
            raise DataError(f"{section}.separator must be one single-byte character (e.g. \"\\t\" or \" \"), not {body['separator']!r}", path=path)
        columns = body.get("columns")
        if columns is not None and not (isinstance(columns, list) and columns and all(isinstance(c, str) and c for c in columns)):
            raise DataError(f"{section}.columns must be a list of column names (for a file without a header)", path=path)
    if config["interactions"]["order"] not in ("timestamp", "list"):
        raise DataError("interactions.order must be timestamp or list", path=path)
    if config["interactions"]["order"] == "timestamp" and not config["interactions"].get("timestamp"):
        raise DataError("interactions.order is timestamp, so interactions.timestamp must name a column", path=path)
    if config.get("items") and config["items"].get("categories_hierarchy", "set") not in ("set", "path"):
        raise DataError("items.categories_hierarchy must be set or path", path=path)
    return config


def _check_parameters(parameters, path: Path) -> None:
    if parameters is None:
        return
    if not isinstance(parameters, dict):
        raise DataError("parameters must be a mapping, e.g. {user_core: 3, item_core: 1}", path=path)
    for key, value in parameters.items():
        if key not in PARAMETER_KEYS:
            raise DataError(f"unknown key parameters.{key}", path=path, hint=f"parameters takes: {', '.join(PARAMETER_KEYS)}.")
        if not isinstance(value, int) or isinstance(value, bool) or value < PARAMETER_KEYS[key]:
            raise DataError(f"parameters.{key} must be a whole number >= {PARAMETER_KEYS[key]}, not {value!r}", path=path)


def read_frame(path: Path, spec: dict, config_path: Path, section: str) -> pl.DataFrame:
    """The file as a frame of string columns (plus `line`), whatever its format."""
    fmt = spec["format"]
    if fmt == "json-object":
        return _read_json_object(path, spec, section)
    raw = read_bytes(path)
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(raw)
        elif fmt == "csv":
            columns = spec.get("columns")
            frame = pl.read_csv(raw, infer_schema=False, separator=spec.get("separator", ","), has_header=columns is None, new_columns=columns)
        else:
            frame = pl.read_ndjson(raw, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise DataError(f"cannot read as {fmt}: {error}", path=path, hint=f"Check {section}.format in {config_path}.") from None
    first_line = 2 if fmt == "csv" and not spec.get("columns") else 1
    return frame.with_row_index("line", offset=first_line)


def _read_json_object(path: Path, spec: dict, section: str) -> pl.DataFrame:
    try:
        data = json.loads(read_bytes(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"not valid JSON ({error})", path=path) from None
    if not isinstance(data, dict):
        raise DataError("json-object format needs one JSON object keyed by id", path=path)
    keys = list(data)
    if section == "interactions":
        values = list(data.values())
        for key, value in zip(keys, values):
            if not isinstance(value, list):
                raise DataError("json-object interactions map each user to a list of item ids", path=path, line=key, field=KEY)
        frame = pl.DataFrame({KEY: keys, VALUE: [[str(item) for item in value] for value in values]})
        return frame.explode(VALUE).with_columns(pl.int_range(pl.len()).alias("line"))
    records = []
    for key, value in data.items():
        if not isinstance(value, dict):
            raise DataError("json-object items map each id to an object of fields", path=path, line=key, field=KEY)
        records.append(value)
    frame = pl.DataFrame(records, infer_schema_length=None).with_columns(pl.Series(KEY, keys))
    return frame.with_columns(pl.int_range(pl.len()).alias("line"))


def _column(frame: pl.DataFrame, spec: dict, key: str, path: Path, config_path: Path, section: str) -> pl.Series:
    name = spec[key]
    if name not in frame.columns:
        columns = ", ".join(c for c in frame.columns if c != "line")
        raise DataError(
            f"{section}.{key} names column {name!r}, which the file does not have (its columns: {columns})",
            path=path,
            field=name,
            hint=f"Fix the mapping in {config_path}.",
        )
    return frame[name]


def read_items(path: Path, spec: dict, config_path: Path, report: BuildReport) -> tuple[pl.DataFrame, str]:
    frame = read_frame(path, spec, config_path, "items")
    ids = _column(frame, spec, "id", path, config_path, "items").cast(pl.String)
    titles = _column(frame, spec, "title", path, config_path, "items").cast(pl.String)
    hierarchy = spec.get("categories_hierarchy", "set")
    if spec.get("categories"):
        values = _column(frame, spec, "categories", path, config_path, "items")
        if values.dtype == pl.String:
            separator = spec.get("categories_split")
            if not separator:
                raise DataError(
                    f"column {spec['categories']!r} holds strings: set items.categories_split to the separator",
                    path=config_path,
                )
            values = values.str.split(separator)
        elif not isinstance(values.dtype, pl.List):
            raise DataError(f"categories column {spec['categories']!r} is {values.dtype}, not a list or string", path=path)
        values = values.cast(pl.List(pl.String))
        if hierarchy == "path":
            values, cut = category_prefixes(values.list.slice(1))
            report.counts["category_paths_cut_at_junk_level"] = cut
    else:
        values = pl.Series([[]] * frame.height, dtype=pl.List(pl.String))
    return pl.DataFrame({"raw_item_id": ids, "title": titles, "categories": values}), hierarchy


def read_interactions(path: Path, spec: dict, config_path: Path, report: BuildReport) -> tuple[pl.DataFrame, str]:
    frame = read_frame(path, spec, config_path, "interactions")
    users = _column(frame, spec, "user", path, config_path, "interactions").cast(pl.String)
    items = _column(frame, spec, "item", path, config_path, "interactions").cast(pl.String)
    if spec.get("timestamp"):
        timestamps = _to_seconds(_column(frame, spec, "timestamp", path, config_path, "interactions"), path)
    else:
        timestamps = pl.Series([None] * frame.height, dtype=pl.Int64)
    ratings = (
        _column(frame, spec, "rating", path, config_path, "interactions").cast(pl.Float64, strict=False)
        if spec.get("rating")
        else pl.Series([None] * frame.height, dtype=pl.Float64)
    )
    parsed = pl.DataFrame(
        {"line": frame["line"], "raw_user_id": users, "raw_item_id": items, "timestamp": timestamps, "rating": ratings}
    )
    problem = (
        pl.when(pl.col("raw_user_id").is_null() | (pl.col("raw_user_id") == "")).then(pl.lit(spec["user"]))
        .when(pl.col("raw_item_id").is_null() | (pl.col("raw_item_id") == "")).then(pl.lit(spec["item"]))
    )
    if spec["order"] == "timestamp":
        problem = problem.when(pl.col("timestamp").is_null()).then(pl.lit(spec["timestamp"]))
    parsed = parsed.with_columns(problem.alias("field"))
    bad = parsed.filter(pl.col("field").is_not_null()).select(
        pl.col("line").cast(pl.UInt32), "field", pl.format("missing or invalid {}", pl.col("field")).alias("reason")
    )
    report.skip_bad_rows(bad, total=parsed.height, path=path, what="interactions")
    kept = parsed.filter(pl.col("field").is_null()).with_columns(pl.col("line").cast(pl.Int64).alias("order_key"))
    return kept.drop("line", "field"), spec["order"]


def _to_seconds(values: pl.Series, path: Path) -> pl.Series:
    """Unix seconds from integer seconds or from ISO date/datetime strings."""
    if values.dtype.is_numeric():
        return values.cast(pl.Int64, strict=False)
    as_text = values.cast(pl.String)
    as_number = as_text.cast(pl.Int64, strict=False)
    dates = as_number.is_null() & as_text.is_not_null()
    if not dates.any():
        return as_number
    try:
        as_time = as_text.str.to_datetime(strict=False, time_unit="ms").dt.epoch("s")
    except pl.exceptions.ComputeError:
        raise DataError(
            f"timestamp {as_text.filter(dates)[0]!r} is neither unix seconds nor an ISO date/datetime",
            path=path,
            field=values.name,
        ) from None
    return pl.select(pl.coalesce(as_number, as_time)).to_series()
