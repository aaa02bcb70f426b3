"""A teacher that loses to co-occurrence is announced, and --teacher picks what ranks for the labels (real sample)."""

from __future__ import annotations

import json
import shutil

import polars as pl
import torch

from datagen.buildfolder import BuildFolder
from datagen.controllable.build import ControllableSettings, generate_controllable
from datagen.progress import StepProgress
from datagen.publish.release import finalize
from datagen.teacher.folder import cooccurrence_scorer, load_teacher, train_teacher
from datagen.teacher.ranking import TeacherRanker
from datagen.teacher.settings import TeacherSettings, TrainConfig
from datagen.teacher.tensors import pad_lists

# One epoch at a learning rate that barely moves the weights: a teacher that cannot beat co-occurrence.
UNTRAINED = TrainConfig(epochs=1, learning_rate=1e-7, device="cpu")


def _copy(sample_build, tmp_path) -> BuildFolder:
    shutil.copytree(sample_build.out_dir, tmp_path / "b")
    return BuildFolder.open(tmp_path / "b")


def test_a_losing_teacher_is_announced_and_auto_labels_with_cooccurrence(sample_build, tmp_path, capsys):
    folder = _copy(sample_build, tmp_path)
    teacher = train_teacher(folder, TeacherSettings(dim=16, inner_dim=16, train=UNTRAINED), StepProgress(quiet=True))
    stderr = capsys.readouterr().err
    assert "WARNING: the SASRec teacher does not beat co-occurrence on validation full-ranking NDCG@10" in stderr
    assert "labels come from co-occurrence (--teacher auto)" in stderr
    report = json.loads((folder.path / "teacher" / "report.json").read_text())
    check = report["baseline_check"]
    assert check["sasrec_beats_cooccurrence"] is False and check["sasrec"] <= check["cooccurrence"]
    assert check["cooccurrence"] == report["evaluation"]["full"]["validation"]["co-occurrence"]["NDCG@10"]
    assert report["label_source"] == teacher.label_source == "cooccurrence"
    assert "**SASRec does not beat co-occurrence**" in (folder.path / "teacher" / "report.md").read_text()

    loaded = load_teacher(folder)
    assert loaded.label_source == "cooccurrence"
    histories = folder.sequences["train_item_ids"].head(50)
    orders, allowed = TeacherRanker(loaded, folder.items).full_orders(histories.to_list())
    scores = cooccurrence_scorer(folder).score(pad_lists(histories, loaded.max_history))
    for row, history in enumerate(histories.to_list()):
        scores[row, history] = -torch.inf
        expected = torch.sort(scores[row], descending=True, stable=True).indices[: allowed[row]]
        assert orders[row, : allowed[row]].tolist() == expected.tolist()

    generate_controllable(folder, ControllableSettings(seed=42))
    finalize(folder.path)
    card = (folder.path / "README.md").read_text()
    assert "**Warning: SASRec does not beat the co-occurrence baseline**" in card
    assert "come from **cooccurrence**" in card
    assert "then the co-occurrence baseline's best items" in card and "Lists are drawn from the co-occurrence baseline's ranking" in card
    assert "the SASRec teacher's best items" not in card


def test_a_forced_label_source_is_kept_and_still_warned(sample_build, tmp_path, capsys):
    folder = _copy(sample_build, tmp_path)
    settings = TeacherSettings(dim=16, inner_dim=16, label_source="sasrec", train=UNTRAINED)
    teacher = train_teacher(folder, settings, StepProgress(quiet=True))
    assert "labels still come from sasrec (--teacher sasrec)" in capsys.readouterr().err
    assert teacher.label_source == load_teacher(folder).label_source == "sasrec"
    history = pl.Series([folder.sequences["train_item_ids"][0].to_list()])
    from_ranker = TeacherRanker(teacher, folder.items)._scores(history)[0]
    assert torch.equal(from_ranker, teacher.model.score_next(pad_lists(history, 50)).float())


def test_a_winning_teacher_is_not_warned(sample_teacher, capsys):
    folder, teacher = sample_teacher
    report = json.loads((folder.path / "teacher" / "report.json").read_text())
    assert report["baseline_check"]["sasrec_beats_cooccurrence"] is True
    assert teacher.label_source == "sasrec"
    assert "does not beat" not in (folder.path / "teacher" / "report.md").read_text()
