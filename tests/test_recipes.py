"""Every shipped recipe loads, and what it references exists; bad recipes fail with the file and key."""

from __future__ import annotations

import dataclasses
import json
import re
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from datagen.cli import main
from datagen.controllable.tasks import TASKS
from datagen.errors import DataError
from datagen.instructrec.build import TASKS as INSTRUCTREC_TASKS
from datagen.recknowledge.build import AUXILIARY_TASKS, RECOMMENDATION_TASKS
from datagen.shipped import RECIPES_DIR
from datagen.training.candidate_eval import PROTOCOLS
from datagen.training.data import evaluation_rows, rows_read, training_rows
from datagen.training.grpo import grpo_config
from datagen.training.ppo import PpoSettings
from datagen.training.recipe import LoraSpec, find_recipe, load_recipe
from datagen.training.sft import sft_config

RECIPES = sorted(p for p in RECIPES_DIR.rglob("*.yaml") if "accelerate" not in p.relative_to(RECIPES_DIR).parts)
ACCELERATE = sorted((RECIPES_DIR / "accelerate").glob("*.yaml"))
# each family's config and the tasks its train split can hold
TRAIN_TASKS = {"controllable": set(TASKS) | {"i4_chat"}, "recknowledge": {*RECOMMENDATION_TASKS, *AUXILIARY_TASKS}, "instructrec": set(INSTRUCTREC_TASKS)}
EVALUATED_TASKS = set(TASKS) | set(PROTOCOLS)


def test_the_recipes_the_issue_asks_for_are_shipped():
    names = {str(p.relative_to(RECIPES_DIR).with_suffix("")) for p in RECIPES}
    assert {"steam/smollm2-135m/sft", "steam/smollm2-135m/sft-v1", "steam/smollm2-135m/sft-v2", "steam/llama-2-7b-chat/sft", "amazon-movies/llama-2-7b-chat/sft"} <= names
    assert {p.stem for p in ACCELERATE} == {"ddp", "fsdp", "zero3"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(RECIPES_DIR)))
def test_recipe_loads_and_its_references_exist(path):
    text = path.read_text()
    assert text.startswith("#") and re.search(r"datagen (train (sft|ppo|grpo)|eval)", text.split("\n\n")[0]), "a recipe opens with the commands that run it"
    recipe = load_recipe(path)
    for component in recipe.dataset.mixture:
        assert component.config in TRAIN_TASKS
        assert set(component.tasks or ()) <= TRAIN_TASKS[component.config]
    assert set(recipe.evaluation.tasks) <= EVALUATED_TASKS
    reference = recipe.model.name_or_path
    if reference.startswith("package:"):
        files = metadata.files(reference.removeprefix("package:"))
        assert any(str(f).endswith(".gguf") for f in files)
    elif reference.startswith("runs/"):  # the model another shipped recipe trains
        assert reference in {f"{load_recipe(other).training['output_dir']}/merged" for other in RECIPES}
    else:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", reference), "a Hub id"
    if path.stem.startswith("ppo"):
        config = PpoSettings.from_recipe(recipe)  # every `training` key is a PPO setting
        assert (config.kl_coef, config.gamma, config.lam, config.clip_range, config.value_loss_coef, config.entropy_coef) == (0.3, 0.99, 0.95, 0.2, 0.5, 0.01)
        assert config.learning_rate == (5e-6 if path.stem == "ppo" else recipe.training["learning_rate"])  # the paper's, unless the variant says otherwise
        assert (recipe.lora.r, recipe.lora.alpha, config.samples_per_prompt, config.temperature) == (4, 2, 2, 0.7)
    elif path.stem.startswith("grpo"):
        config = grpo_config(recipe)  # every `training` key is a real GRPOConfig argument
        assert config.num_generations == 2 and config.beta == 0.3
    else:
        config = sft_config(recipe, has_eval=True)  # every `training` key is a real SFTConfig argument
        assert config.completion_only_loss is True
    assert config.output_dir == recipe.training["output_dir"]


