"""Template lint: every template parses, declares exactly the variables it uses, uses only its task's
variables, has a unique id, keeps the paper's wording, and renders the same for the same seed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import jinja2
import pytest
from click.testing import CliRunner

from datagen.cli import main
from datagen.controllable.build import load_library
from datagen.controllable.tasks import TEMPLATE_VARIABLES
from datagen.errors import DataError
from datagen.instructrec import annotator
from datagen.instructrec import build as instructrec
from datagen.recknowledge import build as recknowledge
from datagen.shipped import TEMPLATES_DIR
from datagen.templating import ENVIRONMENT, TemplateLibrary

SHIPPED = sorted((TEMPLATES_DIR / "controllable").rglob("*.jinja"))
ALL_SHIPPED = sorted(TEMPLATES_DIR.rglob("*.jinja"))
# dataset folder -> (its library, the variables each of its tasks provides, the system prompt)
DATASETS = {
    "controllable": (load_library, TEMPLATE_VARIABLES, "You are an expert recommender engine."),
    "recknowledge": (recknowledge.load_library, recknowledge.TEMPLATE_VARIABLES, ""),  # Cao et al. prompt T5 without one
    "instructrec": (instructrec.load_library, instructrec.TEMPLATE_VARIABLES, ""),  # so does InstructRec
    "instructrec-annotator": (lambda: TemplateLibrary.load(annotator.TEMPLATE_VARIABLES, dataset=annotator.DATASET), annotator.TEMPLATE_VARIABLES, None),
}


def test_the_shipped_folder_holds_every_listing():
    library = load_library()
    assert len(SHIPPED) == len(library.templates) == 11
    assert len({t.id for t in library.templates}) == len(library.templates)
    assert set(library.by_task) == set(TEMPLATE_VARIABLES)
    assert len(library.intentions["positive"]) == len(library.intentions["negative"]) == 6


def test_each_dataset_loads_only_its_own_templates():
    recknowledge_library = recknowledge.load_library()
    assert {t.dataset for t in recknowledge_library.templates} == {"recknowledge"}
    assert set(recknowledge_library.by_task) == set(recknowledge.TASKS)
    instructrec_library = instructrec.load_library()
    assert {t.dataset for t in instructrec_library.templates} == {"instructrec"}
    assert len(ALL_SHIPPED) == sum(len(load().templates) for load, _, _ in DATASETS.values())


@pytest.mark.parametrize("path", ALL_SHIPPED, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_each_template_uses_only_what_its_task_provides(path):
    load, task_variables, system_prompt = DATASETS[path.parent.name]
    template = next(t for t in load().templates if t.path == path)
    used = jinja2.meta.find_undeclared_variables(ENVIRONMENT.parse(template.body))
    assert used == set(template.variables)
    assert used <= task_variables[template.task]
    values = {name: f"<{name}>" for name in template.variables}
    system, user = template.render(values)
    assert system == system_prompt if system_prompt is not None else system  # None: the template's own, never empty
    assert all(f"<{name}>" in user for name in template.variables)
    missing = dict(values)
    missing.pop(template.variables[0])
    with pytest.raises(DataError, match="undefined"):
        template.render(missing)


def _paper_text() -> str:
    data = os.environ.get("DATAGEN_DATA")
    papers = Path(data).parent / "papers" if data else None
    if not papers or not (papers / "000_93db8eae5377c305.txt").is_file():
        pytest.skip("the papers folder lies beside $DATAGEN_DATA (../shared/papers)")
    text = (papers / "000_93db8eae5377c305.txt").read_text()
    appendix = text[text.index("#### Listing 1") :]
    return " ".join(appendix.replace("\\_", "_").split())


@pytest.mark.parametrize("path", [p for p in SHIPPED if "lu2024" in p.read_text().split("\n")[1]], ids=lambda p: p.stem)
def test_lu2024_templates_are_the_listings_verbatim(path):
    template = next(t for t in load_library().templates if t.path == path)
    placeholders = {name: "{" + name + "}" for name in template.variables}
    system, user = template.render(placeholders)
    assert f"{system} {user}" in _paper_text()


def test_intentions_are_listings_5_and_6_verbatim():
    paper = _paper_text()
    library = load_library()
    for kind in ("positive", "negative"):
        for index in range(len(library.intentions[kind])):
            assert library.intention(kind, index, "{target_category}") in paper


def test_a_users_template_folder_is_used_without_code_changes(tmp_path):
    (tmp_path / "mine.jinja").write_text(
        "{#\nid: mine/i0-short\ntask: i0\nversion: 1\nsource: a user\nsystem: You recommend games.\nvariables: [history, item_count]\n#}\nI played {{ history }}. Name {{ item_count }} games.\n"
    )
    library = load_library([tmp_path])
    assert "mine/i0-short" in [t.id for t in library.for_task("i0", with_candidates=False)]
    listed = CliRunner().invoke(main, ["templates", "--templates", str(tmp_path)], terminal_width=200)
    assert listed.exit_code == 0, listed.output
    assert "mine/i0-short" in listed.output and "lu2024/i2_le" in listed.output


@pytest.mark.parametrize(
    ("body", "header_variables", "task", "message"),
    [
        ("{{ history }} {{ secret }}", "[history, secret]", "i0", "provides no secret"),
        ("{{ history }}", "[history, item_count]", "i0", "declares"),
        ("{{ history }", "[history]", "i0", "not valid Jinja"),
        ("{{ history }}", "[history]", "i9", "unknown task"),
    ],
)
def test_a_bad_template_names_its_file_and_field(tmp_path, body, header_variables, task, message):
    path = tmp_path / "bad.jinja"
    path.write_text(f"{{#\nid: bad\ntask: {task}\nversion: 1\nsource: x\nsystem: x\nvariables: {header_variables}\n#}}\n{body}\n")
    with pytest.raises(DataError, match=message) as error:
        load_library([tmp_path])
    assert str(path) in str(error.value)


@pytest.mark.parametrize("template_id", ["../../../somewhere/x", "/etc/x", "mine/../../x", "mine/./x", ".hidden", "a b", "mine\\\\x"])
def test_a_template_id_that_is_not_a_name_is_refused_before_it_becomes_a_path(tmp_path, template_id):
    """A template's id is its file name in the build's templates/: one that climbs out, is absolute or hides is refused."""
    path = tmp_path / "hostile.jinja"
    path.write_text(f'{{#\nid: "{template_id}"\ntask: i0\nversion: 1\nsource: x\nsystem: x\nvariables: [history]\n#}}\n{{{{ history }}}}\n')
    with pytest.raises(DataError, match="is not a name: it becomes the template's file name") as error:
        load_library([tmp_path])
    assert str(path) in str(error.value) and "id" in str(error.value)


@pytest.mark.parametrize("phrase_set_id", ["../../.github/workflows/x", "/etc/x"])
def test_a_phrase_set_id_that_is_not_a_name_is_refused_too(tmp_path, phrase_set_id):
    """A phrase set is copied to templates/<id>.yaml: the same rule as a template's id."""
    path = tmp_path / "phrases.yaml"
    path.write_text(f'id: "{phrase_set_id}"\nversion: 1\nsource: a user\nvariables: [target_category]\npositive: ["{{{{ target_category }}}}"]\nnegative: ["not {{{{ target_category }}}}"]\n')
    with pytest.raises(DataError, match="is not a name: it becomes the template's file name") as error:
        load_library([tmp_path])
    assert str(path) in str(error.value)


def test_a_template_id_used_twice_is_refused(tmp_path):
    shipped = next(p for p in SHIPPED if p.name == "i0.jinja")
    (tmp_path / "copy.jinja").write_text(shipped.read_text())
    with pytest.raises(DataError, match="used twice"):
        load_library([tmp_path])


def test_the_sandbox_blocks_unsafe_attributes(tmp_path):
    (tmp_path / "evil.jinja").write_text("{#\nid: evil\ntask: i0\nversion: 1\nsource: x\nsystem: x\nvariables: [history]\n#}\n{{ history.__class__.__mro__ }}\n")
    template = next(t for t in load_library([tmp_path]).templates if t.id == "evil")
    with pytest.raises(DataError):
        template.render({"history": "x"})


def test_the_header_is_yaml_in_a_jinja_comment():
    for path in ALL_SHIPPED:
        assert re.match(r"\{#\nid: ", path.read_text()), path
