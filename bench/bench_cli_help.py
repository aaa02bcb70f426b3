"""Time `datagen ... --help` for every command, beside a yardstick: a Python that imports click and rich and prints.

    python bench/bench_cli_help.py            # best of 3 per command
    python bench/bench_cli_help.py --runs 5

Each command runs in a fresh interpreter (`python -m datagen COMMAND --help`),
as a user's shell starts it. The yardstick is the least any click and rich
command line costs, so the ratio is what datagen adds. Peak memory is the
child's (`ru_maxrss` of the children). The result is also written to
bench/results/cli-help.json; the issue's bound is 1.5 s per command.
"""

from __future__ import annotations

import argparse
import platform
import resource
import subprocess
import sys
import time

import click
from recording import save_result  # bench/recording.py (the script's folder is on sys.path)

from datagen.cli import main as datagen_main

YARDSTICK = [sys.executable, "-c", "import click, rich.console; print('usage')"]
BOUND_S = 1.5


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand of `group`, as the words a user types after `datagen`."""
    paths = []
    for name, command in sorted(group.commands.items()):
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
    return paths


def best_seconds(argv: list[str], runs: int) -> tuple[float, float]:
    """(the fastest of `runs` wall times, the largest child peak RSS in MiB so far)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return min(times), resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    yardstick, _ = best_seconds(YARDSTICK, args.runs)
    rows = []
    for path in [(), *command_paths(datagen_main)]:
        seconds, peak_mib = best_seconds([sys.executable, "-m", "datagen", *path, "--help"], args.runs)
        rows.append({"command": " ".join(["datagen", *path, "--help"]), "seconds": round(seconds, 3), "ratio": round(seconds / yardstick, 2), "peak_child_rss_mib_so_far": round(peak_mib)})
        print(f"{rows[-1]['command']:<40} {seconds:6.3f} s  x{seconds / yardstick:5.2f}", flush=True)
    slowest = max(rows, key=lambda row: row["seconds"])
    print(f"yardstick (python, click, rich) {yardstick:.3f} s; slowest: {slowest['command']} {slowest['seconds']:.3f} s; over {BOUND_S} s: {sum(row['seconds'] > BOUND_S for row in rows)}")
    save_result("cli-help", {"python": platform.python_version(), "runs": args.runs, "yardstick_s": round(yardstick, 3), "bound_s": BOUND_S, "commands": rows})


if __name__ == "__main__":
    main()
