"""Teacher benchmark: SASRec training time per epoch and ranking throughput on a build.

    datagen build steam --raw-dir ../shared/data/steam --no-teacher --out build/steam
    python bench/bench_teacher.py build/steam                  # CPU (all cores; ours have 2)
    python bench/bench_teacher.py build/steam --device cuda    # on a GPU machine

Training: `--epochs` epochs with the default settings (the first is reported
apart: it includes warm-up). Ranking: every user's test-split request, top 10,
answered by `TeacherRanker` with no cache, in three shapes (no filter; +C, one
category; -C plus 2 query items), timed after one warm-up batch. Prints a
Markdown table and writes bench/results/teacher-<build>-<device>.json.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import polars as pl
import torch

from recording import save_result  # bench/recording.py (the script's folder is on sys.path)
from datagen.buildfolder import BuildFolder
from datagen.teacher.checkpoint import Teacher
from datagen.teacher.folder import TeacherSettings
from datagen.teacher.ranking import TeacherRanker
from datagen.teacher.train import TrainConfig, resolve_device, train_sasrec

def most_common_category(folder: BuildFolder) -> str:
    return folder.items["categories"].explode().drop_nulls().value_counts(sort=True)["categories"][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512, help="ranking batch size")
    args = parser.parse_args()

    folder = BuildFolder.open(args.build_dir)
    device = resolve_device(args.device)
    settings = TeacherSettings(train=TrainConfig(epochs=args.epochs, patience=args.epochs, device=str(device)))
    result = train_sasrec(folder.sequences, settings.model_config(folder), settings.train)
    epoch_seconds = [entry["seconds"] for entry in result.epochs]
    teacher = Teacher(result.model, folder.data_version, settings.train.as_dict(), {}, "bench")
    ranker = TeacherRanker(teacher, folder.items, cache_dir=None, batch_size=args.batch_size)

    sequences = folder.sequences
    history = sequences.select(pl.concat_list("train_item_ids", "valid_item_id"))["train_item_ids"]
    category = most_common_category(folder)
    shapes = {
        "top 10, no filter": pl.DataFrame({"history": history}),
        f"top 10, +C ({category})": pl.DataFrame({"history": history, "include_categories": [[category]] * len(history)}),
        f"top 10, -C ({category}), 2 query ranks": pl.DataFrame(
            {
                "history": history,
                "exclude_categories": [[category]] * len(history),
                "query_items": sequences.select(pl.concat_list("valid_item_id", "test_item_id"))["valid_item_id"],
            }
        ),
    }
    ranking = {}
    for name, requests in shapes.items():
        ranker.rank(requests.head(args.batch_size), top_n=10)  # warm-up
        started = time.perf_counter()
        ranker.rank(requests, top_n=10)
        seconds = time.perf_counter() - started
        ranking[name] = {"requests": requests.height, "seconds": round(seconds, 3), "per_second": round(requests.height / seconds)}

    record = {
        "build": folder.name,
        "users": sequences.height,
        "items": folder.n_items,
        "training_pairs": int(sum(max(n - 1, 0) for n in sequences["train_item_ids"].list.len().to_list())),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "model": settings.model_config(folder).as_dict(),
        "train_batch_size": settings.train.batch_size,
        "first_epoch_seconds": epoch_seconds[0],
        "later_epoch_seconds": round(sum(epoch_seconds[1:]) / max(len(epoch_seconds) - 1, 1), 2),
        "ranking": ranking,
    }
    out = save_result(f"teacher-{folder.name}-{device.type}", record)
    print(f"| {folder.name} | {device} ({record['torch_threads']} threads) | {record['training_pairs']:,} pairs | "
          f"epoch 1: {record['first_epoch_seconds']} s, later: {record['later_epoch_seconds']} s |")
    for name, row in ranking.items():
        print(f"| ranking | {name} | {row['requests']:,} requests | {row['per_second']:,}/s |")
    print(f"-> {out}")


if __name__ == "__main__":
    main()
