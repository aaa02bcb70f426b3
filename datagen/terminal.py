"""The console that datagen's tables and reports go to on stdout.

Rich assumes 80 columns when stdout is not a terminal, so piped or redirected
tables were cut there; piped output gets a width that cuts nothing instead.

    >>> stdout_console().print(table)  # doctest: +SKIP
"""

from __future__ import annotations

import sys

from rich.console import Console

PIPED_WIDTH = 240  # the widest table (teacher eval: 5 models x 4 metrics) fits


def stdout_console() -> Console:
    return Console(width=None if sys.stdout.isatty() else PIPED_WIDTH)
