"""Generate a Steam v2 reviews file at the size of the original release, for the pipeline benchmark.

    python bench/make_steam_v2.py --raw-dir ../shared/data/steam --out bench/data/steam-7.8m

The original `steam_reviews.json.gz` (1.3 GB) cannot be had here, so this writes
a file in its line format (Python dict literals with all of its fields, short
texts) with its size: 7,793,069 reviews by 2,567,538 users of 15,474 games,
user and item activity drawn from Zipf laws (exponent 1.1 and 0.9) so a few
users and games have most reviews, as in the original. Game ids are real ids of
`steam_games.json.gz`, which is copied beside it. Seeded, so reruns are equal.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import itertools
import random
import shutil
from pathlib import Path

import polars as pl

REVIEWS, USERS, GAMES = 7_793_069, 2_567_538, 15_474
WORDS = "great game fun bad worth money story boring recommend buy graphics".split()


def zipf_draws(rng: random.Random, population: int, exponent: float, k: int) -> list[int]:
    weights = itertools.accumulate(1 / (rank**exponent) for rank in range(1, population + 1))
    return rng.choices(range(population), cum_weights=list(weights), k=k)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-dir", type=Path, required=True, help="folder with the real steam_games.json.gz")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--reviews", type=int, default=REVIEWS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    game_ids = []
    with gzip.open(args.raw_dir / "steam_games.json.gz", "rt") as handle:
        for line in handle:
            game = ast.literal_eval(line)
            if game.get("id") and game.get("title"):
                game_ids.append(str(game["id"]))
    game_ids = rng.sample(sorted(set(game_ids)), GAMES)
    users = [f"user{n:07d}" for n in range(USERS)]
    for n in range(0, USERS, 997):  # a few names that repr() writes in double quotes
        users[n] = f"O'Player {n}"
    user_ids = rng.sample(users, USERS)  # rank -> name, so activity is not ordered by name

    n = args.reviews
    frame = pl.DataFrame(
        {
            "user": [user_ids[i] for i in zipf_draws(rng, USERS, 1.1, n)],
            "game": [game_ids[i] for i in zipf_draws(rng, GAMES, 0.9, n)],
            "day": [rng.randrange(2_650) for _ in range(n)],  # 2010-10-15 .. 2018-01-05
            "hours": [round(rng.expovariate(0.05), 1) for _ in range(n)],
            "text": [" ".join(rng.choices(WORDS, k=rng.randint(2, 8))) for _ in range(n)],
        }
    )
    quoted_user = pl.when(pl.col("user").str.contains("'")).then(pl.concat_str(pl.lit('"'), "user", pl.lit('"'))).otherwise(pl.concat_str(pl.lit("'"), "user", pl.lit("'")))
    date = (pl.date(2010, 10, 15) + pl.duration(days=pl.col("day"))).dt.strftime("%Y-%m-%d")
    lines = frame.select(
        pl.concat_str(
            pl.lit("{'username': "),
            quoted_user,
            pl.lit(", 'hours': "),
            pl.col("hours").cast(pl.String),
            pl.lit(", 'products': "),
            (pl.col("day") % 300 + 1).cast(pl.String),
            pl.lit(", 'product_id': '"),
            "game",
            pl.lit("', 'page_order': "),
            (pl.col("day") % 10).cast(pl.String),
            pl.lit(", 'date': '"),
            date,
            pl.lit("', 'text': '"),
            "text",
            pl.lit("', 'early_access': False, 'page': "),
            (pl.col("day") % 50 + 1).cast(pl.String),
            pl.lit("}"),
        )
    ).to_series()

    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "steam_reviews.json.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="", compresslevel=3) as handle:
        for start in range(0, n, 500_000):
            handle.write(("\n".join(lines.slice(start, 500_000).to_list()) + "\n").encode())
    shutil.copyfile(args.raw_dir / "steam_games.json.gz", args.out / "steam_games.json.gz")
    print(f"{n:,} reviews -> {args.out}")


if __name__ == "__main__":
    main()
