"""Run a TRL trainer on a recipe with a LoRA adapter, then export: the part SFT and GRPO share.

    >>> config = trainer_config(SFTConfig, recipe, has_eval=True, completion_only_loss=True)  # doctest: +SKIP
    >>> merged = run_trainer(SFTTrainer, recipe, config, train, held_out)  # doctest: +SKIP

Into `training.output_dir` go `checkpoint-N/` (resumable), the final adapter in
`adapter/`, the adapter merged into the base in `merged/` (a plain transformers
folder, written atomically), `metrics.jsonl` (every logged step), TensorBoard
event files in `runs/`, and `run.json` (the resolved recipe, the dataset's
version and content hash, the package versions).
"""

from __future__ import annotations

import ctypes
import dataclasses
import json
import os
import warnings
from pathlib import Path

from datagen import __version__
from datagen.buildfolder import load_manifest
from datagen.errors import DataError
from datagen.lm.models import load_model, resolve_model, torch_dtype
from datagen.output import atomic_folder, write_json
from datagen.training.recipe import Recipe


def _metrics_logger():
    from transformers import TrainerCallback

    class JsonlMetrics(TrainerCallback):
        """Appends every log (loss, learning rate, eval loss, rewards, ...) as one JSON line to metrics.jsonl."""

        def __init__(self, path: Path):
            self.path = path

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.is_world_process_zero and logs:
                with self.path.open("a") as handle:
                    handle.write(json.dumps({"step": state.global_step, "epoch": state.epoch, **logs}) + "\n")

    return JsonlMetrics


def return_freed_memory() -> None:
    """Hand the C heap's free pages back to the system (glibc's `malloc_trim`; elsewhere nothing).

    On the CPU, torch frees each step's activations into glibc's heap, which keeps
    their pages, so the resident size climbs step after step with the longest
    batches seen: 2 steps of the Steam SFT recipe peak at 2.8 GB without a trim
    after each step, 2.5 GB with it, and no slower.
    """
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)


def _memory_returner():
    from transformers import TrainerCallback

    class ReturnFreedMemory(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            return_freed_memory()

        on_evaluate = on_step_end

    return ReturnFreedMemory


def trainer_config(config_class, recipe: Recipe, has_eval: bool, quiet: bool = False, **defaults):
    """`config_class` (a TRL config) from the recipe's `training` keys, with device-dependent defaults filled in;
    `quiet`: no progress bars and no log lines (metrics.jsonl and TensorBoard still get every log)."""
    import torch

    on_gpu = torch.cuda.is_available()
    args = dict(recipe.training)
    args.pop("resume_from_checkpoint", None)
    args.setdefault("use_cpu", not on_gpu)
    args.setdefault("bf16", on_gpu and torch.cuda.is_bf16_supported())
    args.setdefault("report_to", ["tensorboard"])
    args.setdefault("ddp_find_unused_parameters", False)  # every LoRA weight takes part in each forward pass
    for key, value in defaults.items():
        args.setdefault(key, value)
    if quiet:
        args.update(disable_tqdm=True, log_level="error")
    if has_eval:
        args.setdefault("eval_strategy", "steps" if args.get("eval_steps") else "epoch")
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(args) - known)
    if unknown:
        raise DataError(f"unknown key {unknown[0]!r}: `training` takes TRL {config_class.__name__}'s arguments", path=recipe.path, line="training")
    return config_class(**args)


def model_reference(recipe: Recipe) -> str:
    """The model the recipe trains: `model.name_or_path`, or with `model.stand_in: tiny` the folder of its stand-in."""
    if recipe.model.stand_in is None:
        return recipe.model.name_or_path
    from datagen.lm.stand_in import stand_in_folder

    return str(stand_in_folder(recipe.model.name_or_path, recipe.model.revision))


def last_checkpoint(output_dir: Path, written_last: str = "trainer_state.json") -> str | None:
    """The newest whole checkpoint: one that has `written_last`, the file its trainer writes after all the others, so
    a checkpoint that a kill cut short is passed over for the one before."""
    steps = {int(p.name.removeprefix("checkpoint-")): p for p in output_dir.glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit() and (p / written_last).is_file()}
    return str(steps[max(steps)]) if steps else None


def dataset_identity(path: str) -> dict:
    manifest_path = Path(path) / "manifest.json"
    if not manifest_path.is_file():
        return {"path": path}
    manifest = load_manifest(manifest_path)
    return {"path": path, "version": manifest.get("version"), "content_hash": manifest.get("content_hash")}


