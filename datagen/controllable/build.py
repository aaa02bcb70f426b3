"""Generate the controllable-recommendation dataset of a build: train, validation and test rows, and their label checks.

    >>> folder = BuildFolder.open("build/steam-sample")  # doctest: +SKIP
    >>> report = generate_controllable(folder, ControllableSettings(seed=42))  # doctest: +SKIP
    >>> report["rows"]["test"]["i2_le"]  # doctest: +SKIP
    3890

Writes `<build>/data/controllable/{train,validation,test}-0000i-of-0000n.parquet`
(the layout `push_to_hub` uses), the templates it used in `<build>/templates/controllable/`,
and `<build>/reports/controllable.{json,md}`, each replaced only once complete.
"""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from datagen.buildfolder import BuildFolder
from datagen.controllable.chat import chat_rows, load_sharegpt
from datagen.controllable.rows import SCHEMA, sample_row
from datagen.controllable.tasks import (
    TASKS,
    TEMPLATE_VARIABLES,
    TEST_JOBS,
    TRAIN_JOBS,
    VALID_JOBS,
    Context,
    HeadExhausted,
    Job,
    Point,
    generate,
    generate_i3,
    sample_rng,
)  # fmt: skip
from datagen.errors import DataError
from datagen.executor import worker_pool
from datagen.family.rows import refuse_failed_checks, rows_table, settings_dict, write_generated
from datagen.family.spec import card_block
from datagen.family.spilled import SpilledSplit, SpilledTable, estimated_size, spill
from datagen.layout import DATA_DIR
from datagen.output import scratch_folder, sha256
from datagen.progress import StepProgress
from datagen.scoring.answers import METRICS, Facts, TitleIndex, parse_answer, score
from datagen.scoring.catalog import Catalog
from datagen.templating import TemplateLibrary

REPORT_FORMAT = "datagen.controllable/2"
FAMILY = "controllable"  # the dataset config these rows make
CARD = card_block(
    "datagen.controllable", {FAMILY: "Controllable recommendation instructions I0-I4 of Lu et al. 2024, labels from the teacher's ranking (SASRec, or co-occurrence where it ranks better)"}, ["lu2024"]
)
SPLITS = ("train", "validation", "test")
ARROW_SCHEMA = pl.DataFrame(schema=SCHEMA).to_arrow().schema
VALID_MARGIN = 0.25  # extra validation users per task, standing in for those whose sample cannot be made
# The teacher's best items sorted per sample point; a label that needs more (a rare category) sorts them all.
HEAD_SIZE = 256


@dataclass
class ControllableSettings:
    seed: int = 42
    train_copies: int = 1  # sample points per user in train (the paper: one per user and task)
    valid_per_task: int = 320  # Lu et al. 3.1.1
    teacher_list_size: int = 20  # the teacher's ranked list kept on each row
    max_candidates: int = 20
    chat: str | None = None  # a ShareGPT file or Hub id for I4
    chat_ratio: float = 0.5  # I4 rows per other train row (Lu et al.: 50%)
    template_dirs: tuple[Path, ...] = ()
    device: str = "auto"
    batch_size: int = 1024  # sample points per task of a worker
    # How the work is spread; the rows are the same for any of these, so the report leaves them out.
    workers: int = field(default=1, metadata={"recorded": False})
    executor: str = field(default="local", metadata={"recorded": False})

    def as_dict(self) -> dict:
        return settings_dict(self)


CHECKED = (*METRICS, "hr_where_target_in_label", "target_in_label")  # the label checks of the report, per task


@dataclass
class Checked:
    """Rows as an Arrow table, its size as Polars estimates it (measured where the rows are made: in a worker), and
    each row's label-check scores: [rows, CHECKED] floats, NaN where one does not apply."""

    table: pa.Table
    estimated_bytes: int
    scores: np.ndarray

    @classmethod
    def of(cls, rows: list[dict], catalog: Catalog, index: TitleIndex) -> Checked:
        table = rows_table(rows, ARROW_SCHEMA)
        return cls(table, estimated_size(table), label_scores(rows, catalog, index))

    @classmethod
    def concat(cls, parts: list[Checked]) -> Checked:
        table = pa.concat_tables([part.table for part in parts])
        return cls(table, sum(part.estimated_bytes for part in parts), np.concatenate([part.scores for part in parts]))

    def take(self, indices: list[int]) -> Checked:
        table = self.table.take(indices)
        return Checked(table, estimated_size(table), self.scores[indices])

    def spill(self, path: Path) -> SpilledRows:
        totals = CheckTotals()
        totals.add(self)
        return SpilledRows(spill(self.table, path, self.estimated_bytes), Counter(self.table.column("task").to_pylist()), totals)