@pytest.mark.parametrize("path", RECIPES + ACCELERATE, ids=lambda p: str(p.relative_to(RECIPES_DIR)))
def test_every_key_is_commented_and_accelerate_commands_name_real_configs(path):
    for config in re.findall(r"--config_file (\S+)", path.read_text()):
        assert (RECIPES_DIR.parent / config).is_file() or (RECIPES_DIR / Path(config).relative_to("recipes")).is_file()
    if path in ACCELERATE:
        assert yaml.safe_load(path.read_text())["distributed_type"]
        return
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if re.match(r"\s+(- )?\w+:", line):  # every key inside a section
            assert "#" in line, f"{path.name}:{number}: {line.strip()} has no comment"


def test_variants_extend_the_small_recipe():
    small, v1 = load_recipe("steam/smollm2-135m/sft"), load_recipe("steam/smollm2-135m/sft-v1")
    assert v1.dataset.mixture[0].tasks == ("i0",)
    assert v1.model == small.model and v1.lora == small.lora
    assert v1.training["max_steps"] == small.training["max_steps"] and v1.output_dir != small.output_dir
    paper = load_recipe("amazon-movies/llama-2-7b-chat/sft")
    assert paper.lora.r == 16 and paper.lora.alpha == 8 and paper.training["learning_rate"] == 1e-3 and paper.training["max_length"] == 1024
    assert paper.training["per_device_train_batch_size"] * paper.training["gradient_accumulation_steps"] * 4 == 64


def test_lora_false_means_full_fine_tuning_and_a_lora_key_brings_lora_back():
    full = load_recipe("steam/smollm2-135m/sft-cpu-full")
    assert full.lora is None and full.training["learning_rate"] == 1e-4
    assert full.dataset == load_recipe("steam/smollm2-135m/sft-cpu").dataset
    assert load_recipe("steam/smollm2-135m/sft-cpu-full", ["lora.r=4"]).lora == LoraSpec(r=4)


