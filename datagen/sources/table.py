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

import codecs
import json
import re
from pathlib import Path

import duckdb
import polars as pl
import yaml

from datagen.errors import DataError
from datagen.ingest.categories import category_prefixes
from datagen.ingest.ratings import rating_problem
from datagen.ingest.rawfiles import decode_strictly, read_bytes
from datagen.ingest.report import BuildReport
from datagen.ingest.timestamps import TIMESTAMP_UNITS, checked_seconds
from datagen.sources import register_source
from datagen.sources.base import NOT_ONE_VALUE_JSON_TYPES, RawCatalog, Source, untitled_items
from datagen.user_yaml import load_user_yaml

FORMATS = ("parquet", "csv", "jsonl", "json-object")
KEY = "_key"  # json-object: the object's key
WRONG_TYPE = "_wrong_type"  # jsonl: the first mapped column whose JSON value has the wrong type
# Columns that hold one value per row (an item column may hold a whole list, exploded).
SCALAR_KEYS = {"items": ("id", "title"), "interactions": ("user", "item", "timestamp", "rating")}
NOT_ONE_VALUE = "is a JSON list, object or boolean, not one value"
VALUE = "_value"  # json-object interactions: each element of the key's list

FILE_KEYS = {"path", "format", "separator", "columns", "encoding", "quote"}
STAND_IN_SEPARATOR = "\x1f"  # a longer separator ("::", ml-1m's) is read as this one, which text never holds
ITEM_KEYS = FILE_KEYS | {"id", "title", "categories", "categories_split", "categories_hierarchy", "keep_root"}
INTERACTION_KEYS = FILE_KEYS | {"user", "item", "item_split", "timestamp", "timestamp_unit", "rating", "order"}
CATALOG_KEYS = {"catalog_noun", "citation", "license", "terms"}  # text for the prompts and the card
REDISTRIBUTION = ("allowed", "forbidden")  # `redistribution:`, what the data's terms say of sharing it
TOP_KEYS = {"name", "items", "interactions", "parameters", "redistribution", *CATALOG_KEYS}
MAX_CONFIG_BYTES = 1 << 20
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
        about = {
            "catalog_noun": config.get("catalog_noun", "items"),
            "citation": config.get("citation"),
            "license": config.get("license"),
            "terms": config.get("terms", ""),
            "redistribution_forbidden": config.get("redistribution") == "forbidden",
        }
        if "items" not in config:
            return RawCatalog(
                items=untitled_items(interactions),
                interactions=interactions,
                input_files=[config_path, interactions_path],
                order=order,
                category_kind="none: an interactions-only catalog",
                untitled_because="an interactions-only table config",
                **about,
            )
        items_path = raw_dir / config["items"]["path"]
        items, hierarchy = read_items(items_path, config["items"], config_path, report)
        return RawCatalog(
            items=items,
            interactions=interactions,
            input_files=[config_path, items_path, interactions_path],
            order=order,
            category_kind=f"{hierarchy} categories from the config {config_path.name}",
            **about,
        )


