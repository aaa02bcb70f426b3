"""datagen: recommendation logs in, instruction datasets for LLM recommenders out.

>>> from datagen.pipeline import build
>>> result = build("steam", raw_dir=None, out_dir="build/steam-sample")  # doctest: +SKIP
"""

from pathlib import Path

__version__ = "0.1.0"

# Installed, the training code is datagen/training/. In a source checkout it is
# training/ beside datagen/, which `python -m datagen` (or `accelerate launch -m
# datagen`) run from the checkout imports in place of the installed package.
_CHECKOUT_TRAINING = Path(__file__).resolve().parent.parent / "training"
if not (Path(__file__).resolve().parent / "training").is_dir() and (_CHECKOUT_TRAINING / "sft.py").is_file():
    __path__.append(str(_CHECKOUT_TRAINING.parent))
