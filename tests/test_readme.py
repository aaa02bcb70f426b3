"""README's commands and `datagen --help`'s "Start here" lines, run as a new user would: line 1's build of the
shipped sample, then every command of the list in order, in a fresh folder, but those marked as needing the data
or the network.

    DATAGEN_DATA=../shared/data pytest -m walkthrough

A command that fails, prints a traceback or names a folder line 1 did not make fails the test, with its output.
The training lines run as written plus overrides that make them short (2 SFT steps, 1 PPO and 1 GRPO step,
1 user a task), since as written they take 40 minutes to hours on 2 cores.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.walkthrough, pytest.mark.integration]  # it builds and trains: not for the fast lane

ROOT = Path(__file__).resolve().parent.parent
SKIPPED_MARKS = ("needs the data", "needs the network")


def readme_commands() -> tuple[str, list[str]]:
    """Line 1's datagen command, and the command list's lines not marked as needing the data or the network."""
    readme = (ROOT / "README.md").read_text()
    first_line = readme.split("```bash\n", 1)[1].splitlines()[0]
    (line_one,) = re.findall(r"(datagen [^&]+?)\s*$", first_line)
    listed = next(block for block in re.findall(r"```bash\n(.*?)```", readme, flags=re.DOTALL) if block.startswith("datagen sources"))
    commands = []
    for line in listed.splitlines():
        command, _, comment = line.partition("  #")
        if command.strip() and not any(mark in comment for mark in SKIPPED_MARKS):
            commands.append(command.strip())
    return line_one, commands


START_HERE_SHORTENED = {  # a command's first words -> what the test appends to make it short
    "datagen train sft": ["training.max_steps=2", "training.max_length=256"],
    "datagen train ppo": ["training.max_steps=1", "training.prompts_per_step=1", "training.minibatch_size=2", "training.max_new_tokens=24"],
    "datagen train grpo": ["training.max_steps=1", "training.gradient_accumulation_steps=2", "training.max_completion_length=24"],
    "datagen eval": ["--rows-per-task", "1", "--max-new-tokens", "24"],
}


def start_here_commands() -> list[str]:
    """The commands of `datagen --help`'s "Start here" list, in order."""
    shown = subprocess.run([sys.executable, "-m", "datagen", "--help"], capture_output=True, text=True, check=True).stdout
    listed = shown.split("Start here:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^ +(datagen \S.*?)(?: {2,}\S.*)?$", listed, flags=re.MULTILINE)


def run_in_order(commands: list[str], folder: Path) -> None:
    """Run each command in `folder` as a new user would, without $DATAGEN_DATA and with a fresh model cache."""
    env = {key: value for key, value in os.environ.items() if key != "DATAGEN_DATA"}  # line 1 builds the shipped sample
    env["DATAGEN_CACHE"] = str(folder / "cache")
    for command in commands:
        arguments = shlex.split(command)
        done = subprocess.run([sys.executable, "-m", *arguments], cwd=folder, env=env, capture_output=True, text=True, timeout=1200)
        output = done.stdout + done.stderr
        assert done.returncode == 0 and "Traceback" not in output, f"`{command}` failed:\n{output[-3000:]}"


def test_readmes_commands_run_in_order_after_line_one(tmp_path):
    line_one, commands = readme_commands()
    assert line_one == "datagen build steam" and len(commands) >= 10
    fixture = tmp_path / "tests" / "fixtures" / "docs_chat.json"  # the chat file README's generate line names
    fixture.parent.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "fixtures" / "docs_chat.json", fixture)
    run_in_order([line_one, *commands], tmp_path)
    assert (tmp_path / "build" / "steam-sample" / "data" / "instructrec").is_dir()
    assert (tmp_path / "export" / "steam-sample" / "steam-sample.inter").is_file()


def test_start_here_lines_run_in_order_with_the_training_lines_shortened(tmp_path):
    commands = start_here_commands()
    assert commands[0] == "datagen build steam" and commands[-1].startswith("datagen eval --recipe") and len(commands) >= 15
    shortened = []
    for command in commands:
        extra = next((options for start, options in START_HERE_SHORTENED.items() if command.startswith(start)), [])
        shortened.append(shlex.join([*shlex.split(command), *extra]))
    run_in_order(shortened, tmp_path)
    for run in ("sft", "ppo", "grpo"):
        assert (tmp_path / "runs" / f"steam-smollm2-135m-{run}" / "merged" / "config.json").is_file()
    assert (tmp_path / "runs" / "steam-smollm2-135m-sft" / "eval" / "results.json").is_file()