def load_config(path: Path) -> dict:
    if not path.is_file():
        raise DataError("table config not found", path=path)
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise DataError(f"a table config is a few lines; this file has {path.stat().st_size:,} bytes", path=path)
    try:
        config = load_user_yaml(path.read_text(), "a table config")
    except yaml.YAMLError as error:
        raise DataError(f"not valid YAML: {error}", path=path) from None
    except DataError as error:
        raise DataError(error.message, path=path) from None
    if not isinstance(config, dict):
        raise DataError("the config must be a mapping with `items` and `interactions`", path=path)
    unknown = set(config) - TOP_KEYS
    if unknown:
        raise DataError(f"unknown key {sorted(unknown)[0]!r}", path=path, hint=f"Top-level keys: {', '.join(sorted(TOP_KEYS))}.")
    _check_parameters(config.get("parameters"), path)
    for key in CATALOG_KEYS:
        if key in config and not (isinstance(config[key], str) and config[key].strip()):
            raise DataError(f"{key} must be a non-empty string", path=path)
    if "redistribution" in config and config["redistribution"] not in REDISTRIBUTION:
        raise DataError(f"redistribution must be {' or '.join(REDISTRIBUTION)}, not {config['redistribution']!r}", path=path)
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
        if not (isinstance(body["path"], str) and body["path"].strip()):
            raise DataError(f"{section}.path must be one file's path (text), not {body['path']!r}", path=path)
        if body["format"] not in FORMATS:
            raise DataError(f"{section}.format must be one of {', '.join(FORMATS)}, not {body['format']!r}", path=path)
        if ("separator" in body or "columns" in body or "quote" in body) and body["format"] != "csv":
            raise DataError(f"{section}.separator, {section}.columns and {section}.quote are for format csv only", path=path)
        if "separator" in body and not (isinstance(body["separator"], str) and body["separator"] and STAND_IN_SEPARATOR not in body["separator"]):
            raise DataError(f'{section}.separator must be a character or a string of them (e.g. "\\t", " " or "::"), not {body["separator"]!r}', path=path)
        if "quote" in body and not (body["quote"] is None or (isinstance(body["quote"], str) and len(body["quote"].encode()) == 1)):
            raise DataError(f"{section}.quote must be one single-byte character, or null for a file whose fields are never quoted, not {body['quote']!r}", path=path)
        if "encoding" in body:
            if body["format"] == "parquet":
                raise DataError(f"{section}.encoding is for text formats; parquet stores UTF-8", path=path)
            _check_encoding(body["encoding"], f"{section}.encoding", path)
        columns = body.get("columns")
        if columns is not None and not (isinstance(columns, list) and columns and all(isinstance(c, str) and c for c in columns)):
            raise DataError(f"{section}.columns must be a list of column names (for a file without a header)", path=path)
    if config["interactions"]["order"] not in ("timestamp", "list"):
        raise DataError("interactions.order must be timestamp or list", path=path)
    if config["interactions"]["order"] == "timestamp" and not config["interactions"].get("timestamp"):
        raise DataError("interactions.order is timestamp, so interactions.timestamp must name a column", path=path)
    if config["interactions"].get("timestamp_unit", "auto") not in ("auto", *TIMESTAMP_UNITS):
        raise DataError(f"interactions.timestamp_unit must be one of {', '.join(TIMESTAMP_UNITS)}", path=path)
    if config.get("items"):
        if config["items"].get("categories_hierarchy", "set") not in ("set", "path"):
            raise DataError("items.categories_hierarchy must be set or path", path=path)
        if "keep_root" in config["items"] and (not isinstance(config["items"]["keep_root"], bool) or config["items"].get("categories_hierarchy") != "path"):
            raise DataError("items.keep_root is true or false, and only for categories_hierarchy: path", path=path)
    return config


def _check_encoding(name, key: str, path: Path) -> None:
    try:
        codecs.lookup(name)
    except (LookupError, TypeError):
        raise DataError(f"{key}: unknown encoding {name!r} (e.g. utf-8, latin-1, cp1252)", path=path) from None
    try:
        b"a".decode(name, "replace")  # a codec that is not a text encoding (rot13, base64) cannot decode bytes to text
    except LookupError:
        raise DataError(f"{key}: {name!r} is not a text encoding (e.g. utf-8, latin-1, cp1252)", path=path) from None


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
    """The file as a frame of its columns (plus `line`), whatever its format."""
    fmt = spec["format"]
    raw = read_bytes(path)
    if fmt != "parquet":
        raw = _as_utf8(raw, spec.get("encoding", "utf-8"), path, f"{section}.encoding")
    if fmt == "json-object":
        return _read_json_object(raw, path, section)
    try:
        if fmt == "parquet":
            frame = pl.read_parquet(raw)
        elif fmt == "csv":
            frame = _read_csv(raw, spec, path)
        else:
            frame = pl.read_ndjson(raw, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError) as error:
        raise DataError(f"cannot read as {fmt}: {error}", path=path, hint=f"Check {section}.format in {config_path}.") from None
    first_line = 2 if fmt == "csv" and not spec.get("columns") else 1
    frame = frame.with_row_index("line", offset=first_line)
    if fmt == "jsonl":
        frame = frame.with_columns(_first_wrong_json_type(raw, frame, spec, section).alias(WRONG_TYPE))
    return frame


