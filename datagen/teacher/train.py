"""Train SASRec on the train split with a full softmax over all items, early-stopped on valid NDCG@10.

Every (input window, next item) pair of the train split is a training example;
the loss is cross-entropy over all items at every position (as the UniRec
SASRec of Lu et al.'s code). After each epoch the model ranks all items for the
valid split; the best epoch's weights are kept and training stops after
`patience` epochs without improvement.

    >>> result = train_sasrec(folder.sequences, SASRecConfig(n_items=folder.n_items), TrainConfig(epochs=5))  # doctest: +SKIP
    >>> result.best_epoch, result.best_valid_ndcg  # doctest: +SKIP
    (4, 0.0731)
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field

import polars as pl
import torch
import torch.nn.functional as F

from datagen.teacher.evaluate import full_ranks, rank_metrics, split_queries
from datagen.teacher.sasrec import SASRec, SASRecConfig
from datagen.teacher.scorers import SASRecScorer
from datagen.teacher.tensors import PAD, training_windows


@dataclass
class TrainConfig:
    epochs: int = 100
    patience: int = 10
    batch_size: int = 256
    learning_rate: float = 1e-3
    seed: int = 42
    device: str = "auto"  # "auto": CUDA when present, else CPU

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: SASRec
    best_epoch: int
    best_valid_ndcg: float
    epochs: list[dict] = field(default_factory=list)  # per epoch: loss, valid NDCG@10, seconds


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def train_sasrec(
    sequences: pl.DataFrame,
    model_config: SASRecConfig,
    train_config: TrainConfig,
    on_epoch=None,
) -> TrainResult:
    """`on_epoch(epoch_log)` is called after every epoch (for progress bars)."""
    device = resolve_device(train_config.device)
    torch.manual_seed(train_config.seed)
    model = SASRec(model_config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=train_config.learning_rate)
    inputs, targets = training_windows(sequences["train_item_ids"], model_config.max_history)
    if len(inputs) == 0:
        raise ValueError("the train split has no (item, next item) pairs to learn from")
    valid = split_queries(sequences, "valid")
    shuffler = torch.Generator().manual_seed(train_config.seed)
    best_state, best_ndcg, best_epoch, since_best = None, -1.0, 0, 0
    log = []
    for epoch in range(1, train_config.epochs + 1):
        started = time.perf_counter()
        model.train()
        order = torch.randperm(len(inputs), generator=shuffler)
        total_loss, total_targets = 0.0, 0
        for start in range(0, len(order), train_config.batch_size):
            batch = order[start : start + train_config.batch_size]
            batch_inputs, batch_targets = inputs[batch].to(device), targets[batch].to(device)
            # Scoring every position (padding ignored by the loss) keeps tensor shapes fixed;
            # selecting the present positions first gives a new shape per batch, which CPU
            # kernels recompile for (the first epoch ran 10x slower).
            logits = model.item_scores(model.hidden_states(batch_inputs))
            loss = F.cross_entropy(logits.flatten(0, 1), batch_targets.flatten(), ignore_index=PAD)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            present = int((batch_targets != PAD).sum())
            total_loss += loss.item() * present
            total_targets += present
        ranks = full_ranks(SASRecScorer(model), valid, model_config.n_items, model_config.max_history)
        valid_ndcg = rank_metrics(ranks, ks=(10,))["NDCG@10"]
        entry = {
            "epoch": epoch,
            "loss": round(total_loss / total_targets, 6),
            "valid_ndcg@10": valid_ndcg,
            "seconds": round(time.perf_counter() - started, 2),
        }
        log.append(entry)
        if valid_ndcg > best_ndcg:
            best_state, best_ndcg, best_epoch, since_best = copy.deepcopy(model.state_dict()), valid_ndcg, epoch, 0
        else:
            since_best += 1
        if on_epoch:
            on_epoch(entry)
        if since_best >= train_config.patience:
            break
    model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model=model, best_epoch=best_epoch, best_valid_ndcg=best_ndcg, epochs=log)
