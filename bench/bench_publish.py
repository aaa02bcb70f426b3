"""Time the publishing steps of a finished build: finalize (file list, content hash, card, plots), validate, load_dataset.

    python bench/bench_publish.py build/steam

Works on a copy of the build (the original is untouched). `load_dataset` runs
in a fresh interpreter with HF_HOME in a temporary folder and the Hub offline,
on every config; the result is also written to bench/results/publish-<build name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recording import peak_rss_gib, save_result  # bench/recording.py (the script's folder is on sys.path)

from datagen.publish.release import finalize
from datagen.publish.validate import validate

LOAD_ALL = "import json, sys\nfrom datasets import load_dataset\nfor config in json.loads(sys.argv[2]):\n    load_dataset(sys.argv[1], config)\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path)
    args = parser.parse_args()
    timings = {}
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / args.build.name
        shutil.copytree(args.build, copy)
        started = time.perf_counter()
        manifest = finalize(copy)
        timings["finalize_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        problems = validate(copy)
        timings["validate_s"] = round(time.perf_counter() - started, 2)
        env = {**os.environ, "HF_HOME": str(Path(scratch) / "hf"), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", LOAD_ALL, str(copy), json.dumps(list(manifest["configs"]))], env=env, check=True, capture_output=True)
        timings["load_dataset_all_configs_s"] = round(time.perf_counter() - started, 2)
        repository_bytes = sum(path.stat().st_size for path in copy.rglob("*") if path.is_file())
    result = {
        "build": str(args.build),
        "files": len(manifest["files"]),
        "rows": {config: sum(split["rows"] for split in splits.values()) for config, splits in manifest["configs"].items()},
        "repository_bytes": repository_bytes,
        **timings,
        "validate_problems": problems,
        "peak_rss_gib": peak_rss_gib(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
    }
    print(json.dumps(result, indent=2))
    save_result(f"publish-{args.build.name}", result)


if __name__ == "__main__":
    main()