def _read_csv(raw: bytes, spec: dict, path: Path) -> pl.DataFrame:
    """A csv file with its `separator` (several characters are read as one that text never holds), its `quote`
    character (null: none), and `columns` when it has no header; a row with more fields than the header names its line."""
    separator, columns = spec.get("separator", ","), spec.get("columns")
    if len(separator.encode()) > 1:
        if STAND_IN_SEPARATOR.encode() in raw:
            raise DataError("the file holds the byte 0x1f, which stands in for a separator of several characters", path=path)
        raw, separator = raw.replace(separator.encode(), STAND_IN_SEPARATOR.encode()), STAND_IN_SEPARATOR
    try:
        return pl.read_csv(raw, infer_schema=False, separator=separator, quote_char=spec.get("quote", '"'), has_header=columns is None, new_columns=columns)
    except pl.exceptions.ComputeError as error:
        if "truncate_ragged_lines" not in str(error):
            raise _unreadable_field(error, raw, spec, path) from None
        width = len(columns) if columns else raw.split(b"\n", 1)[0].count(separator.encode()) + 1
        line = next((number for number, text in enumerate(raw.split(b"\n"), 1) if text.count(separator.encode()) + 1 > width), None)
        raise DataError(
            f"a row has more fields than the {width} the {'columns' if columns else 'header'} names",
            path=path,
            line=line,
            hint="Check the separator; a quote character inside a field (quote: null) or a separator inside a title splits a row.",
        ) from None


def _unreadable_field(error: Exception, raw: bytes, spec: dict, path: Path) -> DataError:
    """Polars' parse error as one line naming the field's line (its advice is about polars' own options)."""
    text = str(error).splitlines()[0]
    field = re.search(r"could not parse `(.*?)`", text)
    at = raw.find(field.group(1).encode()) if field else -1
    quote = spec.get("quote", '"')
    opens_with_quote = bool(field and quote and field.group(1).startswith(quote))
    return DataError(
        f"cannot read as csv: {text}",
        path=path,
        line=raw.count(b"\n", 0, at) + 1 if at >= 0 else None,
        hint=f"The field opens with the quote character {quote!r} but is not a quoted field: set quote: null (or the file's own quote character)."
        if opens_with_quote
        else "Check the separator, the quote character (quote:) and the encoding.",
    )


def _first_wrong_json_type(raw: bytes, frame: pl.DataFrame, spec: dict, section: str) -> pl.Series:
    """Per row, the first mapped column whose JSON value is a list, object or boolean where one value belongs.

    Polars reads a column of mixed strings and lists as text, the lists written as JSON
    ('["a", "b"]'), which would silently become an id; DuckDB's json_type tells them apart.
    """
    names = [spec[key] for key in SCALAR_KEYS[section] if spec.get(key) and spec[key] in frame.columns and frame[spec[key]].dtype == pl.String]
    lines = pl.DataFrame({"text": [line for line in raw.decode().split("\n") if line.strip()]})
    if not names or lines.height != frame.height:
        return pl.repeat(None, frame.height, dtype=pl.String, eager=True)
    cases = " ".join(f"WHEN json_type(text, '$.\"{name}\"') IN {NOT_ONE_VALUE_JSON_TYPES} THEN '{name}'" for name in names)
    with duckdb.connect() as con:
        con.register("lines", lines)
        return con.sql(f"SELECT CASE {cases} END AS wrong FROM lines").pl()["wrong"]


def _as_utf8(raw: bytes, encoding: str, path: Path, key: str) -> bytes:
    """The bytes as UTF-8, decoded strictly: a byte the encoding cannot read is an error naming its line, and a
    UTF-8 file declared as another encoding (which would read 'é' as 'Ã©' without a word) is refused."""
    text = decode_strictly(raw, encoding, path, hint=f"Set {key} to the file's encoding (GroupLens' older files are latin-1).")
    if codecs.lookup(encoding).name == "utf-8":
        return raw
    _refuse_utf8_read_as(raw, encoding, path, key)
    return text.encode()


