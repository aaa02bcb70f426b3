"""The tasks of Lu et al. 2024 (I0-I3 and Table 7's combined controls): one pure generator per task.

A generator turns one sample point (a user's history and held-out target), the
teacher's ranking for it and a seeded random source into a `Sample`: the label
items and every fact needed to render and to score it. The same (point, seed,
ranking) always gives the same sample.

    >>> point = Point(user_id=7, split="test", copy=0, prefix=[3, 9, 4], target=12)
    >>> sample = generate(TEST_JOBS[0], point, ranking, seed=42, context=context)  # doctest: +SKIP
    >>> sample.label[0] == point.target  # doctest: +SKIP
    True

Where the paper is silent the choices are written in docs/controllable.md.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np

from datagen.controllable.labels import most_frequent_category, proportion_counts, take, take_quota, with_candidates
from datagen.scoring.catalog import Catalog
from datagen.templating import Template, TemplateLibrary

_HISTORY = {"history", "history_titles", "item_count"}
_CANDIDATES = {"candidate_titles", "candidate_title_list"}
# What each template task gives its templates (the lint test holds every template to it).
TEMPLATE_VARIABLES: dict[str, set[str]] = {
    "i0": _HISTORY | _CANDIDATES,
    "i1": _HISTORY | _CANDIDATES | {"synthetic_intention", "target_category"},
    "i2_le": _HISTORY | {"target_category", "category_proportion"},
    "i2_ge": _HISTORY | {"target_category", "category_proportion"},
    "i2_approx": _HISTORY | {"target_category", "category_proportion"},
    "i3": {"item_count", "synthetic_intention", "target_category"} | _CANDIDATES,
    "i1_pos_neg": _HISTORY | {"synthetic_intention", "negative_intention", "target_category", "excluded_category"},
    "i2_le_neg": _HISTORY | {"target_category", "category_proportion", "negative_intention", "excluded_category"},
}


@dataclass(frozen=True)
class TaskSpec:
    group: str  # Lu et al.'s I0-I4 (the rows' `family` column, a name kept until the next major dataset version)
    template_task: str
    constraint: str  # none | include | exclude | at_most | at_least | approximately | include_and_exclude | at_most_and_exclude


TASKS: dict[str, TaskSpec] = {
    "i0": TaskSpec("i0", "i0", "none"),
    "item_count": TaskSpec("i0", "i0", "none"),
    "i1_pos": TaskSpec("i1", "i1", "include"),
    "i1_neg": TaskSpec("i1", "i1", "exclude"),
    "i2_le": TaskSpec("i2", "i2_le", "at_most"),
    "i2_ge": TaskSpec("i2", "i2_ge", "at_least"),
    "i2_approx": TaskSpec("i2", "i2_approx", "approximately"),
    "i3_pos": TaskSpec("i3", "i3", "include"),
    "i3_neg": TaskSpec("i3", "i3", "exclude"),
    "i1_pos_neg": TaskSpec("combined", "i1_pos_neg", "include_and_exclude"),
    "i2_le_neg": TaskSpec("combined", "i2_le_neg", "at_most_and_exclude"),
}
PROPORTION_CONSTRAINTS = ("at_most", "at_least", "approximately")
# The reason counted for every category task of a catalog whose items carry no category at all.
NO_CATEGORIES = "the catalog has no categories"


@dataclass(frozen=True)
class Job:
    """What to generate for a sample point: one of `tasks` (drawn), k and a proportion drawn from their ranges."""

    name: str
    tasks: tuple[str, ...]
    k: tuple[int, int]
    proportions: tuple[int, ...] = ()
    candidates: bool = False  # may draw a template with a candidate list


TRAIN_PROPORTIONS = tuple(range(10, 100, 10))
TRAIN_JOBS = (
    Job("i0", ("i0",), (1, 10), candidates=True),
    Job("i1", ("i1_pos", "i1_neg"), (1, 10), candidates=True),
    Job("i2", ("i2_le", "i2_ge", "i2_approx"), (5, 10), TRAIN_PROPORTIONS),
)
I3_JOB = Job("i3", ("i3_pos", "i3_neg"), (1, 10), candidates=True)
VALID_JOBS = (
    Job("i0", ("i0",), (10, 10)),
    Job("i1_pos", ("i1_pos",), (10, 10)),
    Job("i1_neg", ("i1_neg",), (10, 10)),
    Job("i2_approx_50", ("i2_approx",), (10, 10), (50,)),
)
TEST_JOBS = (
    Job("i0", ("i0",), (10, 10)),
    Job("i1_pos", ("i1_pos",), (10, 10)),
    Job("i1_neg", ("i1_neg",), (10, 10)),
    Job("i2_le_20", ("i2_le",), (10, 10), (20,)),
    Job("i2_approx_30", ("i2_approx",), (10, 10), (30,)),
    Job("i2_ge_30", ("i2_ge",), (10, 10), (30,)),
    Job("item_count", ("item_count",), (11, 15)),
    Job("i1_pos_neg", ("i1_pos_neg",), (10, 10)),
    Job("i2_le_neg_20", ("i2_le_neg",), (10, 10), (20,)),
)


@dataclass(frozen=True)
class Point:
    """A user at one position: `prefix` is every earlier item (never in a label), `target` the next one."""

    user_id: int
    split: str
    copy: int
    prefix: list[int]
    target: int


@dataclass(frozen=True)
class Context:
    catalog: Catalog
    library: TemplateLibrary
    max_history: int
    teacher_list_size: int = 20
    max_candidates: int = 20


@dataclass
class Sample:
    task: str
    k: int
    label: list[int]
    user_id: int | None
    history: list[int]
    target: int | None
    template: Template | None = None  # drawn last, by _finish
    category: str | None = None
    excluded_category: str | None = None
    proportion: int | None = None
    candidates: list[int] | None = None
    teacher: list[int] | None = None
    intention: str | None = None
    negative_intention: str | None = None

    @property
    def constraint(self) -> str:
        return TASKS[self.task].constraint


def sample_rng(seed: int, split: str, job: str, key: int, copy: int = 0) -> random.Random:
    # A string seed is hashed with SHA-512: stable across runs and Python versions.
    return random.Random(f"{seed}/{split}/{job}/{key}/{copy}")


class HeadExhausted(Exception):
    """The label needs more of the teacher's ranking than the head `generate` was given: generate again with all of it."""


