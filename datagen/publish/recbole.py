"""A build's canonical tables as RecBole atomic files, so that RecBole's models (SASRec, BERT4Rec, ...) train and
test on exactly datagen's users, items and leave-one-out split.

    >>> export_recbole(BuildFolder.open("build/steam-sample"), Path("export"))  # doctest: +SKIP
    PosixPath('export/steam-sample')

The folder `<out>/<name>/` holds:
- `<name>.inter`: one interaction per row (`user_id:token`, `item_id:token`, `timestamp:float`, and `rating:float`
  when the build has ratings), each user's in the build's order; datagen's raw ids, so that
  `datagen build recbole:<name> --raw-dir <out> -O "seq_separator=|"` gives back the same tables;
- `<name>.item`: `item_id:token`, `title:token` (a token: RecBole keeps it whole), `categories:token_seq`;
- `<name>.train.inter`, `.valid.inter`, `.test.inter`: RecBole's benchmark split in the sequence form
  (`user_id:token`, `item_id_list:token_seq`, `item_id:token`): train, every prefix of a user's train part and
  the item after it; valid, the train part and the validation item; test, train and validation and the test item;
- `<name>.yaml`: the RecBole settings that read the benchmark split (`benchmark_filename`, `seq_separator`, the fields).

Token sequences are joined by SEPARATOR; a value holding it, a tab or a line break cannot be written and is a
clear error naming the item.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import yaml

from datagen.buildfolder import BuildFolder
from datagen.errors import DataError
from datagen.layout import read_split
from datagen.output import atomic_folder, write_text

SEPARATOR = "|"
SPLITS = ("train", "validation", "test")


def _checked(values: pl.Series, what: str, names: pl.Series, allow_separator: bool = False) -> None:
    forbidden = r"[\t\n\r]" if allow_separator else r"[\t\n\r|]"
    bad = values.str.contains(forbidden).fill_null(False)
    if bad.any():
        index = bad.arg_true()[0]
        raise DataError(f"{what} of item {names[index]!r} holds a tab, a line break or {SEPARATOR!r}: {values[index]!r}; RecBole's atomic files cannot carry it")


def _atomic(frame: pl.DataFrame, types: dict[str, str]) -> str:
    header = "\t".join(f"{name}:{types[name]}" for name in frame.columns)
    body = frame.write_csv(separator="\t", include_header=False, quote_style="never")
    return header + "\n" + body


def export_recbole(folder: BuildFolder, out: Path, name: str | None = None) -> Path:
    """Write the atomic files of `folder` into `out/<name>/` (name: the build's), replaced only once complete."""
    name = name or folder.name
    items = folder.items.sort("item_id")
    _checked(items["raw_item_id"], "the raw id", items["raw_item_id"])
    _checked(items["title"], "the title", items["raw_item_id"], allow_separator=True)
    categories = items.select("raw_item_id", "categories").explode("categories").drop_nulls("categories")
    _checked(categories["categories"], "a category", categories["raw_item_id"])
    users = folder.sequences.select("user_id", "raw_user_id")
    _checked(users["raw_user_id"], "the raw user id", users["raw_user_id"])
    raw_item = items["raw_item_id"]
    interactions = pl.concat([read_split(folder.path, "interactions", split) for split in SPLITS], how="diagonal_relaxed").sort("user_id", "position")
    interactions = interactions.join(users, on="user_id", maintain_order="left").with_columns(raw_item_id=raw_item.gather(interactions["item_id"]))
    inter = interactions.select(pl.col("raw_user_id").alias("user_id"), pl.col("raw_item_id").alias("item_id"), "timestamp", *(["rating"] if "rating" in interactions.columns else []))
    item_file = items.select(pl.col("raw_item_id").alias("item_id"), "title", pl.col("categories").list.join(SEPARATOR))
    sequences = folder.sequences.sort("user_id").select(
        "raw_user_id",
        pl.col("train_item_ids").list.eval(pl.element().replace_strict(items["item_id"], raw_item, return_dtype=pl.String)).alias("train"),
        pl.col("valid_item_id").replace_strict(items["item_id"], raw_item, return_dtype=pl.String).alias("valid"),
        pl.col("test_item_id").replace_strict(items["item_id"], raw_item, return_dtype=pl.String).alias("test"),
    )
    train_rows = (
        sequences.select("raw_user_id", "train", pl.int_ranges(1, pl.col("train").list.len()).alias("end"))
        .explode("end")
        .drop_nulls("end")
        .select(pl.col("raw_user_id").alias("user_id"), pl.col("train").list.head(pl.col("end")).list.join(SEPARATOR).alias("item_id_list"), pl.col("train").list.get(pl.col("end")).alias("item_id"))
    )
    valid_rows = sequences.select(pl.col("raw_user_id").alias("user_id"), pl.col("train").list.join(SEPARATOR).alias("item_id_list"), pl.col("valid").alias("item_id"))
    test_rows = sequences.select(pl.col("raw_user_id").alias("user_id"), pl.concat_list("train", "valid").list.join(SEPARATOR).alias("item_id_list"), pl.col("test").alias("item_id"))
    settings = {
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "seq_separator": SEPARATOR,
        "benchmark_filename": ["train", "valid", "test"],
        # The .item file stays unread: sequential models need none of it, and RecBole 1.2 fails on an item without categories.
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"]},
        "ITEM_LIST_LENGTH_FIELD": "item_length",
        "LIST_SUFFIX": "_list",
        "MAX_ITEM_LIST_LENGTH": int(folder.sequences["length"].max()),
    }
    sequence_types = {"user_id": "token", "item_id_list": "token_seq", "item_id": "token"}
    with atomic_folder(out / name) as staged:
        write_text(_atomic(inter, {"user_id": "token", "item_id": "token", "timestamp": "float", "rating": "float"}), staged / f"{name}.inter")
        write_text(_atomic(item_file, {"item_id": "token", "title": "token", "categories": "token_seq"}), staged / f"{name}.item")
        for suffix, rows in (("train", train_rows), ("valid", valid_rows), ("test", test_rows)):
            write_text(_atomic(rows, sequence_types), staged / f"{name}.{suffix}.inter")
        header = f"# RecBole settings for the benchmark split exported by datagen from {folder.name} (data version {folder.data_version})\n"
        write_text(header + yaml.safe_dump(settings, sort_keys=False), staged / f"{name}.yaml")
    return out / name
