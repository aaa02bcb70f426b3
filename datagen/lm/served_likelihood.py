"""Candidate log-likelihoods from a model behind an OpenAI-compatible server: each candidate's whole chat text sent
to POST {base_url}/completions with `echo` and `logprobs`, and the echoed log-probabilities of its answer turn
summed, as lm-evaluation-harness scores multiple choice through vLLM.

    >>> tokenizer = load_tokenizer("HuggingFaceTB/SmolLM2-135M-Instruct")  # doctest: +SKIP
    >>> scorer = ServedScorer(OpenAIChat("http://127.0.0.1:8000/v1", "HuggingFaceTB/SmolLM2-135M-Instruct"), tokenizer)  # doctest: +SKIP
    >>> scorer.score([{"role": "user", "content": "Yes or no?"}], ["Yes", "No"])  # doctest: +SKIP
    [-1.92, -2.31]

The completions API takes text, so the chat template is applied here, by the tokenizer named for the model, and
the scores are those of datagen.lm.likelihood: the candidate's answer turn, its end-of-turn tokens included. The
server must echo a log-probability for every token of the text and split its tokens where the answer turn begins;
one that does not (llama.cpp's server refuses `echo`; some give the generated token's only) gets an error saying
so, never a score made of what it left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from datagen.errors import DataError
from datagen.lm.chat import BASE_URL_ENV, SERVED_PREFIX, OpenAIChat
from datagen.lm.likelihood import Prompt, answer_turns
from datagen.redact import redact_url

ECHO_HINT = "Candidate scoring needs /completions with echo and logprobs, as vLLM serves it; a chat-only server cannot give it."


class ServedScorer:
    """One request a candidate (servers such as `transformers serve` take one prompt a request), `client.concurrency`
    of them at once."""

    def __init__(self, client: OpenAIChat, tokenizer):
        self.client, self.tokenizer = client, tokenizer
        self.url = client.base_url + "/completions"
        self.shown_url = redact_url(self.url)

    def score(self, prompt: Prompt, candidates: Sequence[str]) -> list[float]:
        """log P(candidate's turn | prompt), summed over its tokens, for each candidate."""
        head, turns = answer_turns(self.tokenizer, prompt, candidates)
        texts = [head + turn for turn in turns]
        with ThreadPoolExecutor(max_workers=self.client.concurrency) as pool:
            echoed = list(pool.map(self._echo, texts))
        return [answer_logprob(logprobs, len(head), len(text), self.shown_url) for logprobs, text in zip(echoed, texts)]

    def _echo(self, text: str) -> dict | None:
        """The `logprobs` object of the server's answer to `text`, echoed with one token more."""
        payload = {"model": self.client.model, "prompt": text, "echo": True, "logprobs": 1, "max_tokens": 1, "temperature": 0}
        return self.client.post(self.url, payload, lambda answer: answer["choices"][0].get("logprobs"), "a completion")


def answer_logprob(logprobs: dict | None, start: int, end: int, shown_url: str) -> float:
    """The summed log-probabilities of the echoed tokens that begin in characters [start, end) of the text."""
    echoed = logprobs if isinstance(logprobs, dict) else {}
    offsets, values = echoed.get("text_offset") or [], echoed.get("token_logprobs") or []
    if len(offsets) != len(values) or not offsets or offsets[0] != 0:
        raise DataError(f"{shown_url} did not echo the prompt's log-probabilities (it gave {len(values)}, from character {offsets[0] if offsets else '-'})", hint=ECHO_HINT)
    if start not in offsets:
        raise DataError(f"{shown_url} split a token across the start of the answer turn (character {start})", hint="the served model's tokenizer is not the one --tokenizer names")
    answer = [value for offset, value in zip(offsets, values) if start <= offset < end]
    if any(value is None for value in answer):
        raise DataError(f"{shown_url} gave no log-probability for some token of the answer turn", hint=ECHO_HINT)
    return float(sum(answer))


def served_scorer(reference: str, base_url: str | None, tokenizer: str | None) -> ServedScorer:
    """The scorer of a served reference `openai:MODEL` at `base_url`, its chat template from `tokenizer`, else from
    MODEL itself (vLLM serves a model under its Hub id)."""
    from datagen.lm.models import load_tokenizer

    model = reference.removeprefix(SERVED_PREFIX)
    if not base_url:
        raise DataError(f"{reference} is a served model: give --base-url (or set ${BASE_URL_ENV}), e.g. http://127.0.0.1:8000/v1")
    try:
        loaded = load_tokenizer(tokenizer or model)
    except (DataError, ValueError) as error:
        message = error.message if isinstance(error, DataError) else str(error)
        raise DataError(
            f"no chat template to write {reference}'s prompts for /completions: {message}",
            hint="Name the served model's tokenizer with --tokenizer (a Hub id, a folder, a .gguf file or package:DIST).",
        ) from None
    return ServedScorer(OpenAIChat(base_url, model), loaded)
