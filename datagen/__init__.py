"""datagen: recommendation logs in, instruction datasets for LLM recommenders out.

>>> from datagen.pipeline import BuildConfig, build
>>> result = build(BuildConfig("steam", out_dir=Path("build/steam-sample")))  # doctest: +SKIP
"""

__version__ = "0.1.0"
