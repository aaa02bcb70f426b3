"""The `datagen` command line, run in-process with click's runner."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from datagen.cli import main


@pytest.fixture
def runner(monkeypatch, tmp_path):
    monkeypatch.delenv("DATAGEN_DATA", raising=False)
    monkeypatch.setenv("DATAGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return CliRunner()


@pytest.mark.parametrize("command", ["build", "sources", "stats", "download", "teacher train", "teacher eval", "teacher rank"])
def test_every_command_teaches_by_example(runner, command):
    result = runner.invoke(main, [*command.split(), "--help"])
    assert result.exit_code == 0
    assert "Example" in result.output and f"datagen {command}" in result.output


def test_the_command_list_is_not_cut_at_et_al(runner):
    listed = runner.invoke(main, ["--help"], terminal_width=120).output.split("Commands:")[1]
    assert "(Zhang et al. 2023) from a BUILD." in listed and "Generate Cao et al. 2024's retrieval" in listed
    assert not any(line.rstrip().endswith("et al.") for line in listed.splitlines())


def test_the_command_line_starts_without_the_heavy_libraries():
    """`datagen --help` and `datagen build --no-teacher` need none of them: each command imports its own."""
    heavy = ("torch", "transformers", "trl", "matplotlib", "datasets", "peft")
    script = f"import sys; import datagen.cli; print(','.join(name for name in {heavy!r} if name in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout.strip()
    assert loaded == ""


def test_build_without_raw_files_uses_the_shipped_sample_loudly(runner, tmp_path):
    result = runner.invoke(main, ["build", "steam", "--no-teacher"])
    assert result.exit_code == 0, result.output
    assert "shipped with datagen" in result.output
    assert (tmp_path / "build" / "steam-sample" / "manifest.json").is_file()
    stats = runner.invoke(main, ["stats", "build/steam-sample", "--json"])
    assert json.loads(stats.output)["stats"]["users"] > 1000
    piped = subprocess.run([sys.executable, "-m", "datagen", "stats", "build/steam-sample"], check=True, capture_output=True, text=True).stdout
    assert max(len(line) for line in piped.splitlines()) > 80 and "…" not in piped  # a pipe is not cut at 80 columns


def test_quiet_prints_only_the_output_folder(runner):
    result = runner.invoke(main, ["build", "steam", "--no-teacher", "--quiet", "--out", "x"])
    lines = result.output.strip().splitlines()
    assert lines[-1] == "x" and not any("✓" in line for line in lines)


def test_data_env_variable_finds_raw_files(runner, shared_data, monkeypatch):
    monkeypatch.setenv("DATAGEN_DATA", str(shared_data))
    result = runner.invoke(main, ["build", "steam", "--no-teacher", "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == "build/steam"


def test_errors_are_messages_not_tracebacks(runner):
    result = runner.invoke(main, ["build", "nosuch"])
    assert result.exit_code == 1
    assert "Error: unknown source 'nosuch'" in result.output
    assert "Traceback" not in result.output
    bad_option = runner.invoke(main, ["build", "steam", "-O", "category_field"])
    assert bad_option.exit_code == 2 and "KEY=VALUE" in bad_option.output


def test_sources_lists_sources_and_presets(runner):
    result = runner.invoke(main, ["sources"])
    for name in ("steam", "amazon", "table", "lu2024", "cao2024", "instructrec"):
        assert name in result.output


def test_source_that_needs_an_argument_says_so(runner):
    result = runner.invoke(main, ["build", "table"])
    assert result.exit_code == 1
    assert "needs an argument: table:CONFIG.yaml" in result.output


def test_plugin_source_registers_and_its_contract_is_checked(tmp_path):
    # A minimal plug-in: a source class registered by decorator, as an entry point would load it.
    import polars as pl

    from datagen.errors import DataError
    from datagen.pipeline import BuildConfig, build
    from datagen.sources import available_sources, register_source
    from datagen.sources.base import RawCatalog, Source

    @register_source
    class NoTitles(Source):
        name = "test-no-titles"
        summary = "a plug-in that forgets the title column"

        def default_raw_dir(self, argument):
            return tmp_path

        def load(self, raw_dir, argument, options, report):
            items = pl.DataFrame({"raw_item_id": ["1"], "categories": [["A"]]})
            return RawCatalog(items=items, interactions=pl.DataFrame(), input_files=[])

    assert "test-no-titles" in available_sources()
    try:
        with pytest.raises(DataError, match="returned items without column.s. title"):
            build(BuildConfig("test-no-titles", out_dir=tmp_path / "out"))
    finally:
        from datagen import sources

        sources._REGISTRY.pop("test-no-titles")


@pytest.mark.parametrize(
    ("command", "old", "new"),
    [(["build"], "--no-tasks", "--no-controllable"), (["render"], "--dataset", "--family"), (["eval"], "--no-teacher", "--no-baselines")],
)
def test_renamed_options_keep_their_old_spelling_hidden_for_a_release(runner, command, old, new):
    """One meaning per option name across commands: the old spellings still parse, unlisted, and say the new name."""
    shown = runner.invoke(main, [*command, "--help"]).output
    assert new in shown and f"{old} " not in shown and f"{old}/" not in shown
    option = next(p for p in main.commands[command[0]].params if old in p.opts or old in p.secondary_opts)
    new_option = next(p for p in main.commands[command[0]].params if new in p.opts or new in p.secondary_opts)
    assert option.hidden
    context = main.commands[command[0]].make_context(command[0], [*(["x"] if command != ["eval"] else []), old, *(["recknowledge"] if old == "--dataset" else [])])
    assert context.params[new_option.name] == ("recknowledge" if old == "--dataset" else False), "the new option's value, set by the old name"
    untouched = main.commands[command[0]].make_context(command[0], [*(["x"] if command != ["eval"] else []), new, *(["recknowledge"] if new == "--family" else [])])
    assert untouched.params[new_option.name] == ("recknowledge" if new == "--family" else False)


def test_an_old_spelling_says_the_new_one(runner, tmp_path):
    result = runner.invoke(main, ["eval", "--dataset", str(tmp_path / "nowhere"), "--no-teacher", "--out", str(tmp_path / "eval")])
    assert "note: --teacher is now --baselines/--no-baselines" in result.output
    assert result.exit_code == 1 and "nothing to evaluate: give --model (or keep --baselines)" in result.output
    quiet = runner.invoke(main, ["eval", "--dataset", str(tmp_path / "nowhere"), "--no-baselines", "--out", str(tmp_path / "eval")])
    assert "note:" not in quiet.output and "nothing to evaluate" in quiet.output


@pytest.mark.parametrize(
    ("command", "options"),
    [
        (["stats"], []),
        (["validate"], []),
        (["card"], []),
        (["push"], ["--repo", "me/x", "--dry-run"]),
        (["render"], []),
        (["generate"], []),
        (["recknowledge"], []),
        (["instructrec"], []),
        (["teacher", "eval"], []),
        (["teacher", "train"], []),
        (["export", "recbole"], ["--out", "exported"]),
    ],
)
def test_a_cut_short_manifest_is_one_clear_line_in_every_command(runner, tmp_path, monkeypatch, command, options):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build" / "cut").mkdir(parents=True)
    (tmp_path / "build" / "cut" / "manifest.json").write_text('{"version": "1.0.0", "files": {"data/items/tr')
    result = runner.invoke(main, [*command, "cut", *options])
    assert result.exit_code == 1, result.output
    assert "manifest.json: not valid JSON at line 1" in result.output and "cut short or edited" in result.output
    assert isinstance(result.exception, SystemExit), "an error message, not a traceback"


@pytest.mark.parametrize(
    ("command", "option"),
    [(["build", "steam"], "--max-bad-share"), (["generate", "x"], "--chat-ratio"), (["teacher", "train", "x"], "--lr"), (["instructrec", "x"], "--annotator-timeout")],
)
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_a_number_option_refuses_nan_and_infinity(runner, command, option, value):
    """NaN passes every range comparison: `--max-bad-share nan` turned the bad-row check off and went into the manifest."""
    result = runner.invoke(main, [*command, option, value])
    assert result.exit_code == 2, result.output
    assert "is not a finite number" in result.output or (value == "inf" and "is not in the range" in result.output), result.output


def test_progress_lines_in_a_log_file_are_whole(tmp_path):
    """Off a terminal Rich assumes 80 columns; a log file must still get each progress line whole, unwrapped."""
    out = tmp_path / ("a-folder-name-long-enough-to-pass-eighty-columns-" * 2)
    env = {key: value for key, value in os.environ.items() if key not in ("DATAGEN_DATA", "COLUMNS")}
    done = subprocess.run([sys.executable, "-m", "datagen", "build", "steam", "--no-teacher", "--out", str(out)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert re.search(rf"^✓ Writing {re.escape(str(out))} \(\d+\.\d s\)$", done.stderr, flags=re.MULTILINE), done.stderr


def test_sources_and_templates_print_json_for_scripts():
    sources = json.loads(CliRunner().invoke(main, ["sources", "--json"]).output)
    assert {source["name"] for source in sources["sources"]} >= {"steam", "amazon", "movielens", "recbole", "table"}
    assert (sources["presets"]["lu2024"]["user_core"], sources["presets"]["lu2024"]["item_core"]) == (25, 10)  # Lu et al. 2024, section 3.1
    templates = json.loads(CliRunner().invoke(main, ["templates", "--json"]).output)
    ids = {template["id"] for template in templates["templates"]}
    assert "lu2024/i0" in ids and len(ids) == len(templates["templates"])
    assert set(templates["task_variables"]) == {"controllable", "recknowledge", "instructrec"}
    assert all(Path(template["path"]).is_file() for template in templates["templates"])