class CheckTotals:
    """Per task, the sums and counts of label-check scores, added a part at a time (in a fixed order: the same sums
    for any number of workers)."""

    def __init__(self):
        self.rows: Counter = Counter()
        self.sums: dict[str, np.ndarray] = {}
        self.counts: dict[str, np.ndarray] = {}

    def add(self, checked: Checked) -> None:
        tasks = np.asarray(checked.table.column("task").to_pylist(), dtype=object)
        for task in dict.fromkeys(tasks):
            if task not in TASKS:  # I4 chat rows have no label to check
                continue
            scores = checked.scores[tasks == task]
            self.rows[task] += len(scores)
            self.sums[task] = self.sums.get(task, 0) + np.nansum(scores, axis=0)
            self.counts[task] = self.counts.get(task, 0) + (~np.isnan(scores)).sum(axis=0)

    def merge(self, other: CheckTotals) -> None:
        """Add the totals of later rows (those of a chunk: the same sums as adding its rows here)."""
        for task in other.rows:
            self.rows[task] += other.rows[task]
            self.sums[task] = self.sums.get(task, 0) + other.sums[task]
            self.counts[task] = self.counts.get(task, 0) + other.counts[task]

    def means(self) -> dict[str, dict]:
        """{task: {"rows": n, metric: mean or None}}, tasks in TASKS order."""
        checks = {}
        for task in sorted(self.rows, key=list(TASKS).index):
            sums, counts = self.sums[task], self.counts[task]
            checks[task] = {"rows": self.rows[task], **{m: float(sums[i] / counts[i]) if counts[i] else None for i, m in enumerate(CHECKED)}}
        return checks


@dataclass
class SpilledRows:
    """Checked rows spilled to a file by the process that made them, with their count per task and their label
    checks' totals: all the driver needs of them until it writes the split."""

    table: SpilledTable
    tasks: Counter
    totals: CheckTotals


@dataclass
class Part:
    """What a chunk of sample points made: its train and test rows spilled, its validation rows (to choose from), and
    the samples not made."""

    spilled: dict[str, SpilledRows]
    validation: Checked
    dropped: Counter
    teacher_checkpoint_sha256: str


def load_library(template_dirs=()) -> TemplateLibrary:
    return TemplateLibrary.load(TEMPLATE_VARIABLES, template_dirs)


def sample_points(sequences: pl.DataFrame, settings: ControllableSettings, dropped: Counter) -> tuple[list[tuple[Point, tuple[Job, ...]]], dict[tuple[str, int], int]]:
    """Every (point, jobs) of the three splits (section 3.1.1 of Lu et al.), and each validation user's turn per task."""
    users = sequences.sort("user_id").select("user_id", "train_item_ids", "valid_item_id", "test_item_id").rows()
    planned = []
    for user, train, _valid, _test in users:
        for copy in range(settings.train_copies):
            if len(train) < 2:
                dropped[("train", "all", "train part shorter than 2 items")] += 1
                continue
            position = sample_rng(settings.seed, "train", "point", user, copy).randrange(1, len(train))
            planned.append((Point(user, "train", copy, train[:position], train[position]), TRAIN_JOBS))
    order = [user for user, *_ in users]
    random.Random(f"{settings.seed}/validation/users").shuffle(order)
    chosen, turns = defaultdict(list), {}
    per_task = settings.valid_per_task + int(VALID_MARGIN * settings.valid_per_task) + 1
    for number, job in enumerate(VALID_JOBS):
        # Each validation task gets its own users; they overlap only when there are too few.
        for turn in range(min(per_task, len(order))):
            user = order[(number * per_task + turn) % len(order)]
            chosen[user].append(job)
            turns[(job.tasks[0], user)] = turn
    for user, train, valid, _test in users:
        if user in chosen:
            planned.append((Point(user, "validation", 0, train, valid), tuple(chosen[user])))
    for user, train, valid, test in users:
        planned.append((Point(user, "test", 0, [*train, valid], test), TEST_JOBS))
    return planned, turns


