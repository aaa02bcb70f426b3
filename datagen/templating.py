"""Prompt templates: Jinja files with a metadata header, rendered in Jinja's sandbox.

Every `*.jinja` file under the shipped `templates/` folder, and under any folder
given with `--templates` or `$DATAGEN_TEMPLATES`, is one template. Its header is
YAML inside a Jinja comment; its body is the user message:

    {#
    id: lu2024/i0
    task: i0
    version: 1
    source: Lu et al. 2024, Listing 1 (first prompt)
    system: You are an expert recommender engine.
    variables: [history, item_count]
    #}
    You need to generate a recommendation list ... {{ history }} ... {{ item_count }} different items.

An optional `dataset:` key names the dataset config the template belongs to
(`controllable`, the default, `recknowledge` or `instructrec`); each config's generator loads
only its own templates, so one `--templates` folder can hold templates of both.

A `*.yaml` file with `positive:` and `negative:` lists is a phrase set: the
synthetic intentions of Listings 5 and 6, drawn per sample.

    >>> library = TemplateLibrary.load({"i0": {"history", "item_count"}, "i1": set()})  # doctest: +SKIP
    >>> library.for_task("i0")[0].render({"history": "'Portal'", "item_count": 3})  # doctest: +SKIP
    ('You are an expert recommender engine.', "You need to generate ... with 3 different items.")
"""

from __future__ import annotations

import math
import os
import re
import signal
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2
import yaml
from jinja2 import meta, nodes
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

from datagen.errors import DataError
from datagen.output import is_file_name_id
from datagen.shipped import TEMPLATES_DIR
from datagen.timeouts import seconds_from_env
from datagen.user_yaml import load_user_yaml

TEMPLATES_ENV = "DATAGEN_TEMPLATES"
HEADER = re.compile(r"\A\{#(.*?)#\}\n?", re.DOTALL)
HEADER_KEYS = {"id", "task", "version", "source", "system", "variables"}
# The datasets templates may name in their header: a folder of the shipped templates/ each (a family's config,
# and instructrec-annotator, the prompts of InstructRec's annotator LLM), and the one a library is loading (a family
# whose templates live in its own package). A header without `dataset:` is controllable's, as every template was
# before the key existed.
DATASETS = tuple(sorted(folder.name for folder in TEMPLATES_DIR.iterdir() if folder.is_dir() and not folder.name.startswith(("_", "."))))
DEFAULT_DATASET = "controllable"
PHRASE_KINDS = ("positive", "negative")

# Templates are user code: bounded per rendered message in output, time, and the size of what one
# operation may build (the sandbox already blocks unsafe attributes and ranges over 100,000).
MAX_RENDER_CHARS = 200_000
MAX_RENDER_SECONDS = 5.0
RENDER_BUDGET_ENV = "DATAGEN_RENDER_BUDGET"
DEFAULT_RENDER_BUDGET = 600.0  # seconds one template's sandboxed renders may take in all, in one process
MAX_POWER_BITS = 4096
PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d*)(?:\.(\*|\d*))?")  # a %-format field's width and precision
INCLUDES = (nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, refusing a `*`, `**` or `%` whose result would pass the render bounds. An intercepted
    operator is also never computed while a template loads (Jinja folds constant expressions then)."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def call_binop(self, context, operator, left, right):
        if operator == "%" and isinstance(left, str):
            for width, precision in PERCENT_FIELD.findall(left):
                if "*" in (width, precision) or max(int(width or 0), int(precision or 0)) > MAX_RENDER_CHARS:
                    raise SecurityError(f"a %-format field of width or precision {width or precision} passes the {MAX_RENDER_CHARS:,} characters a message may hold")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(count, int) and len(sequence) * count > MAX_RENDER_CHARS:
                    raise SecurityError(f"a repetition of {len(sequence) * count:,} elements passes the {MAX_RENDER_CHARS:,} a message may hold")
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right * math.log2(abs(left)) > MAX_POWER_BITS:
            raise SecurityError(f"{left} ** {right} is a number of more than {MAX_POWER_BITS} bits")
        return super().call_binop(context, operator, left, right)


class RenderTimeout(Exception):
    pass


# The time bound is a SIGALRM timer armed around each render (main thread on POSIX; elsewhere only
# the output bound holds). The handler is installed once and left in place, since installing it per
# render cost more than the render itself; an alarm that is not ours goes to the handler it replaced.
_alarm = {"armed": False, "replaced": signal.SIG_DFL}


def _on_alarm(signum, frame):
    if _alarm["armed"]:
        raise RenderTimeout
    replaced = _alarm["replaced"]
    if callable(replaced):
        replaced(signum, frame)
    elif replaced == signal.SIG_DFL:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGALRM)


