"""How generating the controllable dataset grows with the users: SYNTHETIC catalogs of 10k, 100k, ... users.

    python bench/bench_generation_sizes.py --users 10000 100000 --items 5000

For each size the script writes (once, into bench/data/synthetic-users-<N>-items-<M>/)
a SYNTHETIC table-source catalog, labelled so in its README and config: M items
for every size (so that what grows is the users alone), titles "Synthetic
product <id>", one of 20 shelves and one of 200 sub-shelves each; each user has
5 to 20 interactions, items drawn from a Zipf law (exponent 0.9), seeded. Then,
each in its own process: `datagen build table:... --no-tasks --teacher-epochs 1`
(the teacher: wall and peak RSS), and `generate_controllable` with one worker
(wall, CPU, rows, peak RSS, teacher ranking included). Growth is stated as the
ratio of each size's time and memory to the smallest size's, beside the ratio
of their rows. Results go to bench/results/generation-sizes.json."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from bench_generation import CHILD  # bench/bench_generation.py (the script's folder is on sys.path)
from recording import save_result

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


def timed(command: list[str], **options) -> tuple[float, float, str]:
    """(wall seconds, the child's peak RSS in GiB, its stdout) of one command run under /usr/bin/time."""
    started = time.perf_counter()
    done = subprocess.run(["/usr/bin/time", "-f", "peak_kib=%M", *command], check=True, capture_output=True, text=True, **options)
    peak = next(int(line.split("=")[1]) for line in done.stderr.splitlines() if line.startswith("peak_kib="))
    return time.perf_counter() - started, peak / 2**20, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--items", type=int, default=5_000, help="items of every size's catalog")
    args = parser.parse_args()
    sizes = []
    with tempfile.TemporaryDirectory() as scratch:
        for users in args.users:
            raw = write_synthetic(users, args.items)
            out = Path(scratch) / f"build-{users}"
            build_s, build_gib, _ = timed(
                [sys.executable, "-m", "datagen", "build", f"table:{raw / 'catalog.yaml'}", "--raw-dir", str(raw), "--out", str(out), "--no-tasks", "--teacher-epochs", "1", "-q"]
            )
            _, generate_gib, output = timed([sys.executable, "-c", CHILD, str(out), "1", "local"], cwd=scratch)
            generated = json.loads(output.strip().splitlines()[-1])
            manifest = json.loads((out / "manifest.json").read_text())
            size = {
                "users": users,
                "kept_users": manifest["stats"]["users"],
                "items": manifest["stats"]["items"],
                "build_and_teacher_s": round(build_s, 1),
                "build_peak_rss_gib": round(build_gib, 2),
                "generate_wall_s": round(generated["wall_s"], 1),
                "generate_cpu_s": round(generated["cpu_s"], 1),
                "rows": generated["rows"],
                "generate_peak_rss_gib": round(generate_gib, 2),
                "rows_per_cpu_s": round(generated["rows"] / generated["cpu_s"]),
            }
            sizes.append(size)
            print(json.dumps(size), flush=True)
    smallest = sizes[0]
    for size in sizes[1:]:
        size["growth"] = {
            "rows": round(size["rows"] / smallest["rows"], 2),
            "generate_cpu": round(size["generate_cpu_s"] / smallest["generate_cpu_s"], 2),
            "generate_peak_rss": round(size["generate_peak_rss_gib"] / smallest["generate_peak_rss_gib"], 2),
        }
        print(f"{size['users']:,} users: x{size['growth']['rows']} rows, x{size['growth']['generate_cpu']} CPU, x{size['growth']['generate_peak_rss']} peak RSS of {smallest['users']:,}")
    save_result("generation-sizes", {"python": platform.python_version(), "cores": len(os.sched_getaffinity(0)), "synthetic": True, "sizes": sizes})


if __name__ == "__main__":
    main()