def first_validation_rows(validation: Checked, turns: dict[tuple[str, int], int], per_task: int) -> Checked:
    """The first `per_task` rows of each validation task, in its users' turn order."""
    tasks, users = validation.table.column("task").to_pylist(), validation.table.column("user_id").to_pylist()
    order = sorted(range(len(tasks)), key=lambda row: (list(TASKS).index(tasks[row]), turns[(tasks[row], users[row])]))
    kept, counts = [], Counter()
    for row in order:
        if counts[tasks[row]] < per_task:
            kept.append(row)
            counts[tasks[row]] += 1
    return validation.take(kept)


@dataclass
class Generated:
    """Every split's rows, spilled to disk, with their count per task and their label checks' totals; and the
    samples not made."""

    splits: dict[str, SpilledSplit]
    tasks: dict[str, Counter]
    totals: dict[str, CheckTotals]
    dropped: Counter

    @classmethod
    def spilled_in(cls, scratch: Path) -> Generated:
        splits = {split: SpilledSplit(scratch, split, ARROW_SCHEMA) for split in SPLITS}
        return cls(splits, {split: Counter() for split in SPLITS}, {split: CheckTotals() for split in SPLITS}, Counter())

    def add(self, split: str, checked: Checked) -> None:
        """Rows made in this process."""
        self.add_spilled(split, checked.spill(self.splits[split].next_path()))

    def add_spilled(self, split: str, rows: SpilledRows) -> None:
        self.splits[split].add(rows.table)
        self.tasks[split].update(rows.tasks)
        self.totals[split].merge(rows.totals)


def generate_rows(folder: BuildFolder, settings: ControllableSettings, progress: StepProgress, scratch: Path) -> tuple[Generated, Catalog, TemplateLibrary, str]:
    """Every row and every dropped sample, the chunks of sample points shared among `settings.workers` workers,
    which render, check and spill their rows to files in `scratch`; this process plans the chunks and makes I3's rows
    while they start, then gathers what the chunks made, in their order."""
    generated = Generated.spilled_in(scratch)
    validation = []  # the rows of every validation user, to choose from
    teachers = set()  # the checkpoint that made the rows
    with worker_pool(ChunkGenerator, (folder.path, settings, scratch), settings.workers, settings.executor) as pool:
        catalog = Catalog(folder.items)
        library = load_library(settings.template_dirs)
        context = Context(catalog, library, folder.max_history, settings.teacher_list_size, settings.max_candidates)
        planned, validation_turns = sample_points(folder.sequences, settings, generated.dropped)
        chunks = [(number, planned[start : start + settings.batch_size]) for number, start in enumerate(range(0, len(planned), settings.batch_size))]
        results = pool.ordered_map(chunks)
        with progress.step("Generating I3 (item search)"):
            rows = []
            for item in range(catalog.n_items):
                _keep(rows, generated.dropped, "train", "i3", generate_i3(item, settings.seed, context), catalog)
            i3 = Checked.of(rows, catalog, TitleIndex(catalog.titles))
        with progress.bar(f"Generating I0-I2 and the combined controls ({settings.workers} {settings.executor} workers)", total=len(chunks)) as advance:
            for done, part in enumerate(results, start=1):
                validation.append(part.validation)
                for split, rows in part.spilled.items():
                    generated.add_spilled(split, rows)
                generated.dropped.update(part.dropped)
                teachers.add(part.teacher_checkpoint_sha256)
                advance(f"{min(done * settings.batch_size, len(planned))} sample points")
    generated.add("train", i3)
    generated.add("validation", first_validation_rows(Checked.concat(validation), validation_turns, settings.valid_per_task))
    if not teachers:  # no sample point: no worker loaded the teacher
        from datagen.teacher.folder import load_teacher  # torch: imported when labels are made, not with the CLI

        teachers.add(load_teacher(folder, device=settings.device).checkpoint_sha256)
    if len(teachers) > 1:
        raise DataError("the teacher was replaced while the rows were made, so they come from two teachers", path=folder.path, hint="Generate again.")
    (teacher_checkpoint_sha256,) = teachers
    return generated, catalog, library, teacher_checkpoint_sha256


