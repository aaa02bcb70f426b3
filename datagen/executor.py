"""One job's tasks on every core (a process pool) or on many machines (Ray), results in task order.

A job is a worker class: each worker process builds one (`Worker(*arguments)`:
loading a model, a catalog) and then runs tasks with its `run` method. A worker
class that computes with torch says so (`uses_torch = True`), and each of its
workers then runs torch on one thread, so that N workers use N cores. The
workers start when the block is entered, and get every task when they are
mapped, so the caller can do its own work while they load:

    >>> with ordered_map(Doubler, (), [1, 2, 3], workers=2) as results:  # doctest: +SKIP
    ...     list(results)
    [2, 4, 6]
    >>> with worker_pool(Doubler, (), workers=2) as pool:  # doctest: +SKIP
    ...     tasks = [1, 2, 3]  # planned while the workers start
    ...     list(pool.ordered_map(tasks))
    [2, 4, 6]

`--executor local` (the default) runs `--workers` processes on this machine
(one worker in this process, on one core, when it is 1); `--executor ray` starts `--workers`
Ray actors: `ray.init()` joins the cluster `$RAY_ADDRESS` names (e.g. one
started with `ray start` on Slurm nodes), or starts a local one, which a watcher
process stops when this process ends, even by kill -9 (`_start_ray_watcher`). The worker
class, its arguments and the tasks must pickle, and the files a worker reads or
writes (a build folder) must be where every node sees them. The caller writes
the outputs from the tasks' results (or from the files they name), in task
order, so what is written is the same for any executor and any number of
workers.
"""

from __future__ import annotations

import abc
import atexit
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from datagen.errors import DataError

EXECUTORS = ("local", "ray")
RAY_ADDRESS_ENV = "RAY_ADDRESS"
RAY_CONNECT_SECONDS = 10.0  # to reach the head of the cluster $RAY_ADDRESS names, before ray.init may wait longer
RAY_STOP_SECONDS = 3.0  # from SIGTERM to SIGKILL, for a local cluster's processes left after this process ended
WORKER_DIED_HINT = "Nothing was written. Run the command again; with fewer --workers if memory is short."
_job: tuple | None = None  # a pool process's (worker class, arguments), set by _start_worker
_worker = None  # its worker, built by _build
_reaping_fork_server = threading.Event()  # set once _reap_fork_server is registered to run at exit


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def ordered_map(worker_class: type, arguments: tuple, tasks: Sequence, workers: int, executor: str = "local") -> Iterator[Iterator]:
    """worker.run(task) for each task, in the tasks' order, with `workers` workers built as worker_class(*arguments)
    (no more than there are tasks: one, in this process, for one task).

    The workers start on entering the block; leaving it stops them, whether or not every result was read.
    """
    if workers >= 1:  # fewer is refused by worker_pool
        workers = min(workers, max(len(tasks), 1))
    with worker_pool(worker_class, arguments, workers, executor) as pool:
        yield pool.ordered_map(tasks)


@contextlib.contextmanager
def worker_pool(worker_class: type, arguments: tuple, workers: int, executor: str = "local") -> Iterator[_Pool]:
    """`workers` workers built as worker_class(*arguments), started on entering the block, before their tasks are
    known: `pool.ordered_map(tasks)` runs them. Leaving the block stops them, whether or not every result was read."""
    if executor not in EXECUTORS:
        raise DataError(f"unknown executor {executor!r}; executors: {', '.join(EXECUTORS)}")
    if workers < 1:
        raise DataError(f"--workers must be at least 1, not {workers}")
    pool = _RayPool if executor == "ray" else _InProcess if workers == 1 else _ProcessPool
    try:
        with pool.started(worker_class, arguments, workers) as started:
            yield started
    finally:
        gc.unfreeze()  # as ordered_map froze the caller's heap


class _Pool(abc.ABC):
    """Started workers; `ordered_map` gives them the tasks and yields their results in the tasks' order."""

    def ordered_map(self, tasks: Sequence) -> Iterator:
        # The caller's objects alive now (its tasks, its catalog) are left out of the garbage collector's passes
        # while it gathers the results, as a worker's are (_FrozenWorker): walking them again on every pass was 10%
        # of a profiled one-worker generation (5% after).
        gc.freeze()
        return self._results(tasks)

    @abc.abstractmethod
    def _results(self, tasks: Sequence) -> Iterator: ...


class _InProcess(_Pool):
    def __init__(self, worker):
        self.worker = worker

    @classmethod
    @contextlib.contextmanager
    def started(cls, worker_class: type, arguments: tuple, workers: int) -> Iterator[_InProcess]:
        with _one_core(worker_class):
            yield cls(worker_class(*arguments))

    def _results(self, tasks: Sequence) -> Iterator:
        return (self.worker.run(task) for task in tasks)


