"""A teacher training killed with SIGKILL goes on from the cache, and ends as an uninterrupted run does (real sample)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from datagen.buildfolder import BuildFolder
from datagen.pipeline import BuildConfig, build
from datagen.progress import StepProgress
from datagen.sources.steam import SAMPLE_DIR
from datagen.teacher.checkpoint import CHECKPOINT_NAME
from datagen.teacher.folder import train_teacher, training_state_path
from datagen.teacher.settings import TeacherSettings, TrainConfig
from datagen.teacher.train import read_state

pytestmark = pytest.mark.integration  # builds, trains and runs the CLI in subprocesses

TRAIN = ["teacher", "train", "--epochs", "8", "--patience", "8", "--validate-every", "1", "--dim", "32", "--inner-dim", "64", "--device", "cpu"]


def _train(build_dir, cache, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "DATAGEN_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "datagen", *TRAIN[:2], str(build_dir), *TRAIN[2:]], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)  # fmt: skip


def test_kill_mid_training_resumes_to_the_same_teacher(tmp_path):
    built = build(BuildConfig("steam", raw_dir=SAMPLE_DIR, out_dir=tmp_path / "killed")).out_dir
    shutil.copytree(built, tmp_path / "whole")

    running = _train(built, tmp_path / "cache-killed")
    states = tmp_path / "cache-killed" / "teacher-training"
    deadline = time.monotonic() + 300
    # the first epoch's state is sealed (its checksum written beside it): a kill from then on resumes from it
    while not any(states.rglob("*.pt.sha256")) and running.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    running.send_signal(signal.SIGKILL)
    running.communicate()
    assert running.returncode == -signal.SIGKILL, "training ended before it could be killed"
    assert not (built / "teacher").exists()

    resumed = _train(built, tmp_path / "cache-killed")
    _, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    assert "Going on from the teacher training state in the cache" in stderr
    report = json.loads((built / "teacher" / "report.json").read_text())
    assert report["training"]["resumed_from_epoch"] >= 1
    assert len(report["training"]["epochs"]) == 8

    whole = _train(tmp_path / "whole", tmp_path / "cache-whole")
    _, stderr = whole.communicate(timeout=600)
    assert whole.returncode == 0, stderr
    assert (built / "teacher" / CHECKPOINT_NAME).read_bytes() == (tmp_path / "whole" / "teacher" / CHECKPOINT_NAME).read_bytes()
    epochs = json.loads((tmp_path / "whole" / "teacher" / "report.json").read_text())["training"]["epochs"]
    assert report["training"]["epochs"] == epochs  # no epoch's seconds, which differ run to run

    again = _train(built, tmp_path / "cache-killed")
    _, stderr = again.communicate(timeout=600)
    assert again.returncode == 0 and "Going on from" in stderr  # a finished state is reused, not retrained


def test_a_corrupt_training_state_is_dropped_with_a_warning(sample_build, tmp_path, capsys):
    shutil.copytree(sample_build.out_dir, tmp_path / "b")
    folder = BuildFolder.open(tmp_path / "b")
    settings = TeacherSettings(dim=16, inner_dim=16, train=TrainConfig(epochs=1, device="cpu"))
    state = training_state_path(folder, settings)
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_bytes(b"half a file")
    teacher = train_teacher(folder, settings, StepProgress(quiet=True))
    assert "Dropped the teacher training state in the cache, not trusted: it has no checksum beside it" in capsys.readouterr().err
    assert len(teacher.log["epochs"]) == 1 and teacher.log["resumed_from_epoch"] == 0
    assert read_state(state)["progress"]["finished"] is True
    # A sealed state with one bit flipped (in a weight, it used to resume silently) is dropped the same way.
    data = bytearray(state.read_bytes())
    data[len(data) // 2] ^= 1
    state.write_bytes(bytes(data))
    again = train_teacher(folder, settings, StepProgress(quiet=True))
    assert "not trusted: its bytes do not match its checksum" in capsys.readouterr().err
    assert again.log["resumed_from_epoch"] == 0 and read_state(state)["progress"]["finished"] is True
