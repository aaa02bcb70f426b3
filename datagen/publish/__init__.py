"""Publishing a build as a versioned Hugging Face dataset repository.

The build folder is the repository: data/<config>/<split>-*.parquet, README.md
(the card, generated), images/ (its plots), templates/ (the prompts used),
manifest.json (version, content hash, inputs, parameters, every file's sha256).

    $ datagen build steam --version 1.0.0
    $ datagen validate build/steam-sample
    $ datagen push build/steam-sample --repo my-org/steam-controllable --dry-run
"""
