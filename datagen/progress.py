"""Progress on stderr for long steps (a spinner or a bar, then a tick with the time taken), silenced by --quiet.

>>> progress = StepProgress(quiet=True)
>>> with progress.step("k-core filtering"):
...     pass
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


class StepProgress:
    def __init__(self, quiet: bool = False):
        self.quiet = quiet
        self.console = Console(stderr=True)
        # A log file gets whole lines: Rich would otherwise wrap them at the 80 columns it assumes off a terminal.
        self.console.soft_wrap = not self.console.is_terminal

    @contextmanager
    def step(self, text: str) -> Iterator[None]:
        if self.quiet:
            yield
            return
        started = time.perf_counter()
        with self.console.status(text):
            yield
        self.console.print(f"[green]✓[/green] {text} [dim]({time.perf_counter() - started:.1f} s)[/dim]")

    @contextmanager
    def bar(self, text: str, total: int) -> Iterator[Callable[..., None]]:
        """A progress bar of `total` steps; call the yielded function with a short note after each.

        `advance(note, steps=0)` only changes the note (progress within a long step).
        """
        if self.quiet:
            yield lambda note, steps=1: None
            return
        started = time.perf_counter()
        if not self.console.is_terminal:  # a log file: one line per step instead of a live bar
            done = 0

            def log_line(note: str, steps: int = 1) -> None:
                nonlocal done
                if steps:
                    done += steps
                    self.console.print(f"{text} {done}/{total}: {note}")

            yield log_line
            self.console.print(f"[green]✓[/green] {text} [dim]({time.perf_counter() - started:.1f} s)[/dim]")
            return
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[note]}"))
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(text, total=total, note="")
            yield lambda note, steps=1: progress.update(task, advance=steps, note=note)
            done = progress.tasks[0].completed
        self.console.print(f"[green]✓[/green] {text}: {done:g} of at most {total} [dim]({time.perf_counter() - started:.1f} s)[/dim]")

    def done(self, text: str) -> None:
        if not self.quiet:
            self.console.print(f"[green]✓[/green] {text}")

    def warn(self, text: str) -> None:
        """Warnings show even with --quiet: they change what the output means."""
        self.console.print(f"[bold yellow]{text}[/bold yellow]", soft_wrap=True)
