"""The words datagen's commands share: a BUILD (a name or a folder, resolved one way), `--workers`, `--executor`,
`--templates`, and the old spellings of renamed options.

>>> resolve_build("steam").path  # doctest: +SKIP
PosixPath('build/steam-sample')
>>> old_spelling("--dataset", "family", "--family", type=str)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

import click
from click.core import ParameterSource

from datagen.buildfolder import BuildFolder
from datagen.errors import DataError
from datagen.executor import EXECUTORS, default_workers


class FiniteRange(click.FloatRange):
    """click's FloatRange less NaN and infinity, which its comparisons let through: `--max-bad-share nan` used to turn
    the bad-row check off, and an infinite rate or timeout bounds nothing."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


TEMPLATES_OPTION = click.option(
    "--templates", "template_dirs", multiple=True, type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder of extra templates (*.jinja) or intention phrases (*.yaml), used beside the shipped ones. Repeatable; also $DATAGEN_TEMPLATES.",
)  # fmt: skip
WORKERS_OPTION = click.option(
    "--workers", type=click.IntRange(min=1), default=default_workers, show_default="this machine's cores",
    help="Processes (or Ray actors) that generate rows; the output is the same for any number.",
)  # fmt: skip
EXECUTOR_OPTION = click.option(
    "--executor", type=click.Choice(EXECUTORS), default="local", show_default=True,
    help="local: a process pool on this machine; ray: a Ray cluster ($RAY_ADDRESS, else a local one; pip install 'datagen[ray]').",
)  # fmt: skip


def _candidates(name_or_path: str) -> list[Path]:
    """Where a BUILD may be: the path itself; a bare name also as build/NAME and build/NAME-sample."""
    given = Path(name_or_path)
    return [given] if len(given.parts) > 1 else [given, Path("build") / name_or_path, Path("build") / f"{name_or_path}-sample"]


def resolve_build(name_or_path: str) -> BuildFolder:
    """A build folder, or a bare build name looked up as build/NAME and then build/NAME-sample."""
    candidates = _candidates(name_or_path)
    for candidate in candidates:
        if (candidate / "manifest.json").is_file():
            return BuildFolder.open(candidate)
    looked = f" (nor {', '.join(str(candidate) for candidate in candidates[1:])})" if len(candidates) > 1 else " (no manifest.json there)"
    raise DataError(f"no build folder {name_or_path!r}{looked}", hint="Run `datagen build SOURCE` first.")


def resolve_titled_build(name_or_path: str, family: str) -> BuildFolder:
    """A build folder for a family's command: its rows name items by title, so a build without titles is refused."""
    folder = resolve_build(name_or_path)
    if not folder.manifest["source"].get("has_titles", True):
        raise DataError(
            f"the build has no item titles (its source gave none), so the {family} dataset cannot name any item",
            path=folder.path,
            hint="Only the teacher commands work on it; build the catalog again with its titles (an item file, Amazon's meta file).",
        )
    return folder


def build_folder_path(name_or_path: str) -> Path:
    """The folder a BUILD names, looked up as `resolve_build` does, for the commands that check a build themselves
    (`validate`, `card`, `push`): a folder with a manifest first, else any folder there, broken or not."""
    candidates = _candidates(name_or_path)
    for candidate in [*(c for c in candidates if (c / "manifest.json").is_file()), *(c for c in candidates if c.is_dir())]:
        return candidate
    looked = f" (nor {', '.join(str(candidate) for candidate in candidates[1:])})" if len(candidates) > 1 else ""
    raise DataError(f"no build folder {name_or_path!r}{looked}", hint="Run `datagen build SOURCE` first.")


def old_spelling(declaration: str, name: str, new: str, **attributes):
    """A hidden option under the name an option had before it became `new`, kept for one release (CHANGELOG): given,
    it sets parameter `name` (the new option's) and says the new name on stderr; not given, it does nothing."""

    def set_new_option(ctx: click.Context, param: click.Parameter, value):
        if ctx.get_parameter_source(param.name) is ParameterSource.COMMANDLINE:
            click.echo(f"note: {declaration.split('/')[0]} is now {new}; the old spelling goes in the next release.", err=True)
            ctx.params[name] = value
            ctx.set_parameter_source(name, ParameterSource.COMMANDLINE)  # so the new option's default does not replace it
        return value

    return click.option(declaration, f"old_{name}", hidden=True, expose_value=False, callback=set_new_option, **attributes)
