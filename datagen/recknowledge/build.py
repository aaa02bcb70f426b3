"""Generate the recommendation-knowledge dataset of Cao et al. 2024 from a build's canonical tables.

    >>> report = generate_recknowledge(BuildFolder.open("build/steam-sample"), RecKnowledgeSettings(epochs=2))  # doctest: +SKIP
    >>> report["rows"]["train"]["mim"]  # doctest: +SKIP
    3412

Recommendation tasks (retrieval, ranking, rating prediction) slide a window of
w items over the train part of each user's sequence (the last item of a window
is the target, the rest the history); validation has one row per task for
`validation_users` users, test one for every user. The auxiliary tasks (MIM, MLM,
BPR) are train only, made `epochs` times with differently seeded masks and
negatives (the paper's dynamic sampling). Writes
`<build>/data/recknowledge/`, `<build>/data/recknowledge_items/` (item id ->
short id), `templates/recknowledge/` and `reports/recknowledge.{json,md}`, each
replaced only once complete. Workers check and spill each chunk's rows to files
in a scratch folder, and the splits are written from there, so no process holds
every row.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from datagen.buildfolder import BuildFolder
from datagen.executor import ordered_map
from datagen.family.chunks import ChunkPart, Gathered, spill_chunk
from datagen.family.rows import chat_columns, check_failures, refuse_failed_checks, settings_dict, write_generated
from datagen.family.spec import card_block
from datagen.layout import DATA_DIR, read_split, write_split
from datagen.output import atomic_folder, scratch_folder
from datagen.progress import StepProgress
from datagen.recknowledge.checks import CHECKS, check_context
from datagen.recknowledge.samples import NO, YES, ItemText, corrupt_spans, mask_positions, numpy_rng, popularity_negatives, short_ids, windows
from datagen.templating import TemplateLibrary

DATASET = "recknowledge"
ID_CONFIG = "recknowledge_items"
REPORT_FORMAT = "datagen.recknowledge/2"
CARD = card_block(
    "datagen.recknowledge",
    {
        DATASET: "Recommendation-knowledge tasks of Cao et al. 2024: retrieval, ranking, rating prediction, MIM, MLM, BPR",
        ID_CONFIG: "The short item ids (I123) of the recknowledge prompts: item_id, short_id, title",
    },
    ["cao2024"],
)
SPLITS = ("train", "validation", "test")
RECOMMENDATION_TASKS = ("retrieval", "ranking", "rating")
AUXILIARY_TASKS = ("mim", "mlm", "bpr")
TASKS = RECOMMENDATION_TASKS + AUXILIARY_TASKS
TEMPLATE_VARIABLES: dict[str, set[str]] = {
    "retrieval": {"catalog_noun", "history"},
    "ranking": {"catalog_noun", "history", "candidates"},
    "rating": {"catalog_noun", "liked", "disliked", "target"},
    "mim": {"catalog_noun", "masked_history"},
    "mlm": {"sequence"},
    "bpr": {"catalog_noun", "history", "choices"},
}
CATALOG_NOUNS = {"amazon": "Amazon products", "steam": "Steam games"}  # Table 11 says "Amazon products"
WINDOWS_PER_CHUNK = 1000  # a worker task's users have about this many train windows (a long history's alone may have more)
LIKE_ABOVE = 3.0  # "interactions with ratings > 3 are considered as like"

MESSAGE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
IDS = pl.List(pl.Int64)
SCHEMA = {
    "id": pl.String,
    "task": pl.String,
    "template_id": pl.String,
    "user_id": pl.Int64,
    "epoch": pl.Int64,
    "history_item_ids": IDS,
    "target_item_id": pl.Int64,
    "candidate_item_ids": IDS,
    "label_item_ids": IDS,
    "masked_positions": IDS,
    "target_rating": pl.Float64,
    "messages": MESSAGE,
    "prompt": MESSAGE,
    "completion": MESSAGE,
}
ARROW_SCHEMA = pl.DataFrame(schema=SCHEMA).to_arrow().schema


@dataclass
class RecKnowledgeSettings:
    seed: int = 42
    window: int = 20  # w of the paper
    candidates: int = 100  # ranking pool: the target and 99 popularity-sampled negatives
    validation_users: int = 3000
    mask_ratio: float = 0.2  # MIM and MLM
    mean_span: float = 3.0  # MLM span length in words (T5's default)
    epochs: int = 1  # differently seeded copies of MIM, MLM and BPR
    catalog_noun: str | None = None  # None: from the source ("Amazon products", "Steam games", else the catalog's own noun)
    template_dirs: tuple[Path, ...] = ()
    # How the work is spread; the rows are the same for any of these, so the report leaves them out.
    workers: int = field(default=1, metadata={"recorded": False})
    executor: str = field(default="local", metadata={"recorded": False})

    def as_dict(self) -> dict:
        return settings_dict(self)


def load_library(template_dirs=()) -> TemplateLibrary:
    return TemplateLibrary.load(TEMPLATE_VARIABLES, template_dirs, dataset=DATASET)


@dataclass
class Context:
    text: ItemText
    library: TemplateLibrary
    weights: np.ndarray  # popularity in the train parts, plus one so every item can be drawn
    catalog_noun: str
    settings: RecKnowledgeSettings


class UserSequence:
    """One user's items and ratings (None without ratings) and where train, validation and test end."""

    def __init__(self, user_id: int, items: list[int], ratings: list[float] | None):
        self.user_id, self.items, self.ratings = user_id, items, ratings
        self.train_end = len(items) - 2

    def rating_of(self, position: int) -> float | None:
        return None if self.ratings is None else self.ratings[position]


