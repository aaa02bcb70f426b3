"""What a dataset family is: a package that turns a build into one dataset config, described by one Family.

Each family package (datagen/controllable, datagen/recknowledge,
datagen/instructrec) holds a `family.py` with its Family; datagen/families.py
lists them, and `datagen build`, the family commands, `datagen render` and
`datagen templates` iterate over that list. The card needs no family code: each
family's report carries its `card` block (`card_block`) and the package whose
`card.md.jinja` is the card's section on it.

    >>> from datagen.families import FAMILIES
    >>> [family.name for family in FAMILIES]
    ['controllable', 'recknowledge', 'instructrec']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from datagen.templating import TemplateLibrary

# The `datagen build` values a family may read to make its settings: the build's seed,
# --templates, --device, --workers, --executor, and the values of the options the family adds (Family.build_options).
BuildValues = Mapping[str, Any]


@dataclass(frozen=True)
class Family:
    name: str  # its config: data/NAME/, templates/NAME/, reports/NAME.{json,md}, `datagen render --family NAME`
    command: click.Command  # the command that (re)generates it in a build: `datagen generate`, `datagen recknowledge`, ...
    generate: Callable[..., dict]  # (BuildFolder, settings, StepProgress) -> its report, data and report written
    build_flag: Callable  # the click option of `datagen build` that selects it; its parameter is named NAME
    build_settings: Callable[[BuildValues], Any]  # its settings from `datagen build`'s values
    load_library: Callable[[tuple[Path, ...]], TemplateLibrary]  # its templates, shipped and from --templates folders
    template_variables: Mapping[str, set[str]]  # template task -> the variables it gives its templates
    facts: Callable[[dict, list[str]], list[tuple[str, str]]]  # (row, titles) -> what `datagen render` shows beside a row
    print_report: Callable[[dict], None]  # the summary `datagen build` prints after generating it
    build_options: tuple[Callable, ...] = ()  # further options of `datagen build` it reads (controllable: --chat, --chat-ratio)
    needs_teacher: bool = False  # its labels come from the SASRec teacher: `datagen build --no-teacher` skips it


def card_block(package: str, configs: Mapping[str, str], citations: list[str]) -> dict:
    """The `card` block of a family's report: the package whose card.md.jinja renders its card section, each config it
    writes with the card's one line on it, and the keys of the works to cite (datagen/publish/citations.yaml)."""
    return {"package": package, "configs": dict(configs), "citations": list(citations)}