def _arm_deadline(seconds: float) -> bool:
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        return False
    current = signal.getsignal(signal.SIGALRM)
    if current is not _on_alarm:
        _alarm["replaced"] = current
        signal.signal(signal.SIGALRM, _on_alarm)
    _alarm["armed"] = True
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return True


def _disarm_deadline() -> None:
    signal.setitimer(signal.ITIMER_REAL, 0)
    _alarm["armed"] = False


ENVIRONMENT = BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


def template_dirs(extra: tuple[Path, ...] | list[Path] = ()) -> list[Path]:
    """The shipped folder, then $DATAGEN_TEMPLATES (os.pathsep-separated), then `extra`."""
    from_env = [Path(part) for part in os.environ.get(TEMPLATES_ENV, "").split(os.pathsep) if part]
    dirs = [TEMPLATES_DIR, *from_env, *map(Path, extra)]
    for folder in dirs[1:]:
        if not folder.is_dir():
            raise DataError("template folder not found", path=folder)
    return dirs


def _compile(text: str, path: Path, what: str) -> tuple[CompiledText, set[str]]:
    try:
        parsed = ENVIRONMENT.parse(text)
    except jinja2.TemplateSyntaxError as error:
        raise DataError(f"{what} is not valid Jinja: {error.message}", path=path, line=error.lineno) from None
    for node in parsed.find_all(INCLUDES):
        tag = type(node).__name__.lower().replace("fromimport", "from ... import")
        raise DataError(f"{what} uses {{% {tag} %}}: a template is one file and cannot read others", path=path, line=node.lineno)
    try:
        compiled = ENVIRONMENT.from_string(text)
    except (jinja2.TemplateError, MemoryError, TypeError, ValueError, ArithmeticError) as error:
        raise DataError(f"{what} does not compile: {type(error).__name__}: {error}", path=path) from None
    return CompiledText(compiled, _substitution_pieces(parsed), RenderBudget()), meta.find_undeclared_variables(parsed)


def _substitution_pieces(parsed: nodes.Template) -> tuple[tuple[bool, str], ...] | None:
    """(is a variable, its name or the text) for a body of text and bare `{{ name }}` outputs, as Jinja's lexer left
    them; None when the body holds anything else (a filter, an expression, a tag)."""
    pieces = []
    for statement in parsed.body:
        if not isinstance(statement, nodes.Output):
            return None
        for node in statement.nodes:
            if isinstance(node, nodes.TemplateData):
                pieces.append((False, node.data))
            elif isinstance(node, nodes.Name) and node.ctx == "load":
                pieces.append((True, node.name))
            else:
                return None
    return tuple(pieces)


@dataclass
class RenderBudget:
    """The seconds one template's sandboxed renders have taken so far: each message is bounded by
    MAX_RENDER_SECONDS, and all of them by $DATAGEN_RENDER_BUDGET (600 s), so that a template just under the
    first bound cannot run for ever over many messages."""

    spent: float = 0.0

    def left(self, name: str, path: Path) -> float:
        budget = seconds_from_env(RENDER_BUDGET_ENV, DEFAULT_RENDER_BUDGET)
        if self.spent >= budget:
            raise DataError(
                f"{name}: its messages have taken over {budget:g} s to render in all ({self.spent:.1f} s)",
                path=path,
                hint=f"Simplify the template, or allow more with ${RENDER_BUDGET_ENV} (seconds).",
            )
        return budget - self.spent


@dataclass(frozen=True)
class CompiledText:
    """A template body or phrase, compiled once. A plain substitution (text and `{{ name }}` only: every shipped
    template) renders by joining its pieces, as Jinja would, with no code to bound but its size; anything
    else renders in the bounded sandbox, within its budget."""

    jinja: jinja2.Template
    pieces: tuple[tuple[bool, str], ...] | None
    budget: RenderBudget

    def render(self, values: Mapping[str, object], name: str, path: Path) -> str:
        if self.pieces is None:
            started = time.monotonic()
            try:
                return render_bounded(self.jinja, values, name, path, min(MAX_RENDER_SECONDS, self.budget.left(name, path)))
            finally:
                self.budget.spent += time.monotonic() - started
        parts = []
        for is_name, text in self.pieces:
            if not is_name:
                parts.append(text)
            elif text in values:
                parts.append(str(values[text]))
            else:
                raise DataError(f"{name}: '{text}' is undefined", path=path)
        rendered = "".join(parts)
        if len(rendered) > MAX_RENDER_CHARS:
            raise DataError(f"{name}: the rendered message passes {MAX_RENDER_CHARS:,} characters", path=path)
        return rendered


