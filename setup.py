"""The package list, found rather than written by hand: every package under datagen/ (a new family or wing
is in the wheel as soon as it has an __init__.py), and the repository's templates/, training/ and recipes/
folders installed as datagen.templates, datagen.training and datagen.recipes. Everything else is in pyproject.toml.
"""

from setuptools import find_packages, setup

SHIPPED_FOLDERS = {"datagen.templates": "templates", "datagen.training": "training", "datagen.recipes": "recipes"}

setup(packages=[*find_packages(include=["datagen", "datagen.*"]), *SHIPPED_FOLDERS], package_dir=SHIPPED_FOLDERS)
