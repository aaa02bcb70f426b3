"""Cut the Steam sample shipped in datagen/sample_data/steam from the real files.

    python scripts/make_steam_sample.py ../shared/data/steam --users 4000 --seed 0

Keeps every review line of `--users` users drawn with `--seed`, and every game
line those reviews name, byte for byte, in the files' original order.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import random
import re
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "datagen" / "sample_data" / "steam"
USERNAME = re.compile(r"'username': '([^']*)'")
PRODUCT = re.compile(r"'product_id': '(\d+)'")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("--users", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    reviews = gzip.open(args.raw_dir / "reviews_v2_windows.json.gz", "rt").read().splitlines()
    users = sorted({USERNAME.search(line).group(1) for line in reviews})
    chosen = set(random.Random(args.seed).sample(users, args.users))
    kept = [line for line in reviews if USERNAME.search(line).group(1) in chosen]
    products = {PRODUCT.search(line).group(1) for line in kept}
    games = [line for line in gzip.open(args.raw_dir / "steam_games.json.gz", "rt").read().splitlines() if str(ast.literal_eval(line).get("id")) in products]
    OUT.mkdir(parents=True, exist_ok=True)
    for name, lines in (("reviews_v2_windows.json.gz", kept), ("steam_games.json.gz", games)):
        # mtime=0 keeps the gzip bytes reproducible.
        with open(OUT / name, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as handle:
            handle.write(("\n".join(lines) + "\n").encode())
    print(f"{len(kept)} reviews of {len(chosen)} users, {len(games)} games -> {OUT}")


if __name__ == "__main__":
    main()
