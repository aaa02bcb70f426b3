"""Family benchmark: each family's whole command, before and after a change, on 1 and 2 workers; and the peak
memory of a build with all three families.

    python bench/bench_families.py commands build/steam --before 447205b          # recknowledge, instructrec, generate
    python bench/bench_families.py memory --raw-dir ../shared/data/movielens/ml-100k --before 447205b

`commands`: for each family command (`datagen recknowledge`, `datagen
instructrec`, `datagen generate`), each run in a fresh copy of BUILD, in turn,
`--rounds` times:
- `before-1`: the code of the commit `--before` (a git worktree, first on the
  child's sys.path), one worker: the yardstick of rows per CPU-second (its
  pool workers' CPU was not counted then, so it runs in one process);
- `after-1`, `after-2`: this checkout with 1 and 2 local workers; `after-1` is
  the yardstick of `after-2`'s speedup.
Each is the real CLI, timed whole by /usr/bin/time (wall, user + system CPU of
the command and every process it waited for, peak RSS of the largest). Every
run must write the same data/<config>/ bytes. Figures are each run's median
round; ratios the median of the ratios within a round.

`memory`: `datagen build movielens:ml-100k --recknowledge --instructrec`, before
and after, with 1 and 2 workers, each once (the teacher comes from the cache
after the first): peak RSS of the largest process, wall, CPU.

Results go to bench/results/families-<name>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from recording import save_result  # bench/recording.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = {"recknowledge": "recknowledge", "instructrec": "instructrec", "generate": "controllable"}  # command -> its config
RUNS = ("before-1", "after-1", "after-2")


def worktree(revision: str, scratch: Path) -> Path:
    path = scratch / f"before-{revision}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(path), revision], check=True, capture_output=True)
    return path


def timed(arguments: list[str], code: Path, cwd: Path) -> dict:
    """One datagen command run from the code in `code`, timed whole by /usr/bin/time."""
    times = cwd / "time.txt"
    environment = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", str(times), sys.executable, "-m", "datagen", *arguments], cwd=cwd, env=environment, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"`datagen {' '.join(arguments)}` failed:\n{done.stderr[-2000:]}")
    wall, user, system, peak_kib = times.read_text().split()[-4:]
    return {"wall_s": float(wall), "cpu_s": float(user) + float(system), "peak_rss_gib": round(int(peak_kib) / 2**20, 2)}


def digest(folder: Path) -> str:
    hashed = hashlib.sha256()
    for path in sorted(folder.rglob("*.parquet")):
        hashed.update(path.name.encode() + path.read_bytes())
    return hashed.hexdigest()


def rows_made(build: Path, config: str) -> int:
    report = json.loads((build / "reports" / f"{config}.json").read_text())
    return sum(sum(tasks.values()) for tasks in report["rows"].values())


def commands(arguments: argparse.Namespace, scratch: Path) -> dict:
    code = {"before-1": worktree(arguments.before, scratch), "after-1": ROOT, "after-2": ROOT}
    results = {}
    for command, config in FAMILIES.items():
        rounds = {run: [] for run in RUNS}
        for number in range(arguments.rounds):
            for run in RUNS:
                copy = scratch / f"{command}-{run}-{number}"
                shutil.copytree(arguments.build, copy)
                extra = ["--chat", str(ROOT / "tests" / "fixtures" / "docs_chat.json")] if command == "generate" else []
                measured = timed([command, str(copy), "-q", "--workers", run[-1], *extra], code[run], scratch)
                measured["rows"] = rows_made(copy, config)
                measured["rows_per_cpu_s"] = round(measured["rows"] / measured["cpu_s"], 1)
                measured["sha256"] = digest(copy / "data" / config)
                rounds[run].append(measured)
                shutil.rmtree(copy)
                print(command, run, number, measured, file=sys.stderr)
        if len({m["sha256"] for runs in rounds.values() for m in runs}) != 1:
            raise SystemExit(f"{command}: the runs wrote different data/{config}/ bytes")
        median = {run: sorted(runs, key=lambda m: m["wall_s"])[len(runs) // 2] for run, runs in rounds.items()}
        results[command] = {
            "runs": median,
            "rows_per_cpu_s_after_over_before": round(statistics.median(a["rows_per_cpu_s"] / b["rows_per_cpu_s"] for a, b in zip(rounds["after-1"], rounds["before-1"])), 2),
            "speedup_2_over_1_workers": round(statistics.median(one["wall_s"] / two["wall_s"] for one, two in zip(rounds["after-1"], rounds["after-2"])), 2),
        }
    return results


def memory(arguments: argparse.Namespace, scratch: Path) -> dict:
    code = {"before": worktree(arguments.before, scratch), "after": ROOT}
    results = {}
    for run in ("before", "after"):
        for workers in ("1", "2"):
            out = scratch / f"ml-{run}-{workers}"
            build = ["build", "movielens:ml-100k", "--raw-dir", str(arguments.raw_dir), "--recknowledge", "--instructrec", "--out", str(out), "--workers", workers, "-q"]
            results[f"{run}-{workers}"] = timed(build, code[run], scratch)
            print(run, workers, results[f"{run}-{workers}"], file=sys.stderr)
            shutil.rmtree(out)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("commands", "memory"))
    parser.add_argument("build", nargs="?", type=Path, help="commands: a build with its teacher (and the families' configs)")
    parser.add_argument("--before", required=True, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--raw-dir", type=Path, help="memory: the ml-100k folder")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-families-") as scratch:
        try:
            if arguments.what == "commands":
                result = {"build": arguments.build.name, **commands(arguments, Path(scratch))}
                name = f"families-{arguments.build.name}"
            else:
                result = {"source": "movielens:ml-100k", **memory(arguments, Path(scratch))}
                name = "families-memory-ml-100k"
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)
    result.update(before=arguments.before, cores=len(os.sched_getaffinity(0)))
    print(json.dumps(result, indent=2))
    print(save_result(name, result))


if __name__ == "__main__":
    main()
