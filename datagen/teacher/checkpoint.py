"""Save and load a trained teacher with its config and the data version it was trained on.

A checkpoint holds the SASRec weights, the model and training configs, the
training log and the data version of the build it learned from. Loading it for
another build's data is refused: item ids would mean different items.

    >>> teacher = load_checkpoint("build/steam/teacher/sasrec.pt", expected_data_version=folder.data_version)  # doctest: +SKIP
    >>> teacher.model.config.n_items  # doctest: +SKIP
    3685
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from datagen.errors import DataError
from datagen.rawfiles import sha256
from datagen.teacher.sasrec import SASRec, SASRecConfig

CHECKPOINT_FORMAT = "datagen.sasrec/1"
CHECKPOINT_NAME = "sasrec.pt"


@dataclass
class Teacher:
    model: SASRec
    data_version: str
    train_config: dict
    log: dict  # best epoch, valid NDCG@10, per-epoch entries
    checkpoint_sha256: str


def save_checkpoint(path: Path, model: SASRec, data_version: str, train_config: dict, log: dict) -> str:
    """Write the checkpoint (via a temporary file, then rename); returns its sha256."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "data_version": data_version,
        "model_config": model.config.as_dict(),
        "train_config": train_config,
        "log": log,
        "state_dict": {name: tensor.detach().cpu() for name, tensor in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_bytes(buffer.getvalue())
    os.replace(temporary, path)
    return sha256(path)


def load_checkpoint(path: Path, expected_data_version: str | None = None, device: str | torch.device = "cpu") -> Teacher:
    path = Path(path)
    if not path.is_file():
        raise DataError("no teacher checkpoint here", path=path, hint="Train one with `datagen teacher train BUILD_DIR`.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a broken file
        raise DataError(f"cannot read the teacher checkpoint ({type(error).__name__}: {error})", path=path) from error
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"not a datagen SASRec checkpoint (expected format {CHECKPOINT_FORMAT})", path=path)
    if expected_data_version is not None and payload["data_version"] != expected_data_version:
        raise DataError(
            f"this teacher was trained on data version {payload['data_version']}, "
            f"but the build has data version {expected_data_version}; its item ids would name other items",
            path=path,
            hint="Retrain it on this build: `datagen teacher train BUILD_DIR`.",
        )
    model = SASRec(SASRecConfig(**payload["model_config"]))
    model.load_state_dict(payload["state_dict"])
    model.to(device).eval()
    return Teacher(
        model=model,
        data_version=payload["data_version"],
        train_config=payload["train_config"],
        log=payload["log"],
        checkpoint_sha256=sha256(path),
    )