def _refuse_utf8_read_as(raw: bytes, encoding: str, path: Path, key: str) -> None:
    """A DataError when `raw` has non-ASCII bytes and all of them form UTF-8: the declared encoding would garble them."""
    non_ascii = re.search(rb"[\x80-\xff]", raw)
    if non_ascii is None:
        return
    first = non_ascii.start()
    try:
        as_utf8 = raw.decode("utf-8")
    except UnicodeDecodeError:
        return
    line = raw.count(b"\n", 0, first) + 1
    start = len(raw[:first].decode("utf-8"))
    shown = as_utf8[start : start + 3]
    garbled = shown.encode("utf-8").decode(encoding, "replace")
    raise DataError(
        f"the file is UTF-8, not {encoding} as {key} says: {encoding} would read {shown!r} as {garbled!r}",
        path=path,
        line=line,
        hint=f"Drop {key} (UTF-8 is the default) or set it to utf-8.",
    )


def _read_json_object(raw: bytes, path: Path, section: str) -> pl.DataFrame:
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
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
        columns = ", ".join(c for c in frame.columns if c not in ("line", WRONG_TYPE))
        raise DataError(
            f"{section}.{key} names column {name!r}, which the file does not have (its columns: {columns})",
            path=path,
            field=name,
            hint=f"Fix the mapping in {config_path}.",
        )
    if isinstance(frame[name].dtype, (pl.List, pl.Struct)) and key in SCALAR_KEYS[section] and key != "item":
        raise DataError(f"{section}.{key}: column {name!r} holds {frame[name].dtype}, not one value per row", path=path, field=name)
    return frame[name]


def read_items(path: Path, spec: dict, config_path: Path, report: BuildReport) -> tuple[pl.DataFrame, str]:
    frame = read_frame(path, spec, config_path, "items")
    ids = _column(frame, spec, "id", path, config_path, "items").cast(pl.String)
    titles = _column(frame, spec, "title", path, config_path, "items").cast(pl.String)
    hierarchy = spec.get("categories_hierarchy", "set")
    if spec.get("categories"):
        values = raw_values = _column(frame, spec, "categories", path, config_path, "items")
        if values.dtype == pl.String:
            separator = spec.get("categories_split")
            if not separator:
                raise DataError(
                    f"column {spec['categories']!r} holds strings: set items.categories_split to the separator",
                    path=config_path,
                )
            values = split_categories(values, separator)
        elif not isinstance(values.dtype, pl.List) or _list_depth(values.dtype) > 2:
            raise DataError(f"categories column {spec['categories']!r} is {values.dtype}, not a string, a list or a list of paths", path=path)
        if _list_depth(values.dtype) == 2:  # a list of paths, as Amazon's 2014 files have: [["Games", "PC"], ["Games", "Mac"]]
            values, cut = categories_of_paths(values.cast(pl.List(pl.List(pl.String))), hierarchy, spec.get("keep_root", False))
        else:
            values = values.cast(pl.List(pl.String))
            if hierarchy == "path":
                values, cut = category_prefixes(values if spec.get("keep_root") else values.list.slice(1))
        if hierarchy == "path":
            report.counts["category_paths_cut_at_junk_level"] = cut
        if raw_values.dtype == pl.String:
            _warn_when_the_split_loses_most(raw_values, values, spec, path, report)
    else:
        values = pl.Series([[]] * frame.height, dtype=pl.List(pl.String))
    items = pl.DataFrame({"raw_item_id": ids, "title": titles, "categories": values})
    if WRONG_TYPE in frame.columns:
        wrong = frame[WRONG_TYPE].is_not_null()
        bad = frame.filter(wrong).select(pl.col("line").cast(pl.UInt32), pl.col(WRONG_TYPE).alias("field"), pl.lit(NOT_ONE_VALUE).alias("reason"))
        report.skip_bad_rows(bad, total=frame.height, path=path, what="items")
        items = items.filter(~wrong)
    return items, hierarchy


def _list_depth(dtype) -> int:
    depth = 0
    while isinstance(dtype, pl.List):
        dtype, depth = dtype.inner, depth + 1
    return depth


