"""The files the package ships (templates, recipes, the Steam sample), found one way: importlib.resources.

Installed from a wheel or with `pip install -e .`, the repository's templates/
and recipes/ folders are the packages datagen.templates and datagen.recipes,
and the Steam sample is datagen/sample_data/.

>>> (shipped_folder("datagen.templates") / "controllable").is_dir()
True
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def shipped_folder(package: str) -> Path:
    """The folder of `package` on disk; a RuntimeError when it is not a folder (a zipped install)."""
    folder = files(package)
    if not isinstance(folder, Path):
        raise RuntimeError(f"{package} is not a folder on disk ({folder!r}); install datagen with pip, unzipped")
    return folder


TEMPLATES_DIR = shipped_folder("datagen.templates")
RECIPES_DIR = shipped_folder("datagen.recipes")
SAMPLE_DATA_DIR = shipped_folder("datagen") / "sample_data"
