"""Save and load a trained teacher: safetensors weights beside a JSON config, tied to one data version.

    teacher/model.safetensors   the SASRec weights (no pickle: safe to load from the Hub)
    teacher/config.json         format, data version, model and training config, the
                                objective used, the training log, and the label source

Loading a teacher for another build's data is refused: item ids would mean
different items.

    >>> teacher = load_checkpoint(Path("build/steam/teacher/model.safetensors"), expected_data_version=folder.data_version)  # doctest: +SKIP
    >>> teacher.model.config.n_items  # doctest: +SKIP
    3685
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from datagen.errors import DataError
from datagen.output import sha256, write_text
from datagen.teacher.sasrec import SASRec
from datagen.teacher.scorers import SASRecScorer
from datagen.teacher.settings import SASRecConfig

CHECKPOINT_FORMAT = "datagen.sasrec/2"
CHECKPOINT_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


@dataclass
class Teacher:
    """The trained SASRec of a build, and the scorer whose rankings make its labels."""

    model: SASRec
    data_version: str
    train_config: dict
    log: dict  # objective, best epoch, validation NDCG@10, per-epoch entries
    checkpoint_sha256: str
    label_source: str = "sasrec"  # "cooccurrence" when the build chose the baseline over SASRec
    scorer: object = field(default=None)  # .score(padded histories) -> [rows, n_items]; SASRec's by default

    def __post_init__(self) -> None:
        if self.scorer is None:
            self.scorer = SASRecScorer(self.model)

    @property
    def max_history(self) -> int:
        return self.model.config.max_history


def save_checkpoint(folder: Path, model: SASRec, data_version: str, train_config: dict, log: dict, label_source: str) -> str:
    """Write model.safetensors and config.json into `folder` (each via a temporary file); returns the weights' sha256."""
    folder = Path(folder)
    weights = folder / CHECKPOINT_NAME
    temporary = weights.with_name(f".{weights.name}.tmp-{os.getpid()}")
    state = {name: tensor.detach().cpu().contiguous() for name, tensor in model.state_dict().items()}
    # One metadata key: safetensors writes several in no fixed order, and the file must be byte-identical run to run.
    save_file(state, temporary, metadata={"datagen": json.dumps({"format": CHECKPOINT_FORMAT, "data_version": data_version}, sort_keys=True)})
    os.replace(temporary, weights)
    config = {
        "format": CHECKPOINT_FORMAT,
        "data_version": data_version,
        "model_config": model.config.as_dict(),
        "train_config": train_config,
        "label_source": label_source,
        "log": log,
    }
    write_text(json.dumps(config, indent=2) + "\n", folder / CONFIG_NAME)
    return sha256(weights)


def load_checkpoint(path: Path, expected_data_version: str | None = None, device="cpu") -> Teacher:
    """`path`: a model.safetensors with its config.json beside it (or the folder holding both)."""
    path = Path(path)
    weights = path / CHECKPOINT_NAME if path.is_dir() else path
    config_path = weights.with_name(CONFIG_NAME)
    if not weights.is_file():
        raise DataError("no teacher checkpoint here", path=weights, hint="Train one with `datagen teacher train BUILD_DIR`.")
    if weights.suffix != ".safetensors":
        raise DataError(
            "not a datagen teacher checkpoint (teachers are model.safetensors with a config.json beside them)",
            path=weights,
            hint="Retrain it with `datagen teacher train BUILD_DIR` (older sasrec.pt checkpoints are not read).",
        )
    try:
        config = json.loads(config_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise DataError(f"cannot read the teacher's config ({error})", path=config_path) from None
    if not isinstance(config, dict) or config.get("format") != CHECKPOINT_FORMAT:
        raise DataError(f"not a datagen SASRec config (expected format {CHECKPOINT_FORMAT})", path=config_path)
    if expected_data_version is not None and config["data_version"] != expected_data_version:
        raise DataError(
            f"this teacher was trained on data version {config['data_version']}, but the build has data version {expected_data_version}; its item ids would name other items",
            path=weights,
            hint="Retrain it on this build: `datagen teacher train BUILD_DIR`.",
        )
    try:
        state = load_file(weights)
    except (SafetensorError, OSError) as error:
        raise DataError(f"cannot read the teacher weights ({error})", path=weights) from None
    model = SASRec(SASRecConfig(**config["model_config"]))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        raise DataError(f"the weights do not fit the config beside them ({error})", path=weights) from None
    model.to(device).eval()
    return Teacher(
        model=model,
        data_version=config["data_version"],
        train_config=config["train_config"],
        log=config["log"],
        checkpoint_sha256=sha256(weights),
        label_source=config.get("label_source", "sasrec"),
    )