def _row(context: Context, sequence: UserSequence, split: str, task: str, key: str, rng: random.Random, **facts) -> dict:
    template = rng.choice(context.library.for_task(task))
    values = {"catalog_noun": context.catalog_noun, **facts.pop("values")}
    system, user = template.render({name: values[name] for name in template.variables})
    answer = facts.pop("answer")
    row = {name: None for name in SCHEMA}
    row.update(id=f"{split}/{task}/{sequence.user_id}/{key}", task=task, template_id=template.id, user_id=sequence.user_id, epoch=0)
    row.update(facts, **chat_columns(system, user, answer))
    return row


def recommendation_rows(context: Context, sequence: UserSequence, split: str, positions: list[int], key: str, dropped: Counter) -> list[dict]:
    """Retrieval, ranking and (with ratings) rating prediction for one window: `positions[-1]` is the target."""
    items, text, seed = sequence.items, context.text, context.settings.seed
    history = [items[p] for p in positions[:-1]]
    target = items[positions[-1]]
    rows = []
    rng = random.Random(f"{seed}/{split}/retrieval/{sequence.user_id}/{key}")
    rows.append(_row(context, sequence, split, "retrieval", key, rng, values={"history": text.items(history)}, answer=text.ids[target],
                     history_item_ids=history, target_item_id=target, label_item_ids=[target]))  # fmt: skip
    rng = random.Random(f"{seed}/{split}/ranking/{sequence.user_id}/{key}")
    negatives = popularity_negatives(numpy_rng(seed, split, "ranking", sequence.user_id, key), context.weights, context.settings.candidates - 1, items)
    if negatives is None:
        dropped[(split, "ranking", f"fewer than {context.settings.candidates - 1} items outside the user's sequence")] += 1
    else:
        candidates = list(negatives)
        candidates.insert(rng.randrange(len(candidates) + 1), target)
        rows.append(_row(context, sequence, split, "ranking", key, rng, values={"history": text.items(history), "candidates": ", ".join(text.ids[i] for i in candidates)},
                         answer=text.ids[target], history_item_ids=history, target_item_id=target, candidate_item_ids=candidates, label_item_ids=[target]))  # fmt: skip
    if sequence.ratings is None:
        dropped[(split, "rating", "the catalog has no ratings")] += 1
    elif any(sequence.rating_of(p) is None for p in positions):
        dropped[(split, "rating", "an item of the window has no rating")] += 1
    else:
        rng = random.Random(f"{seed}/{split}/rating/{sequence.user_id}/{key}")
        liked = [items[p] for p in positions[:-1] if sequence.rating_of(p) > LIKE_ABOVE]
        disliked = [items[p] for p in positions[:-1] if sequence.rating_of(p) <= LIKE_ABOVE]
        rating = sequence.rating_of(positions[-1])
        rows.append(_row(context, sequence, split, "rating", key, rng, values={"liked": text.items(liked), "disliked": text.items(disliked), "target": text.item(target)},
                         answer=YES if rating > LIKE_ABOVE else NO, history_item_ids=history, target_item_id=target, label_item_ids=[target], target_rating=rating))  # fmt: skip
    return rows


