"""Ingest benchmark: `datagen build` of an amazon_v2 reviews file against DuckDB's own read of its needed columns.

    python bench/bench_ingest.py --raw-dir ../shared/data/amazon --reviews 1000000 4000000
    python bench/make_steam_v2.py --raw-dir ../shared/data/steam --out bench/data/steam-7.8m
    python bench/bench_ingest.py --steam bench/data/steam-7.8m --reviews

For each size the script writes (once, into bench/data/amazon-v2-<N>/) a
SYNTHETIC reviews file in the amazon_v2 line format, `Synthetic_5.json.gz`,
with every field of a real 2018 review, and its `meta_Synthetic.json.gz`.
Users and items are drawn from Zipf laws (exponents 1.0 and 0.9, seeded), so
a user-25 / item-10 core keeps a realistic share; review texts and summaries
are taken in turn from the real reviews of `All_Beauty_5.json.gz` in
--raw-dir, so lines are as long as real ones. Not real data: labelled
synthetic in every output.

Then, each in its own process, in the same run:
- the yardstick: DuckDB's `read_json` of the four needed columns
  (reviewerID, asin, unixReviewTime, overall) into a Polars frame;
- `datagen build amazon:Synthetic --no-teacher --no-controllable --user-core 25
  --item-core 10`, the real CLI: CPU time (user + system) and peak RSS of the
  whole command;
- the same build through `datagen.pipeline.build`, with the CPU time of each
  step recorded, to give the raw-to-tables stage (reading, cleaning, k-core,
  split, writing the tables).

Ratios are CPU seconds over the yardstick's. With `--steam DIR` the same CLI
build (`datagen build steam --no-teacher --no-controllable`, default cores) of a Steam
folder is timed too: the original-size (SYNTHETIC) reviews file of
`make_steam_v2.py` is the target, 7.8M reviews. Results go to bench/results/ingest.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import polars as pl
from recording import peak_rss_gib, save_result  # bench/recording.py (the script's folder is on sys.path)

DATA = Path(__file__).resolve().parent / "data"
CATEGORY = "Synthetic"
BUILD_OPTIONS = ["--no-teacher", "--no-controllable", "--user-core", "25", "--item-core", "10"]


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def write_synthetic(raw_dir: Path, reviews: int, seed: int = 0) -> Path:
    """A SYNTHETIC amazon_v2 category of `reviews` reviews (see the module docstring); reused when present."""
    out = DATA / f"amazon-v2-{reviews}"
    if (out / f"{CATEGORY}_5.json.gz").is_file():
        return out
    rng = np.random.default_rng(seed)
    users, items = max(reviews // 12, 100), max(reviews // 40, 100)

    def zipf(population: int, exponent: float) -> np.ndarray:
        weights = 1.0 / np.arange(1, population + 1) ** exponent
        return rng.permutation(population)[rng.choice(population, size=reviews, p=weights / weights.sum())]

    real = pl.read_ndjson(raw_dir / "All_Beauty_5.json.gz", schema={"reviewText": pl.String, "summary": pl.String}).drop_nulls()
    texts = real["reviewText"].map_elements(json.dumps, return_dtype=pl.String)
    summaries = real["summary"].map_elements(json.dumps, return_dtype=pl.String)
    pick = rng.integers(0, real.height, size=reviews)
    times = rng.integers(946_684_800, 1_538_352_000, size=reviews)  # 2000-01-01 .. 2018-10-01
    frame = pl.DataFrame(
        {
            "rating": rng.integers(1, 6, size=reviews),
            "user": pl.Series(zipf(users, 1.0)).cast(pl.String).str.zfill(9),
            "item": pl.Series(zipf(items, 0.9)).cast(pl.String).str.zfill(9),
            "time": times,
            "text": texts.gather(pick),
            "summary": summaries.gather(pick),
        }
    )
    day = pl.from_epoch("time", time_unit="s")
    lines = frame.select(
        pl.concat_str(
            pl.lit('{"overall": '),
            pl.col("rating").cast(pl.String),
            pl.lit('.0, "verified": true, "reviewTime": "'),
            day.dt.strftime("%m %-d, %Y"),
            pl.lit('", "reviewerID": "A'),
            pl.col("user"),
            pl.lit('", "asin": "B'),
            pl.col("item"),
            pl.lit('", "reviewerName": "Reviewer '),
            pl.col("user"),
            pl.lit('", "reviewText": '),
            pl.col("text"),
            pl.lit(', "summary": '),
            pl.col("summary"),
            pl.lit(', "unixReviewTime": '),
            pl.col("time").cast(pl.String),
            pl.lit("}"),
        )  # fmt: skip
    ).to_series()
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    staging.mkdir(parents=True)
    with gzip.GzipFile(staging / f"{CATEGORY}_5.json.gz", "wb", mtime=0, compresslevel=3) as handle:
        for start in range(0, reviews, 500_000):
            handle.write(("\n".join(lines.slice(start, 500_000).to_list()) + "\n").encode())
    item_ids = pl.Series(np.arange(items)).cast(pl.String).str.zfill(9)
    meta = pl.select(
        pl.concat_str(
            pl.lit('{"category": ["Synthetic", "Shelf '),
            (pl.Series(np.arange(items)) % 20).cast(pl.String),
            pl.lit('"], "title": "Synthetic product '),
            item_ids,
            pl.lit('", "main_cat": "Synthetic", "asin": "B'),
            item_ids,
            pl.lit('"}'),
        )  # fmt: skip
    ).to_series()
    with gzip.GzipFile(staging / f"meta_{CATEGORY}.json.gz", "wb", mtime=0) as handle:
        handle.write(("\n".join(meta.to_list()) + "\n").encode())
    (staging / "README.md").write_text(f"SYNTHETIC amazon_v2-format data written by bench/bench_ingest.py ({reviews:,} reviews, seed {seed}); not real reviews.\n")
    staging.rename(out)
    return out


def duckdb_read(raw_dir: Path) -> dict:
    import duckdb

    started = cpu_seconds()
    con = duckdb.connect()
    frame = con.sql(
        f"""SELECT reviewerID, asin, unixReviewTime, overall FROM read_json('{raw_dir / f"{CATEGORY}_5.json.gz"}',
            format='newline_delimited',
            columns={{reviewerID: 'VARCHAR', asin: 'VARCHAR', unixReviewTime: 'BIGINT', overall: 'DOUBLE'}})"""
    ).pl()
    return {"rows": frame.height, "cpu_s": round(cpu_seconds() - started, 2), "peak_rss_gib": peak_rss_gib()}


class StepCPU:
    """A quiet StepProgress that records each step's CPU seconds."""

    def __init__(self):
        from datagen.progress import StepProgress

        self.progress = StepProgress(quiet=True)
        self.steps: dict[str, float] = {}

    @contextmanager
    def step(self, text: str):
        started = cpu_seconds()
        yield
        self.steps[text] = round(cpu_seconds() - started, 2)

    def __getattr__(self, name: str):
        return getattr(self.progress, name)


