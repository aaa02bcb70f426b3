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

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import jinja2
import yaml
from jinja2 import meta
from jinja2.sandbox import SandboxedEnvironment

from datagen.errors import DataError

TEMPLATES_ENV = "DATAGEN_TEMPLATES"
HEADER = re.compile(r"\A\{#(.*?)#\}\n?", re.DOTALL)
HEADER_KEYS = {"id", "task", "version", "source", "system", "variables"}
DATASETS = ("controllable", "recknowledge", "instructrec", "instructrec-annotator")  # the configs whose rows are rendered from templates
DEFAULT_DATASET = "controllable"
PHRASE_KINDS = ("positive", "negative")

ENVIRONMENT = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


def shipped_template_dir() -> Path:
    package_dir = Path(__file__).parent
    installed = package_dir / "templates"  # a wheel install carries templates/ inside the package
    return installed if installed.is_dir() else package_dir.parent / "templates"  # a checkout or editable install


def template_dirs(extra: tuple[Path, ...] | list[Path] = ()) -> list[Path]:
    """The shipped folder, then $DATAGEN_TEMPLATES (os.pathsep-separated), then `extra`."""
    from_env = [Path(part) for part in os.environ.get(TEMPLATES_ENV, "").split(os.pathsep) if part]
    dirs = [shipped_template_dir(), *from_env, *map(Path, extra)]
    for folder in dirs[1:]:
        if not folder.is_dir():
            raise DataError("template folder not found", path=folder)
    return dirs


def _compile(text: str, path: Path, what: str) -> tuple[jinja2.Template, set[str]]:
    try:
        parsed = ENVIRONMENT.parse(text)
        return ENVIRONMENT.from_string(text), meta.find_undeclared_variables(parsed)
    except jinja2.TemplateSyntaxError as error:
        raise DataError(f"{what} is not valid Jinja: {error.message}", path=path, line=error.lineno) from None


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
    compiled: jinja2.Template
    header: Mapping[str, object]  # every header key, including those only one dataset reads (e.g. query_from)

    @property
    def uses_candidates(self) -> bool:
        return "candidate_titles" in self.variables

    def render(self, values: Mapping[str, object]) -> tuple[str, str]:
        """(system message, user message). A variable the body uses but `values` lacks is an error."""
        try:
            return self.system, self.compiled.render(values).strip()
        except (jinja2.UndefinedError, jinja2.exceptions.SecurityError) as error:
            raise DataError(f"template {self.id!r}: {error.message}", path=self.path) from None


@dataclass(frozen=True)
class PhraseSet:
    id: str
    dataset: str
    source: str
    variables: tuple[str, ...]
    phrases: dict[str, tuple[jinja2.Template, ...]]
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
        self.intentions = {
            kind: [phrase for phrase_set in phrase_sets for phrase in phrase_set.phrases.get(kind, ())] for kind in PHRASE_KINDS
        }

    @classmethod
    def load(
        cls, task_variables: Mapping[str, set[str]], extra_dirs: tuple[Path, ...] | list[Path] = (), dataset: str = DEFAULT_DATASET
    ) -> TemplateLibrary:
        """The templates and phrase sets of one dataset config, from every template folder."""
        templates: list[Template] = []
        phrase_sets: list[PhraseSet] = []
        for folder in template_dirs(extra_dirs):
            for path in sorted(folder.rglob("*.jinja")):
                template = _read_template(path, task_variables, dataset)
                if template is not None:
                    templates.append(template)
            for path in sorted(folder.rglob("*.yaml")):
                phrase_set = _read_phrases(path)
                if phrase_set.dataset == dataset:
                    phrase_sets.append(phrase_set)
        seen: dict[str, Path] = {}
        for item in [*templates, *phrase_sets]:
            if item.id in seen:
                raise DataError(f"template id {item.id!r} is used twice (also in {seen[item.id]})", path=item.path, field="id")
            seen[item.id] = item.path
        return cls(templates, phrase_sets)

    def for_task(self, task: str, with_candidates: bool | None = None) -> list[Template]:
        found = [t for t in self.by_task.get(task, []) if with_candidates is None or t.uses_candidates == with_candidates]
        if not found:
            kind = "" if with_candidates is None else (" with candidates" if with_candidates else " without candidates")
            raise DataError(f"no template for task {task!r}{kind}", hint="`datagen templates` lists them.")
        return found

    def write_sources(self, folder: Path) -> None:
        """Copy each template and phrase set, byte for byte, to folder/<id>.jinja or .yaml (ids are unique)."""
        for item in [*self.templates, *self.phrase_sets]:
            destination = folder / f"{item.id}{item.path.suffix}"
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(item.path.read_bytes())

    def intention(self, kind: str, index: int, target_category: str) -> str:
        return self.intentions[kind][index].render(target_category=target_category).strip()


def _read_header(path: Path, text: str, keys: set[str]) -> dict:
    try:
        header = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise DataError(f"header is not valid YAML: {error}", path=path) from None
    if not isinstance(header, dict):
        raise DataError("header must be a YAML mapping", path=path)
    missing = sorted(keys - set(header))
    if missing:
        raise DataError(f"header lacks {', '.join(missing)}", path=path, field=missing[0])
    header.setdefault("dataset", DEFAULT_DATASET)
    if header["dataset"] not in DATASETS:
        raise DataError(f"unknown dataset {header['dataset']!r}; datasets: {', '.join(DATASETS)}", path=path, field="dataset")
    return header


def _read_template(path: Path, task_variables: Mapping[str, set[str]], dataset: str) -> Template | None:
    """The template in `path`, checked against `task_variables`; None when it belongs to another dataset config."""
    text = path.read_text(encoding="utf-8")
    match = HEADER.match(text)
    if not match:
        raise DataError("a template starts with a {# ... #} header (id, task, version, source, system, variables)", path=path, line=1)
    header = _read_header(path, match.group(1), HEADER_KEYS)
    if header["dataset"] != dataset:
        return None
    body = text[match.end():].strip()
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
        version=int(header["version"]),
        source=str(header["source"]),
        system=str(header["system"]),
        variables=tuple(header["variables"]),
        body=body,
        path=path,
        compiled=compiled,
        header=header,
    )


def _read_phrases(path: Path) -> PhraseSet:
    header = _read_header(path, path.read_text(encoding="utf-8"), {"id", "version", "source", "variables"})
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
