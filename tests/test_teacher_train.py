"""Training on the real sample: better than most-popular, deterministic, checkpoints tied to their data."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from datagen.buildfolder import BuildFolder
from datagen.errors import DataError
from datagen.teacher.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from datagen.teacher.folder import load_teacher
from datagen.teacher.sasrec import SASRecConfig
from datagen.teacher.train import TrainConfig, train_sasrec


def test_a_few_epochs_beat_most_popular_on_the_real_sample(sample_teacher):
    folder, _ = sample_teacher
    report = json.loads((folder.path / "teacher" / "report.json").read_text())["evaluation"]
    for split in ("valid", "test"):
        full = report["full"][split]
        assert full["SASRec"]["NDCG@10"] > 1.1 * full["most-popular"]["NDCG@10"], (split, full)
        assert full["SASRec"]["HR@10"] > full["most-popular"]["HR@10"], (split, full)
    assert (folder.path / "teacher" / "report.md").read_text().count("| SASRec |") == 6


def test_training_is_deterministic_on_cpu(sample_build, tmp_path):
    sequences = sample_build.tables.sequences
    config = SASRecConfig(n_items=sample_build.tables.items.height, dim=32, inner_dim=64)
    paths = []
    for run in range(2):
        result = train_sasrec(sequences, config, TrainConfig(epochs=2, seed=3, device="cpu"))
        paths.append(tmp_path / f"run{run}.pt")
        save_checkpoint(paths[-1], result.model, "v", {"seed": 3}, {"epochs": [{"loss": e["loss"]} for e in result.epochs]})
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_a_teacher_of_other_data_is_refused(sample_teacher, tmp_path):
    folder, teacher = sample_teacher
    assert load_teacher(folder).checkpoint_sha256 == teacher.checkpoint_sha256
    with pytest.raises(DataError, match="trained on data version .* but the build has data version 0123"):
        load_checkpoint(folder.path / "teacher" / CHECKPOINT_NAME, expected_data_version="0123456789abcdef")
    other = tmp_path / "other"
    shutil.copytree(folder.path, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["outputs"]["data/items/train-00000-of-00001.parquet"]["sha256"] = "0" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="Retrain it on this build"):
        load_teacher(BuildFolder.open(other))


def test_a_broken_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / CHECKPOINT_NAME
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="cannot read the teacher checkpoint"):
        load_checkpoint(path)
    torch.save({"format": "something else"}, path)
    with pytest.raises(DataError, match="not a datagen SASRec checkpoint"):
        load_checkpoint(path)
