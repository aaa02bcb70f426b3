"""LoRA supervised fine-tuning of a recipe with TRL's SFTTrainer.

    >>> recipe = load_recipe("steam/smollm2-135m/sft", ["training.max_steps=20"])  # doctest: +SKIP
    >>> train_sft(recipe)  # doctest: +SKIP
    PosixPath('runs/steam-smollm2-135m-sft/merged')

Rows are conversational prompt/completion pairs, rendered with the model's own
chat template; the loss is on the completion (the answer) only. What lands in
`training.output_dir` is listed in `datagen.training.runs`.
"""

from __future__ import annotations

from pathlib import Path

from datagen.training.data import evaluation_rows, rows_read, training_rows
from datagen.training.recipe import Recipe
from datagen.training.runs import run_trainer, trainer_config


def sft_config(recipe: Recipe, has_eval: bool, quiet: bool = False):
    """TRL's SFTConfig from the recipe's `training` keys; the loss on the completion only unless the recipe says otherwise."""
    from trl import SFTConfig

    return trainer_config(SFTConfig, recipe, has_eval, quiet, completion_only_loss=True)


def train_sft(recipe: Recipe, resume: bool = False, model_and_tokenizer=None, callbacks=(), export: bool = True, quiet: bool = False) -> Path:
    """Train the recipe; returns the merged model's folder.

    `model_and_tokenizer` replaces the recipe's model (the benchmark's random
    Llama-2-7b); `export=False` skips the adapter, merged model and run.json.
    """
    from trl import SFTTrainer

    limit = rows_read(recipe.training)
    held_out = evaluation_rows(recipe.dataset, limit)
    config = sft_config(recipe, held_out is not None, quiet)
    return run_trainer(SFTTrainer, recipe, config, training_rows(recipe.dataset, limit=limit), held_out, resume, model_and_tokenizer, callbacks, export, quiet)