def staged_build(raw_dir: Path) -> dict:
    from datagen.pipeline import BuildConfig, build

    recorder = StepCPU()
    with tempfile.TemporaryDirectory() as out:
        result = build(
            BuildConfig(f"amazon:{CATEGORY}", raw_dir=raw_dir, out_dir=Path(out) / "b", user_core=25, item_core=10, teacher=None),
            progress=recorder,
        )
    reading = sum(seconds for text, seconds in recorder.steps.items() if not text.startswith("Content hash"))
    return {"raw_to_tables_cpu_s": round(reading, 2), "steps": recorder.steps, "stats": result.manifest["stats"], "peak_rss_gib": peak_rss_gib()}


def cli_build(raw_dir: Path, source: str = f"amazon:{CATEGORY}", options: tuple[str, ...] = tuple(BUILD_OPTIONS)) -> dict:
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        before = cpu_seconds(resource.RUSAGE_CHILDREN)
        subprocess.run(["datagen", "build", source, "--raw-dir", str(raw_dir), "--out", f"{out}/b", "-q", *options], check=True)
        wall = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu_s": round(cpu_seconds(resource.RUSAGE_CHILDREN) - before, 2), "wall_s": round(wall, 1), "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2)}


def steam_build(raw_dir: Path) -> dict:
    return cli_build(raw_dir, "steam", ("--no-teacher", "--no-controllable"))


def in_child(mode: str, raw_dir: Path) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", mode, str(raw_dir)], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", type=Path, help="folder with the real All_Beauty_5.json.gz (its texts fill the synthetic reviews)")
    parser.add_argument("--reviews", type=int, nargs="*", default=[1_000_000, 4_000_000], help="sizes of the amazon_v2 files (none: only --steam)")
    parser.add_argument("--steam", type=Path, help="a Steam raw folder to time as well (e.g. bench/data/steam-7.8m)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, raw_dir = args.child[0], Path(args.child[1])
        print(json.dumps({"duckdb": duckdb_read, "staged": staged_build, "cli": cli_build, "steam": steam_build}[mode](raw_dir)))
        return
    if args.reviews and args.raw_dir is None:
        parser.error("--raw-dir is needed (the real All_Beauty_5.json.gz gives the synthetic reviews their texts)")
    rows = []
    for reviews in args.reviews:
        raw_dir = write_synthetic(args.raw_dir, reviews)
        row = {"reviews": reviews, "data": "SYNTHETIC", "cores": os.cpu_count()}
        for mode in ("duckdb", "staged", "cli"):
            row[mode] = in_child(mode, raw_dir)
            print(f"  {reviews:,} {mode}: {row[mode]}", file=sys.stderr, flush=True)
        yardstick = row["duckdb"]["cpu_s"]
        row["raw_to_tables_x_duckdb"] = round(row["staged"]["raw_to_tables_cpu_s"] / yardstick, 2)
        row["whole_command_x_duckdb"] = round(row["cli"]["cpu_s"] / yardstick, 2)
        rows.append(row)
    if rows:
        print(f"cores: {os.cpu_count()}; data: SYNTHETIC amazon_v2 format\n")
        print("| reviews | DuckDB read CPU s | raw-to-tables CPU s (x) | whole command CPU s (x) | wall s | peak RSS GiB | users / items / interactions |")
        print("|---:|---:|---:|---:|---:|---:|---|")
        for row in rows:
            s = row["staged"]["stats"]
            print(
                f"| {row['reviews']:,} | {row['duckdb']['cpu_s']} | {row['staged']['raw_to_tables_cpu_s']} ({row['raw_to_tables_x_duckdb']}x) "
                f"| {row['cli']['cpu_s']} ({row['whole_command_x_duckdb']}x) | {row['cli']['wall_s']} | {row['cli']['peak_rss_gib']} "
                f"| {s['users']:,} / {s['items']:,} / {s['interactions']:,} |"
            )
    result = {"amazon_v2": rows}
    if args.steam:
        steam = in_child("steam", args.steam)
        print(f"\nSteam ({args.steam}): whole command {steam['cpu_s']} CPU s, {steam['wall_s']} s wall, peak RSS {steam['peak_rss_gib']} GiB")
        result["steam"] = {"raw_dir": str(args.steam), **steam}
    save_result("ingest", result)


if __name__ == "__main__":
    main()
