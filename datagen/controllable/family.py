"""The controllable family (Lu et al. 2024's I0-I4) as datagen/families.py lists it.

>>> CONTROLLABLE.name, CONTROLLABLE.needs_teacher
('controllable', True)
"""

from __future__ import annotations

import click

from datagen.controllable.build import FAMILY, ControllableSettings, generate_controllable, load_library
from datagen.controllable.cli import CHAT_OPTION, CHAT_RATIO_OPTION, controllable_facts, generate, print_report
from datagen.controllable.tasks import TEMPLATE_VARIABLES
from datagen.family.spec import Family
from datagen.options import old_spelling

CONTROLLABLE = Family(
    name=FAMILY,
    command=generate,
    generate=generate_controllable,
    build_flag=click.option(
        "--controllable/--no-controllable",
        FAMILY,
        default=True,
        show_default=True,
        help="Generate the controllable dataset (Lu et al. I0-I4) into <out>/data/controllable/ (needs the teacher).",
    ),
    build_options=(CHAT_OPTION, CHAT_RATIO_OPTION, old_spelling("--tasks/--no-tasks", FAMILY, "--controllable/--no-controllable", default=True)),
    build_settings=lambda values: ControllableSettings(
        seed=values["seed"],
        chat=values["chat"],
        chat_ratio=values["chat_ratio"],
        template_dirs=values["template_dirs"],
        device=values["device"],
        workers=values["workers"],
        executor=values["executor"],
    ),
    load_library=load_library,
    template_variables=TEMPLATE_VARIABLES,
    facts=controllable_facts,
    print_report=print_report,
    needs_teacher=True,
)
