"""Every command that changes a finished build, killed with SIGKILL at several points or out of disk, leaves the old build or the new one.

Each command runs once to the end on a copy of the real sample build (the
"new" folder), then again on fresh copies, killed after a share of that run's
time. The folder must then hold exactly the old files or exactly the new ones,
and pass `datagen validate`. Kills land in the imports, in the work, in the
writing and in the final swap, depending on the share. A full disk is a child
process whose files may not grow past a limit (RLIMIT_FSIZE), since a test
cannot mount a small file system here.
"""

from __future__ import annotations

import hashlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from datagen.controllable.build import ControllableSettings
from datagen.pipeline import BuildConfig, build
from datagen.publish.validate import validate
from datagen.sources.steam import SAMPLE_DIR
from datagen.teacher.settings import TeacherSettings, TrainConfig

pytestmark = pytest.mark.integration  # builds, trains and runs the CLI in subprocesses

KILL_AT = (0.45, 0.75, 0.95)  # shares of the uninterrupted run's time
NO_HUB = "http://127.0.0.1:9"  # the discard port: nothing listens
EDITS = {
    "generate": ["generate", "{build}", "--seed", "7", "--device", "cpu", "-q"],
    "recknowledge": ["recknowledge", "{build}", "--seed", "7", "-q"],
    "instructrec": ["instructrec", "{build}", "--seed", "7", "--device", "cpu", "-q"],
    # another seed than the build's teacher: the same settings would train the same teacher, and change nothing
    "teacher train": ["teacher", "train", "{build}", "--epochs", "2", "--dim", "16", "--inner-dim", "16", "--seed", "7", "--device", "cpu", "-q"],
    "card": ["card", "{build}", "--repo", "me/steam-faults", "--license", "cc-by-4.0"],
    # against a server that answers like the Hub until the upload (conftest.py), so push gets to edit the card
    "push (its card edit; the upload is refused)": ["push", "{build}", "--repo", "my-org/steam", "--no-tag"],
}


@pytest.fixture(scope="module")
def finished_build(tmp_path_factory) -> Path:
    """The shipped Steam sample built with a (small) teacher and the controllable dataset."""
    teacher = TeacherSettings(dim=16, inner_dim=16, train=TrainConfig(epochs=2, device="cpu"))
    out_dir = tmp_path_factory.mktemp("edits") / "steam"
    return build(BuildConfig("steam", raw_dir=SAMPLE_DIR, out_dir=out_dir, teacher=teacher, families={"controllable": ControllableSettings(device="cpu")})).out_dir


def files_of(folder: Path) -> dict[str, str]:
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(folder.rglob("*")) if path.is_file()}


def start(arguments: list[str], build: Path, cache: Path, max_file_bytes: int | None = None, hub: str = NO_HUB) -> subprocess.Popen:
    env = {
        **os.environ,
        "DATAGEN_CACHE": str(cache),
        "HF_ENDPOINT": hub,
        "HF_TOKEN": "hf_fault_test_token",
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }
    command = [sys.executable, "-m", "datagen", *(part.format(build=build) for part in arguments)]
    limit = None if max_file_bytes is None else lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=limit)


@pytest.mark.parametrize("name", list(EDITS))
def test_a_killed_edit_leaves_the_old_build_or_the_new_one(name, finished_build, hub_until_upload, tmp_path):
    arguments = EDITS[name]
    hub = f"http://127.0.0.1:{hub_until_upload[0].server_port}"
    old = files_of(finished_build)

    whole = tmp_path / "whole" / "steam"
    shutil.copytree(finished_build, whole)
    started = time.monotonic()
    finished = start(arguments, whole, tmp_path / "cache-whole", hub=hub)
    _, stderr = finished.communicate(timeout=600)
    seconds = time.monotonic() - started
    if name.startswith("push"):
        assert finished.returncode != 0 and "Traceback" not in stderr, stderr
    else:
        assert finished.returncode == 0, stderr
    new = files_of(whole)
    assert new != old, f"{name} changed nothing, so a kill could not be told apart"

    outcomes, left_behind = [], []
    for trial, share in enumerate(KILL_AT):
        build = tmp_path / f"kill-{trial}" / "steam"
        shutil.copytree(finished_build, build)
        running = start(arguments, build, tmp_path / f"cache-{trial}", hub=hub)
        time.sleep(seconds * share)
        running.send_signal(signal.SIGKILL)
        running.communicate()
        now = files_of(build)
        assert now in (old, new), f"{name} killed at {share:.0%} of its {seconds:.1f} s left a mix of the old build and the new one"
        assert validate(build) == [], f"{name} killed at {share:.0%}"
        outcomes.append("new" if now == new else "old")
        if any(path.name.startswith(".steam.") for path in build.parent.iterdir()):
            left_behind.append(trial)
    assert "old" in outcomes, f"{name}: no kill landed before the swap ({outcomes}); the test did not test"
    assert left_behind, f"{name}: no kill landed while a staged copy was being written ({outcomes})"

    killed = tmp_path / f"kill-{left_behind[0]}" / "steam"
    start(EDITS["card"], killed, tmp_path / "cache-again").communicate(timeout=600)  # any edit: they share the cleaning
    assert [path.name for path in killed.parent.iterdir()] == ["steam"], "the next edit cleans what the killed one left beside the build"


def test_a_full_disk_during_generate_is_a_clear_error_and_the_build_is_as_it_was(finished_build, tmp_path):
    build = tmp_path / "full" / "steam"
    shutil.copytree(finished_build, build)
    old = files_of(build)
    running = start(EDITS["generate"], build, tmp_path / "cache", max_file_bytes=1 << 20)  # the test split's rows are 4 MB
    _, stderr = running.communicate(timeout=600)
    assert running.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert stderr.startswith("Error: could not write") and "File too large" in stderr, stderr
    assert files_of(build) == old
    assert [path.name for path in build.parent.iterdir()] == ["steam"]


def test_a_full_disk_during_build_leaves_no_folder(tmp_path):
    out = tmp_path / "out" / "steam"
    command = ["build", "steam", "--no-teacher", "--out", str(out)]
    running = start(command, out, tmp_path / "cache", max_file_bytes=64 << 10)  # sequences.parquet is 230 kB
    _, stderr = running.communicate(timeout=600)
    assert running.returncode == 1, stderr
    assert "Traceback" not in stderr and "File too large" in stderr, stderr
    assert not out.parent.exists() or list(out.parent.iterdir()) == []


@pytest.mark.parametrize("name", ["generate", "recknowledge", "instructrec", "teacher train"])
def test_an_edit_refuses_a_build_changed_by_hand_rather_than_seal_it_anew(name, finished_build, tmp_path):
    """Sealing again would make a hand-edited file pass `datagen validate`: the edit refuses and changes nothing."""
    copy = tmp_path / "steam"
    shutil.copytree(finished_build, copy)
    stats = copy / "stats.md"
    stats.write_text(stats.read_text() + "\n(edited by hand)\n")
    before = files_of(copy)
    process = start(EDITS[name], copy, tmp_path / "cache")
    out, err = process.communicate(timeout=300)
    assert process.returncode == 1, err
    assert "fails `datagen validate`" in err and "stats.md: changed since the build" in err and "Traceback" not in err
    assert files_of(copy) == before
