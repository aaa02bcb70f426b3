"""Stop the local Ray cluster a command started, however the command ends.

`ray.init()` without $RAY_ADDRESS starts a cluster whose processes are this
one's children. A normal exit or Ctrl-C stops them (Ray's own exit handler),
and after a kill -9 the raylet and the GCS follow the driver; but Ray's
dashboard and runtime-env agents then spend 60 s telling the dead GCS that the
raylet died before they exit. So a watcher process starts before the cluster
does, with a pipe from this process; it is told the cluster's processes (id and
start time, so that a reused id is never killed), and when the pipe closes, as
it does however this process ends, it stops those still running.

    >>> watcher = start()                  # doctest: +SKIP
    >>> ray.init(num_cpus=2)               # doctest: +SKIP
    >>> watch_children(watcher)            # doctest: +SKIP

Run as `python -m datagen.ray_watcher`, it is the watcher: it reads "pid
start-time" lines on stdin until they end.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil

STOP_SECONDS = 3.0  # from SIGTERM to SIGKILL


def start() -> subprocess.Popen:
    """The watcher process, in a session of its own so that Ctrl-C in the terminal reaches this process, not it."""
    return subprocess.Popen(
        [sys.executable, "-m", "datagen.ray_watcher"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        text=True,
    )


def watch_children(watcher: subprocess.Popen) -> None:
    """Tell the watcher every process below this one but itself: the cluster that `ray.init()` just started."""
    for child in psutil.Process().children(recursive=True):
        if child.pid != watcher.pid:
            watcher.stdin.write(f"{child.pid} {child.create_time()!r}\n")
    watcher.stdin.flush()


def stop_survivors(watched: list[tuple[int, float]]) -> None:
    """SIGTERM each watched process still running, then SIGKILL those that outlive STOP_SECONDS."""
    running = []
    for pid, started in watched:
        try:
            process = psutil.Process(pid)
            if process.create_time() == started:
                process.terminate()
                running.append(process)
        except psutil.Error:  # gone already, or not ours to stop
            continue
    _, alive = psutil.wait_procs(running, timeout=STOP_SECONDS)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            continue


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watched = []
    for line in sys.stdin:  # until the command's end of the pipe closes: it has ended
        pid, started = line.split()
        watched.append((int(pid), float(started)))
    stop_survivors(watched)


if __name__ == "__main__":
    main()