def categories_of_paths(paths: pl.Series, hierarchy: str, keep_root: bool) -> tuple[pl.Series, int]:
    """Each item's categories from its several paths: with `path`, the prefixes of every path (root dropped unless
    kept); with `set`, every label of every path. Repeats dropped, first occurrence kept; also how many paths were cut."""
    frame = pl.DataFrame({"row": range(len(paths)), "path": paths}).explode("path")
    cut = 0
    if hierarchy == "path":
        labels, cut = category_prefixes(frame["path"] if keep_root else frame["path"].list.slice(1))
    else:
        labels = frame["path"].fill_null(pl.lit([], pl.List(pl.String)))
    per_row = (
        frame.select("row").with_columns(label=labels).explode("label").drop_nulls("label")
        .unique(["row", "label"], keep="first", maintain_order=True).group_by("row", maintain_order=True).agg("label")
    )  # fmt: skip
    every_row = pl.DataFrame({"row": range(len(paths))}).join(per_row, on="row", how="left").sort("row")
    return every_row["label"].fill_null(pl.lit([], pl.List(pl.String))).alias(paths.name), cut


SEPARATORS_TRIED = (",", ", ", "|", ";", " > ", "/")  # when a split leaves most items without a category


def _categories_left(joined: pl.Series, separator: str, spec: dict) -> pl.Series:
    split = split_categories(joined, separator)
    if spec.get("categories_hierarchy", "set") == "path":
        split, _ = category_prefixes(split if spec.get("keep_root") else split.list.slice(1))
    return split


def _warn_when_the_split_loses_most(joined: pl.Series, categories: pl.Series, spec: dict, path: Path, report: BuildReport) -> None:
    """A warning when most items with a non-empty categories text end with no category, naming a separator that
    keeps more of them (LC-Rec's ", "-joined paths read with `categories_split: ","` lose nearly all)."""
    given = joined.is_not_null() & (joined.str.strip_chars() != "")
    lost = int((given & (categories.list.len() == 0)).sum())
    if not lost or lost * 2 <= int(given.sum()):
        return
    fits = {separator: int((given & (_categories_left(joined, separator, spec).list.len() == 0)).sum()) for separator in SEPARATORS_TRIED}
    best = min(fits, key=fits.get)
    advice = f"; categories_split: {best!r} leaves {fits[best]:,}" if fits[best] < lost else ""
    report.warnings.append(
        f"{path.name}: {lost:,} of the {int(given.sum()):,} items with a {spec['categories']!r} text end with no category under "
        f"items.categories_split {spec.get('categories_split')!r} and categories_hierarchy {spec.get('categories_hierarchy', 'set')!r}{advice}"
    )


def split_categories(values: pl.Series, separator: str) -> pl.Series:
    """Split joined category names; with "," a comma followed by a space stays in the name.

    Amazon's names hold ", " ("Tapes, Adhesives & Sealants") while processed
    files join names with a bare "," (LC-Rec: "Industrial & Scientific,Tapes,
    Adhesives & Sealants,Adhesive Tapes"), so only a bare comma separates.
    """
    if separator != ",":
        return values.str.split(separator)
    kept = "\x00"  # no category name holds a NUL
    return values.str.replace_all(", ", kept, literal=True).str.split(",").list.eval(pl.element().str.replace_all(kept, ", ", literal=True))


