"""Seconds per PPO step of a recipe, split into rollout (sampling and rule rewards), scoring (old, reference and critic passes, GAE) and update.

    python bench/bench_ppo.py steam/smollm2-135m/ppo --steps 4 dataset.path=builds/steam

Lu et al. report about 40 s per RL step on 2 A100s (sampling the instructions,
2 answers each, training); this gives the same figure for datagen's loop on
whatever machine runs it. The recipe's model and dataset are
used as they are (the SFT model must exist: `datagen train sft` first); nothing
is saved. The first `--warmup` steps are not timed. The result is written to
bench/results/ppo-<recipe>.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from recording import peak_rss_gib, save_result  # bench/recording.py (the script's folder is on sys.path)

from datagen.training.data import training_rows
from datagen.training.grpo import FACT_COLUMNS, RuleReward
from datagen.training.ppo import PpoLearner, PpoSettings
from datagen.training.recipe import load_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("overrides", nargs="*", help="section.key=value, as for `datagen train ppo`")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_intermixed_args()

    import torch
    import transformers

    recipe = load_recipe(args.recipe, args.overrides)
    settings = PpoSettings.from_recipe(recipe)
    transformers.set_seed(settings.seed)
    prompts = training_rows(recipe.dataset, ["prompt", *FACT_COLUMNS]).to_list()
    learner = PpoLearner(recipe, settings, RuleReward(recipe.dataset.path))
    phases: dict[str, list[float]] = {"rollout": [], "scoring": [], "update": [], "step": []}
    sampled_tokens = []
    for step in range(args.warmup + args.steps):
        rows = [prompts[(step * settings.prompts_per_step + i) % len(prompts)] for i in range(settings.prompts_per_step)]
        marks = [time.perf_counter()]
        batch = learner.rollout(rows, seed=settings.seed + step)
        marks.append(time.perf_counter())
        batch = learner.advantages(batch)
        marks.append(time.perf_counter())
        learner.update(batch)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        marks.append(time.perf_counter())
        if step >= args.warmup:
            for name, (start, end) in zip(("rollout", "scoring", "update"), zip(marks, marks[1:])):
                phases[name].append(end - start)
            phases["step"].append(marks[-1] - marks[0])
            sampled_tokens.append(int(batch["response_mask"].sum().item()))
    result = {
        "recipe": args.recipe,
        "model": recipe.model.name_or_path,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)",
        "timed_steps": args.steps,
        "prompts_per_step": settings.prompts_per_step,
        "samples_per_prompt": settings.samples_per_prompt,
        "sampled_tokens_per_step": round(statistics.mean(sampled_tokens), 1),
        **{f"{name}_s": round(statistics.mean(values), 2) for name, values in phases.items()},
        "paper_s_per_step": 40.0,  # Lu et al. 2024, A.2: 2 x A100 40GB, Llama-2-7b, batch 1 per GPU x 2 accumulation, 2 answers each
        "peak_rss_gib": peak_rss_gib(),
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None,
    }
    print(save_result(f"ppo-{args.recipe.replace('/', '-')}", result))
    print(result)


if __name__ == "__main__":
    main()
