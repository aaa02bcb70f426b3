"""The instructrec family (InstructRec, Zhang et al. 2023: the appendix templates) as datagen/families.py lists it.

>>> INSTRUCTREC.name, INSTRUCTREC.command.name
('instructrec', 'instructrec')
"""

from __future__ import annotations

import click

from datagen.family.spec import Family
from datagen.instructrec.build import DATASET, TEMPLATE_VARIABLES, InstructRecSettings, generate_instructrec, load_library
from datagen.instructrec.cli import instructrec, instructrec_facts, print_report

INSTRUCTREC = Family(
    name=DATASET,
    command=instructrec,
    generate=generate_instructrec,
    build_flag=click.option("--instructrec", DATASET, is_flag=True, help="Also fill InstructRec's templates into <out>/data/instructrec/ (defaults of `datagen instructrec`)."),
    build_settings=lambda values: InstructRecSettings(seed=values["seed"], template_dirs=values["template_dirs"], device=values["device"], workers=values["workers"], executor=values["executor"]),
    load_library=load_library,
    template_variables=TEMPLATE_VARIABLES,
    facts=instructrec_facts,
    print_report=print_report,
)