def auxiliary_rows(context: Context, sequence: UserSequence, positions: list[int], key: str, epoch: int, dropped: Counter) -> list[dict]:
    """MIM, MLM and BPR for one train window, seeded by `epoch`."""
    items, text, settings = sequence.items, context.text, context.settings
    window = [items[p] for p in positions]
    key = f"{key}/{epoch}"
    rows = []
    rng = random.Random(f"{settings.seed}/train/mim/{sequence.user_id}/{key}")
    masked = mask_positions(rng, len(window), settings.mask_ratio)
    rows.append(_row(context, sequence, "train", "mim", key, rng, values={"masked_history": text.masked(window, masked)},
                     answer=text.items([window[p] for p in masked]), history_item_ids=window, label_item_ids=[window[p] for p in masked], masked_positions=masked))  # fmt: skip
    rng = random.Random(f"{settings.seed}/train/mlm/{sequence.user_id}/{key}")
    length = rng.randint(2, len(window))
    start = rng.randrange(len(window) - length + 1)
    span = window[start : start + length]
    template = rng.choice(context.library.for_task("mlm"))
    _, sequence_text = template.render({"sequence": text.items(span)})
    source, target_spans = corrupt_spans(rng, sequence_text, settings.mask_ratio, settings.mean_span)
    row = {name: None for name in SCHEMA}
    row.update(id=f"train/mlm/{sequence.user_id}/{key}", task="mlm", template_id=template.id, user_id=sequence.user_id, epoch=epoch,
               history_item_ids=span, label_item_ids=[], **chat_columns("", source, target_spans))  # fmt: skip
    rows.append(row)
    rng = random.Random(f"{settings.seed}/train/bpr/{sequence.user_id}/{key}")
    negative = popularity_negatives(numpy_rng(settings.seed, "train", "bpr", sequence.user_id, key), context.weights, 1, items)
    if negative is None:
        dropped[("train", "bpr", "no item outside the user's sequence")] += 1
    else:
        history, target = window[:-1], window[-1]
        choices = [negative[0], target] if rng.random() < 0.5 else [target, negative[0]]
        rows.append(_row(context, sequence, "train", "bpr", key, rng, values={"history": text.items(history), "choices": text.items(choices)},
                         answer=text.items([target]), history_item_ids=history, target_item_id=target, candidate_item_ids=choices, label_item_ids=[target]))  # fmt: skip
    for row in rows:
        row["epoch"] = epoch
    return rows


def user_sequences(folder: BuildFolder) -> list[UserSequence]:
    sequences = folder.sequences.sort("user_id").select("user_id", "item_ids")
    interactions = read_split(folder.path, "interactions", "train")
    has_ratings = "rating" in interactions.columns
    if has_ratings:
        # The interactions config is split three ways; the ratings of all three, by user and position.
        parts = [read_split(folder.path, "interactions", split) for split in SPLITS]
        ratings = pl.concat(parts).sort("user_id", "position").group_by("user_id", maintain_order=True).agg("rating")
        sequences = sequences.join(ratings, on="user_id", how="left", maintain_order="left")
    return [UserSequence(row[0], row[1], row[2] if has_ratings else None) for row in sequences.rows()]


def generate_rows(folder: BuildFolder, settings: RecKnowledgeSettings, progress: StepProgress, scratch: Path) -> tuple[Gathered, list[str], TemplateLibrary]:
    """Every split's rows spilled to files in `scratch`, with their counts, label checks and dropped samples; the
    users shared in chunks among `settings.workers` workers, gathered in chunk order."""
    items = folder.items.sort("item_id")
    ids = short_ids(items.height, settings.seed)
    library = load_library(settings.template_dirs)
    sequences = user_sequences(folder)
    counts = np.bincount([i for s in sequences for i in s.items[: s.train_end]], minlength=items.height)
    source = folder.manifest["source"]
    noun = settings.catalog_noun or CATALOG_NOUNS.get(source["name"]) or source.get("catalog_noun", "items")
    validation_users = [s.user_id for s in sequences]
    random.Random(f"{settings.seed}/recknowledge/validation-users").shuffle(validation_users)
    validation_users = set(validation_users[: settings.validation_users])
    gathered = Gathered(scratch, SPLITS, ARROW_SCHEMA)
    chunks = list(enumerate(user_chunks(sequences, settings.window)))
    job = (folder.path, settings, ids, counts.astype(np.float64) + 1.0, noun, validation_users, scratch)
    with (
        ordered_map(UserRows, job, chunks, settings.workers, settings.executor) as results,
        progress.bar(f"Generating retrieval, ranking, rating, MIM, MLM, BPR ({settings.workers} {settings.executor} workers)", total=len(chunks)) as advance,
    ):
        users_done = 0
        for (_, chunk), part in zip(chunks, results):
            gathered.add(part)
            users_done += len(chunk)
            advance(f"{users_done:,} users")
    return gathered, ids, library


def user_chunks(sequences: list[UserSequence], w: int) -> list[list[UserSequence]]:
    """The users in order, cut into chunks of about WINDOWS_PER_CHUNK train windows each, so that a chunk's rows are
    bounded however long the histories are (ml-100k's 943 users have 80k windows)."""
    chunks, chunk, chunk_windows = [], [], 0
    for sequence in sequences:
        chunk.append(sequence)
        chunk_windows += max(1, sequence.train_end - w + 1)
        if chunk_windows >= WINDOWS_PER_CHUNK:
            chunks.append(chunk)
            chunk, chunk_windows = [], 0
    return chunks + [chunk] if chunk else chunks


