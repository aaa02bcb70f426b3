"""What every benchmark script records: peak memory, and its result as JSON in bench/results/.

>>> save_result("publish-steam", {"finalize_s": 2.5, "peak_rss_gib": peak_rss_gib()})  # doctest: +SKIP
PosixPath('.../bench/results/publish-steam.json')
"""

from __future__ import annotations

import json
import resource
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_gib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)


def save_result(name: str, result: dict | list) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
