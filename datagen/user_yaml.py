"""YAML that users write (table configs, template headers): safe types only, and no anchors or aliases.

Nested aliases expand without bound (a "billion laughs" file of a few lines),
and neither a config nor a template header has any use for them.

    >>> load_user_yaml("name: steam\\nitems: {path: items.csv}", "a table config")
    {'name': 'steam', 'items': {'path': 'items.csv'}}
"""

from __future__ import annotations

import yaml

from datagen.errors import DataError


class _AliasFound(Exception):
    def __init__(self, line: int):
        self.line = line


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise _AliasFound(self.peek_event().start_mark.line + 1)
        return super().compose_node(parent, index)


def load_user_yaml(text: str, what: str) -> object:
    """The YAML `text`; DataError naming `what` and the line for an alias, yaml.YAMLError for bad YAML."""
    try:
        return yaml.load(text, Loader=_NoAliasLoader)
    except _AliasFound as alias:
        raise DataError(f"YAML aliases (*name) are not allowed in {what} (line {alias.line})") from None
