"""Publishing: the dataset repository layout, card, versions, validation and the push path, on real builds."""

from __future__ import annotations

import ast
import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from datagen.cli import main
from datagen.controllable.build import ControllableSettings
from datagen.errors import DataError
from datagen.pipeline import BuildConfig, build
from datagen.publish.release import repository_files
from datagen.publish.validate import validate
from datagen.sources.steam import SAMPLE_DIR
from datagen.teacher.settings import TeacherSettings, TrainConfig

CHAT = Path(__file__).parent / "fixtures" / "docs_chat.json"
TOKEN = "hf_datagenTestSecret0123456789"
SMALL_TEACHER = TeacherSettings(dim=32, inner_dim=64, train=TrainConfig(epochs=2, batch_size=128, learning_rate=3e-3))

LOAD_EVERY_SPLIT = """
import json, sys
from datasets import load_dataset
folder, configs = sys.argv[1], json.loads(sys.argv[2])
loaded = {}
for config in configs:
    dataset = load_dataset(folder, config)
    loaded[config] = {split: {"rows": part.num_rows, "columns": part.column_names, "first": part[0]} for split, part in dataset.items()}
print(json.dumps(loaded, default=str))
"""


def full_build(raw_dir: Path, out: Path, teacher: TeacherSettings = SMALL_TEACHER, version: str = "1.0.0"):
    return build(BuildConfig("steam", raw_dir=raw_dir, out_dir=out, teacher=teacher, families={"controllable": ControllableSettings(chat=str(CHAT))}, version=version))


