"""Train SASRec on the train split, early-stopped on validation NDCG@10, resumable.

Every (input window, next item) pair of the train split is a training example,
scored by one of the objectives of `datagen.teacher.objectives` (full softmax
on small catalogs, sampled softmax on large ones). Every `validate_every`
epochs the model ranks all items for the validation split of at most
`validation_users` users (a fixed seeded sample); the best validation's
weights are kept, and training stops after `patience` validations without
improvement (validations up to `min_epochs` count only when they are the
best). With `average_epochs` (the default) what is validated and kept
is an exponential moving average of the weights over about that many epochs,
updated after every step (`moving_average`).

With a `state_path`, the whole training state (weights, optimizer, random
generators, the best weights so far, the log) is written there after every
epoch, atomically; a later call with the same path goes on from it, and one
whose training had finished returns its result at once. The result is the
same as an uninterrupted run's.

    >>> result = train_sasrec(folder.sequences, SASRecConfig(n_items=folder.n_items), TrainConfig(epochs=5))  # doctest: +SKIP
    >>> result.best_epoch, result.best_validation_ndcg  # doctest: +SKIP
    (4, 0.0731)
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import torch
from torch.optim.swa_utils import AveragedModel

from datagen.cache import seal_cache_file, why_untrusted
from datagen.teacher.evaluate import full_ranks, rank_metrics, split_queries, user_sample
from datagen.teacher.objectives import TrainingObjective
from datagen.teacher.sasrec import SASRec
from datagen.teacher.scorers import SASRecScorer, train_popularity
from datagen.teacher.settings import SASRecConfig, TrainConfig, resolve_objective
from datagen.teacher.tensors import PAD, training_windows

STATE_FORMAT = "datagen.sasrec-training/4"  # bump when training changes: a state of another format is not resumed


@dataclass
class TrainResult:
    model: SASRec
    objective: str  # the one used (auto resolved)
    best_epoch: int
    best_validation_ndcg: float
    epochs: list[dict] = field(default_factory=list)  # per epoch: loss, seconds, and validation NDCG@10 when validated
    resumed_from_epoch: int = 0


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def moving_average(model: SASRec, steps: float) -> AveragedModel:
    """An exponential moving average of `model`'s weights over about `steps` steps, warmed up as TensorFlow's.

    The decay is 1 - 1/steps, but at most (1 + n) / (10 + n) after n updates, so
    that early on, while the weights move fast, the average follows them
    instead of holding on to the first steps (a short training keeps its gains).
    """
    horizon = 1.0 - 1.0 / max(steps, 1.0)

    def update(average: torch.Tensor, current: torch.Tensor, updates: torch.Tensor) -> torch.Tensor:
        decay = min(horizon, (1.0 + float(updates)) / (10.0 + float(updates)))
        return average.lerp(current, 1.0 - decay)

    return AveragedModel(model, avg_fn=update)


def length_batches(lengths: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Shuffled batches of windows of similar length, so a batch is cut to its longest window, not to max_history.

    Windows are ordered by length with random ties, cut into batches, and the
    batches shuffled: most histories are far shorter than max_history, and
    padding would otherwise be most of the work.
    """
    order = torch.argsort(lengths.double() + torch.rand(len(lengths), generator=generator, dtype=torch.float64))
    batches = list(order.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def train_sasrec(
    sequences: pl.DataFrame,
    model_config: SASRecConfig,
    train_config: TrainConfig,
    on_epoch: Callable[[dict], None] | None = None,
    on_batch: Callable[[int, int], None] | None = None,
    state_path: Path | None = None,
) -> TrainResult:
    """`on_epoch(entry)` after every epoch; `on_batch(done, total)` after every batch (for progress bars)."""
    device = resolve_device(train_config.device)
    objective_name = resolve_objective(train_config.objective, model_config.n_items)
    inputs, targets = training_windows(sequences["train_item_ids"], model_config.max_history)
    if len(inputs) == 0:
        raise ValueError("the train split has no (item, next item) pairs to learn from")
    validation = split_queries(user_sample(sequences, train_config.validation_users, train_config.seed), "validation")
    torch.manual_seed(train_config.seed)
    model = SASRec(model_config).to(device)
    lengths = (targets != PAD).sum(1)
    batch_count = (len(inputs) + train_config.batch_size - 1) // train_config.batch_size
    averaged = moving_average(model, train_config.average_epochs * batch_count) if train_config.average_epochs > 0 else None
    validated = model if averaged is None else averaged.module
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.learning_rate, betas=(0.9, 0.98))
    shuffler = torch.Generator().manual_seed(train_config.seed)
    sampler = torch.Generator().manual_seed(train_config.seed + 1)
    objective = TrainingObjective(
        objective_name,
        train_popularity(sequences["train_item_ids"], model_config.n_items),
        train_config.negatives,
        sampler,
        train_config.label_smoothing,
    )
    state = {"epoch": 0, "best_state": None, "best_ndcg": -1.0, "best_epoch": 0, "since_best": 0, "log": [], "finished": False}
    resumed_from = 0
    saved = read_state(Path(state_path)) if state_path is not None else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        if averaged is not None:
            averaged.load_state_dict(saved["averaged"])
        optimizer.load_state_dict(saved["optimizer"])
        shuffler.set_state(saved["shuffler"])
        sampler.set_state(saved["sampler"])
        torch.set_rng_state(saved["torch_rng"])
        state = saved["progress"]
        resumed_from = state["epoch"]
    positions_per_batch = float(lengths.sum()) / batch_count
    while not state["finished"]:
        epoch = state["epoch"] + 1
        started = time.perf_counter()
        model.train()
        batches = length_batches(lengths, train_config.batch_size, shuffler)
        total_loss = 0.0
        for index, batch in enumerate(batches):
            width = int(lengths[batch].max())
            batch_inputs, batch_targets = inputs[batch, -width:].to(device), targets[batch, -width:].to(device)
            summed = objective(model, model.hidden_states(batch_inputs), batch_targets)
            optimizer.zero_grad(set_to_none=True)
            (summed / positions_per_batch).backward()
            optimizer.step()
            if averaged is not None:
                averaged.update_parameters(model)
            total_loss += summed.item()
            if on_batch:
                on_batch(index + 1, len(batches))
        entry = {"epoch": epoch, "loss": round(total_loss / float(lengths.sum()), 6)}  # per position
        last = epoch >= train_config.epochs
        if epoch % train_config.validate_every == 0 or last:
            ranks = full_ranks(SASRecScorer(validated), validation, model_config.n_items, model_config.max_history)
            ndcg = rank_metrics(ranks, ks=(10,))["NDCG@10"]
            entry["validation_ndcg@10"] = ndcg
            if ndcg > state["best_ndcg"]:
                best = {name: tensor.detach().cpu().clone() for name, tensor in validated.state_dict().items()}
                state.update(best_state=best, best_ndcg=ndcg, best_epoch=epoch, since_best=0)
            elif epoch > train_config.min_epochs:
                state["since_best"] += 1
                for group in optimizer.param_groups:  # saved with the optimizer's state, so a resumed run goes on at this rate
                    group["lr"] *= train_config.lr_decay
        entry["seconds"] = round(time.perf_counter() - started, 2)
        state["log"].append(entry)
        state["epoch"] = epoch
        state["finished"] = last or state["since_best"] >= train_config.patience
        if state_path is not None:
            _save_state(Path(state_path), model, averaged, optimizer, shuffler, sampler, state)
        if on_epoch:
            on_epoch(entry)
    model.load_state_dict(state["best_state"])
    model.eval()
    return TrainResult(
        model=model,
        objective=objective_name,
        best_epoch=state["best_epoch"],
        best_validation_ndcg=state["best_ndcg"],
        epochs=copy.deepcopy(state["log"]),
        resumed_from_epoch=resumed_from,
    )


def read_state(path: Path) -> dict | None:
    """The training state saved at `path`, None when there is none; ValueError when the file is not one."""
    if not path.is_file():
        return None
    problem = why_untrusted(path)
    if problem is not None:
        raise ValueError(f"not trusted: {problem}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a broken file
        raise ValueError(f"unreadable training state ({type(error).__name__}: {error})") from None
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        raise ValueError(f"not a training state of format {STATE_FORMAT}")
    return saved


def _save_state(path: Path, model: SASRec, averaged: AveragedModel | None, optimizer, shuffler: torch.Generator, sampler: torch.Generator, state: dict) -> None:
    payload = {
        "format": STATE_FORMAT,
        "model": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
        "averaged": None if averaged is None else {name: tensor.detach().cpu() for name, tensor in averaged.state_dict().items()},
        "optimizer": optimizer.state_dict(),
        "shuffler": shuffler.get_state(),
        "sampler": sampler.get_state(),
        "torch_rng": torch.get_rng_state(),
        "progress": state,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, temporary)
    os.replace(temporary, path)
    seal_cache_file(path)