class ChunkGenerator:
    """A worker (datagen.executor): the catalog, templates and teacher loaded once, then the checked rows of a chunk
    of sample points per task, its train and test rows spilled to `scratch` (which every worker must see: on Ray,
    inside the build folder on a shared file system). A point's rows depend only on it, its seed and the teacher, so
    any split of the points among workers gives the same rows."""

    uses_torch = True

    def __init__(self, folder_path: Path, settings: ControllableSettings, scratch: Path):
        from datagen.teacher.folder import load_teacher
        from datagen.teacher.ranking import TeacherRanker

        folder = BuildFolder.open(folder_path)
        self.catalog = Catalog(folder.items)
        self.index = TitleIndex(self.catalog.titles)
        self.context = Context(self.catalog, load_library(settings.template_dirs), folder.max_history, settings.teacher_list_size, settings.max_candidates)
        teacher = load_teacher(folder, device=settings.device)
        self.ranker = TeacherRanker(teacher, folder.items)
        self.teacher_checkpoint_sha256 = teacher.checkpoint_sha256
        self.settings = settings
        self.scratch = scratch

    def run(self, task: tuple[int, list[tuple[Point, tuple[Job, ...]]]]) -> Part:
        number, chunk = task
        seed, rows, dropped = self.settings.seed, {split: [] for split in SPLITS}, Counter()
        heads, allowed_counts, scores = self.ranker.best_first([point.prefix for point, _ in chunk], max(HEAD_SIZE, self.settings.teacher_list_size))
        for (point, jobs), head, allowed, row_scores in zip(chunk, heads, allowed_counts, scores):
            for job in jobs:
                try:
                    sample = generate(job, point, head, seed, self.context, allowed=int(allowed))
                except HeadExhausted:  # the whole ranking, as TeacherRanker.full_orders sorts it
                    sample = generate(job, point, np.argsort(-row_scores, kind="stable")[:allowed], seed, self.context)
                _keep(rows[point.split], dropped, point.split, job.name, sample, self.catalog, point.copy)
        checked = {split: Checked.of(rows[split], self.catalog, self.index) for split in SPLITS}
        spilled = {split: checked[split].spill(self.scratch / f"chunk-{number:06d}-{split}.arrow") for split in ("train", "test")}
        return Part(spilled, checked["validation"], dropped, self.teacher_checkpoint_sha256)


def _keep(rows: list[dict], dropped: Counter, split: str, job: str, outcome, catalog: Catalog, copy: int = 0) -> None:
    if isinstance(outcome, str):
        dropped[(split, job, outcome)] += 1
    else:
        rows.append(sample_row(outcome, catalog, split, copy))


def label_scores(rows: list[dict], catalog: Catalog, index: TitleIndex) -> np.ndarray:
    """Each row's label-check scores ([rows, CHECKED], NaN where one does not apply): the label parsed back from the
    rendered answer text and scored (an I4 chat row has no label: all NaN)."""
    scores = np.full((len(rows), len(CHECKED)), np.nan)
    for number, row in enumerate(rows):
        if row["family"] == "i4":
            continue
        values = score(parse_answer(row["completion"][0]["content"], index), Facts.from_row(row), catalog)
        target_in_label = row["target_item_id"] in row["label_item_ids"]
        values["hr_where_target_in_label"] = values["hr"] if target_in_label else None
        values["target_in_label"] = float(target_in_label)
        scores[number] = [np.nan if values[metric] is None else values[metric] for metric in CHECKED]
    return scores


# What every label must show: metric -> the value, per constraint (None: any constraint).
EXPECTED = {
    "correct_count": (None, 1.0),
    "repeat_item": (None, 0.0),
    "non_exist": (None, 0.0),
    "in_history": (None, 0.0),
    "not_in_candidates": (None, 0.0),
    "hr_where_target_in_label": (None, 1.0),
    "cpa": (None, 1.0),
    "tcp_excluded": (None, 0.0),
}
EXPECTED_TCP = {"include": 1.0, "include_and_exclude": 1.0, "exclude": 0.0}


def metric_failures(checks: dict[str, dict[str, dict]]) -> list[str]:
    failures = []
    for split, tasks in checks.items():
        for task, values in tasks.items():
            expected = {metric: value for metric, (_, value) in EXPECTED.items()}
            if TASKS[task].constraint in EXPECTED_TCP:
                expected["tcp"] = EXPECTED_TCP[TASKS[task].constraint]
            for metric, value in expected.items():
                if values.get(metric) is not None and abs(values[metric] - value) > 1e-9:
                    failures.append(f"{split}/{task}: {metric} = {values[metric]:.4f}, expected {value}")
    return failures