def load_offline(folder: Path, configs: list[str], hf_home: Path) -> dict:
    """load_dataset on every config, in a fresh interpreter with its caches in hf_home and no network."""
    env = {**os.environ, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", LOAD_EVERY_SPLIT, str(folder), json.dumps(configs)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def card_header(folder: Path) -> dict:
    text = (folder / "README.md").read_text()
    return yaml.safe_load(text[4 : text.index("\n---\n", 4)])


@pytest.fixture(scope="module")
def sample_release(tmp_path_factory):
    """A full build of the shipped Steam sample: tables, a small teacher, the controllable data, the card."""
    return full_build(SAMPLE_DIR, tmp_path_factory.mktemp("release") / "steam-sample").out_dir


def test_every_config_and_split_loads_offline_with_load_dataset(sample_release, tmp_path):
    manifest = json.loads((sample_release / "manifest.json").read_text())
    assert list(manifest["configs"]) == ["controllable", "interactions", "items"]
    loaded = load_offline(sample_release, list(manifest["configs"]), tmp_path / "hf")
    for config, splits in manifest["configs"].items():
        assert {split: part["rows"] for split, part in loaded[config].items()} == {split: entry["rows"] for split, entry in splits.items()}
    assert list(loaded["controllable"]) == ["train", "validation", "test"]
    first = loaded["controllable"]["test"]["first"]
    assert [message["role"] for message in first["messages"]] == ["system", "user", "assistant"]
    assert loaded["items"]["train"]["columns"] == ["item_id", "raw_item_id", "title", "categories"]
    assert (tmp_path / "hf").is_dir()  # the cache went to the temporary HF_HOME


def test_card_header_declares_what_the_hub_reads(sample_release):
    header = card_header(sample_release)
    manifest = json.loads((sample_release / "manifest.json").read_text())
    assert header["license"] == "other" and header["task_categories"] == ["text-generation"]
    assert header["license_name"] == "steam-data-terms" and header["license_link"] == "https://cseweb.ucsd.edu/~jmcauley/datasets.html"
    assert header["size_categories"] == ["10K<n<100K"]
    assert {"recommendation", "steam"} <= set(header["tags"])
    configs = {entry["config_name"]: entry for entry in header["configs"]}
    assert configs["controllable"]["default"] is True
    assert configs["interactions"]["data_files"] == [{"split": s, "path": f"data/interactions/{s}-*"} for s in ("train", "validation", "test")]
    infos = {info["config_name"]: info for info in header["dataset_info"]}
    for config, splits in manifest["configs"].items():
        assert {s["name"]: s["num_examples"] for s in infos[config]["splits"]} == {split: entry["rows"] for split, entry in splits.items()}
    features = {feature["name"]: feature for feature in infos["controllable"]["features"]}
    assert features["task"]["dtype"] == "string" and features["label_item_ids"]["list"] == "int64"


def test_card_body_covers_sources_parameters_checks_templates_samples_and_plots(sample_release):
    text = (sample_release / "README.md").read_text()
    manifest = json.loads((sample_release / "manifest.json").read_text())
    for plot in ("history_length", "categories", "rows_per_task"):
        assert f"](images/{plot}.png)" in text
        assert (sample_release / "images" / f"{plot}.png").read_bytes().startswith(b"\x89PNG")
    for needed in ("Aligning Large Language Models for Controllable Recommendations", "Self-Attentive Sequential Recommendation",
                   manifest["content_hash"], "revision=\"v1.0.0\"", "Label checks", "Failures: **none**", "The SASRec teacher",
                   "What cleaning dropped", manifest["inputs"][0]["sha256"], '"user_core": 5'):  # fmt: skip
        assert needed in text, needed
    assert "[Aligning Large Language Models for Controllable Recommendations](https://arxiv.org/abs/2403.05063)" in text  # the Hub links papers by arXiv URL
    assert "(https://arxiv.org/abs/1808.09781)" in text
    for template in (sample_release / "templates" / "controllable").rglob("*.jinja"):
        assert f"templates/controllable/{template.relative_to(sample_release / 'templates' / 'controllable').as_posix()}" in text
    tasks = {task for split in manifest["configs"]["controllable"] for task in json.loads((sample_release / "reports" / "controllable.json").read_text())["rows"][split]}
    for task in tasks:
        assert f"<b>{task}</b>" in text, f"no sample row of {task}"


def test_card_describes_every_column_its_limits_and_how_to_train(sample_release):
    from huggingface_hub import DatasetCard

    card = DatasetCard.load(sample_release / "README.md")
    assert card.data.annotations_creators == ["machine-generated"] and card.data.source_datasets == ["extended|steam"]
    fields = card.text[card.text.index("## Data fields") : card.text.index("## Limitations")]
    manifest = json.loads((sample_release / "manifest.json").read_text())
    for config, splits in manifest["configs"].items():
        for column in pl.read_parquet_schema(sample_release / splits["train"]["files"][0]):
            line = next(line for line in fields[fields.index(f"<code>{config}</code>") :].splitlines() if line.startswith(f"| `{column}` |"))
            assert not line.endswith("|  |"), f"{config}.{column} has no description"
    teacher = json.loads((sample_release / "teacher" / "report.json").read_text())["evaluation"]["full"]["test"]["SASRec"]
    limits = card.text[card.text.index("## Limitations") : card.text.index("## Source data")]
    assert f"HR@10 is {teacher['HR@10']:.4f}" in limits and "This is the small sample" in limits
    assert "trl sft --model_name_or_path HuggingFaceTB/SmolLM2-135M-Instruct --dataset_name ORG/NAME --dataset_config controllable" in card.text
    assert "templates/controllable/lu2024/intentions.yaml</code></summary>\n\n```yaml\n" in card.text


def test_a_card_names_what_the_folder_holds_and_cites_each_work_once():
    from datagen.publish.card import citations, pretty_name

    tables_only = {"name": "steam", "configs": {"interactions": {}, "items": {}}}
    assert pretty_name(tables_only) == "steam interactions and items for recommenders (datagen)"
    assert pretty_name({**tables_only, "configs": {"controllable": {}, **tables_only["configs"]}}) == "steam instructions for LLM recommenders (datagen)"
    own = "@article{kang2018self,\n  title = {My copy of the SASRec entry},\n}"
    cited = citations({"source": {"citation_keys": ["kang2018"], "citation": own}, "files": {"teacher/report.json": {}}}, {})
    assert len(cited) == 1 and "Self-Attentive Sequential Recommendation" in cited[0], "one entry a BibTeX key, the first kept"
    assert citations({"source": {"citation_keys": []}, "files": {}}, {}) == []


def test_templates_in_the_repository_are_the_shipped_files(sample_release):
    from datagen.shipped import TEMPLATES_DIR

    shipped = TEMPLATES_DIR / "controllable"
    copied = sample_release / "templates" / "controllable"
    assert (copied / "lu2024" / "i2_le.jinja").read_bytes() == (shipped / "i2_le.jinja").read_bytes()
    assert len(list(copied.rglob("*.jinja"))) == len(list(shipped.rglob("*.jinja")))


def test_same_inputs_give_the_same_hash_and_a_one_row_change_a_new_one(sample_release, steam_copy, tmp_path):
    again = full_build(steam_copy, tmp_path / "again")
    first = json.loads((sample_release / "manifest.json").read_text())
    second = again.manifest
    assert second["content_hash"] == first["content_hash"]
    assert {name: entry["sha256"] for name, entry in second["files"].items() if name.startswith("data/")} == {
        name: entry["sha256"] for name, entry in first["files"].items() if name.startswith("data/")
    }
    # One row of the input changed: the title of a game that is in the build.
    kept = pl.read_parquet(sample_release / "data" / "items" / "train-00000-of-00001.parquet")["raw_item_id"][0]
    games = steam_copy / "steam_games.json.gz"
    lines = gzip.decompress(games.read_bytes()).decode().splitlines(keepends=True)
    changed_line = next(i for i, line in enumerate(lines) if ast.literal_eval(line).get("id") == kept)
    game = ast.literal_eval(lines[changed_line])
    lines[changed_line] = repr({**game, "title": game["title"] + " Remastered", "app_name": game["title"] + " Remastered"}) + "\n"
    games.write_bytes(gzip.compress("".join(lines).encode()))
    changed = full_build(steam_copy, tmp_path / "changed")
    assert changed.manifest["inputs"][0]["sha256"] != first["inputs"][0]["sha256"]
    assert changed.manifest["content_hash"] != first["content_hash"]


def test_manifest_records_version_code_seed_parameters_and_inputs(sample_release):
    manifest = json.loads((sample_release / "manifest.json").read_text())
    assert manifest["version"] == "1.0.0"
    assert manifest["code_version"]["datagen"]
    assert manifest["parameters"]["seed"] == 42
    assert manifest["task_settings"]["controllable"]["chat"] == str(CHAT)
    assert manifest["task_settings"]["teacher"]["model"]["dim"] == 32
    assert manifest["task_inputs"][0]["file"] == "docs_chat.json" and len(manifest["task_inputs"][0]["sha256"]) == 64
    assert set(manifest["files"]) == {name for name in repository_files(sample_release) if name not in ("README.md", "manifest.json") and not name.startswith("images/")}


def test_validate_and_card_commands(sample_release, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(sample_release, folder)
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", str(folder)])
    assert ok.exit_code == 0 and "OK, version 1.0.0" in ok.output
    before = (folder / "README.md").read_bytes()
    regenerated = runner.invoke(main, ["card", str(folder)])
    assert regenerated.exit_code == 0 and (folder / "README.md").read_bytes() == before
    named = runner.invoke(main, ["card", str(folder), "--repo", "my-org/steam", "--license", "cc-by-4.0"])
    assert named.exit_code == 0
    assert 'load_dataset("my-org/steam", "controllable", revision="v1.0.0")' in (folder / "README.md").read_text()
    assert card_header(folder)["license"] == "cc-by-4.0"

    shard = folder / "data" / "interactions" / "test-00000-of-00001.parquet"
    shard.write_bytes(shard.read_bytes() + b"x")
    (folder / "data" / "notes.txt").write_text("stray")
    (folder / "templates" / "controllable" / "lu2024" / "i0.jinja").unlink()
    bad = runner.invoke(main, ["validate", str(folder)])
    assert bad.exit_code == 1
    assert "data/interactions/test-00000-of-00001.parquet: changed since the build" in bad.output
    assert "data/notes.txt: not in manifest.json" in bad.output
    assert "templates/controllable/lu2024/i0.jinja: missing" in bad.output


def test_validate_card_and_push_take_a_build_name_as_every_command_does(sample_release, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(sample_release, tmp_path / "build" / "mine-sample")
    (tmp_path / "build" / "broken").mkdir()
    runner = CliRunner()
    found = runner.invoke(main, ["validate", "mine"])
    assert found.exit_code == 0 and "build/mine-sample: OK, version 1.0.0" in found.output
    assert runner.invoke(main, ["push", "mine", "--repo", "my-org/steam", "--dry-run"]).exit_code == 0
    broken = runner.invoke(main, ["validate", "broken"])
    assert broken.exit_code == 1 and "build/broken" in broken.output and "manifest.json" in broken.output, "a broken folder is found, then judged"
    missing = runner.invoke(main, ["card", "nowhere"])
    assert missing.exit_code == 1 and "no build folder 'nowhere' (nor build/nowhere, build/nowhere-sample)" in missing.output


def test_bad_version_is_refused_before_any_work(tmp_path):
    result = CliRunner().invoke(main, ["build", "steam", "--out", str(tmp_path / "x"), "--version", "1.0"])
    assert result.exit_code == 1 and "version '1.0' is not semantic" in result.output
    assert not (tmp_path / "x").exists()


def test_a_hand_edited_manifest_or_card_fails_validate(sample_release, tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(sample_release, folder)
    runner = CliRunner()
    manifest_path = folder / "manifest.json"
    original = manifest_path.read_text()

    manifest_path.write_text(original.replace('"version": "1.0.0"', '"version": "9.9.9"'))
    edited = runner.invoke(main, ["validate", str(folder)])
    assert edited.exit_code == 1 and "manifest.json: edited after the build" in edited.output
    refused = runner.invoke(main, ["card", str(folder)])
    assert refused.exit_code == 1 and "edited after the build" in refused.output
    pushed = runner.invoke(main, ["push", str(folder), "--repo", "my-org/steam", "--dry-run"])
    assert pushed.exit_code == 1 and "edited after the build" in pushed.output and "Would upload" not in pushed.output

    manifest_path.write_text(original)
    card = folder / "README.md"
    card.write_text(card.read_text().replace("## ", "## Hand-written ", 1))
    (folder / "images" / "extra.png").write_bytes(b"not a plot")
    edited = runner.invoke(main, ["validate", str(folder)])
    assert edited.exit_code == 1
    assert "README.md: edited by hand since it was generated" in edited.output
    assert "images/extra.png: not written by the card" in edited.output
    (folder / "images" / "extra.png").unlink()
    assert runner.invoke(main, ["card", str(folder)]).exit_code == 0  # the card written again from the manifest
    assert runner.invoke(main, ["validate", str(folder)]).exit_code == 0
    assert card.read_bytes() == (sample_release / "README.md").read_bytes()


# The push path, against servers on loopback (conftest.py): one that refuses connections, one that answers the
# first calls (whoami, create, refs, tree) like the Hub and drops the connection at the upload, one that echoes the token.


def run_push(folder: Path, endpoint: str, *extra: str, token: str | None = TOKEN, tmp_home: Path, offline: bool = False) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update({"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_home)}, **({"HF_TOKEN": token} if token else {}), **({"HF_HUB_OFFLINE": "1"} if offline else {}))
    command = [sys.executable, "-m", "datagen", "push", str(folder), "--repo", "my-org/steam", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def release_copy(sample_release, tmp_path):
    folder = tmp_path / "release"
    shutil.copytree(sample_release, folder)
    return folder


def test_push_to_an_unreachable_endpoint_fails_clearly_without_the_token(release_copy, tmp_path):
    done = run_push(release_copy, f"http://127.0.0.1:{closed_port()}", tmp_home=tmp_path / "hf")
    assert done.returncode == 1
    assert "could not be reached (step: reach the Hub" in done.stderr and "Nothing was tagged" in done.stderr
    assert TOKEN not in done.stdout + done.stderr


def test_push_dropped_at_upload_creates_no_tag(release_copy, hub_until_upload, tmp_path):
    server, hub = hub_until_upload
    done = run_push(release_copy, f"http://127.0.0.1:{server.server_port}", tmp_home=tmp_path / "hf")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "step: upload to my-org/steam" in done.stderr and "Nothing was tagged" in done.stderr
    paths = [path for _, path in hub.requests]
    assert "/api/repos/create" in paths  # it got as far as the upload
    assert not any("/tag/" in path for path in paths)
    assert TOKEN not in done.stdout + done.stderr


def test_push_to_a_branch_or_as_a_pull_request_says_so_and_sends_it(release_copy, hub_until_upload, tmp_path):
    server, hub = hub_until_upload
    hub.checks_card = True
    endpoint = f"http://127.0.0.1:{server.server_port}"
    done = run_push(release_copy, endpoint, "--revision", "my-branch", "--no-tag", tmp_home=tmp_path / "hf")
    assert done.returncode == 1 and "step: upload to my-org/steam" in done.stderr, done.stderr
    assert "the branch my-branch" in done.stdout
    paths = [path for _, path in hub.requests]
    assert "/api/datasets/my-org/steam/branch/my-branch" in paths and any(path.startswith("/api/datasets/my-org/steam/preupload/my-branch") for path in paths)
    hub.requests.clear()
    done = run_push(release_copy, endpoint, "--create-pr", "--no-tag", tmp_home=tmp_path / "hf")
    assert done.returncode == 1 and "a pull request against main" in done.stdout, done.stdout + done.stderr
    assert any(path.startswith("/api/datasets/my-org/steam/preupload/main") and "create_pr=1" in path for _, path in hub.requests)
    assert not any("/branch/" in path for _, path in hub.requests)


def test_push_plans_its_commit_message_and_refuses_to_tag_a_pull_request(release_copy):
    plan = CliRunner().invoke(main, ["push", str(release_copy), "--repo", "my-org/steam", "--dry-run", "--json", "--create-pr", "--no-tag", "--commit-message", "Steam v1.1.0"])
    assert plan.exit_code == 0, plan.output
    listing = json.loads(plan.output)
    assert (listing["commit_message"], listing["revision"], listing["create_pr"]) == ("Steam v1.1.0", "main", True)
    assert "pull request against main" in listing["note"]
    default = json.loads(CliRunner().invoke(main, ["push", str(release_copy), "--repo", "my-org/steam", "--dry-run", "--json"]).output)
    assert default["commit_message"].startswith("datagen: version 1.0.0, content ") and default["tag"] == "v1.0.0"
    tagged = CliRunner().invoke(main, ["push", str(release_copy), "--repo", "my-org/steam", "--dry-run", "--create-pr"])
    assert tagged.exit_code != 0 and "--no-tag" in tagged.output


def test_push_to_a_server_that_echoes_the_token_never_shows_it(release_copy, hub_echoing_the_token, tmp_path):
    done = run_push(release_copy, f"http://127.0.0.1:{hub_echoing_the_token.server_port}", tmp_home=tmp_path / "hf")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "token was refused" in done.stderr  # the 401 is explained
    assert TOKEN not in done.stdout + done.stderr and "0123456789" not in done.stdout + done.stderr


def test_push_to_a_server_that_never_answers_stops_in_time(release_copy, tmp_path, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts connections (the kernel does) and never reads or answers
    try:
        monkeypatch.setenv("DATAGEN_PUSH_TIMEOUT", "2")
        started = time.monotonic()
        done = run_push(release_copy, f"http://127.0.0.1:{listener.getsockname()[1]}", tmp_home=tmp_path / "hf")
        waited = time.monotonic() - started
    finally:
        listener.close()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "did not answer within 2 s (step: reach the Hub)" in done.stderr and "DATAGEN_PUSH_TIMEOUT" in done.stderr
    assert waited < 60, waited
    assert TOKEN not in done.stdout + done.stderr


def test_push_refuses_an_existing_tag_before_uploading(release_copy, hub_until_upload, tmp_path):
    server, hub = hub_until_upload
    hub.tags = ["v1.0.0"]
    done = run_push(release_copy, f"http://127.0.0.1:{server.server_port}", tmp_home=tmp_path / "hf")
    assert done.returncode == 1 and "tag v1.0.0 already exists in my-org/steam" in done.stderr and "--force" in done.stderr
    assert not any("tree" in path or "commit" in path or "preupload" in path for _, path in hub.requests)


def test_push_offline_without_a_token_or_a_server_fails_before_touching_the_card(release_copy, tmp_path):
    """The card names --repo, so push rewrites it; that waits until the token and the server are known good, and
    nothing claims to be uploading before then."""
    before = {name: (release_copy / name).read_bytes() for name in repository_files(release_copy)}
    assert "my-org/steam" not in before["README.md"].decode()
    endpoint = f"http://127.0.0.1:{closed_port()}"
    no_token = run_push(release_copy, endpoint, token=None, tmp_home=tmp_path / "hf")
    assert no_token.returncode == 1 and "no Hugging Face token" in no_token.stderr
    env_offline = run_push(release_copy, endpoint, tmp_home=tmp_path / "hf", offline=True)
    assert env_offline.returncode == 1 and "HF_HUB_OFFLINE is set" in env_offline.stderr
    unreachable = run_push(release_copy, endpoint, tmp_home=tmp_path / "hf")
    assert unreachable.returncode == 1 and "could not be reached" in unreachable.stderr
    for done in (no_token, env_offline, unreachable):
        assert "Uploading" not in done.stdout and TOKEN not in done.stdout + done.stderr
    assert {name: (release_copy / name).read_bytes() for name in repository_files(release_copy)} == before


def test_dry_run_lists_exactly_the_repository_and_touches_nothing(release_copy, tmp_path):
    before = {name: (release_copy / name).read_bytes() for name in repository_files(release_copy)}
    done = run_push(release_copy, f"http://127.0.0.1:{closed_port()}", "--dry-run", tmp_home=tmp_path / "hf")
    assert done.returncode == 0, done.stderr
    listed = [line.split()[-1] for line in done.stdout.splitlines()[1:]]
    assert listed == sorted(before) and "then tag v1.0.0" in done.stdout
    assert "one commit goes to the branch main, and files there that the folder lacks are deleted in it" in done.stderr
    plan = json.loads(run_push(release_copy, f"http://127.0.0.1:{closed_port()}", "--dry-run", "--json", tmp_home=tmp_path / "hf").stdout)
    assert [entry["path"] for entry in plan["files"]] == listed and plan["tag"] == "v1.0.0" and plan["private"] is False
    assert plan["total_bytes"] == sum(len(data) for data in before.values())
    assert {name: (release_copy / name).read_bytes() for name in repository_files(release_copy)} == before


def test_push_refuses_a_folder_that_does_not_match_its_manifest(release_copy, tmp_path):
    (release_copy / "data" / "items" / "train-00000-of-00001.parquet").write_bytes(b"not parquet")
    done = run_push(release_copy, f"http://127.0.0.1:{closed_port()}", "--dry-run", tmp_home=tmp_path / "hf")
    assert done.returncode == 1 and "does not match its manifest" in done.stderr
    with pytest.raises(DataError, match="not ORG/NAME"):
        from datagen.publish.hub import plan_push

        plan_push(release_copy, "no-slash")


@pytest.mark.slow  # the whole real Steam build, about 2 minutes: `pytest -m slow` (README)
@pytest.mark.usefixtures("shared_data")
def test_a_full_real_steam_build_loads_every_config_and_split(shared_data, tmp_path):
    """The real Steam files end to end (teacher shortened to one epoch), read back by `datasets`."""
    result = full_build(shared_data / "steam", tmp_path / "steam", teacher=TeacherSettings(train=TrainConfig(epochs=1)))
    assert validate(result.out_dir) == []
    manifest = result.manifest
    assert manifest["stats"]["users"] == 15744
    loaded = load_offline(result.out_dir, list(manifest["configs"]), tmp_path / "hf")
    for config, splits in manifest["configs"].items():
        assert {split: part["rows"] for split, part in loaded[config].items()} == {split: entry["rows"] for split, entry in splits.items()}
    assert loaded["interactions"]["test"]["rows"] == loaded["interactions"]["validation"]["rows"] == 15744
    assert sum(part["rows"] for part in loaded["controllable"].values()) > 200_000


def test_a_big_split_is_written_as_numbered_shards_that_read_back_whole(sample_release, tmp_path):
    from datagen.layout import data_files, read_split, write_split

    items = read_split(sample_release, "items", "train")
    config_dir = tmp_path / "repo" / "data" / "items"
    paths = write_split(items, config_dir, "train", max_shard_bytes=items.estimated_size() // 3 + 1)
    assert [path.name for path in paths] == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    assert data_files(tmp_path / "repo") == {"items": {"train": [f"data/items/{path.name}" for path in paths]}}
    assert read_split(tmp_path / "repo", "items", "train").equals(items)


@pytest.mark.parametrize("link", ["to a folder", "a loop"])
def test_an_edit_refuses_a_build_holding_a_symbolic_link(release_copy, tmp_path, link):
    """Copying the build for a staged edit would bring a linked folder in, or never end on a loop."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the build's")
    (release_copy / "images" / "linked").symlink_to(outside if link == "to a folder" else release_copy)
    before = sorted(path.name for path in release_copy.parent.iterdir())
    result = CliRunner().invoke(main, ["card", str(release_copy)])
    assert result.exit_code == 1 and "the build holds a symbolic link, images/linked" in result.output, result.output
    assert "Traceback" not in result.output
    assert sorted(path.name for path in release_copy.parent.iterdir()) == before, "no staged copy left"


def test_an_error_inside_a_staged_edit_names_the_build_not_its_staged_copy(release_copy):
    from datagen.output import staged_edit

    with pytest.raises(DataError) as error, staged_edit(release_copy) as staged:
        raise DataError(f"cannot read {staged / 'data'}", path=staged / "manifest.json", hint=f"look in {staged}")
    assert error.value.path == str(release_copy / "manifest.json")
    assert error.value.message == f"cannot read {release_copy / 'data'}" and error.value.hint == f"look in {release_copy}"
