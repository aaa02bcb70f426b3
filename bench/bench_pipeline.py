"""Pipeline benchmark: wall time and peak memory of `datagen build` on Steam inputs.

    python bench/make_steam_v2.py --raw-dir ../shared/data/steam --out bench/data/steam-7.8m
    python bench/bench_pipeline.py ../shared/data/steam bench/data/steam-7.8m

Each build runs in its own process (all cores of the machine; CI's and ours
have 2), which reports its own wall time and peak resident memory. Results are
printed as a Markdown table and written to bench/results/pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recording import peak_rss_gib, save_result  # bench/recording.py (the script's folder is on sys.path)


def run_one(raw_dir: Path) -> dict:
    from datagen.pipeline import BuildConfig, build

    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        result = build(BuildConfig("steam", raw_dir=raw_dir, out_dir=Path(out) / "steam"))
        wall = time.perf_counter() - started
    steps = {step["step"]: step for step in result.manifest["report"]["steps"]}
    return {
        "raw_dir": str(raw_dir),
        "review_lines": steps["unknown_item"]["before"],
        "wall_s": round(wall, 1),
        "peak_rss_gib": peak_rss_gib(),
        "stats": result.manifest["stats"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw_dirs", nargs="+", type=Path)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.raw_dirs[0])))
        return
    rows = []
    for raw_dir in args.raw_dirs:
        output = subprocess.run([sys.executable, __file__, "--one", str(raw_dir)], check=True, capture_output=True, text=True)
        rows.append(json.loads(output.stdout.strip().splitlines()[-1]))
    print(f"cores: {os.cpu_count()}\n")
    print("| input | review lines | users | items | interactions | wall (s) | peak RSS (GiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        s = row["stats"]
        print(f"| {row['raw_dir']} | {row['review_lines']:,} | {s['users']:,} | {s['items']:,} | {s['interactions']:,} | {row['wall_s']} | {row['peak_rss_gib']} |")
    save_result("pipeline", rows)


if __name__ == "__main__":
    main()
