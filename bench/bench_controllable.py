"""Rows per second of the controllable dataset (I0-I3, combined controls, label checks), teacher already trained.

    python bench/bench_controllable.py build/steam [--chat tests/fixtures/docs_chat.json] [--device cuda]

Runs `generate_controllable` on a copy of the build (the original is untouched)
and prints wall time per step, rows, rows/s and peak RSS; the result is also
written to bench/results/controllable-<build name>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import torch
from recording import peak_rss_gib, save_result  # bench/recording.py (the script's folder is on sys.path)

from datagen.buildfolder import BuildFolder
from datagen.controllable.build import ControllableSettings, generate_controllable
from datagen.progress import StepProgress


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path)
    parser.add_argument("--chat")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / args.build.name
        shutil.copytree(args.build, copy, ignore=shutil.ignore_patterns("data", "reports"))
        started = time.perf_counter()
        report = generate_controllable(BuildFolder.open(copy), ControllableSettings(chat=args.chat, device=args.device), StepProgress())
        wall = time.perf_counter() - started
    rows = sum(sum(counts.values()) for counts in report["rows"].values())
    result = {
        "build": str(args.build),
        "rows": rows,
        "rows_per_split": {split: sum(counts.values()) for split, counts in report["rows"].items()},
        "wall_s": round(wall, 1),
        "rows_per_s": round(rows / wall),
        "peak_rss_gib": peak_rss_gib(),
        "label_check_failures": len(report["label_check_failures"]),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
    }
    print(json.dumps(result, indent=2))
    save_result(f"controllable-{args.build.name}", result)


if __name__ == "__main__":
    main()
