"""Every family's dataset is the same, byte for byte, however its work is shared among workers:
one process, a pool of two, or two actors on a local Ray cluster."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from datagen.buildfolder import BuildFolder
from datagen.cli import main
from datagen.controllable.build import ControllableSettings, generate_controllable
from datagen.errors import DataError
from datagen.executor import ordered_map, worker_pool
from datagen.publish.release import finalize


def files_of(folder: Path) -> dict[str, bytes]:
    """What generating the controllable dataset writes: its data, its templates and its report."""
    written = [*(folder / "data" / "controllable").iterdir(), *(folder / "templates" / "controllable").rglob("*"), *(folder / "reports").glob("controllable.*")]
    return {path.relative_to(folder).as_posix(): path.read_bytes() for path in written if path.is_file()}


def test_workers_and_executors_write_the_same_bytes_as_one_process(sample_teacher, tmp_path):
    folder, _ = sample_teacher
    runs = {}
    for workers, executor in ((1, "local"), (2, "local"), (2, "ray")):
        copy = tmp_path / f"{executor}-{workers}"
        shutil.copytree(folder.path, copy)
        # chunks of 512 points: the sample's 9,600 points make 19 tasks, so every worker gets several
        report = generate_controllable(BuildFolder.open(copy), ControllableSettings(seed=7, batch_size=512, workers=workers, executor=executor))
        runs[(workers, executor)] = files_of(copy)
        assert not report["label_check_failures"]
    one = runs[(1, "local")]
    assert len(one) > 3 and runs[(2, "local")] == one and runs[(2, "ray")] == one
    assert b'"workers"' not in one["reports/controllable.json"]  # how the work was spread is not part of the output


@pytest.mark.parametrize("family", ["recknowledge", "instructrec"])
def test_the_other_families_write_the_same_bytes_on_two_workers_and_on_ray(sample_teacher, tmp_path, family):
    """Each chunk's rows are checked and spilled by the worker that made them (several chunks here: the sample's
    3,912 users make 4 recknowledge chunks and 11 instructrec ones), and gathered in order."""
    folder, _ = sample_teacher
    written = {}
    for workers, executor in ((1, "local"), (2, "local"), (2, "ray")):
        copy = tmp_path / f"{executor}-{workers}"
        shutil.copytree(folder.path, copy)
        finalize(copy)  # the fixture trained its teacher in place; sealed, as `datagen teacher train` leaves a build
        result = CliRunner().invoke(main, [family, str(copy), "--workers", str(workers), "--executor", executor, "-q"])
        assert result.exit_code == 0, result.output
        paths = [*(copy / "data" / family).iterdir(), copy / "reports" / f"{family}.json"]
        written[(workers, executor)] = {path.relative_to(copy).as_posix(): path.read_bytes() for path in paths}
        assert not list(copy.glob(f".{family}-rows.tmp-*")), "the scratch folder of the spilled rows was left behind"
    assert len(written[(1, "local")]) > 1 and written[(2, "local")] == written[(1, "local")] == written[(2, "ray")]


def test_a_missing_teacher_is_reported_from_the_workers_as_itself(sample_teacher, tmp_path):
    folder, _ = sample_teacher
    copy = tmp_path / "b"
    shutil.copytree(folder.path, copy, ignore=shutil.ignore_patterns("teacher"))
    before = sorted(path.relative_to(copy) for path in copy.rglob("*"))
    with pytest.raises(DataError, match="no teacher checkpoint here") as raised:
        generate_controllable(BuildFolder.open(copy), ControllableSettings(seed=7, batch_size=512, workers=2))
    assert raised.value.hint and "datagen teacher train" in raised.value.hint
    assert sorted(path.relative_to(copy) for path in copy.rglob("*")) == before, "the failed run left files behind"


class Squares:
    def __init__(self, offset: int):
        self.offset = offset

    def run(self, task: int) -> int:
        return task * task + self.offset


def test_the_pool_keeps_the_tasks_order_and_refuses_unknown_executors():
    with ordered_map(Squares, (1,), list(range(7)), workers=2) as results:
        assert list(results) == [task * task + 1 for task in range(7)]
    with pytest.raises(DataError, match="unknown executor 'dask'"), ordered_map(Squares, (0,), [1], workers=1, executor="dask"):
        pass


class SlowToBuild:
    """A worker that takes a second to build (as loading a teacher does) and says when it was built, and where."""

    def __init__(self):
        time.sleep(1)
        self.built_at = time.monotonic()

    def run(self, task: int) -> tuple[int, float]:
        time.sleep(0.2)  # long enough that each worker takes some of the tasks
        return os.getpid(), self.built_at


@pytest.mark.parametrize("workers", [1, 2])
def test_a_pools_workers_are_built_before_their_tasks_are_known(workers):
    """The caller plans its tasks while the workers load: entering worker_pool starts and builds them."""
    with worker_pool(SlowToBuild, (), workers=workers) as pool:
        time.sleep(4)  # the caller's planning
        mapped_at = time.monotonic()
        built = dict(pool.ordered_map(range(8)))
    assert len(built) == workers
    assert all(built_at < mapped_at for built_at in built.values())


class EnvironmentReader:
    def run(self, name: str) -> str | None:
        return os.environ.get(name)


def test_pool_workers_see_the_drivers_environment_as_it_is_now(monkeypatch):
    """Forked by a fork server started earlier, a worker would otherwise see the environment of the server's start."""
    with ordered_map(Squares, (0,), [1, 2], workers=2) as results:  # the fork server is running after this
        assert list(results) == [1, 4]
    monkeypatch.setenv("DATAGEN_TEST_SETTING", "set after the fork server started")
    with ordered_map(EnvironmentReader, (), ["DATAGEN_TEST_SETTING"] * 2, workers=2) as results:
        assert list(results) == ["set after the fork server started"] * 2


