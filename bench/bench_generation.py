"""Generation benchmark: the controllable dataset of a build, before and after a change, on 1 and 2 workers and on Ray.

    python bench/bench_generation.py build/steam                      # before = the commit named by --before
    python bench/bench_generation.py build/steam --before 6a1b202 --runs after-1 after-2 ray-2 --rounds 5

The build needs its teacher (`datagen teacher train build/steam`). Each run
generates into its own copy of the build, in a fresh interpreter, with seed 42:
- `before`: the code of the commit `--before` (a git worktree, put first on
  the child's sys.path), one process: the yardstick;
- `after-N`: this checkout with N local workers;
- `ray-N`: this checkout with N actors on a local Ray cluster;
- `pair-1`: two `after-1` runs at once, each on its own copy: the yardstick of
  the speedups, as two independent jobs are the most two workers could do on
  this machine's cores (on 2 cores that share caches or a memory bus, each
  runs slower than alone).
Every run is measured `--rounds` times, in turn, as this machine's speed
drifts by 10-20% from minute to minute: each run's figures are those of its
median round, and each ratio is the median of the ratios taken within a round.
Timed is `generate_controllable` alone: wall time, and the CPU time of the
process and of its pool's workers (read once the pool's fork server, their
parent, is stopped; Ray's actors are not its children, so a Ray run reports
wall time only). Every run must write the same
data/controllable/ bytes, or the script fails. The result goes to
bench/results/generation-<build name>.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from recording import save_result  # bench/recording.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
CHILD = """
import json, os, resource, signal, sys, time
from pathlib import Path
from datagen.buildfolder import BuildFolder
from datagen.controllable.build import ControllableSettings, generate_controllable

def cpu():
    return sum(getattr(resource.getrusage(who), field) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for field in ("ru_utime", "ru_stime"))

def reap_fork_server():
    # A pool's workers are children of its fork server, which outlives the pool: their CPU and memory count for
    # this process only once the server is stopped and reaped.
    children = [pid for task in Path("/proc/self/task").iterdir() for pid in (task / "children").read_text().split()]
    for pid in map(int, children):
        if b"multiprocessing.forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)

folder, workers, executor = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
spread = {} if workers == 0 else {"workers": workers, "executor": executor}  # 0: code from before --workers
folder = BuildFolder.open(folder)
started_cpu, started = cpu(), time.perf_counter()
report = generate_controllable(folder, ControllableSettings(seed=42, **spread))
wall = time.perf_counter() - started
reap_fork_server()
cpu_s = cpu() - started_cpu
peak, workers_peak = (resource.getrusage(who).ru_maxrss / 2**20 for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(__import__("datagen").__file__)
print(json.dumps({"wall_s": wall, "cpu_s": cpu_s, "rows": sum(sum(t.values()) for t in report["rows"].values()), "peak_rss_gib": peak, "worker_peak_rss_gib": workers_peak}))
"""


def data_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted((folder / "data" / "controllable").iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def start(build: Path, scratch: Path, name: str, workers: int, executor: str, code: Path) -> tuple[subprocess.Popen, Path]:
    """One run's child, started on its own copy of the build."""
    copy = scratch / name
    shutil.copytree(build, copy)
    environment = {**os.environ, "PYTHONPATH": str(code)} if code != ROOT else dict(os.environ)
    # cwd=scratch: `python -c` puts the working folder first on sys.path, and this checkout's datagen/ must not shadow `code`
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(copy), str(workers), executor], stdout=subprocess.PIPE, text=True, env=environment, cwd=scratch)
    return child, copy


def finish(name: str, child: subprocess.Popen, copy: Path) -> dict:
    output, _ = child.communicate()
    if child.returncode:
        raise SystemExit(f"{name} failed (exit {child.returncode})")
    result = json.loads(output.strip().splitlines()[-1])
    result["data_sha256"], result["datagen"] = data_digest(copy), output.strip().splitlines()[-2]
    shutil.rmtree(copy)
    print(f"{name:<10} {result['wall_s']:7.1f} s wall  {result['cpu_s']:7.1f} CPU-s  {result['rows']:,} rows  {result['peak_rss_gib']:.2f} GiB", flush=True)
    return result


def run(build: Path, scratch: Path, name: str, workers: int, executor: str, code: Path) -> dict:
    return finish(name, *start(build, scratch, name, workers, executor, code))


