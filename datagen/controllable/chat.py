"""I4: general chat in ShareGPT format, mixed into the training split (Lu et al. 2.2.1: 50%).

A ShareGPT file is a JSON list (or JSON lines) of `{"conversations": [{"from": "human",
"value": ...}, {"from": "gpt", "value": ...}, ...]}`. A name that is not a file is taken
as a Hugging Face Hub dataset id (needs the network and the `datasets` package).

    >>> conversations, dropped = load_sharegpt("tests/fixtures/docs_chat.json")  # doctest: +SKIP
    >>> rows = chat_rows(conversations, n_rows=10, seed=42)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

from datagen.controllable.rows import SCHEMA
from datagen.errors import DataError

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant", "bing": "assistant", "system": "system"}


def load_sharegpt(spec: str | Path) -> tuple[list[list[dict]], Counter]:
    """Conversations as chat messages, and how many were dropped per reason."""
    path = Path(spec)
    if path.is_file():
        records = _read_file(path)
    elif path.suffix in (".json", ".jsonl") or str(spec).startswith((".", "/")) or str(spec).count("/") != 1:
        raise DataError("chat file not found", path=path, hint="A Hub dataset id has the form ORG/NAME.")
    else:
        records = _read_hub(str(spec))
    conversations, dropped = [], Counter()
    for record in records:
        messages, reason = to_messages(record.get("conversations") if isinstance(record, dict) else None)
        if reason:
            dropped[reason] += 1
        else:
            conversations.append(messages)
    if not conversations:
        raise DataError(f"no usable conversation (dropped: {dict(dropped)})", path=spec)
    return conversations, dropped


def _read_file(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as error:
                    raise DataError(f"not JSON: {error.msg}", path=path, line=number) from None
        return records
    try:
        records = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"not JSON: {error.msg}", path=path, line=error.lineno) from None
    if not isinstance(records, list):
        raise DataError("a ShareGPT file holds a JSON list of {conversations: [...]}", path=path)
    return records


def _read_hub(dataset_id: str) -> list:
    try:
        import datasets
    except ImportError:
        raise DataError(f"{dataset_id!r} is not a file, and reading a Hub dataset needs `pip install datasets`") from None
    try:
        return list(datasets.load_dataset(dataset_id, split="train"))
    except Exception as error:  # offline, unknown id, gated: all end the same way for the user
        raise DataError(
            f"could not load the chat dataset {dataset_id!r} from the Hugging Face Hub ({type(error).__name__}: {error})",
            hint="Pass a local ShareGPT JSON file with --chat, or build where the Hub can be reached.",
        ) from None


def to_messages(turns) -> tuple[list[dict], str | None]:
    """Alternating user/assistant messages (after an optional system one), ending with the assistant."""
    if not isinstance(turns, list) or not turns:
        return [], "no conversations list"
    messages = []
    for turn in turns:
        if not isinstance(turn, dict) or not isinstance(turn.get("value"), str):
            return [], "a turn without a text value"
        role = ROLES.get(str(turn.get("from", "")).lower())
        if role is None:
            return [], "a turn from an unknown speaker"
        if not turn["value"].strip():
            return [], "an empty turn"
        messages.append({"role": role, "content": turn["value"].strip()})
    system = [m for m in messages[:1] if m["role"] == "system"]
    turns_only = messages[len(system) :]
    while turns_only and turns_only[0]["role"] == "assistant":
        turns_only = turns_only[1:]
    while turns_only and turns_only[-1]["role"] == "user":
        turns_only = turns_only[:-1]
    if not turns_only:
        return [], "no assistant answer"
    if any(m["role"] != ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(turns_only)):
        return [], "turns do not alternate"
    return system + turns_only, None


def chat_rows(conversations: list[list[dict]], n_rows: int, seed: int) -> list[dict]:
    """`n_rows` rows drawn without replacement, going round the file again only when it is too short."""
    rng = random.Random(f"{seed}/train/i4")
    rows = []
    while len(rows) < n_rows:
        order = list(range(len(conversations)))
        rng.shuffle(order)
        rows.extend(_row(conversations[i], i, len(rows) + j) for j, i in enumerate(order[: n_rows - len(rows)]))
    return rows


def _row(messages: list[dict], index: int, number: int) -> dict:
    row = {name: None for name in SCHEMA}
    row.update(
        id=f"train/i4_chat/{index}/{number}",
        task="i4_chat",
        family="i4",
        messages=messages,
        prompt=messages[:-1],
        completion=messages[-1:],
    )
    return row
