"""README's commands, run as a new user would: line 1's build of the shipped sample, then every command of the
list under "What it does" in order, in a fresh folder, but those marked as needing the data or the network.

    DATAGEN_DATA=../shared/data pytest -m walkthrough

A command that fails, prints a traceback or names a folder line 1 did not make fails the test, with its output.
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


def test_readmes_commands_run_in_order_after_line_one(tmp_path):
    line_one, commands = readme_commands()
    assert line_one == "datagen build steam" and len(commands) >= 10
    fixture = tmp_path / "tests" / "fixtures" / "docs_chat.json"  # the chat file README's generate line names
    fixture.parent.mkdir(parents=True)
    shutil.copy(ROOT / "tests" / "fixtures" / "docs_chat.json", fixture)
    env = {key: value for key, value in os.environ.items() if key != "DATAGEN_DATA"}  # line 1 builds the shipped sample
    env["DATAGEN_CACHE"] = str(tmp_path / "cache")
    for command in [line_one, *commands]:
        arguments = shlex.split(command)
        done = subprocess.run([sys.executable, "-m", *arguments], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
        output = done.stdout + done.stderr
        assert done.returncode == 0 and "Traceback" not in output, f"README's `{command}` failed:\n{output[-3000:]}"
    assert (tmp_path / "build" / "steam-sample" / "data" / "instructrec").is_dir()
    assert (tmp_path / "export" / "steam-sample" / "steam-sample.inter").is_file()