def run_pair(build: Path, scratch: Path, name: str) -> dict:
    """Two 1-worker runs at once, each on its own copy: what this machine's cores give two independent jobs."""
    started = [start(build, scratch, f"{name}.{index}", 1, "local", ROOT) for index in (1, 2)]
    both = [finish(f"{name}.{index}", *child) for index, child in zip((1, 2), started)]
    return {"wall_s": max(result["wall_s"] for result in both), "cpu_s": sum(result["cpu_s"] for result in both) / 2, "rows": both[0]["rows"],
            "peak_rss_gib": max(result["peak_rss_gib"] for result in both), "data_sha256": both[0]["data_sha256"], "runs": both}  # fmt: skip


def measure(name: str, build: Path, scratch: Path, worktree: Path) -> dict:
    kind, _, count = name.partition("-")
    if kind == "before":
        return run(build, scratch, name, 0, "local", worktree)
    if kind == "pair":
        return run_pair(build, scratch, name)
    return run(build, scratch, name, int(count), "ray" if kind == "ray" else "local", ROOT)


def median_of(rounds: list[dict], name: str) -> dict:
    """The round of `name` whose wall time is the median (the lower of the middle two for an even count), with every
    round's wall time beside it."""
    ordered = sorted((one[name] for one in rounds), key=lambda result: result["wall_s"])
    return {**ordered[(len(ordered) - 1) // 2], "walls_s": [round(one[name]["wall_s"], 2) for one in rounds]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path)
    parser.add_argument("--before", default="6a1b202", help="the commit whose code is the yardstick (default: the last before the per-core changes)")
    parser.add_argument("--runs", nargs="+", default=["before", "after-1", "after-2", "ray-2", "pair-1"])
    parser.add_argument("--rounds", type=int, default=3, help="times every run is measured, in turn (default: 3)")
    args = parser.parse_args()
    rounds = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        worktree = scratch / "before-code"
        if "before" in args.runs:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.before], check=True, capture_output=True)
        try:
            for number in range(1, args.rounds + 1):
                print(f"round {number} of {args.rounds}", flush=True)
                rounds.append({name: measure(name, args.build, scratch, worktree) for name in args.runs})
        finally:
            if worktree.exists():
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)], check=True)
    digests = {result["data_sha256"] for one in rounds for result in one.values()}
    if len(digests) != 1:
        raise SystemExit(f"the runs wrote different data/controllable bytes: {[{name: r['data_sha256'][:12] for name, r in one.items()} for one in rounds]}")
    results = {name: median_of(rounds, name) for name in args.runs}
    summary = {"build": str(args.build), "before": args.before, "python": platform.python_version(), "cores": len(os.sched_getaffinity(0)), "same_bytes": True, "rounds": args.rounds, "runs": results}

    def ratios(of) -> tuple[float, list[float]]:
        """The median over the rounds of a ratio taken within each round, and each round's."""
        each = [of(one) for one in rounds]
        return round(statistics.median(each), 2), [round(value, 2) for value in each]

    if "before" in results and "after-1" in results:
        summary["rows_per_cpu_s"] = {name: round(results[name]["rows"] / results[name]["cpu_s"]) for name in ("before", "after-1")}
        summary["per_core_ratio"], summary["per_core_ratios"] = ratios(lambda one: one["before"]["cpu_s"] / one["after-1"]["cpu_s"])
        print(f"rows per CPU-second: x{summary['per_core_ratio']} those of before (rounds: {summary['per_core_ratios']})")
    for name in results:
        if name != "after-1" and name.startswith(("after-", "ray-")) and "after-1" in results:
            summary[f"speedup_{name}"], summary[f"speedups_{name}"] = ratios(lambda one, name=name: one["after-1"]["wall_s"] / one[name]["wall_s"])
            print(f"{name}: x{summary[f'speedup_{name}']} the wall time of after-1 (rounds: {summary[f'speedups_{name}']})")
    if "pair-1" in results and "after-1" in results:
        summary["two_job_ceiling"], summary["two_job_ceilings"] = ratios(lambda one: 2 * one["after-1"]["wall_s"] / one["pair-1"]["wall_s"])
        print(f"two 1-worker runs at once: x{summary['two_job_ceiling']} the work of after-1 per second, the most 2 workers could give here (rounds: {summary['two_job_ceilings']})")
    save_result(f"generation-{args.build.name}", summary)


if __name__ == "__main__":
    main()
