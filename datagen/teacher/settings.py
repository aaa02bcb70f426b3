"""The teacher's settings, without torch: model shape, training, evaluation, label source.

The CLI builds its options and `datagen build` its plan from these plain
dataclasses, so neither imports torch until a teacher is trained or loaded.

    >>> settings = TeacherSettings(dim=64, train=TrainConfig(epochs=20))
    >>> settings.train.objective
    'auto'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datagen.buildfolder import BuildFolder

SPLITS = ("validation", "test")
KS = (5, 10, 20)
LABEL_SOURCES = ("sasrec", "cooccurrence")
LABEL_SOURCE_CHOICES = ("auto", *LABEL_SOURCES)
OBJECTIVES = ("auto", "softmax", "sampled-softmax", "bce")
# The full softmax ranks best (on Amazon Games it beat every sampled variant on test HR@10 and
# NDCG@10), but its [positions, items] logits grow without bound: at batch 128 x 50 positions and
# 25,000 items they take about 2 GiB with their gradients, and an epoch there costs 3x a sampled one.
FULL_SOFTMAX_MAX_ITEMS = 25_000


def resolve_objective(objective: str, n_items: int) -> str:
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    if objective == "auto":
        return "softmax" if n_items <= FULL_SOFTMAX_MAX_ITEMS else "sampled-softmax"
    return objective


@dataclass
class SASRecConfig:
    n_items: int
    max_history: int = 10
    dim: int = 128
    inner_dim: int = 256
    layers: int = 2
    heads: int = 2
    dropout: float = 0.5  # Kang & McAuley 2018 use 0.5 on their sparse sets (Amazon, Steam); on Games it beat 0.2 by 0.026 HR@10

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainConfig:
    epochs: int = 200
    patience: int = 2  # validations without a better NDCG@10 (the learning rate halves at each: 1/4 by the stop)
    min_epochs: int = 10  # validations up to this epoch neither stop training nor lower the rate: a small catalog dips before it rises
    batch_size: int = 128
    learning_rate: float = 3e-3  # on Amazon Games validation NDCG@10 reached 0.0536 at epoch 4, against 0.0284 at 1e-3
    lr_decay: float = 0.5  # the learning rate is multiplied by this after each validation that is not the best so far
    label_smoothing: float = 0.1  # softmax and sampled-softmax (bce, the paper's, has none)
    average_epochs: float = 2.0  # validate and keep a moving average of the weights over about this many epochs (0: the weights as trained)
    objective: str = "auto"  # auto | softmax | sampled-softmax | bce (see datagen.teacher.objectives)
    negatives: int = 2048  # sampled-softmax: negatives per batch
    validate_every: int = 2  # epochs between validations
    validation_users: int = 10_000  # validate on at most this many users (a seeded sample)
    seed: int = 42
    device: str = "auto"  # "auto": CUDA when present, else CPU

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class TeacherSettings:
    """What `datagen teacher train` and `datagen build` train: model shape, optimisation, label source.

    `max_history` is the teacher's own: it reads that many recent items,
    whatever number the prompts show (the build's max_history).
    """

    max_history: int = 50
    dim: int = SASRecConfig.dim
    inner_dim: int = SASRecConfig.inner_dim
    layers: int = SASRecConfig.layers
    heads: int = SASRecConfig.heads
    dropout: float = SASRecConfig.dropout
    label_source: str = "auto"  # auto | sasrec | cooccurrence
    train: TrainConfig = field(default_factory=TrainConfig)

    def model_config(self, folder: BuildFolder) -> SASRecConfig:
        return SASRecConfig(
            n_items=folder.n_items,
            max_history=self.max_history,
            dim=self.dim,
            inner_dim=self.inner_dim,
            layers=self.layers,
            heads=self.heads,
            dropout=self.dropout,
        )


@dataclass
class EvalSettings:
    ks: tuple[int, ...] = KS
    negatives: int = 99
    samplings: tuple[str, ...] = ("uniform", "popularity")
    seed: int = 42
    users: int | None = 100_000  # a seeded sample of at most this many users (None: every user); 1M users took hours on 2 cores
