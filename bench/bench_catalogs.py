"""Full builds of the catalogs users bring, every family, with their label checks: what the suite cuts short.

    python bench/bench_catalogs.py --data ../shared/data                  # every catalog below
    python bench/bench_catalogs.py --data ../shared/data --only ml-100k scientific-no-categories   # the yardstick always runs first
    python bench/bench_catalogs.py --table                                  # the saved results as docs/results.md's table

Each catalog is built from its real (or, for Amazon 2023, converted) files with
the default settings and every family its data allows, in a fresh process, in
the same run as the yardstick: the shipped Steam sample's build with the same
families. Per build it records wall seconds, the ratio to the yardstick, peak
memory, the table sizes, rows per family, which label source ranked the labels,
and whether every label check passed. Each catalog's result, with the
yardstick of its run, goes to bench/results/catalog-<name>.json as it finishes.
The shared Games interactions file (teacher-only: no titles) trains its SASRec
teacher with the defaults, which takes about 20 minutes on 2 cores; `--only`
leaves it out.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from recording import RESULTS, save_result  # bench/recording.py (the script's folder is on sys.path)

ROOT = Path(__file__).resolve().parent.parent
FAMILIES = ["--recknowledge", "--instructrec"]
NO_CATEGORIES_CONFIG = """name: scientific-no-categories
catalog_noun: products
items: {path: Scientific.item.json, format: json-object, id: _key, title: title}
interactions: {path: Scientific.inter.json, format: json-object, user: _key, item: _value, order: list}
"""


def catalogs(data: Path, no_categories: Path) -> dict[str, list[str]]:
    """Name -> the `datagen build` arguments (without --out); `no_categories` is where NO_CATEGORIES_CONFIG is written."""
    return {
        "steam-sample (yardstick)": ["steam", *FAMILIES],
        "ml-100k": ["movielens:ml-100k", "--raw-dir", str(data / "movielens" / "ml-100k"), *FAMILIES],
        "amazon-2023-Gift_Cards (converted)": ["amazon:Gift_Cards", "--raw-dir", str(ROOT / "tests" / "fixtures" / "amazon2023"), *FAMILIES],
        "amazon-2018-Gift_Cards": ["amazon:Gift_Cards", "--raw-dir", str(data / "amazon"), *FAMILIES],
        "scientific": [f"table:{ROOT / 'examples' / 'scientific.yaml'}", "--raw-dir", str(data / "catalogs" / "scientific"), *FAMILIES],
        "scientific-no-categories": [f"table:{no_categories}", "--raw-dir", str(data / "catalogs" / "scientific"), *FAMILIES],
        "amazon-games-sasrec (teacher-only)": [
            f"table:{ROOT / 'examples' / 'amazon-games-sasrec.yaml'}", "--raw-dir", str(data / "catalogs" / "amazon-games-sasrec"), "--no-controllable",
        ],
    }  # fmt: skip


def run_build(arguments: list[str], out: Path) -> dict:
    """One build in its own process: wall seconds, peak memory (GNU time), and what the folder holds."""
    command = ["/usr/bin/time", "-f", "%M", sys.executable, "-m", "datagen", "build", *arguments, "--out", str(out), "--quiet"]
    start = time.perf_counter()
    finished = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if finished.returncode != 0:
        return {"error": finished.stderr.strip().splitlines()[-3:]}
    manifest = json.loads((out / "manifest.json").read_text())
    result = {
        "wall_s": round(seconds, 1),
        "peak_rss_gib": round(int(finished.stderr.strip().splitlines()[-1]) / 2**20, 2),
        "users": manifest["stats"]["users"],
        "items": manifest["stats"]["items"],
        "interactions": manifest["stats"]["interactions"],
        "has_categories": manifest["source"]["has_categories"],
        "rows": {},
        "label_checks_pass": True,
    }
    teacher = out / "teacher" / "report.json"
    if teacher.is_file():
        report = json.loads(teacher.read_text())
        result["label_source"] = report.get("label_source")
        result["test_ndcg10_full"] = {model: scores["NDCG@10"] for model, scores in report["evaluation"]["full"]["test"].items()}
    for family in ("controllable", "recknowledge", "instructrec"):
        path = out / "reports" / f"{family}.json"
        if path.is_file():
            report = json.loads(path.read_text())
            result["rows"][family] = sum(count for split in report["rows"].values() for count in split.values())
            result["label_checks_pass"] &= bool(report["label_checks"]) and report["label_check_failures"] == []
    return result


def print_table() -> None:
    print(
        "| catalog | users | items | interactions | rows: controllable / recknowledge / instructrec | label checks | labels from | test NDCG@10 SASRec / co-occurrence | wall | x yardstick | peak RSS |"
    )
    print("|---|---:|---:|---:|---|---|---|---|---:|---:|---:|")
    order = list(catalogs(Path("data"), Path("scientific-no-categories.yaml")))
    found = [json.loads(path.read_text()) for path in RESULTS.glob("catalog-*.json")]
    for saved in sorted(found, key=lambda saved: order.index(saved["catalog"]) if saved["catalog"] in order else len(order)):
        build = saved["build"]
        if "error" in build:
            print(f"| {saved['catalog']} | failed: {' '.join(build['error'])} |")
            continue
        rows = " / ".join(f"{build['rows'][family]:,}" if family in build["rows"] else "-" for family in ("controllable", "recknowledge", "instructrec"))
        checks = ("pass" if build["label_checks_pass"] else "FAIL") if build["rows"] else "-"
        ndcg = build.get("test_ndcg10_full", {})
        print(
            f"| {saved['catalog']} | {build['users']:,} | {build['items']:,} | {build['interactions']:,} | {rows} | {checks} "
            f"| {build.get('label_source', '-')} | {ndcg.get('SASRec', 0):.4f} / {ndcg.get('co-occurrence', 0):.4f} "
            f"| {build['wall_s']} s | {build.get('vs_yardstick', '-')} | {build['peak_rss_gib']} GiB |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="the shared data folder ($DATAGEN_DATA)")
    parser.add_argument("--only", nargs="*", help="build only the catalogs whose name starts with one of these (the yardstick always runs first)")
    parser.add_argument("--table", action="store_true", help="print the saved results as a markdown table, and build nothing")
    args = parser.parse_args()
    if args.table:
        print_table()
        return
    if args.data is None:
        parser.error("--data is required to build")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        no_categories = scratch / "scientific-no-categories.yaml"
        no_categories.write_text(NO_CATEGORIES_CONFIG)
        yardstick = None
        for name, arguments in catalogs(args.data.resolve(), no_categories).items():
            if args.only and yardstick is not None and not any(name.startswith(prefix) for prefix in args.only):
                continue
            result = run_build(arguments, scratch / name.split()[0])
            yardstick = yardstick or result
            if "wall_s" in result and "wall_s" in yardstick:
                result["vs_yardstick"] = round(result["wall_s"] / yardstick["wall_s"], 2)
            print(name, json.dumps(result), flush=True)
            print(save_result(f"catalog-{name.split()[0]}", {"catalog": name, "build": result, "yardstick": yardstick}))


if __name__ == "__main__":
    main()
