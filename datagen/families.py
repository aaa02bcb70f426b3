"""The registry of dataset families: `datagen build`, the family commands, `datagen render` and
`datagen templates` iterate over FAMILIES. A new family is its own package (see datagen/family/spec.py
and CONTRIBUTING.md) plus one line here.

    >>> [family.name for family in FAMILIES]
    ['controllable', 'recknowledge', 'instructrec']
    >>> family_named("instructrec").command.name
    'instructrec'
"""

from __future__ import annotations

from datagen.controllable.family import CONTROLLABLE
from datagen.errors import DataError
from datagen.family.spec import Family
from datagen.instructrec.family import INSTRUCTREC
from datagen.recknowledge.family import RECKNOWLEDGE

FAMILIES: tuple[Family, ...] = (
    CONTROLLABLE,
    RECKNOWLEDGE,
    INSTRUCTREC,
)


def family_named(name: str) -> Family:
    for family in FAMILIES:
        if family.name == name:
            return family
    raise DataError(f"no dataset family {name!r}; families: {', '.join(family.name for family in FAMILIES)}")