class UserRows:
    """A worker (datagen.executor): the item texts, templates and what the label checks read loaded once, then every
    row of a chunk of users, checked and spilled to `scratch` (which every worker must see: on Ray, inside the build
    folder on a shared file system). A user's rows depend only on the user, the seed and the popularity weights, so
    any split gives the same rows."""

    def __init__(self, folder_path: Path, settings: RecKnowledgeSettings, ids: list[str], weights: np.ndarray, noun: str, validation_users: set[int], scratch: Path):
        folder = BuildFolder.open(folder_path)
        titles = folder.items.sort("item_id")["title"].to_list()
        self.context = Context(ItemText(ids, titles), load_library(settings.template_dirs), weights, noun, settings)
        self.check_context = check_context(folder, ids)
        self.validation_users = validation_users
        self.scratch = scratch

    def run(self, task: tuple[int, list[UserSequence]]) -> ChunkPart:
        number, sequences = task
        context, settings = self.context, self.context.settings
        rows: dict[str, list[dict]] = {split: [] for split in SPLITS}
        dropped: Counter = Counter()
        w = settings.window
        for sequence in sequences:
            if sequence.train_end < 2:
                dropped[("train", "all", "train part shorter than 2 items")] += 1
            else:
                for index, positions in enumerate(windows(list(range(sequence.train_end)), w)):
                    rows["train"] += recommendation_rows(context, sequence, "train", positions, str(index), dropped)
                    for epoch in range(settings.epochs):
                        rows["train"] += auxiliary_rows(context, sequence, positions, str(index), epoch, dropped)
            if sequence.user_id in self.validation_users:
                positions = list(range(sequence.train_end + 1))[-w:]
                rows["validation"] += recommendation_rows(context, sequence, "validation", positions, "0", dropped)
            rows["test"] += recommendation_rows(context, sequence, "test", list(range(len(sequence.items)))[-w:], "0", dropped)
        return spill_chunk(rows, number, self.scratch, ARROW_SCHEMA, CHECKS, self.check_context, dropped=dropped)


def generate_recknowledge(folder: BuildFolder, settings: RecKnowledgeSettings, progress: StepProgress | None = None) -> dict:
    progress = progress or StepProgress(quiet=True)
    with scratch_folder(folder.path / f"{DATASET}-rows") as scratch:
        gathered, ids, library = generate_rows(folder, settings, progress, scratch)
        checks = gathered.checks.results()
        failures = check_failures(checks)
        refuse_failed_checks(DATASET, failures)
        report = {
            "format": REPORT_FORMAT,
            "card": CARD,
            "data_version": folder.data_version,
            "settings": settings.as_dict(),
            "templates": [{"id": t.id, "task": t.task, "version": t.version, "source": t.source} for t in library.templates],
            "rows": {split: {task: n for task in TASKS if (n := gathered.rows_per_task(split)[task])} for split in SPLITS},
            "dropped": [{"split": s, "task": t, "reason": r, "count": n} for (s, t, r), n in sorted(gathered.dropped.items())],
            "label_checks": checks,
            "label_check_failures": failures,
        }
        with progress.step(f"Writing {DATA_DIR}/{DATASET}, {DATA_DIR}/{ID_CONFIG} and templates/{DATASET}"):
            write_generated(folder, DATASET, gathered.splits, library, report, report_markdown(report))
            with atomic_folder(folder.path / DATA_DIR / ID_CONFIG) as out:
                mapping = folder.items.sort("item_id").select("item_id", pl.Series("short_id", ids), "title")
                write_split(mapping, out, "train")
    return report


def report_markdown(report: dict) -> str:
    lines = ["# Recommendation-knowledge dataset (Cao et al. 2024)", "", "## Rows", "", "| task | " + " | ".join(SPLITS) + " |", "|---|" + "---:|" * len(SPLITS)]
    for task in TASKS:
        lines.append(f"| {task} | " + " | ".join(f"{report['rows'][split].get(task, 0):,}" for split in SPLITS) + " |")
    lines += ["", "## Label checks", "", "| split | task | rows | checked | failures |", "|---|---|---:|---|---|"]
    for split, tasks in report["label_checks"].items():
        for task, result in tasks.items():
            lines.append(f"| {split} | {task} | {result['rows']:,} | {'; '.join(result['checked'])} | {'; '.join(result['failures']) or 'none'} |")
    if report["dropped"]:
        lines += ["", "## Samples not generated", "", "| split | task | reason | count |", "|---|---|---|---:|"]
        lines += [f"| {d['split']} | {d['task']} | {d['reason']} | {d['count']:,} |" for d in report["dropped"]]
    return "\n".join(lines) + "\n"