def render_bounded(compiled: jinja2.Template, values: Mapping[str, object], name: str, path: Path, seconds: float = MAX_RENDER_SECONDS) -> str:
    """The rendered text; a DataError naming `name` and `path` for a missing variable, a blocked operation,
    output past MAX_RENDER_CHARS, a render past `seconds`, or any error the template's own code raises."""
    pieces, size = [], 0
    timed = _arm_deadline(seconds)
    try:
        for piece in compiled.generate(values):
            size += len(piece)
            if size > MAX_RENDER_CHARS:
                raise SecurityError(f"the rendered message passes {MAX_RENDER_CHARS:,} characters")
            pieces.append(piece)
    except (jinja2.UndefinedError, SecurityError) as error:
        raise DataError(f"{name}: {error.message}", path=path) from None
    except RenderTimeout:
        if seconds < MAX_RENDER_SECONDS:
            raise DataError(
                f"{name}: its messages have used up their render budget (${RENDER_BUDGET_ENV})", path=path, hint=f"Simplify the template, or allow more with ${RENDER_BUDGET_ENV} (seconds)."
            ) from None
        raise DataError(f"{name}: rendering one message took over {MAX_RENDER_SECONDS:g} s (a loop too long?)", path=path) from None
    except (jinja2.TemplateError, MemoryError, TypeError, ValueError, ArithmeticError, LookupError) as error:
        raise DataError(f"{name}: {type(error).__name__}: {error}", path=path) from None
    finally:
        if timed:
            _disarm_deadline()
    return "".join(pieces)


@dataclass(frozen=True)
class Template:
    id: str
    dataset: str
    task: str
    version: int
    source: str
    system: str
    variables: tuple[str, ...]
    body: str
    path: Path
    compiled: CompiledText
    header: Mapping[str, object]  # every header key, including those only one dataset reads (e.g. query_from)

    @property
    def uses_candidates(self) -> bool:
        return "candidate_titles" in self.variables

    def render(self, values: Mapping[str, object]) -> tuple[str, str]:
        """(system message, user message). A variable the body uses but `values` lacks is an error."""
        return self.system, self.compiled.render(values, f"template {self.id!r}", self.path).strip()


@dataclass(frozen=True)
class PhraseSet:
    id: str
    dataset: str
    source: str
    variables: tuple[str, ...]
    phrases: dict[str, tuple[CompiledText, ...]]
    texts: dict[str, tuple[str, ...]]
    path: Path


class TemplateLibrary:
    """All templates and phrase sets, checked against the variables each task provides."""

    def __init__(self, templates: list[Template], phrase_sets: list[PhraseSet]):
        self.templates = templates
        self.phrase_sets = phrase_sets
        self.by_task: dict[str, list[Template]] = {}
        for template in templates:
            self.by_task.setdefault(template.task, []).append(template)
        self._chosen: dict[tuple[str, bool | None], list[Template]] = {}  # for_task's answers: it is asked for every sample
        self.intentions = {  # kind -> [(compiled phrase, its set)]
            kind: [(phrase, phrase_set) for phrase_set in phrase_sets for phrase in phrase_set.phrases.get(kind, ())] for kind in PHRASE_KINDS
        }

    @classmethod
    def load(cls, task_variables: Mapping[str, set[str]], extra_dirs: tuple[Path, ...] | list[Path] = (), dataset: str = DEFAULT_DATASET) -> TemplateLibrary:
        """The templates and phrase sets of one dataset config, from every template folder."""
        templates: list[Template] = []
        phrase_sets: list[PhraseSet] = []
        for folder in template_dirs(extra_dirs):
            for path in sorted(folder.rglob("*.jinja")):
                template = _read_template(path, task_variables, dataset)
                if template is not None:
                    templates.append(template)
            for path in sorted(folder.rglob("*.yaml")):
                phrase_set = _read_phrases(path, dataset)
                if phrase_set.dataset == dataset:
                    phrase_sets.append(phrase_set)
        seen: dict[str, Path] = {}
        for item in [*templates, *phrase_sets]:
            if item.id in seen:
                raise DataError(f"template id {item.id!r} is used twice (also in {seen[item.id]})", path=item.path, field="id")
            seen[item.id] = item.path
        return cls(templates, phrase_sets)

    def for_task(self, task: str, with_candidates: bool | None = None) -> list[Template]:
        """The task's templates (only those with, or without, candidates when asked), in their order; not to be changed."""
        key = (task, with_candidates)
        if key not in self._chosen:
            found = [t for t in self.by_task.get(task, []) if with_candidates is None or t.uses_candidates == with_candidates]
            if not found:
                kind = "" if with_candidates is None else (" with candidates" if with_candidates else " without candidates")
                raise DataError(f"no template for task {task!r}{kind}", hint="`datagen templates` lists them.")
            self._chosen[key] = found
        return self._chosen[key]

    def write_sources(self, folder: Path) -> None:
        """Copy each template and phrase set, byte for byte, to folder/<id>.jinja or .yaml (ids are unique)."""
        for item in [*self.templates, *self.phrase_sets]:
            destination = folder / f"{item.id}{item.path.suffix}"
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(item.path.read_bytes())

    def intention(self, kind: str, index: int, target_category: str) -> str:
        phrase, phrase_set = self.intentions[kind][index]
        return phrase.render({"target_category": target_category}, f"phrase set {phrase_set.id!r}", phrase_set.path).strip()