def test_overrides_apply_with_yaml_values():
    recipe = load_recipe("steam/smollm2-135m/sft", ["training.max_steps=7", "lora.r=4", "dataset.mixture=[{config: controllable, tasks: [i0]}]"])
    assert recipe.training["max_steps"] == 7 and recipe.lora.r == 4
    assert recipe.dataset.mixture == (dataclasses.replace(recipe.dataset.mixture[0], config="controllable", tasks=("i0",)),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("dataset: {path: x}\nmodel: {name_or_path: a/b}\ntraining: {output_dir: o}\nlora: {rank: 4}\n", "[key 'lora']: unknown key 'rank'"),
        ("dataset: {path: x}\nmodel: {name_or_path: a/b}\n", "[key 'training.output_dir']: missing"),
        ("model: {name_or_path: a/b}\ntraining: {output_dir: o}\n", "[key 'dataset.path']: missing"),
        ("dataset: {path: x, mixture: [{config: c, weight: 1}, {config: d}]}\nmodel: {name_or_path: a/b}\ntraining: {output_dir: o}\n", "weight, or none"),
        ("extends: nowhere.yaml\n", "field 'extends': extends 'nowhere.yaml', which does not exist"),
        ("dataset: [1, 2\n", "not valid YAML"),
        ("datasets: {}\n", "unknown section 'datasets'"),
    ],
)
def test_bad_recipes_name_the_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        load_recipe(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_unknown_training_key_and_bad_override_and_missing_recipe_are_clear():
    recipe = load_recipe("steam/smollm2-135m/sft", ["training.epochz=3"])
    with pytest.raises(DataError, match="unknown key 'epochz'"):
        sft_config(recipe, has_eval=False)
    with pytest.raises(DataError, match="SECTION.KEY=VALUE"):
        load_recipe("steam/smollm2-135m/sft", ["max_steps=3"])
    with pytest.raises(DataError, match="Shipped recipes: .*steam/smollm2-135m/sft"):
        find_recipe("steam/nope")


def test_recipes_ls_lists_every_shipped_recipe_and_accelerate_config_with_its_first_sentence():
    result = CliRunner().invoke(main, ["recipes", "ls"])
    assert result.exit_code == 0, result.output
    recipes_part, configs_part = result.output.split("\n\n")
    names = [line.split()[0] for line in recipes_part.splitlines()]
    assert names == sorted(str(p.relative_to(RECIPES_DIR).with_suffix("")) for p in RECIPES_DIR.rglob("*.yaml") if "accelerate" not in p.parts)
    assert re.search(r"^steam/smollm2-135m/sft +SmolLM2-135M-Instruct, LoRA SFT .* in about 40 minutes\.$", result.output, re.MULTILINE)
    assert "(section 2.3, Eq. 1-6): R_item on the last token" in result.output, "a sentence does not end at Eq."
    assert [Path(line.strip()).name for line in configs_part.splitlines() if line.strip().endswith(".yaml")] == ["ddp.yaml", "fsdp.yaml", "zero3.yaml"]
    listing = json.loads(CliRunner().invoke(main, ["recipes", "ls", "--json"]).output)
    assert [entry["name"] for entry in listing["recipes"]] == names
    assert {Path(entry["path"]).name: entry["summary"] for entry in listing["accelerate_configs"]}["ddp.yaml"] == "Data-parallel training on the GPUs of one machine (one process per GPU)"
    assert [entry["name"] for entry in listing["accelerate_configs"]] == ["ddp", "fsdp", "zero3"]


def test_train_names_the_shipped_accelerate_configs_for_one_it_cannot_find_and_needs_one_for_processes(tmp_path):
    unknown = CliRunner().invoke(main, ["train", "sft", "steam/smollm2-135m/sft", "--accelerate", "dpp"])
    assert unknown.exit_code != 0 and "neither a shipped accelerate config nor a file" in unknown.output and "ddp, fsdp, zero3" in unknown.output
    alone = CliRunner().invoke(main, ["train", "sft", "steam/smollm2-135m/sft", "--num-processes", "2", "--dry-run"])
    assert alone.exit_code != 0 and "--accelerate CONFIG" in alone.output


@pytest.mark.parametrize("name", ["steam/smollm2-135m/ppo-cpu", "amazon-movies/llama-2-7b-chat/sft", "steam/smollm2-135m/sft"])
def test_recipes_cp_copies_a_recipe_that_loads_as_the_shipped_one(name, tmp_path):
    result = CliRunner().invoke(main, ["recipes", "cp", name, str(tmp_path / "mine")])
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.output.splitlines()]
    assert written[0].name == Path(name).name + ".yaml" and all(path.is_file() for path in written)
    copied, shipped = load_recipe(written[0]), load_recipe(name)
    assert (copied.dataset, copied.model, copied.lora, copied.evaluation, copied.training) == (shipped.dataset, shipped.model, shipped.lora, shipped.evaluation, shipped.training)
    note, copied_text = written[0].read_text().split("\n", 1)
    assert note == f"# Copied from datagen's shipped recipe {name}: where a command below names it, give {written[0]} instead."
    assert copied_text.split("extends:")[0] == find_recipe(name).read_text().split("extends:")[0]  # header comments kept
    again = CliRunner().invoke(main, ["recipes", "cp", name, str(tmp_path / "mine")])
    assert again.exit_code == 1 and "already exists; nothing was copied" in again.output and "--force" in again.output
    forced = CliRunner().invoke(main, ["recipes", "cp", name, str(tmp_path / "mine"), "--force"])
    assert forced.exit_code == 0 and [Path(line) for line in forced.output.splitlines()] == written