def generate_controllable(folder: BuildFolder, settings: ControllableSettings, progress: StepProgress | None = None) -> dict:
    progress = progress or StepProgress(quiet=True)
    # the chat file is read before any row is generated, so a missing or broken one costs no generation time
    conversations, dropped = load_sharegpt(settings.chat) if settings.chat else ([], None)
    with scratch_folder(folder.path / f"{FAMILY}-rows") as scratch:
        generated, catalog, library, checkpoint_sha256 = generate_rows(folder, settings, progress, scratch)
        chat_report, inputs = None, []
        if settings.chat:
            with progress.step(f"Mixing in I4 chat from {settings.chat}"):
                n_rows = round(settings.chat_ratio * generated.splits["train"].rows)
                generated.add("train", Checked.of(chat_rows(conversations, n_rows, settings.seed), catalog, TitleIndex(())))
                chat_report = {"source": str(settings.chat), "conversations": len(conversations), "dropped": dict(dropped), "rows": n_rows}
                if Path(settings.chat).is_file():
                    inputs.append({"file": Path(settings.chat).name, "bytes": Path(settings.chat).stat().st_size, "sha256": sha256(Path(settings.chat)), "used_for": "controllable i4_chat"})
            if n_rows > len(conversations):
                progress.warn(
                    f"NOTE: I4 has {n_rows:,} train rows (--chat-ratio {settings.chat_ratio:g}) from {len(conversations):,} conversations: "
                    f"each is used up to {math.ceil(n_rows / len(conversations)):,} times. Give more conversations or a lower --chat-ratio."
                )
        checks = {split: generated.totals[split].means() for split in SPLITS}
        failures = metric_failures(checks)
        refuse_failed_checks(FAMILY, failures)
        report = {
            "format": REPORT_FORMAT,
            "card": CARD,
            "inputs": inputs,
            "data_version": folder.data_version,
            "teacher_checkpoint_sha256": checkpoint_sha256,
            "settings": settings.as_dict(),
            "templates": [{"id": t.id, "task": t.task, "version": t.version, "source": t.source} for t in library.templates],
            "rows": {split: dict(generated.tasks[split]) for split in SPLITS},
            "dropped": [{"split": s, "job": j, "reason": r, "count": n} for (s, j, r), n in sorted(generated.dropped.items())],
            "chat": chat_report,
            "label_checks": checks,
            "label_check_failures": failures,
        }
        with progress.step(f"Writing {DATA_DIR}/{FAMILY} and templates/{FAMILY}"):
            write_generated(folder, FAMILY, generated.splits, library, report, report_markdown(report))
    return report


CHECK_COLUMNS = ("correct_count", "repeat_item", "non_exist", "in_history", "hr_where_target_in_label", "tcp", "tcp_excluded", "cpa")


def report_markdown(report: dict) -> str:
    lines = ["# Controllable-recommendation dataset (Lu et al. 2024)", "", "## Rows", "", "| task | " + " | ".join(SPLITS) + " |", "|---|" + "---:|" * len(SPLITS)]
    tasks = [task for task in [*TASKS, "i4_chat"] if any(task in report["rows"][split] for split in SPLITS)]
    for task in tasks:
        lines.append(f"| {task} | " + " | ".join(f"{report['rows'][split].get(task, 0):,}" for split in SPLITS) + " |")
    lines += ["", "## Label checks", "", "Each label parsed back from its answer text and scored (`datagen.scoring.answers`); a blank cell does not apply.", ""]
    lines += ["| split | task | rows | " + " | ".join(CHECK_COLUMNS) + " |", "|---|---|---:|" + "---:|" * len(CHECK_COLUMNS)]
    for split, tasks_checked in report["label_checks"].items():
        for task, values in tasks_checked.items():
            cells = ["" if values.get(c) is None else f"{values[c]:.3f}" for c in CHECK_COLUMNS]
            lines.append(f"| {split} | {task} | {values['rows']:,} | " + " | ".join(cells) + " |")
    lines += ["", "Failures: " + ("; ".join(report["label_check_failures"]) if report["label_check_failures"] else "none"), ""]
    if report["dropped"]:
        lines += ["## Samples not generated", "", "| split | job | reason | count |", "|---|---|---|---:|"]
        lines += [f"| {d['split']} | {d['job']} | {d['reason']} | {d['count']:,} |" for d in report["dropped"]]
    return "\n".join(lines) + "\n"
