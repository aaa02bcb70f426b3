"""Train, evaluate and store the SASRec teacher of a build, in `<build>/teacher/`.

    sasrec.pt     weights, model and training config, data version
    report.json   the same configs, the training log, the evaluation (SASRec and baselines)
    report.md     the evaluation as tables

The folder is written to a temporary place and renamed when complete.

    >>> folder = BuildFolder.open("build/steam-sample")  # doctest: +SKIP
    >>> teacher = train_teacher(folder, TeacherSettings(), StepProgress())  # doctest: +SKIP
    >>> load_teacher(folder).data_version == folder.data_version  # doctest: +SKIP
    True
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from datagen.buildfolder import BuildFolder
from datagen.output import atomic_folder, write_json
from datagen.progress import StepProgress
from datagen.teacher.checkpoint import CHECKPOINT_NAME, Teacher, load_checkpoint, save_checkpoint
from datagen.teacher.evaluate import KS, evaluate, report_markdown
from datagen.teacher.sasrec import SASRecConfig
from datagen.teacher.scorers import Cooccurrence, MostPopular, SASRecScorer, train_popularity
from datagen.teacher.train import TrainConfig, resolve_device, train_sasrec

TEACHER_DIR = "teacher"
COOCCURRENCE_WINDOW = 3


@dataclass
class TeacherSettings:
    """What `datagen teacher train` and `datagen build` train: model shape and optimisation."""

    dim: int = 128
    inner_dim: int = 256
    layers: int = 2
    heads: int = 2
    dropout: float = 0.2
    train: TrainConfig = field(default_factory=TrainConfig)

    def model_config(self, folder: BuildFolder) -> SASRecConfig:
        return SASRecConfig(
            n_items=folder.n_items,
            max_history=folder.max_history,
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


def teacher_dir(folder: BuildFolder) -> Path:
    return folder.path / TEACHER_DIR


def load_teacher(folder: BuildFolder, checkpoint: Path | None = None, device: str = "cpu") -> Teacher:
    """The build's teacher (or `checkpoint`), refused unless it was trained on this build's data."""
    path = checkpoint or teacher_dir(folder) / CHECKPOINT_NAME
    return load_checkpoint(path, expected_data_version=folder.data_version, device=resolve_device(device))


def evaluate_teacher(folder: BuildFolder, teacher: Teacher, settings: EvalSettings) -> dict:
    """SASRec next to most-popular and co-occurrence, on valid and test, full and sampled."""
    train_lists = folder.sequences["train_item_ids"]
    popularity = train_popularity(train_lists, folder.n_items)
    scorers = {
        "SASRec": SASRecScorer(teacher.model),
        MostPopular.name: MostPopular(popularity),
        Cooccurrence.name: Cooccurrence(train_lists, folder.n_items, COOCCURRENCE_WINDOW, popularity),
    }
    return evaluate(
        scorers,
        folder.sequences,
        folder.n_items,
        teacher.model.config.max_history,
        popularity,
        ks=settings.ks,
        negatives=settings.negatives,
        samplings=settings.samplings,
        seed=settings.seed,
    )


def train_teacher(folder: BuildFolder, settings: TeacherSettings, progress: StepProgress, evaluation: EvalSettings | None = None) -> Teacher:
    """Train on the build's train split, evaluate, and write `<build>/teacher/`."""
    evaluation = evaluation or EvalSettings()
    model_config = settings.model_config(folder)
    with progress.bar(f"Training SASRec on {folder.name}", total=settings.train.epochs) as advance:
        result = train_sasrec(
            folder.sequences,
            model_config,
            settings.train,
            on_epoch=lambda entry: advance(f"loss {entry['loss']:.3f}, valid NDCG@10 {entry['valid_ndcg@10']:.4f}"),
        )
    log = {"best_epoch": result.best_epoch, "best_valid_ndcg@10": result.best_valid_ndcg, "epochs": result.epochs}
    with atomic_folder(teacher_dir(folder)) as temporary:
        checkpoint_sha = save_checkpoint(temporary / CHECKPOINT_NAME, result.model, folder.data_version, settings.train.as_dict(), log)
        teacher = Teacher(result.model, folder.data_version, settings.train.as_dict(), log, checkpoint_sha)
        with progress.step("Evaluating SASRec, most-popular and co-occurrence"):
            report = evaluate_teacher(folder, teacher, evaluation)
        write_report(temporary, folder, teacher, report, evaluation)
    return teacher


def write_report(target: Path, folder: BuildFolder, teacher: Teacher, report: dict, evaluation: EvalSettings) -> None:
    write_json(
        {
            "build": folder.name,
            "data_version": folder.data_version,
            "checkpoint_sha256": teacher.checkpoint_sha256,
            "model_config": teacher.model.config.as_dict(),
            "train_config": teacher.train_config,
            "torch_version": torch.__version__,
            "cooccurrence_window": COOCCURRENCE_WINDOW,
            "training": teacher.log,
            "evaluation_settings": {"ks": list(evaluation.ks), "negatives": evaluation.negatives, "seed": evaluation.seed},
            "evaluation": report,
        },
        target / "report.json",
    )
    (target / "report.md").write_text(
        f"# SASRec teacher of {folder.name}\n\n"
        f"Data version {folder.data_version}; best epoch {teacher.log['best_epoch']} "
        f"of {len(teacher.log['epochs'])} (valid NDCG@10 {teacher.log['best_valid_ndcg@10']:.4f}).\n\n"
        + report_markdown(report, evaluation.negatives)
    )


def reuse_teacher(previous: Path, folder: BuildFolder, settings: TeacherSettings) -> bool:
    """Copy `previous/teacher/` into `folder` when it was trained on the same data with the same settings."""
    old = previous / TEACHER_DIR
    report_path = old / "report.json"
    if not report_path.is_file() or not (old / CHECKPOINT_NAME).is_file():
        return False
    report = json.loads(report_path.read_text())
    same = (
        report.get("data_version") == folder.data_version
        and report.get("model_config") == settings.model_config(folder).as_dict()
        and report.get("train_config") == settings.train.as_dict()
    )
    if same:
        shutil.copytree(old, teacher_dir(folder))
    return same