def test_leaving_the_block_early_stops_the_pool():
    """The caller may fail before it reads every result (a stale teacher): the block's end cancels what is left."""
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the caller failed"), ordered_map(Sleeper, (), [0.5] * 80, workers=2) as results:
        next(results)
        raise RuntimeError("the caller failed")
    assert time.monotonic() - started < 10, "the pool ran the 80 tasks (20 s) to the end after its caller failed"


class Sleeper:
    def run(self, seconds: float) -> float:
        time.sleep(seconds)
        return seconds


DRIVER = """
import os, sys, time
from datagen.executor import ordered_map

class Slow:
    def run(self, task):
        time.sleep(0.5)
        return os.getpid()

if __name__ == "__main__":
    with ordered_map(Slow, (), list(range(40)), workers=2) as results:
        for pid in results:
            print(pid, flush=True)
"""


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the pool's workers die with their driver through Linux's prctl")
def test_the_pools_workers_die_with_a_killed_driver(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = set()
    while len(workers) < 2:
        workers.add(int(driver.stdout.readline()))
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), f"workers {sorted(workers)} outlived their driver"


class DiesOnTwo:
    def run(self, task: int) -> int:
        if task == 2:
            os.kill(os.getpid(), signal.SIGKILL)  # as the kernel's out-of-memory killer would
        return task


def test_a_killed_pool_worker_is_one_clear_line():
    with pytest.raises(DataError, match=r"a worker process died before it finished its task \(killed, or out of memory\?\)") as raised:
        with ordered_map(DiesOnTwo, (), [0, 1, 2, 3], workers=2) as results:
            list(results)
    assert "fewer --workers" in raised.value.hint


class Failing:
    def run(self, task: str) -> str:
        if task == "data":
            raise DataError("no teacher checkpoint here", path="build/x")
        raise KeyError(task)


@pytest.fixture
def no_ray_yet():
    """Ray not yet started in this process (an earlier test may have started it): worker_pool starts or joins one."""
    ray = pytest.importorskip("ray")
    ray.shutdown()
    yield
    ray.shutdown()


@pytest.mark.parametrize(("address", "message"), [("not a host:port:x", "not host:port, ray://host:port"), ("127.0.0.1:{closed}", "did not answer within 10 s")])
def test_a_bad_ray_address_is_one_line_in_bounded_time(no_ray_yet, monkeypatch, address, message):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("RAY_ADDRESS", address.format(closed=closed))
    started = time.monotonic()
    with pytest.raises(DataError, match=message), worker_pool(Squares, (0,), workers=2, executor="ray"):
        pass
    assert time.monotonic() - started < 15


def test_ray_actors_errors_reach_the_caller_as_one_line(no_ray_yet, monkeypatch):
    from ray import cloudpickle

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import this test module
    with worker_pool(Failing, (), workers=1, executor="ray") as pool:
        with pytest.raises(DataError, match="no teacher checkpoint here") as raised:
            list(pool.ordered_map(["data"]))
        assert raised.value.path == "build/x", "the worker's own error, not Ray's wrapper"
        with pytest.raises(DataError, match=r"a Ray worker failed: KeyError: 'other'"):
            list(pool.ordered_map(["other"]))


RAY_DRIVER = """
import sys, time, psutil
from datagen.executor import worker_pool

class Idle:
    def __init__(self):
        pass

    def run(self, task):
        return task

with worker_pool(Idle, (), workers=1, executor="ray") as pool:
    list(pool.ordered_map([1]))
    print(*(child.pid for child in psutil.Process().children(recursive=True)), flush=True)
    time.sleep(600)
"""


def test_a_killed_ray_driver_leaves_no_ray_process_behind(no_ray_yet, monkeypatch, tmp_path):
    psutil = pytest.importorskip("psutil")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    driver = subprocess.Popen([sys.executable, "-c", RAY_DRIVER], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    started = [psutil.Process(int(pid)) for pid in driver.stdout.readline().split()]
    names = {process.name() for process in started}
    assert {"raylet", "gcs_server", "ray::DashboardAgent", "ray::RuntimeEnvAgent"} <= names, names
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 15  # Ray's agents alone wait 60 s
    while (left := [p for p in started if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"still running 15 s after the driver was killed: {[p.name() for p in left]}"


BURNING_DRIVER = """
import time
from datagen.executor import ordered_map

class Burner:
    def __init__(self):
        pass

    def run(self, seconds):
        end = time.process_time() + seconds
        while time.process_time() < end:
            pass
        return seconds

if __name__ == "__main__":
    with ordered_map(Burner, (), [0.75] * 4, workers=2) as results:
        print(sum(results))
"""


def test_the_workers_cpu_counts_in_the_command_that_started_them(tmp_path):
    """The workers are reaped by a fork server, which is stopped and waited for as the command exits: the 3 CPU-s the
    workers burn count in the children's time of whoever ran the command, as /usr/bin/time reports it."""
    import resource

    script = tmp_path / "burn.py"
    script.write_text(BURNING_DRIVER)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0 and done.stdout.strip() == "3.0", done.stderr
    assert after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime >= 3.0