def test_recipes_cp_to_a_yaml_path_writes_that_file(tmp_path):
    result = CliRunner().invoke(main, ["recipes", "cp", "steam/smollm2-135m/ppo-cpu", str(tmp_path / "my-ppo.yaml")])
    assert result.exit_code == 0, result.output
    written = [Path(line) for line in result.output.splitlines()]
    assert written == [tmp_path / "my-ppo.yaml", tmp_path / "steam-smollm2-135m-ppo.yaml"]
    assert load_recipe(written[0]).training == load_recipe("steam/smollm2-135m/ppo-cpu").training


def test_a_dry_run_shows_the_rows_and_their_lengths_and_trains_nothing(sample_generated, tmp_path):
    folder, _, _ = sample_generated
    overrides = [f"dataset.path={folder.path}", "training.max_steps=2", f"training.output_dir={tmp_path / 'run'}"]
    result = CliRunner().invoke(main, ["train", "sft", "steam/smollm2-135m/sft", *overrides, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "rows in the stream: 4,000 (i0 " in result.output, "max_train_rows caps the stream"
    assert "rows the run trains on: 8 (2 steps x 4 rows a step x 1 process)" in result.output
    assert "of the stream's first 8" in result.output and "over max_length 512: 0 rows" in result.output
    assert f"output_dir: {tmp_path / 'run'}" in result.output
    assert not (tmp_path / "run").exists(), "nothing trained, nothing written"


def test_a_short_run_reads_only_the_rows_its_steps_train_on(sample_generated, monkeypatch):
    folder, _, _ = sample_generated
    recipe = load_recipe("steam/smollm2-135m/sft", [f"dataset.path={folder.path}", "training.max_steps=2"])
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert rows_read(recipe.training) == 8, "2 steps x 1 row x 4 accumulated"
    monkeypatch.setenv("WORLD_SIZE", "2")  # as `accelerate launch --num_processes 2` sets it
    assert rows_read(recipe.training) == 16
    assert rows_read({"max_steps": 3, "per_device_train_batch_size": 4}, rows_per_example=2, processes=1) == 6, "GRPO: prompts, not answers"
    assert rows_read({"num_train_epochs": 1}) is None, "a run counted in epochs reads the whole stream"

    stream = training_rows(recipe.dataset)
    short = training_rows(recipe.dataset, limit=8)
    assert short.to_list() == stream.select(range(8)).to_list(), "the first rows of the same stream"
    assert len(evaluation_rows(recipe.dataset, limit=8)) == 8 and len(evaluation_rows(recipe.dataset)) == 32


def test_a_recipe_whose_build_is_missing_points_at_the_shipped_samples(tmp_path, monkeypatch):
    """After README's line 1 only build/steam-sample exists; a recipe that names build/steam itself is told of it."""
    (tmp_path / "build" / "steam-sample").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["train", "sft", "steam/smollm2-135m/sft", "dataset.path=build/steam", "--dry-run"])
    assert result.exit_code == 1 and "build/steam: no such dataset folder" in result.output
    assert "`dataset.path=build/steam-sample` for `datagen train`" in result.output


def test_a_recipes_bare_build_name_is_looked_up_as_every_commands_build(tmp_path, monkeypatch):
    """steam: build/steam when the real data was built, else README's first line's build/steam-sample."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build" / "steam-sample").mkdir(parents=True)
    assert load_recipe("steam/smollm2-135m/sft").dataset.path == "build/steam-sample"
    (tmp_path / "build" / "steam").mkdir()
    assert load_recipe("steam/smollm2-135m/ppo").dataset.path == "build/steam"
    assert load_recipe("steam/smollm2-135m/sft", ["dataset.path=my-org/steam"]).dataset.path == "my-org/steam", "a Hub repo id as written"
    assert load_recipe("steam/smollm2-135m/sft", ["dataset.path=amazon"]).dataset.path == "build/amazon", "nothing built: the error names build/NAME"
