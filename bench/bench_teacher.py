"""Teacher benchmark: time and memory per epoch of each objective, quality per catalog, ranking throughput.

    datagen build table:examples/amazon-games-sasrec.yaml --raw-dir ../shared/data/catalogs/amazon-games-sasrec --no-controllable
    python bench/bench_teacher.py epochs build/amazon-games-sasrec          # seconds and peak memory per epoch
    python bench/bench_teacher.py synthetic --items 500000                  # memory on a SYNTHETIC 500k-item catalog
    python bench/bench_teacher.py quality build/amazon-games-sasrec build/steam build/scientific build/amazon-Gift_Cards
    python bench/bench_teacher.py ranking build/steam                       # TeacherRanker requests per second

`epochs`: one fresh process per objective (so each peak RSS is its own) trains
`--epochs` epochs with the teacher's default settings and that objective, in
the same run as the yardstick: the paper's own step (Kang & McAuley 2018:
binary cross-entropy with one uniform negative per position, hidden 50, one
head, history 50, dropout 0.5, batch 128).

`synthetic`: a SYNTHETIC catalog (Zipf item popularity, seeded; not real
data) with `--items` items, to show that the sampled objectives' memory is
bounded in the number of items while the full softmax's grows with
positions x items. Each objective trains `--batches` batches in its own process.

`quality`: for each build, each objective with the default settings (early
stopping included), then HR@10 and NDCG@10 on the test split, full ranking and
1 target + 100 uniform negatives, beside most-popular and co-occurrence, with
training time. Results go to bench/results/teacher-*.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from recording import peak_rss_gib, save_result  # bench/recording.py (the script's folder is on sys.path)

from datagen.buildfolder import BuildFolder
from datagen.teacher.checkpoint import Teacher
from datagen.teacher.evaluate import evaluate
from datagen.teacher.folder import COOCCURRENCE_WINDOW
from datagen.teacher.objectives import TrainingObjective
from datagen.teacher.ranking import TeacherRanker
from datagen.teacher.sasrec import SASRec
from datagen.teacher.scorers import Cooccurrence, MostPopular, SASRecScorer, train_popularity
from datagen.teacher.settings import SASRecConfig, TeacherSettings, TrainConfig
from datagen.teacher.tensors import PAD, training_windows
from datagen.teacher.train import length_batches, resolve_device, train_sasrec

OBJECTIVES = ("softmax", "sampled-softmax", "bce")
PAPER = "paper (bce, d50, L50)"


def settings_for(name: str, epochs: int | None, device: str) -> TeacherSettings:
    """The teacher's defaults with one objective, or the paper's own configuration."""
    defaults = TeacherSettings()
    train = TrainConfig(device=device)
    if epochs is not None:
        train = TrainConfig(epochs=epochs, patience=epochs, validate_every=epochs, device=device)
    if name == PAPER:
        train.objective, train.learning_rate, train.lr_decay, train.average_epochs = "bce", 1e-3, 1.0, 0.0
        return TeacherSettings(max_history=50, dim=50, inner_dim=50, heads=1, dropout=0.5, train=train)
    train.objective = name
    defaults.train = train
    return defaults


def one_objective(build_dir: Path, name: str, epochs: int, device: str) -> dict:
    folder = BuildFolder.open(build_dir)
    settings = settings_for(name, epochs, device)
    started = time.process_time()
    result = train_sasrec(folder.sequences, settings.model_config(folder), settings.train)
    seconds = [entry["seconds"] for entry in result.epochs]
    return {
        "objective": name,
        "epoch_seconds": seconds,
        "mean_epoch_seconds": round(sum(seconds) / len(seconds), 2),
        "cpu_seconds_per_epoch": round((time.process_time() - started) / len(seconds), 2),
        "peak_rss_gib": peak_rss_gib(),
        "model": settings.model_config(folder).as_dict(),
        "batch_size": settings.train.batch_size,
        "negatives": settings.train.negatives,
    }


def synthetic_sequences(items: int, users: int, seed: int = 0) -> pl.Series:
    """SYNTHETIC train lists: lengths 3..50 (geometric), items drawn from a Zipf(1.0) popularity over `items`."""
    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.geometric(1 / 9, size=users) + 2, 3, 50)
    weights = 1.0 / np.arange(1, items + 1)
    flat = rng.choice(items, size=int(lengths.sum()), p=weights / weights.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return pl.Series("train_item_ids", [flat[offsets[i] : offsets[i + 1]].tolist() for i in range(users)])


def one_synthetic(items: int, users: int, name: str, batches: int) -> dict:
    lists = synthetic_sequences(items, users)
    settings = settings_for(name, 1, "cpu")
    model = SASRec(SASRecConfig(n_items=items, max_history=settings.max_history, dim=settings.dim, inner_dim=settings.inner_dim, heads=settings.heads, dropout=settings.dropout))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    inputs, targets = training_windows(lists, settings.max_history)
    lengths = (targets != PAD).sum(1)
    objective = TrainingObjective(name if name != PAPER else "bce", train_popularity(lists, items), settings.train.negatives, torch.Generator().manual_seed(0))
    started = time.perf_counter()
    done = 0
    for batch in length_batches(lengths, settings.train.batch_size, torch.Generator().manual_seed(0))[:batches]:
        width = int(lengths[batch].max())
        loss = objective(model, model.hidden_states(inputs[batch, -width:]), targets[batch, -width:]) / int(lengths[batch].sum())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        done += 1
    return {"objective": name, "items": items, "users": users, "batches": done,
            "seconds_per_batch": round((time.perf_counter() - started) / done, 3), "peak_rss_gib": peak_rss_gib()}  # fmt: skip


def in_child(arguments: list[str]) -> dict:
    """Run this script's `--child` mode in a fresh process, so that its peak memory is its own."""
    output = subprocess.run([sys.executable, __file__, *arguments, "--child"], check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def quality(build_dir: Path, device: str, objectives: tuple[str, ...]) -> dict:
    folder = BuildFolder.open(build_dir)
    train_lists = folder.sequences["train_item_ids"]
    popularity = train_popularity(train_lists, folder.n_items)
    rows = {}
    scorers = {}
    for name in objectives:
        settings = settings_for(name, None, device)
        started = time.perf_counter()
        result = train_sasrec(folder.sequences, settings.model_config(folder), settings.train)
        seconds = round(time.perf_counter() - started, 1)
        scorers[name] = SASRecScorer(result.model)
        rows[name] = {"train_seconds": seconds, "epochs": len(result.epochs), "best_epoch": result.best_epoch}
        print(f"  {folder.name}: {name} trained in {seconds} s ({len(result.epochs)} epochs)", file=sys.stderr, flush=True)
    scorers[MostPopular.name] = MostPopular(popularity)
    scorers[Cooccurrence.name] = Cooccurrence(train_lists, folder.n_items, COOCCURRENCE_WINDOW, popularity)
    report = evaluate(scorers, folder.sequences, folder.n_items, TeacherSettings().max_history, popularity, ks=(10,), negatives=100, samplings=("uniform",))
    for name in scorers:
        rows.setdefault(name, {"train_seconds": 0.0})
        for protocol in ("full", "sampled-uniform"):
            for metric, value in report[protocol]["test"][name].items():
                rows[name][f"{protocol} {metric}"] = value
    return {"build": folder.name, "users": folder.sequences.height, "items": folder.n_items, "models": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("epochs", "synthetic", "quality", "ranking"))
    parser.add_argument("builds", nargs="*", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--epochs", type=int, default=2, help="epochs: epochs per objective")
    parser.add_argument("--items", type=int, default=500_000, help="synthetic: catalog size")
    parser.add_argument("--users", type=int, default=100_000, help="synthetic: users")
    parser.add_argument("--batches", type=int, default=30, help="synthetic: batches per objective")
    parser.add_argument("--objectives", nargs="+", choices=OBJECTIVES, default=list(OBJECTIVES), help="quality: the objectives to train")
    parser.add_argument("--objective", help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    device = str(resolve_device(args.device))
    machine = {"device": device, "processor": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__}

    if args.child:
        if args.mode == "epochs":
            print(json.dumps(one_objective(args.builds[0], args.objective, args.epochs, device)))
        else:
            print(json.dumps(one_synthetic(args.items, args.users, args.objective, args.batches)))
        return
    if args.mode == "epochs":
        for build_dir in args.builds:
            rows = [in_child(["epochs", str(build_dir), "--objective", name, "--epochs", str(args.epochs), "--device", device]) for name in (*OBJECTIVES, PAPER)]
            paper = rows[-1]
            print(f"\n{build_dir}: seconds and peak memory per epoch ({args.epochs} epochs each), against the paper's step\n")
            print("| objective | s / epoch | CPU s / epoch | x paper | peak RSS GiB |\n|---|---:|---:|---:|---:|")
            for row in rows:
                print(f"| {row['objective']} | {row['mean_epoch_seconds']} | {row['cpu_seconds_per_epoch']} | "
                      f"{row['mean_epoch_seconds'] / paper['mean_epoch_seconds']:.2f} | {row['peak_rss_gib']} |")  # fmt: skip
            print(f"-> {save_result(f'teacher-epochs-{BuildFolder.open(build_dir).name}-{device}', {'machine': machine, 'rows': rows})}")
    elif args.mode == "synthetic":
        rows = []
        for items in (args.items // 10, args.items):
            for name in (*OBJECTIVES, PAPER):
                if name == "softmax" and items * 128 * 50 * 4 * 3 > 8 * 2**30:
                    rows.append({"objective": name, "items": items, "skipped": "its [positions, items] logits would need over 8 GiB"})
                    continue
                rows.append(in_child(["synthetic", "--items", str(items), "--users", str(args.users), "--objective", name, "--batches", str(args.batches)]))
        print(f"\nSYNTHETIC catalogs (Zipf popularity, {args.users:,} users): peak memory per objective\n")
        print("| items | objective | s / batch | peak RSS GiB |\n|---:|---|---:|---:|")
        for row in rows:
            print(f"| {row['items']:,} | {row['objective']} | {row.get('seconds_per_batch', '-')} | {row.get('peak_rss_gib', row.get('skipped'))} |")
        print(f"-> {save_result(f'teacher-synthetic-{args.items}-{device}', {'machine': machine, 'synthetic': True, 'rows': rows})}")
    elif args.mode == "quality":
        results = []
        for build_dir in args.builds:
            results.append(quality(build_dir, device, tuple(args.objectives)))
            print(f"\n{results[-1]['build']} ({results[-1]['users']:,} users, {results[-1]['items']:,} items), test split\n")
            print("| model | train s | epochs | full HR@10 | full NDCG@10 | sampled-100 HR@10 | sampled-100 NDCG@10 |\n|---|---:|---:|---:|---:|---:|---:|")
            for name, row in results[-1]["models"].items():
                print(f"| {name} | {row['train_seconds']} | {row.get('epochs', '-')} | {row['full HR@10']:.4f} | {row['full NDCG@10']:.4f} | "
                      f"{row['sampled-uniform HR@10']:.4f} | {row['sampled-uniform NDCG@10']:.4f} |", flush=True)  # fmt: skip
        names = "-".join(result["build"] for result in results)
        print(f"-> {save_result(f'teacher-quality-{names}-{device}', {'machine': machine, 'results': results})}")
    else:
        for build_dir in args.builds:
            ranking(build_dir, device, machine)


def ranking(build_dir: Path, device: str, machine: dict) -> None:
    """Every user's test-split request, top 10, no cache, in three shapes, timed after a warm-up batch."""
    folder = BuildFolder.open(build_dir)
    settings = TeacherSettings(train=TrainConfig(epochs=1, device=device))
    model = train_sasrec(folder.sequences, settings.model_config(folder), settings.train).model
    ranker = TeacherRanker(Teacher(model, folder.data_version, settings.train.as_dict(), {}, "bench"), folder.items, cache_dir=None)
    history = folder.sequences.select(pl.concat_list("train_item_ids", "valid_item_id"))["train_item_ids"]
    shapes = {"top 10, no filter": pl.DataFrame({"history": history})}
    categories = folder.items["categories"].explode().drop_nulls()
    if categories.len():
        category = categories.value_counts(sort=True)["categories"][0]
        shapes[f"top 10, +C ({category})"] = pl.DataFrame({"history": history, "include_categories": [[category]] * len(history)})
    rows = {}
    for name, requests in shapes.items():
        ranker.rank(requests.head(512), top_n=10)
        started = time.perf_counter()
        ranker.rank(requests, top_n=10)
        seconds = time.perf_counter() - started
        rows[name] = {"requests": requests.height, "per_second": round(requests.height / seconds)}
        print(f"| {folder.name} | ranking | {name} | {requests.height:,} requests | {rows[name]['per_second']:,}/s |")
    print(f"-> {save_result(f'teacher-ranking-{folder.name}-{device}', {'machine': machine, 'ranking': rows})}")


if __name__ == "__main__":
    main()
