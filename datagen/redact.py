"""Mask secrets in text that came from a server or a library before it is shown, logged or stored.

A server or a proxy may echo a request's headers in its error body; that text
goes through `redact` before it reaches any message. It masks the values of
the secret environment variables datagen and its libraries read, any
`Authorization:`/`Bearer` value, `user:password@` in a URL, and token shapes
(Hugging Face `hf_...`, OpenAI-style `sk-...`).

    >>> redact('401: {"headers": {"Authorization": "Bearer sk-abc123def456ghi"}}')
    '401: {"headers": {"Authorization": "Bearer ***"}}'
    >>> redact_url("https://me:s3cret@mirror.example/amazon/?token=abc")
    'https://***@mirror.example/amazon/?***'
"""

from __future__ import annotations

import json
import os
import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
SECRET_ENVIRONMENT = ("DATAGEN_LLM_API_KEY", "OPENAI_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_SECRET_SHAPES = [
    re.compile(r"(?i)(bearer\s+)[^\s\"',;}]+"),
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?!bearer\s)(?:[A-Za-z]+\s+)?[^\s\"',;}]+"),  # "Basic xyz" too
    re.compile(r"()\bhf_[A-Za-z0-9]{8,}"),
    re.compile(r"()\bsk-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"([a-z][a-z0-9+.\-]*://)[^/\s@\"'<>]+(?=@)"),  # user:password@ in any URL of a library's message
]


def redact(text: str, *secrets: str) -> str:
    """`text` with `secrets`, the secret environment variables' values and token-shaped strings masked. A secret is
    also found as a JSON string writes it (`/` as `\\/`, quotes and non-ASCII escaped), as servers echo it. Cut a
    text only after this: a cut can leave a piece of a secret that no longer looks like one."""
    values = [*secrets, *(os.environ.get(name, "") for name in SECRET_ENVIRONMENT)]
    spellings = {spelling for value in values if len(value) >= 4 for spelling in _json_spellings(value)}
    for value in sorted(spellings, key=len, reverse=True):
        text = text.replace(value, MASK)
    for shape in _SECRET_SHAPES:
        text = shape.sub(lambda match: match.group(1) + MASK, text)
    return text


def _json_spellings(value: str) -> set[str]:
    escaped = json.dumps(value)[1:-1]
    return {value, escaped, escaped.replace("/", "\\/")}


def redact_url(url: str) -> str:
    """`url` with its user and password and its query (where mirrors put access tokens) masked."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    netloc = f"{MASK}@{host}" if "@" in parts.netloc else host
    return redact(urlunsplit((parts.scheme, netloc, parts.path, MASK if parts.query else "", "")))
