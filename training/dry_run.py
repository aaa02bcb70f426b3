"""What a recipe would train on, without training: the resolved recipe, the rows the run draws, and their lengths in
the model's tokens (the tokenizer is loaded, the weights are not).

    $ datagen train sft steam/smollm2-135m/sft dataset.path=build/steam-sample training.max_steps=2 --dry-run
    >>> print(describe_run(load_recipe("steam/smollm2-135m/sft", ["training.max_steps=2"])))  # doctest: +SKIP
    ...
    rows the run trains on: 8 (2 steps x 4 rows a step x 1 process)

A run of `max_steps` steps trains on at most steps x per-device batch x gradient accumulation x processes rows; a run
without it goes through the stream `num_train_epochs` times.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter

import numpy as np
import yaml

from datagen.lm.models import load_tokenizer
from datagen.training.data import TRAIN_COLUMNS, rows_read, training_rows
from datagen.training.recipe import Recipe
from datagen.training.runs import model_reference


def rows_trained(recipe: Recipe, stream_rows: int, processes: int = 1) -> tuple[int, str]:
    """How many rows the run trains on, and how that is reckoned."""
    training = recipe.training
    read = rows_read(training, processes=processes)
    if read is not None:
        per_step = read // int(training["max_steps"]) // processes
        return min(stream_rows, read), f"{training['max_steps']} steps x {per_step} rows a step x {processes} process{'es' * (processes > 1)}"
    epochs = float(training.get("num_train_epochs", 3.0))
    return math.ceil(stream_rows * epochs), f"{epochs:g} epochs of the stream"


def describe_run(recipe: Recipe, processes: int = 1) -> str:
    resolved = {
        "recipe": str(recipe.path),
        "dataset": dataclasses.asdict(recipe.dataset),
        "model": dataclasses.asdict(recipe.model),
        "lora": None if recipe.lora is None else dataclasses.asdict(recipe.lora),
        "training": recipe.training,
    }
    stream = training_rows(recipe.dataset, [*TRAIN_COLUMNS, "task"])
    used, reckoned = rows_trained(recipe, len(stream), processes)
    tasks = Counter(stream["task"])
    tokenizer = load_tokenizer(model_reference(recipe), recipe.model.revision)
    measured = stream.select(range(min(used, len(stream))))
    lengths = np.array([len(tokenizer.apply_chat_template([*row["prompt"], *row["completion"]], tokenize=True, return_dict=False)) for row in measured])
    max_length = recipe.training.get("max_length")
    lines = [
        yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True).rstrip(),
        "",
        f"rows in the stream: {len(stream):,} ({', '.join(f'{task} {count:,}' for task, count in sorted(tasks.items()))})",
        f"rows the run trains on: {used:,} ({reckoned})",
        f"length in tokens (prompt and answer, chat template) of the stream's first {len(measured):,} (the trainer draws its own order): min {lengths.min()}, median {int(np.median(lengths))}, 95th percentile {int(np.percentile(lengths, 95))}, max {lengths.max()}",
    ]
    if max_length is not None:
        over = int((lengths > int(max_length)).sum())
        lines.append(f"over max_length {max_length}: {over} rows" + (" (cut from the right: their answers lose tokens)" if over else ""))
    return "\n".join(lines)
