"""How generating the controllable dataset grows with the users: SYNTHETIC catalogs of 10k, 100k, ... users.

    python bench/bench_generation_sizes.py --users 10000 100000 1000000 --items 5000 --workers 2

For each size the script writes (once, into bench/data/synthetic-users-<N>-items-<M>/)
a SYNTHETIC table-source catalog, labelled so in its README and config: M items
for every size (so that what grows is the users alone), titles "Synthetic
product <id>", one of 20 shelves and one of 200 sub-shelves each; each user has
5 to 20 interactions, items drawn from a Zipf law (exponent 0.9), seeded. Then,
each in its own process: `datagen build table:... --no-controllable --teacher-epochs 1`
(the teacher: wall, CPU and peak RSS), and `generate_controllable` with
`--workers` workers (wall, CPU of all processes, rows, the driver's peak RSS
and the largest worker's, teacher ranking included). Growth is stated as the
ratio of each size's time and memory to the smallest size's, beside the ratio
of their rows (of the same catalog size and workers). Results go to
bench/results/generation-sizes.json, each size as soon as it is measured,
beside those of earlier runs.

A build and what it measured are kept in bench/data/builds/ and reused, so a
long size can be built in one sitting (`--builds-only`) and generated in the
next; delete a build's folder to measure it again."""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from bench_generation import CHILD  # bench/bench_generation.py (the script's folder is on sys.path)
from recording import RESULTS, save_result

DATA = Path(__file__).resolve().parent / "data"
CONFIG = """# SYNTHETIC catalog written by bench/bench_generation_sizes.py ({users:,} users, seed 0): not real data.
name: synthetic-users-{users}
catalog_noun: products
parameters: {{user_core: 5, item_core: 5}}
items:
  path: items.parquet
  format: parquet
  id: item
  title: title
  categories: categories
interactions:
  path: interactions.parquet
  format: parquet
  user: user
  item: item
  order: timestamp
  timestamp: time
"""


def write_synthetic(users: int, n_items: int, seed: int = 0) -> Path:
    """The SYNTHETIC catalog of `users` users and `n_items` items (see the module docstring); reused when present."""
    out = DATA / f"synthetic-users-{users}-items-{n_items}"
    if (out / "catalog.yaml").is_file():
        return out
    rng = np.random.default_rng(seed)
    lengths = rng.integers(5, 21, size=users)
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.9
    items = rng.permutation(n_items)[rng.choice(n_items, size=int(lengths.sum()), p=weights / weights.sum())]
    interactions = pl.DataFrame({"user": np.repeat(np.arange(users), lengths), "item": items, "time": 1_500_000_000 + rng.integers(0, 10**8, size=int(lengths.sum()))}).unique(
        ["user", "item"], keep="first", maintain_order=True
    )
    ids = np.arange(n_items)
    catalog = pl.DataFrame(
        {
            "item": ids,
            "title": [f"Synthetic product {i:06d}" for i in ids],
            "categories": [[f"Shelf {i % 20}", f"Shelf {i % 20} / {i % 200}"] for i in ids],
        }
    )
    staging = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    staging.mkdir(parents=True)
    interactions.write_parquet(staging / "interactions.parquet")
    catalog.write_parquet(staging / "items.parquet")
    (staging / "catalog.yaml").write_text(CONFIG.format(users=users))
    (staging / "README.md").write_text(f"SYNTHETIC catalog written by bench/bench_generation_sizes.py ({users:,} users, {n_items:,} items, seed {seed}); not real data.\n")
    staging.rename(out)
    return out