def generate(job: Job, point: Point, ranking: np.ndarray, seed: int, context: Context, allowed: int | None = None) -> Sample | str:
    """The sample of `job` for `point`, or the reason there is none (counted in the build report).

    `ranking` is every item but the prefix's, best first, or only its head when `allowed` (the whole ranking's
    length) is longer: then HeadExhausted when a label would read past the head, so that a sample made from a head is
    always the sample the whole ranking makes.
    """
    complete = allowed is None or len(ranking) >= allowed
    seen = np.fromiter(set(point.prefix), dtype=np.int64)

    def available(keep: np.ndarray) -> int:
        """How many items of the whole ranking `keep` holds."""
        return np.count_nonzero(keep) - np.count_nonzero(keep[seen])

    def whole(label: list[int] | None, n: int) -> list[int] | None:
        if (label is None or len(label) < n) and not complete:
            raise HeadExhausted
        return label

    rng = sample_rng(seed, point.split, job.name, point.user_id, point.copy)
    task = rng.choice(job.tasks)
    k = rng.randint(*job.k)
    proportion = rng.choice(job.proportions) if job.proportions else None
    spec = TASKS[task]
    catalog = context.catalog
    target_categories = catalog.categories_of(point.target)
    fixed_k = job.k[0] == job.k[1]
    base = dict(
        task=task, user_id=point.user_id, history=point.prefix[-context.max_history :], target=point.target,
        teacher=ranking[: context.teacher_list_size].tolist(),
    )  # fmt: skip

    def capped(keep: np.ndarray) -> int:
        return k if fixed_k else min(k, available(keep))  # a fixed k (valid, test) is never lowered: too few drops the sample

    constraint = spec.constraint
    if constraint != "none" and not catalog.category_names:
        return NO_CATEGORIES
    if constraint == "none":
        label = whole(take(ranking, k, first=point.target), k)
        return _finish(Sample(k=k, label=label, **base), job, rng, context, None, point.prefix)

    if constraint in ("include", "at_least", "approximately", "include_and_exclude"):
        if not target_categories:
            return "target has no category"
        # C: a category of the target with enough unseen items (a small leaf category of a deep path
        # often has fewer than k); in train, where k may shrink, any of them when none has enough.
        need = proportion_counts(constraint, k, proportion)[0] if constraint in PROPORTION_CONSTRAINTS else k
        roomy = [c for c in target_categories if available(catalog.mask(c)) >= need]
        if not roomy and fixed_k:
            return "no category of the target has enough unseen items"
        category = rng.choice(roomy or target_categories)
    else:
        category = None

    if constraint in ("include", "exclude"):
        if constraint == "exclude":
            category = _most_frequent(ranking, k, context, skip=set(target_categories))
            if category is None:
                return "no category to exclude in the teacher's list"
        keep = catalog.mask(category) if constraint == "include" else ~catalog.mask(category)
        k = capped(keep)
        label = whole(take(ranking, k, keep=keep, first=point.target), k)
        intention = _intention(rng, context, "positive" if constraint == "include" else "negative", category)
        return _finish(Sample(k=k, label=label, category=category, intention=intention, **base), job, rng, context, None, point.prefix)

    if constraint == "include_and_exclude":
        excluded = _most_frequent(ranking, k, context, skip=set(target_categories))
        if excluded is None:
            return "no category to exclude in the teacher's list"
        keep = catalog.mask(category) & ~catalog.mask(excluded)
        label = whole(take(ranking, k, keep=keep, first=point.target), k)
        sample = Sample(
            k=k, label=label, category=category, excluded_category=excluded,
            intention=_intention(rng, context, "positive", category),
            negative_intention=_intention(rng, context, "negative", excluded), **base,
        )  # fmt: skip
        return _finish(sample, job, rng, context, None, point.prefix)

    # The proportion constraints: at_most (C = the teacher's most frequent category), at_least and
    # approximately (C = a category of the target), at_most_and_exclude (also drops C2).
    allowed_items = None
    excluded = None
    if constraint in ("at_most", "at_most_and_exclude"):
        category = _most_frequent(ranking, k, context, skip=set())
        if category is None:
            return "no category in the teacher's list"
    if constraint == "at_most_and_exclude":
        excluded = _most_frequent(ranking, k, context, skip={category, *target_categories})
        if excluded is None:
            return "no category to exclude in the teacher's list"
        allowed_items = ~catalog.mask(excluded)
    in_mask = catalog.mask(category)
    label = _proportion_label(ranking, k, in_mask, constraint.removesuffix("_and_exclude"), proportion, point.target, allowed_items, whole)
    if label is None:
        return "too few items to meet the proportion"
    sample = Sample(k=k, label=label, category=category, excluded_category=excluded, proportion=proportion, **base)
    if excluded is not None:
        sample.negative_intention = _intention(rng, context, "negative", excluded)
    return _finish(sample, job, rng, context, None, point.prefix)


