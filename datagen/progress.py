"""Progress on stderr for long steps (a spinner, then a tick with the time taken), silenced by --quiet.

    >>> progress = StepProgress(quiet=True)
    >>> with progress.step("k-core filtering"):
    ...     pass
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console


class StepProgress:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.console = Console(stderr=True)

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        if self.quiet:
            yield
            return
        started = time.perf_counter()
        with self.console.status(text):
            yield
        self.console.print(f"[green]✓[/green] {text} [dim]({time.perf_counter() - started:.1f} s)[/dim]")

    def warn(self, text: str) -> None:
        """Warnings show even with --quiet: they change what the output means."""
        self.console.print(f"[bold yellow]{text}[/bold yellow]", soft_wrap=True)