def export_merged(adapter_dir: Path, merged_dir: Path, dtype: str) -> Path:
    """Load the saved adapter onto its base, merge, and write a plain model folder (atomically)."""
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(str(adapter_dir), dtype=torch_dtype(dtype)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(str(adapter_dir))
    with atomic_folder(merged_dir) as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    return merged_dir


def lora_config(recipe: Recipe):
    """peft's LoraConfig from the recipe's `lora` section; None for full fine-tuning (`lora: false`)."""
    from peft import LoraConfig

    spec = recipe.lora
    if spec is None:
        return None
    return LoraConfig(r=spec.r, lora_alpha=spec.alpha, lora_dropout=spec.dropout, target_modules=spec.target_modules, task_type="CAUSAL_LM")


def silence_libraries() -> None:
    """What `-q` asks of transformers, datasets and the Hub client: no progress bars, no log lines below errors, and
    no Python warnings (their deprecation notes). TQDM_DISABLE also reaches the bars libraries make with tqdm directly
    (transformers' GGUF conversion), when tqdm is first imported after it."""
    os.environ["TQDM_DISABLE"] = "1"
    import datasets
    import huggingface_hub
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    datasets.disable_progress_bars()
    huggingface_hub.utils.disable_progress_bars()
    warnings.simplefilter("ignore")


def run_trainer(
    trainer_class, recipe: Recipe, config, train, held_out=None, resume: bool = False, model_and_tokenizer=None, callbacks=(), export: bool = True, quiet: bool = False, **trainer_kwargs
) -> Path:
    """Train the recipe's model (or `model_and_tokenizer`) with a LoRA adapter, or all of it (`lora: false`); returns
    the folder of the whole model (the adapter merged into its base).

    `export=False` skips the adapter, merged model and run.json (benchmarks); `quiet` silences the libraries'
    progress bars and log lines (`config` from `trainer_config(..., quiet=True)`).
    """
    import transformers
    import trl

    if quiet:
        silence_libraries()

    output_dir = recipe.output_dir
    transformers.set_seed(config.seed)
    model, tokenizer = model_and_tokenizer or load_model(model_reference(recipe), recipe.model.revision, recipe.model.dtype)
    output_dir.mkdir(parents=True, exist_ok=True)
    trainer = trainer_class(
        model=model,
        args=config,
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=tokenizer,
        peft_config=lora_config(recipe),
        callbacks=[_metrics_logger()(output_dir / "metrics.jsonl"), *([_memory_returner()()] if config.use_cpu else []), *callbacks],
        **trainer_kwargs,
    )
    requested = recipe.training.get("resume_from_checkpoint")
    checkpoint = requested if isinstance(requested, str) else (last_checkpoint(output_dir) if resume or requested else None)
    if quiet:  # with no bar, the Trainer would print each log dict instead: metrics.jsonl has them
        trainer.remove_callback(transformers.PrinterCallback)
    trainer.train(resume_from_checkpoint=checkpoint)
    return_freed_memory()
    merged = output_dir / "merged"
    if not export:
        return merged
    saved = output_dir / ("adapter" if recipe.lora is not None else "model")
    trainer.save_model(str(saved))  # on every process: sharded weights are gathered, the main process writes
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(saved)
        if recipe.lora is not None:
            export_merged(saved, merged, recipe.model.dtype)
        else:  # every weight trained: the saved model is the merged model, moved into place whole
            with atomic_folder(merged) as folder:
                for path in saved.iterdir():
                    os.replace(path, folder / path.name)
            saved.rmdir()
        write_json(
            {
                "recipe": str(recipe.path),
                "trainer": trainer_class.__name__,
                "resolved": {
                    "dataset": dataclasses.asdict(recipe.dataset),
                    "model": dataclasses.asdict(recipe.model),
                    "lora": None if recipe.lora is None else dataclasses.asdict(recipe.lora),
                    "training": recipe.training,
                },
                "dataset": dataset_identity(recipe.dataset.path),
                "model_source": str(resolve_model(model_reference(recipe))),
                "train_rows": len(train),
                "eval_rows": 0 if held_out is None else len(held_out),
                "resumed_from": checkpoint,
                "global_step": trainer.state.global_step,
                "versions": {"datagen": __version__, "transformers": transformers.__version__, "trl": trl.__version__},
            },
            output_dir / "run.json",
        )
    return merged
