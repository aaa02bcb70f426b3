"""Templates are user code: every hostile one ends in a DataError naming its file, never a traceback, a hang or a MemoryError."""

from __future__ import annotations

import time

import pytest

from datagen.controllable.build import load_library
from datagen.errors import DataError
from datagen.templating import MAX_RENDER_SECONDS

HEADER = "{{#\nid: {id}\ntask: i0\nversion: {version}\nsource: a user\nsystem: You recommend games.\nvariables: [history]\n#}}\n"


def _write(folder, name: str, body: str, version: str = "1") -> object:
    path = folder / f"{name}.jinja"
    path.write_text(HEADER.format(id=f"mine/{name}", version=version) + body + "\n")
    return path


def _render(folder, name: str):
    template = next(t for t in load_library([folder]).templates if t.id == f"mine/{name}")
    return template.render({"history": "'Portal'"})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{% include 'x.jinja' %} {{ history }}", r"uses \{% include %\}: a template is one file"),
        ("{% import 'x.jinja' as x %}{{ history }}", r"uses \{% import %\}"),
        ("{% from 'x.jinja' import y %}{{ history }}", r"uses \{% from ... import %\}"),
        ("{% extends 'x.jinja' %}{{ history }}", r"uses \{% extends %\}"),
    ],
)
def test_templates_cannot_read_other_files(tmp_path, body, message):
    path = _write(tmp_path, "reader", body)
    with pytest.raises(DataError, match=message) as error:
        load_library([tmp_path])
    assert str(path) in str(error.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{{ history }}{% for i in range(10**9) %}x{% endfor %}", "Range too big"),
        ("{{ history }}{{ 'x' * 10**10 }}", "a repetition of 10,000,000,000 elements"),
        ("{{ history }}{{ [1, 2] * 10**9 }}", "a repetition of 2,000,000,000 elements"),
        ("{{ history }}{{ 2 ** 1000000 }}", "more than 4096 bits"),
        ("{{ history }}{{ '%0999999999d' % 1 }}", "width or precision 999999999 passes"),
        ("{{ history }}{{ '%.*f' % (10**9, 1.5) }}", "width or precision \\* passes"),
        ("{{ history }}{% for i in range(100000) %}{{ history * 100 }}{% endfor %}", "passes 200,000 characters"),
        ("{{ history }}{{ 1 / 0 }}", "ZeroDivisionError"),
        ("{{ history }}{{ history.__class__ }}", "unsafe|not safely"),
    ],
)
def test_a_hostile_body_is_a_clear_error_naming_its_file(tmp_path, body, message):
    path = _write(tmp_path, "hostile", body)
    with pytest.raises(DataError, match=message) as error:
        _render(tmp_path, "hostile")
    assert str(path) in str(error.value) and "mine/hostile" in str(error.value)


def test_a_loop_that_prints_nothing_is_stopped_in_time(tmp_path):
    _write(tmp_path, "spin", "{{ history }}{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}")
    started = time.monotonic()
    with pytest.raises(DataError, match=r"took over 5 s"):
        _render(tmp_path, "spin")
    assert time.monotonic() - started < MAX_RENDER_SECONDS + 5


def test_a_template_just_under_the_message_bound_is_stopped_by_its_total_budget(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAGEN_RENDER_BUDGET", "1.5")
    _write(tmp_path, "slow", "{{ history }}{% for i in range(3000) %}{% for j in range(100) %}{% endfor %}{% endfor %}")
    template = next(t for t in load_library([tmp_path]).templates if t.id == "mine/slow")
    started = time.monotonic()
    with pytest.raises(DataError, match=r"mine/slow': its messages have (taken over 1.5 s to render in all|used up their render budget)") as error:
        for _ in range(1000):
            template.render({"history": "'Portal'"})
    assert time.monotonic() - started < 10 and "DATAGEN_RENDER_BUDGET" in str(error.value)


@pytest.mark.parametrize(
    ("header_edit", "field", "message"),
    [
        (("version: 1", "version: abc"), "version", "must be a whole number, not 'abc'"),
        (("version: 1", "version: true"), "version", "must be a whole number"),
        (("variables: [history]", "variables: history"), "variables", "must be a list of texts"),
        (("system: You recommend games.", "system: [a, b]"), "system", "must be text"),
        (("id: mine/typed", "id: 12"), "id", "must be text"),
    ],
)
def test_header_fields_are_type_checked(tmp_path, header_edit, field, message):
    path = _write(tmp_path, "typed", "{{ history }}")
    path.write_text(path.read_text().replace(*header_edit))
    with pytest.raises(DataError, match=message) as error:
        load_library([tmp_path])
    assert f"{path}: field {field!r}" in str(error.value)


def test_a_header_with_aliases_is_refused(tmp_path):
    path = _write(tmp_path, "bomb", "{{ history }}")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8))
    path.write_text(path.read_text().replace("task: i0\n", "task: i0\n" + bomb))
    with pytest.raises(DataError, match=r"YAML aliases \(\*name\) are not allowed in a template header \(line 5\)") as error:
        load_library([tmp_path])
    assert str(path) in str(error.value)


def test_a_template_that_is_not_utf8_names_the_byte(tmp_path):
    path = tmp_path / "latin.jinja"
    path.write_bytes(HEADER.format(id="mine/latin", version="1").encode() + "Caf\xe9 {{ history }}\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text \(byte \d+: b'\\xe9'\)") as error:
        load_library([tmp_path])
    assert str(path) in str(error.value)


def test_a_hostile_phrase_set_is_bounded_too(tmp_path):
    (tmp_path / "phrases.yaml").write_text(
        'id: mine/phrases\nversion: 1\nsource: a user\nvariables: [target_category]\npositive: ["{{ target_category * 10**9 }}"]\nnegative: ["not {{ target_category }}"]\n'
    )
    library = load_library([tmp_path])
    index = len(library.intentions["positive"]) - 1  # the user's phrase comes after the shipped ones
    with pytest.raises(DataError, match="a repetition of") as error:
        library.intention("positive", index, "Strategy")
    assert "mine/phrases" in str(error.value) and str(tmp_path / "phrases.yaml") in str(error.value)