# What each header key holds; a key of another type is an error naming it.
HEADER_TYPES = {"id": str, "task": str, "version": int, "source": str, "system": str, "dataset": str, "variables": list, "optional": list,
                "query_from": list, "positive": list, "negative": list}  # fmt: skip


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"not UTF-8 text (byte {error.start}: {error.object[error.start : error.start + 1]!r})", path=path) from None


def _read_header(path: Path, text: str, keys: set[str], loading: str) -> dict:
    try:
        header = load_user_yaml(text, "a template header")
    except yaml.YAMLError as error:
        raise DataError(f"header is not valid YAML: {error}", path=path) from None
    except DataError as error:
        raise DataError(error.message, path=path) from None
    if not isinstance(header, dict):
        raise DataError("header must be a YAML mapping", path=path)
    missing = sorted(keys - set(header))
    if missing:
        raise DataError(f"header lacks {', '.join(missing)}", path=path, field=missing[0])
    for key, kind in HEADER_TYPES.items():
        value = header.get(key)
        if key == "variables" and value is None:
            header[key] = value = []
        if value is None and key not in keys:
            continue
        if not isinstance(value, kind) or isinstance(value, bool) or (kind is list and not all(isinstance(entry, str) for entry in value)):
            wanted = {str: "text", int: "a whole number", list: "a list of texts"}[kind]
            raise DataError(f"must be {wanted}, not {value!r:.60}", path=path, field=key)
    if not is_file_name_id(str(header["id"])):
        raise DataError(
            f"id {str(header['id'])!r:.80} is not a name: it becomes the template's file name in the build, so it takes letters, digits, . _ - and / between names (e.g. my-org/i0_short)",
            path=path,
            field="id",
        )
    header.setdefault("dataset", DEFAULT_DATASET)
    known = sorted({*DATASETS, loading})
    if header["dataset"] not in known:
        raise DataError(f"unknown dataset {header['dataset']!r}; datasets: {', '.join(known)}", path=path, field="dataset")
    return header


def _read_template(path: Path, task_variables: Mapping[str, set[str]], dataset: str) -> Template | None:
    """The template in `path`, checked against `task_variables`; None when it belongs to another dataset config."""
    text = _read_text(path)
    match = HEADER.match(text)
    if not match:
        raise DataError("a template starts with a {# ... #} header (id, task, version, source, system, variables)", path=path, line=1)
    header = _read_header(path, match.group(1), HEADER_KEYS, dataset)
    if header["dataset"] != dataset:
        return None
    body = text[match.end() :].strip()
    task = header["task"]
    if task not in task_variables:
        raise DataError(f"unknown task {task!r}; tasks: {', '.join(sorted(task_variables))}", path=path, field="task")
    compiled, used = _compile(body, path, "the body")
    declared = set(header["variables"] or [])
    if used != declared:
        raise DataError(f"the body uses {sorted(used)} but the header declares {sorted(declared)}", path=path, field="variables")
    unknown = used - set(task_variables[task])
    if unknown:
        raise DataError(
            f"task {task!r} provides no {', '.join(sorted(unknown))}; it provides {', '.join(sorted(task_variables[task]))}",
            path=path,
            field="variables",
        )
    return Template(
        id=str(header["id"]),
        dataset=dataset,
        task=task,
        version=header["version"],
        source=header["source"],
        system=header["system"],
        variables=tuple(header["variables"]),
        body=body,
        path=path,
        compiled=compiled,
        header=header,
    )


def _read_phrases(path: Path, loading: str) -> PhraseSet:
    header = _read_header(path, _read_text(path), {"id", "version", "source", "variables"}, loading)
    declared = set(header["variables"] or [])
    if not declared <= {"target_category"}:
        raise DataError(f"phrases can use only target_category, not {sorted(declared - {'target_category'})}", path=path, field="variables")
    phrases, texts = {}, {}
    for kind in PHRASE_KINDS:
        entries = header.get(kind) or []
        compiled = []
        for number, phrase in enumerate(entries, start=1):
            template, used = _compile(str(phrase), path, f"{kind} phrase {number}")
            if not used <= declared:
                raise DataError(f"{kind} phrase {number} uses {sorted(used - declared)}, not declared", path=path, field=kind)
            compiled.append(template)
        phrases[kind], texts[kind] = tuple(compiled), tuple(map(str, entries))
    return PhraseSet(id=str(header["id"]), dataset=header["dataset"], source=str(header["source"]), variables=tuple(declared), phrases=phrases, texts=texts, path=path)
