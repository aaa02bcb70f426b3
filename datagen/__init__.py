"""datagen: recommendation logs in, instruction datasets for LLM recommenders out.

>>> from datagen.pipeline import build
>>> result = build("steam", raw_dir=None, out_dir="build/steam-sample")  # doctest: +SKIP
"""

__version__ = "0.1.0"