def generate_i3(item: int, seed: int, context: Context) -> Sample | str:
    """Item search (no history): `item` first, then random items of (or, for -C, outside) a category."""
    rng = sample_rng(seed, "train", I3_JOB.name, item)
    task = rng.choice(I3_JOB.tasks)
    k = rng.randint(*I3_JOB.k)
    catalog = context.catalog
    if not catalog.category_names:
        return NO_CATEGORIES
    own = catalog.categories_of(item)
    if not own:
        return "item has no category"
    if task == "i3_pos":
        category = rng.choice(own)
        keep = catalog.mask(category)
    else:
        others = [c for c in catalog.category_names if c not in own]
        if not others:
            return "no category the item lacks"
        category = rng.choice(others)
        keep = ~catalog.mask(category)
    pool = np.flatnonzero(keep)
    pool = pool[pool != item]
    k = min(k, len(pool) + 1)
    label = [item] + [int(pool[i]) for i in rng.sample(range(len(pool)), k - 1)]
    sample = Sample(
        task=task, k=k, label=label, user_id=None, history=[], target=item, category=category,
        intention=_intention(rng, context, "positive" if task == "i3_pos" else "negative", category),
    )  # fmt: skip
    # Random labels: only items that break the intention make honest wrong candidates.
    return _finish(sample, I3_JOB, rng, context, ~keep)


def _proportion_label(ranking, k, in_mask, constraint, proportion, target, allowed, whole) -> list[int] | None:
    """The teacher's own top-k, with as few swaps as Eq. 8 needs: its in-category count, clamped to the allowed range.

    `whole(label, n)` raises HeadExhausted when `ranking` is a head and the whole ranking might answer otherwise."""
    lo, hi = proportion_counts(constraint, k, proportion)
    pool = ranking[allowed[ranking]] if allowed is not None else ranking
    natural = whole(take(pool, k, first=target if allowed is None or allowed[target] else None), k)
    n_in = min(max(int(in_mask[natural].sum()), lo), hi)
    for candidate in sorted(range(lo, hi + 1), key=lambda n: (abs(n - n_in), n)):
        label = whole(take_quota(ranking, k, in_mask, candidate, first=target, allowed=allowed), k)
        if label is not None:
            return label
    return None


def _most_frequent(ranking: np.ndarray, k: int, context: Context, skip: set[str]) -> str | None:
    """The most frequent category in the teacher's top k, else in its longer list (Lu et al. 3.2.2)."""
    found = most_frequent_category(ranking[:k].tolist(), context.catalog, skip)
    if found is None and k < context.teacher_list_size:
        found = most_frequent_category(ranking[: context.teacher_list_size].tolist(), context.catalog, skip)
    return found


def _intention(rng: random.Random, context: Context, kind: str, category: str) -> str:
    return context.library.intention(kind, rng.randrange(len(context.library.intentions[kind])), category)


def _finish(sample: Sample, job: Job, rng: random.Random, context: Context, negative_pool: np.ndarray | None, seen: list[int] = ()) -> Sample | str:
    """Checks the label is whole, then draws the template and, for a candidate template, the candidates.

    Negatives come from `negative_pool` (a mask; None: every item), never from `seen` (the user's items).
    """
    if sample.k < 1 or len(sample.label) < sample.k:
        return "too few items meet the constraint"
    spec = TASKS[sample.task]
    templates = context.library.for_task(spec.template_task, with_candidates=None if job.candidates else False)
    sample.template = rng.choice(templates)
    if sample.template.uses_candidates:
        forbidden = set(seen) | set(sample.label)
        pool = np.flatnonzero(negative_pool) if negative_pool is not None else np.arange(context.catalog.n_items)
        sample.candidates = with_candidates(rng, sample.label, pool, forbidden, context.max_candidates)
        if sample.candidates is None:
            sample.template = rng.choice(context.library.for_task(spec.template_task, with_candidates=False))
    return sample
