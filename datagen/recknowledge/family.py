"""The recknowledge family (Cao et al. 2024's retrieval, ranking, rating, MIM, MLM, BPR) as datagen/families.py lists it.

>>> RECKNOWLEDGE.name, RECKNOWLEDGE.command.name
('recknowledge', 'recknowledge')
"""

from __future__ import annotations

import click

from datagen.family.spec import Family
from datagen.recknowledge.build import DATASET, TEMPLATE_VARIABLES, RecKnowledgeSettings, generate_recknowledge, load_library
from datagen.recknowledge.cli import print_report, recknowledge, recknowledge_facts

RECKNOWLEDGE = Family(
    name=DATASET,
    command=recknowledge,
    generate=generate_recknowledge,
    build_flag=click.option("--recknowledge", DATASET, is_flag=True, help="Also generate Cao et al. 2024's tasks into <out>/data/recknowledge/ (defaults of `datagen recknowledge`)."),
    build_settings=lambda values: RecKnowledgeSettings(seed=values["seed"], template_dirs=values["template_dirs"], workers=values["workers"], executor=values["executor"]),
    load_library=load_library,
    template_variables=TEMPLATE_VARIABLES,
    facts=recknowledge_facts,
    print_report=print_report,
)