def read_interactions(path: Path, spec: dict, config_path: Path, report: BuildReport) -> tuple[pl.DataFrame, str]:
    frame = read_frame(path, spec, config_path, "interactions")
    frame = _one_item_per_row(frame, spec, path, config_path)
    users = _column(frame, spec, "user", path, config_path, "interactions").cast(pl.String)
    items = _column(frame, spec, "item", path, config_path, "interactions").cast(pl.String)
    time_problems = pl.Series([None] * frame.height, dtype=pl.String)
    if spec.get("timestamp"):
        values = _column(frame, spec, "timestamp", path, config_path, "interactions")
        unit = spec.get("timestamp_unit", "auto")
        if unit == "auto":
            unit = "iso" if values.dtype == pl.String and values.cast(pl.Float64, strict=False).is_null().sum() > values.is_null().sum() else "s"
        timestamps, time_problems = checked_seconds(values, unit, path=path, field=spec["timestamp"], unit_setting="interactions.timestamp_unit in the config")
    else:
        timestamps = pl.Series([None] * frame.height, dtype=pl.Int64)
    raw_ratings = _column(frame, spec, "rating", path, config_path, "interactions") if spec.get("rating") else pl.Series([None] * frame.height)
    ratings = raw_ratings.cast(pl.Float64, strict=False)
    wrong_types = frame[WRONG_TYPE] if WRONG_TYPE in frame.columns else pl.repeat(None, frame.height, dtype=pl.String, eager=True)
    parsed = pl.DataFrame(
        {"line": frame["line"], "raw_user_id": users, "raw_item_id": items, "timestamp": timestamps, "rating": ratings,
         "time_problem": time_problems, "wrong_type": wrong_types, "rating_not_a_number": raw_ratings.is_not_null() & ratings.is_null()}
    ).with_columns(rating_not_finite=rating_problem(pl.col("rating")).is_not_null())  # fmt: skip
    problem = (
        pl.when(pl.col("wrong_type").is_not_null()).then("wrong_type")
        .when(pl.col("raw_user_id").is_null() | (pl.col("raw_user_id") == "")).then(pl.lit(spec["user"]))
        .when(pl.col("raw_item_id").is_null() | (pl.col("raw_item_id") == "")).then(pl.lit(spec["item"]))
    )  # fmt: skip
    reason = (
        pl.when(pl.col("wrong_type").is_not_null()).then(pl.lit(NOT_ONE_VALUE))
        .when(pl.col("rating_not_a_number") & (pl.col("field") == spec.get("rating", ""))).then(pl.lit("is not a number"))
        .when(pl.col("rating_not_finite") & (pl.col("field") == spec.get("rating", ""))).then(pl.lit("is not a finite number"))
        .otherwise(pl.format("missing or invalid {}", pl.col("field")))
    )  # fmt: skip
    if spec.get("timestamp"):
        problem = problem.when(pl.col("time_problem").is_not_null()).then(pl.lit(spec["timestamp"]))
        reason = pl.when(pl.col("wrong_type").is_null()).then(pl.coalesce("time_problem", reason)).otherwise(reason)
    if spec["order"] == "timestamp":
        problem = problem.when(pl.col("timestamp").is_null()).then(pl.lit(spec["timestamp"]))
    if spec.get("rating"):
        problem = problem.when(pl.col("rating_not_a_number") | pl.col("rating_not_finite")).then(pl.lit(spec["rating"]))
    parsed = parsed.with_columns(problem.alias("field"))
    bad = parsed.filter(pl.col("field").is_not_null()).select(pl.col("line").cast(pl.UInt32), "field", reason.alias("reason"))
    report.skip_bad_rows(bad, total=parsed.height, path=path, what="interactions")
    kept = parsed.filter(pl.col("field").is_null()).with_columns(pl.int_range(pl.len()).cast(pl.Int64).alias("order_key"))
    return kept.drop("line", "field", "time_problem", "wrong_type", "rating_not_a_number", "rating_not_finite"), spec["order"]


def _one_item_per_row(frame: pl.DataFrame, spec: dict, path: Path, config_path: Path) -> pl.DataFrame:
    """A list-valued item column (a parquet/json list, or text split by `item_split`) as one row per item.

    A timestamp column that is a list too is exploded alongside, element by element.
    """
    column = _column(frame, spec, "item", path, config_path, "interactions")
    if spec.get("item_split"):
        if column.dtype != pl.String:
            raise DataError(f"interactions.item_split is set but column {spec['item']!r} is {column.dtype}, not text", path=config_path)
        frame = frame.with_columns(column.str.split(spec["item_split"]).list.eval(pl.element().filter(pl.element() != "")))
    elif not isinstance(column.dtype, pl.List):
        return frame
    together = [spec["item"]]
    stamp = spec.get("timestamp")
    if stamp and stamp in frame.columns:
        if spec.get("item_split") and frame[stamp].dtype == pl.String:
            frame = frame.with_columns(frame[stamp].str.split(spec["item_split"]).list.eval(pl.element().filter(pl.element() != "")))
        if isinstance(frame[stamp].dtype, pl.List):
            uneven = frame.filter(pl.col(stamp).list.len() != pl.col(spec["item"]).list.len())
            if uneven.height:
                raise DataError(
                    f"the {stamp!r} list and the {spec['item']!r} list differ in length",
                    path=path,
                    line=int(uneven["line"][0]),
                    field=stamp,
                )
            together.append(stamp)
    return frame.explode(together)