def timed(command: list[str], **options) -> tuple[float, float, float, str]:
    """(wall seconds, CPU seconds, the child's peak RSS in GiB, its stdout) of one command run under /usr/bin/time."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "peak_kib=%M cpu_s=%U+%S", *command], check=True, capture_output=True, text=True, **options)
    measured = dict(field.split("=") for field in done.stderr.strip().splitlines()[-1].split())
    return time.perf_counter() - started, sum(map(float, measured["cpu_s"].split("+"))), int(measured["peak_kib"]) / 2**20, done.stdout


def measured_build(raw: Path) -> tuple[Path, dict]:
    """The build of the catalog in `raw` (teacher included) and what building it took; built and measured when absent."""
    out = DATA / "builds" / raw.name
    measured = out.with_name(f"{out.name}.measured.json")
    if not measured.is_file():
        if out.exists():
            shutil.rmtree(out)
        wall, cpu_s, peak, _ = timed(
            [sys.executable, "-m", "datagen", "build", f"table:{raw / 'catalog.yaml'}", "--raw-dir", str(raw), "--out", str(out), "--no-controllable", "--teacher-epochs", "1", "-q"]
        )
        save_json(measured, {"build_and_teacher_s": round(wall, 1), "build_and_teacher_cpu_s": round(cpu_s, 1), "build_peak_rss_gib": round(peak, 2)})
    return out, json.loads(measured.read_text())


def save_json(path: Path, value: dict) -> None:
    staging = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    staging.write_text(json.dumps(value) + "\n")
    staging.rename(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--items", type=int, default=5_000, help="items of every size's catalog")
    parser.add_argument("--workers", type=int, default=1, help="generate's workers at every size (1: in the measured process)")
    parser.add_argument("--builds-only", action="store_true", help="make and measure the builds (kept for a later run), then stop")
    args = parser.parse_args()
    sizes = {(size["users"], size["catalog_items"], size["workers"]): size for size in recorded_sizes()}
    with tempfile.TemporaryDirectory() as scratch:
        for users in args.users:
            out, build = measured_build(write_synthetic(users, args.items))
            print(json.dumps({"users": users, **build}), flush=True)
            if args.builds_only:
                continue
            _, _, _, output = timed([sys.executable, "-c", CHILD, str(out), str(args.workers), "local"], cwd=scratch)
            generated = json.loads(output.strip().splitlines()[-1])
            manifest = json.loads((out / "manifest.json").read_text())
            size = {
                "users": users,
                "catalog_items": args.items,
                "kept_users": manifest["stats"]["users"],
                "items": manifest["stats"]["items"],
                **build,
                "generate_wall_s": round(generated["wall_s"], 1),
                "generate_cpu_s": round(generated["cpu_s"], 1),
                "rows": generated["rows"],
                "workers": args.workers,
                "generate_peak_rss_gib": round(generated["peak_rss_gib"], 2),
                "worker_peak_rss_gib": round(generated["worker_peak_rss_gib"], 2) if args.workers > 1 else None,
                "rows_per_cpu_s": round(generated["rows"] / generated["cpu_s"]),
            }
            print(json.dumps(size), flush=True)
            sizes[(users, args.items, args.workers)] = size
            save_result("generation-sizes", {"python": platform.python_version(), "cores": len(os.sched_getaffinity(0)), "synthetic": True, "sizes": with_growth(list(sizes.values()))})


def recorded_sizes() -> list[dict]:
    """The sizes measured so far (each size is saved as soon as it is measured, so a long one can be run alone)."""
    path = RESULTS / "generation-sizes.json"
    return json.loads(path.read_text())["sizes"] if path.is_file() else []


def with_growth(sizes: list[dict]) -> list[dict]:
    """`sizes` by catalog, workers and users, each with its ratios to the smallest size of its catalog and workers."""
    sizes = sorted(sizes, key=lambda size: (size["catalog_items"], size["workers"], size["users"]))
    for size in sizes:
        smallest = next(other for other in sizes if (other["catalog_items"], other["workers"]) == (size["catalog_items"], size["workers"]))
        if size is smallest:
            size.pop("growth", None)
            continue
        size["growth"] = {
            "of_users": smallest["users"],
            "rows": round(size["rows"] / smallest["rows"], 2),
            "build_and_teacher_cpu": round(size["build_and_teacher_cpu_s"] / smallest["build_and_teacher_cpu_s"], 2),
            "generate_cpu": round(size["generate_cpu_s"] / smallest["generate_cpu_s"], 2),
            "generate_peak_rss": round(size["generate_peak_rss_gib"] / smallest["generate_peak_rss_gib"], 2),
        }
        if size["worker_peak_rss_gib"]:
            size["growth"]["worker_peak_rss"] = round(size["worker_peak_rss_gib"] / smallest["worker_peak_rss_gib"], 2)
        print(f"{size['users']:,} users: " + ", ".join(f"x{ratio} {name}" for name, ratio in size["growth"].items() if name != "of_users") + f" of {smallest['users']:,}")
    return sizes


if __name__ == "__main__":
    main()
