"""Train, evaluate and store the SASRec teacher of a build, in `<build>/teacher/`.

    model.safetensors  the SASRec weights
    config.json        data version, model and training config, training log, label source
    report.json        the same configs, the training log, the evaluation (SASRec and baselines)
    report.md          the evaluation as tables

The folder is written to a temporary place and renamed when complete. While
training, the whole training state is kept in the cache
(`<cache>/teacher-training/<data version>/<settings hash>.pt`), so a killed
build, or one that fails after training, goes on from it when run again.

The teacher must beat the co-occurrence baseline on validation full-ranking
NDCG@10; when it does not, the build says so on stderr, in the report and in
the card. `label_source` chooses what ranks items for the labels and rewards:
`sasrec`, `cooccurrence`, or `auto` (the better of the two on validation).

    >>> folder = BuildFolder.open("build/steam-sample")  # doctest: +SKIP
    >>> teacher = train_teacher(folder, TeacherSettings(), StepProgress())  # doctest: +SKIP
    >>> load_teacher(folder).data_version == folder.data_version  # doctest: +SKIP
    True
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import torch

from datagen.buildfolder import BuildFolder
from datagen.cache import drop_cache_file, writable_cache_dir
from datagen.output import atomic_folder, write_json
from datagen.progress import StepProgress
from datagen.teacher.checkpoint import CHECKPOINT_NAME, CONFIG_NAME, Teacher, load_checkpoint, save_checkpoint
from datagen.teacher.evaluate import evaluate, report_markdown
from datagen.teacher.scorers import Cooccurrence, MostPopular, SASRecScorer, train_popularity
from datagen.teacher.settings import LABEL_SOURCE_CHOICES, EvalSettings, TeacherSettings
from datagen.teacher.train import TrainResult, read_state, resolve_device, train_sasrec

TEACHER_DIR = "teacher"
COOCCURRENCE_WINDOW = 3
BATCHES_PER_NOTE = 20  # how often the training bar's note shows the batch within the epoch


def teacher_dir(folder: BuildFolder) -> Path:
    return folder.path / TEACHER_DIR


def load_teacher(folder: BuildFolder, checkpoint: Path | None = None, device: str = "cpu") -> Teacher:
    """The build's teacher (or `checkpoint`), refused unless it was trained on this build's data.

    A teacher whose label source is co-occurrence ranks with that baseline, built from the train split.
    """
    path = checkpoint or teacher_dir(folder) / CHECKPOINT_NAME
    teacher = load_checkpoint(path, expected_data_version=folder.data_version, device=resolve_device(device))
    if teacher.label_source == "cooccurrence":
        teacher.scorer = cooccurrence_scorer(folder)
    return teacher


def cooccurrence_scorer(folder: BuildFolder) -> Cooccurrence:
    train_lists = folder.sequences["train_item_ids"]
    return Cooccurrence(train_lists, folder.n_items, COOCCURRENCE_WINDOW, train_popularity(train_lists, folder.n_items))


def evaluate_teacher(folder: BuildFolder, teacher: Teacher, settings: EvalSettings) -> dict:
    """SASRec next to most-popular and co-occurrence, on validation and test, full and sampled."""
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
        users=settings.users,
    )


def baseline_check(report: dict, wanted: str) -> dict:
    """Does SASRec beat co-occurrence on validation full-ranking NDCG@10, and so which scorer makes the labels."""
    validation = report["full"]["validation"]
    sasrec, cooccurrence = validation["SASRec"]["NDCG@10"], validation[Cooccurrence.name]["NDCG@10"]
    beats = sasrec > cooccurrence
    chosen = wanted if wanted != "auto" else ("sasrec" if beats else "cooccurrence")
    return {
        "metric": "validation full-ranking NDCG@10",
        "sasrec": sasrec,
        "cooccurrence": cooccurrence,
        "sasrec_beats_cooccurrence": beats,
        "label_source_asked": wanted,
        "label_source": chosen,
    }


def training_state_path(folder: BuildFolder, settings: TeacherSettings) -> Path:
    """Where the training state of these settings on this data lives in the cache."""
    key = json.dumps({"model": settings.model_config(folder).as_dict(), "train": settings.train.as_dict()}, sort_keys=True)
    return writable_cache_dir("teacher-training", folder.data_version) / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.pt"


def train_teacher(folder: BuildFolder, settings: TeacherSettings, progress: StepProgress, evaluation: EvalSettings | None = None) -> Teacher:
    """Train on the build's train split (resuming from the cache), evaluate, choose the label source, write `<build>/teacher/`."""
    if settings.label_source not in LABEL_SOURCE_CHOICES:
        raise ValueError(f"label_source must be one of {', '.join(LABEL_SOURCE_CHOICES)}, not {settings.label_source!r}")
    evaluation = evaluation or EvalSettings()
    result = _train_with_progress(folder, settings, progress)
    log = {
        "objective": result.objective,
        "best_epoch": result.best_epoch,
        "best_validation_ndcg@10": result.best_validation_ndcg,
        "resumed_from_epoch": result.resumed_from_epoch,
        # An epoch's seconds differ run to run; left out, the same inputs and seed give the same teacher files.
        "epochs": [{key: value for key, value in entry.items() if key != "seconds"} for entry in result.epochs],
    }
    teacher = Teacher(result.model, folder.data_version, settings.train.as_dict(), log, checkpoint_sha256="")
    with progress.step("Evaluating SASRec, most-popular and co-occurrence"):
        report = evaluate_teacher(folder, teacher, evaluation)
    check = baseline_check(report, settings.label_source)
    if not check["sasrec_beats_cooccurrence"]:
        progress.warn(
            f"WARNING: the SASRec teacher does not beat co-occurrence on validation full-ranking NDCG@10 "
            f"({check['sasrec']:.4f} against {check['cooccurrence']:.4f}); "
            + (
                "labels come from co-occurrence (--teacher auto)."
                if check["label_source"] == "cooccurrence"
                else f"labels still come from {check['label_source']} (--teacher {settings.label_source})."
            )
        )
    with atomic_folder(teacher_dir(folder)) as temporary:
        teacher.checkpoint_sha256 = save_checkpoint(temporary, result.model, folder.data_version, settings.train.as_dict(), log, check["label_source"])
        teacher.label_source = check["label_source"]
        write_report(temporary, folder, teacher, report, evaluation, check)
    if teacher.label_source == "cooccurrence":
        teacher.scorer = cooccurrence_scorer(folder)
    return teacher