class _ProcessPool(_Pool):
    def __init__(self, pool: ProcessPoolExecutor):
        self.pool = pool

    @classmethod
    @contextlib.contextmanager
    def started(cls, worker_class: type, arguments: tuple, workers: int) -> Iterator[_ProcessPool]:
        start = (worker_class, arguments, dict(os.environ))
        pool = ProcessPoolExecutor(workers, mp_context=_pool_context(worker_class), initializer=_start_worker, initargs=start)
        try:
            for _ in range(workers):  # a process is started for each task submitted while none is idle
                pool.submit(_build)
            yield cls(pool)
        finally:
            pool.shutdown(cancel_futures=True)

    def _results(self, tasks: Sequence) -> Iterator:
        return _results_in_order(deque(self.pool.submit(_run, task) for task in tasks), _pool_result)


class _RayPool(_Pool):
    def __init__(self, ray, actors: list):
        self.ray = ray
        self.actors = actors

    @classmethod
    @contextlib.contextmanager
    def started(cls, worker_class: type, arguments: tuple, workers: int) -> Iterator[_RayPool]:
        try:
            import ray

        except ImportError:
            raise DataError("--executor ray needs Ray", hint="pip install 'datagen[ray]'") from None
        if not ray.is_initialized():
            address = os.environ.get(RAY_ADDRESS_ENV, "")
            _check_ray_address(address)
            starts_a_cluster = address in ("", "local")
            watcher = _start_ray_watcher() if starts_a_cluster else None
            try:
                ray.init(**({} if address else {"num_cpus": workers}), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
            except (ConnectionError, ValueError, RuntimeError, TimeoutError) as error:
                raise DataError(
                    f"Ray could not start or join a cluster ({RAY_ADDRESS_ENV}={address or '(unset)'}): {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
                ) from None
            if watcher is not None:
                _watch_ray_children(watcher)
        actor_class = ray.remote(num_cpus=1)(_FrozenWorker)
        actors = [actor_class.remote(worker_class, arguments) for _ in range(workers)]
        try:
            yield cls(ray, actors)
        finally:
            for actor in actors:
                ray.kill(actor)

    def _results(self, tasks: Sequence) -> Iterator:
        pending = deque(self.actors[number % len(self.actors)].run.remote(task) for number, task in enumerate(tasks))
        return _results_in_order(pending, self._result)

    def _result(self, reference):
        """A task's result; its DataError as itself, any other failure of the task or its actor as one line."""
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return self.ray.get(reference)
        except RayTaskError as error:
            if isinstance(error.cause, DataError):
                raise error.cause from None
            raise DataError(f"a Ray worker failed: {type(error.cause).__name__}: {error.cause}") from None
        except RayActorError as error:
            raise DataError(f"a Ray worker died before it finished its task ({type(error).__name__})", hint=WORKER_DIED_HINT) from None


def _start_ray_watcher() -> subprocess.Popen:
    """A watcher of the local cluster `ray.init()` is about to start as this process's children. A normal exit or
    Ctrl-C stops them (Ray's own exit handler), and after a kill -9 the raylet and the GCS follow this process; but
    Ray's dashboard and runtime-env agents then spend 60 s telling the dead GCS that the raylet died. The watcher
    (`python -m datagen.executor`, in a session of its own so that Ctrl-C reaches this process, not it) is told the
    cluster's processes, and when its pipe from this process closes, as it does however this process ends, it
    stops those still running."""
    return subprocess.Popen([sys.executable, "-m", "datagen.executor"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, text=True)


def _watch_ray_children(watcher: subprocess.Popen) -> None:
    """Tell the watcher every process below this one but itself (the cluster just started): id and start time, so
    that an id the system gives to another process later is never stopped."""
    import psutil  # with Ray, in the ray extra

    for child in psutil.Process().children(recursive=True):
        if child.pid != watcher.pid:
            watcher.stdin.write(f"{child.pid} {child.create_time()!r}\n")
    watcher.stdin.flush()


def _stop_survivors(watched: list[tuple[int, float]]) -> None:
    """SIGTERM each watched process still running, then SIGKILL those that outlive RAY_STOP_SECONDS."""
    import psutil

    running = []
    for pid, started in watched:
        try:
            process = psutil.Process(pid)
            if process.create_time() == started:
                process.terminate()
                running.append(process)
        except psutil.Error:  # gone already, or not ours to stop
            continue
    _, alive = psutil.wait_procs(running, timeout=RAY_STOP_SECONDS)
    for process in alive:
        try:
            process.kill()
        except psutil.Error:
            continue


def _check_ray_address(address: str) -> None:
    """A $RAY_ADDRESS of host:port (or ray://host:port) must be one whose head answers within RAY_CONNECT_SECONDS:
    ray.init would wait much longer for one that does not. `auto`, `local` and unset are Ray's to resolve."""
    import socket
    from urllib.parse import urlsplit

    if address in ("", "auto", "local"):
        return
    try:
        parts = urlsplit(address if "://" in address else f"ray://{address}")
        host, port = parts.hostname, parts.port
    except ValueError:
        host = port = None
    if not host or port is None:
        raise DataError(f"${RAY_ADDRESS_ENV} is {address!r}, not host:port, ray://host:port, auto or local", hint="e.g. RAY_ADDRESS=10.0.0.5:6379, the address `ray start --head` printed")
    try:
        socket.create_connection((host, port), timeout=RAY_CONNECT_SECONDS).close()
    except OSError as error:
        raise DataError(
            f"the Ray cluster at ${RAY_ADDRESS_ENV}={address} did not answer within {RAY_CONNECT_SECONDS:g} s: {error}",
            hint="Is its head running (`ray status` there)? Unset RAY_ADDRESS to start a local cluster.",
        ) from None


def _pool_context(worker_class: type) -> multiprocessing.context.BaseContext:
    """Forked from a fork server, not from the driver: a forked child of a process that has run torch's thread pools
    can hang. The server, started once per driver, imports torch (2 CPU-s) once, and each worker of a class that
    uses torch is forked with it loaded, where a spawned worker would import it itself. Nothing else is loaded
    there: Polars starts threads as it loads, and a child forked from threads can deadlock on their locks. Where
    there is no fork server (Windows), each worker is spawned."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["torch"] if getattr(worker_class, "uses_torch", False) else [])
    if not _reaping_fork_server.is_set():
        _reaping_fork_server.set()
        atexit.register(_reap_fork_server)
    return context


def _reap_fork_server() -> None:
    """Stop the fork server and wait for it as this process exits. The server reaps the workers it forked, so their
    CPU time counts in its children's, and waiting for it brings that into this process's children's: what
    /usr/bin/time and getrusage(RUSAGE_CHILDREN) report for the command. (Left to die on its own, it is never waited
    for, and a 2-worker command showed 5 of its 26 CPU-seconds.)"""
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # what multiprocessing's own tests call; public API has no stop


def _pool_result(future: Future):
    try:
        return future.result()
    except BrokenProcessPool:
        raise DataError("a worker process died before it finished its task (killed, or out of memory?)", hint=WORKER_DIED_HINT) from None


def _results_in_order(pending: deque, result_of) -> Iterator:
    # Each result is let go once read (a list of the futures would hold them all to the end).
    while pending:
        yield result_of(pending.popleft())


def _start_worker(worker_class: type, arguments: tuple, environment: dict[str, str]) -> None:
    """Each pool process dies with its driver, sees the driver's environment as it is now (a worker forked by the
    fork server would otherwise see the server's, as it was when the server started, as for `$DATAGEN_TEMPLATES`), and
    computes on one core (`workers` processes of torch's default threads would oversubscribe them)."""
    global _job
    _die_with_driver()
    os.environ.clear()
    os.environ.update(environment)
    if getattr(worker_class, "uses_torch", False):
        import torch

        torch.set_num_threads(1)
    _job = (worker_class, arguments)


@contextlib.contextmanager
def _one_core(worker_class: type) -> Iterator[None]:
    """One worker computes on one core here too, as each of a pool's does; torch's threads are restored after."""
    if not getattr(worker_class, "uses_torch", False):
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _die_with_driver() -> None:
    """A pool's workers share its queues' pipes, so after a SIGKILL of the driver nothing would tell them to stop, and
    they would wait, holding their memory, for ever: a thread of each waits for the driver's end and ends the worker.
    The driver is the worker's parent for multiprocessing (its sentinel closes when the driver dies), whether it was
    spawned by the driver or forked by the fork server."""
    sentinel = multiprocessing.parent_process().sentinel
    threading.Thread(target=_exit_when_ready, args=(sentinel,), name="datagen-driver-watch", daemon=True).start()


def _exit_when_ready(sentinel: int) -> None:
    multiprocessing.connection.wait([sentinel])
    os._exit(1)


def _build() -> None:
    # The worker is built by a task rather than by the initializer: an error building it (a stale model) then
    # reaches the caller as itself, from its first task, where a failed initializer only breaks the pool.
    global _worker
    if _worker is None:
        _worker = _FrozenWorker(*_job)


def _run(task):
    _build()
    return _worker.run(task)


class _FrozenWorker:
    """The worker of a pool process or a Ray actor, built and then frozen out of the garbage collector's passes for
    the life of the process, as `_Pool.ordered_map` does with the caller's objects (and an in-process worker)."""

    def __init__(self, worker_class: type, arguments: tuple):
        self.worker = worker_class(*arguments)
        gc.freeze()

    def run(self, task):
        return self.worker.run(task)


def _watch_ray_cluster() -> None:
    """The watcher's own loop (`python -m datagen.executor`): "pid start-time" lines until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watched = []
    for line in sys.stdin:
        pid, started = line.split()
        watched.append((int(pid), float(started)))
    _stop_survivors(watched)


if __name__ == "__main__":
    _watch_ray_cluster()
