"""One job's tasks on every core (a process pool) or on many machines (Ray), results in task order.

A job is a worker class: each worker process builds one (`Worker(*arguments)`:
loading a model, a catalog) and then runs tasks with its `run` method. A worker
class that computes with torch says so (`uses_torch = True`), and each of its
workers then runs torch on one thread, so that N workers use N cores. The
workers start, and get every task, when the block is entered, so the caller
can do its own work while they load:

    >>> with ordered_map(Doubler, (), [1, 2, 3], workers=2) as results:  # doctest: +SKIP
    ...     list(results)
    [2, 4, 6]

`--executor local` (the default) runs `--workers` processes on this machine
(one worker in this process, on one core, when it is 1); `--executor ray` starts `--workers`
Ray actors: `ray.init()` joins the cluster `$RAY_ADDRESS` names (e.g. one
started with `ray start` on Slurm nodes), or starts a local one. The worker
class, its arguments and the tasks must pickle, and the files a worker reads or
writes (a build folder) must be where every node sees them. The caller writes
the outputs from the tasks' results (or from the files they name), in task
order, so what is written is the same for any executor and any number of
workers.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.connection
import os
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

from datagen.errors import DataError

EXECUTORS = ("local", "ray")
RAY_ADDRESS_ENV = "RAY_ADDRESS"
_job: tuple | None = None  # a pool process's (worker class, arguments), set by _start_worker
_worker = None  # its worker, built by its first task


def default_workers() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@contextlib.contextmanager
def ordered_map(worker_class: type, arguments: tuple, tasks: Sequence, workers: int, executor: str = "local") -> Iterator[Iterator]:
    """worker.run(task) for each task, in the tasks' order, with `workers` workers built as worker_class(*arguments).

    The workers start on entering the block; leaving it stops them, whether or not every result was read.
    """
    if executor not in EXECUTORS:
        raise DataError(f"unknown executor {executor!r}; executors: {', '.join(EXECUTORS)}")
    if workers < 1:
        raise DataError(f"--workers must be at least 1, not {workers}")
    if executor == "ray":
        with _ray_results(worker_class, arguments, tasks, workers) as results:
            yield results
    elif workers == 1 or len(tasks) <= 1:
        with _one_core(worker_class):
            worker = worker_class(*arguments)
            with _frozen_heap():
                yield (worker.run(task) for task in tasks)
    else:
        context = _pool_context(worker_class)
        start = (worker_class, arguments, dict(os.environ))
        pool = ProcessPoolExecutor(min(workers, len(tasks)), mp_context=context, initializer=_start_worker, initargs=start)
        try:
            with _frozen_heap():  # the caller's, while it gathers the results
                yield _results_in_order(deque(pool.submit(_run, task) for task in tasks), Future.result)
        finally:
            pool.shutdown(cancel_futures=True)


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
    return context


def _results_in_order(pending: deque, result_of) -> Iterator:
    # Each result is let go once read (a list of the futures would hold them all to the end).
    while pending:
        yield result_of(pending.popleft())


@contextlib.contextmanager
def _frozen_heap() -> Iterator[None]:
    """The objects alive now (a worker's catalog, templates and model; the caller's) left out of the cyclic garbage
    collector's passes until the block ends: they live as long as the job, and walking them again on every pass
    was 10% of a profiled one-worker generation (5% after)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


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


def _run(task):
    # The worker is built by the first task rather than by the initializer: an error building it (a stale
    # model) then reaches the caller as itself, where a failed initializer only breaks the pool.
    global _worker
    if _worker is None:
        _worker = _FrozenWorker(*_job)
    return _worker.run(task)


@contextlib.contextmanager
def _ray_results(worker_class: type, arguments: tuple, tasks: Sequence, workers: int) -> Iterator[Iterator]:
    try:
        import ray
    except ImportError:
        raise DataError("--executor ray needs Ray", hint="pip install 'datagen[ray]'") from None
    if not ray.is_initialized():
        joining = bool(os.environ.get(RAY_ADDRESS_ENV))
        ray.init(**({} if joining else {"num_cpus": workers}), include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    actor_class = ray.remote(num_cpus=1)(_FrozenWorker)
    actors = [actor_class.remote(worker_class, arguments) for _ in range(min(workers, max(len(tasks), 1)))]
    try:
        pending = deque(actors[number % len(actors)].run.remote(task) for number, task in enumerate(tasks))
        with _frozen_heap():
            yield _results_in_order(pending, ray.get)
    finally:
        for actor in actors:
            ray.kill(actor)


class _FrozenWorker:
    """The worker of a pool process or a Ray actor, built and then frozen out of the garbage collector's passes for
    the life of the process, as `_frozen_heap` does around an in-process worker."""

    def __init__(self, worker_class: type, arguments: tuple):
        self.worker = worker_class(*arguments)
        gc.freeze()

    def run(self, task):
        return self.worker.run(task)