def _train_with_progress(folder: BuildFolder, settings: TeacherSettings, progress: StepProgress) -> TrainResult:
    state_path = training_state_path(folder, settings)
    try:
        state_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        progress.warn(f"Cannot keep the teacher's training state in the cache ({error}); a killed training will start over.")
        state_path = None
    resumed_epochs = 0
    if state_path is not None and state_path.is_file():
        try:
            resumed_epochs = read_state(state_path)["progress"]["epoch"]
            progress.done(f"Going on from the teacher training state in the cache ({state_path})")
        except ValueError as error:
            progress.warn(f"Dropped the teacher training state in the cache, {error}; training starts over ({state_path})")
            drop_cache_file(state_path)
    with progress.bar(f"Training SASRec on {folder.name}", total=settings.train.epochs) as advance:
        if resumed_epochs:  # the bar counts epochs, the saved ones included
            advance(f"epochs 1-{resumed_epochs} from the cache", steps=resumed_epochs)
        return train_sasrec(
            folder.sequences,
            settings.model_config(folder),
            settings.train,
            on_epoch=lambda entry: advance(f"loss {entry['loss']:.3f}" + (f", validation NDCG@10 {entry['validation_ndcg@10']:.4f}" if "validation_ndcg@10" in entry else "")),
            on_batch=lambda done, total: advance(f"batch {done}/{total}", steps=0) if done % BATCHES_PER_NOTE == 0 else None,
            state_path=state_path,
        )


def write_report(target: Path, folder: BuildFolder, teacher: Teacher, report: dict, evaluation: EvalSettings, check: dict) -> None:
    users = folder.sequences.height
    evaluated = users if evaluation.users is None else min(users, evaluation.users)
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
            "baseline_check": check,
            "label_source": check["label_source"],
            "evaluation_settings": {"ks": list(evaluation.ks), "negatives": evaluation.negatives, "seed": evaluation.seed, "users": evaluation.users},
            "evaluated_users": evaluated,
            "evaluation": report,
        },
        target / "report.json",
    )
    verdict = "SASRec beats co-occurrence" if check["sasrec_beats_cooccurrence"] else "**SASRec does not beat co-occurrence**"
    (target / "report.md").write_text(
        f"# SASRec teacher of {folder.name}\n\n"
        f"Data version {folder.data_version}; objective {teacher.log['objective']}; best epoch {teacher.log['best_epoch']} "
        f"of {len(teacher.log['epochs'])} (validation NDCG@10 {teacher.log['best_validation_ndcg@10']:.4f} on the validation sample).\n\n"
        f"{verdict} on validation full-ranking NDCG@10 ({check['sasrec']:.4f} against {check['cooccurrence']:.4f}); "
        f"labels come from **{check['label_source']}** (asked: {check['label_source_asked']}).\n\n"
        f"Evaluated on {evaluated:,} of {users:,} users{' (a seeded sample)' if evaluated < users else ''}.\n\n" + report_markdown(report, evaluation.negatives)
    )


def reuse_teacher(previous: Path, folder: BuildFolder, settings: TeacherSettings) -> bool:
    """Copy `previous/teacher/` into `folder` when it was trained on the same data with the same settings."""
    old = previous / TEACHER_DIR
    report_path = old / "report.json"
    if not report_path.is_file() or not (old / CHECKPOINT_NAME).is_file() or not (old / CONFIG_NAME).is_file():
        return False
    report = json.loads(report_path.read_text())
    same = (
        report.get("data_version") == folder.data_version
        and report.get("model_config") == settings.model_config(folder).as_dict()
        and report.get("train_config") == settings.train.as_dict()
        and report.get("baseline_check", {}).get("label_source_asked") == settings.label_source
    )
    if same:
        shutil.copytree(old, teacher_dir(folder))
    return same
