"""RecBole 1.2.1's SASRec (or any of its sequential models) on a build exported by `datagen export recbole`, scored
as datagen's teacher report scores its teacher: full ranking of every item the user has not interacted with, the
same users, items and leave-one-out test items. The yardstick beside it is the build's own teacher/report.json.

    datagen export recbole build/steam-sample --out export
    pip install recbole==1.2.1 'pandas<3'
    python bench/recbole_baseline.py export/steam-sample --build build/steam-sample --epochs 40

RecBole 1.2.1 predates NumPy 2, pandas 3 and PyTorch 2.6 (docs/publishing.md, "RecBole 1.2.1 on this stack"):
NumPy's removed aliases are set back before it is imported, and its own checkpoint (which holds its config
object, not only weights) is reloaded with `weights_only=False` through TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD; the
checkpoint is the one this run wrote. The result goes to bench/results/recbole-<model>-<name>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from recording import save_result  # bench/recording.py (the script's folder is on sys.path)

TEACHER_ROWS = ("SASRec", "most-popular", "co-occurrence")


def teacher_test_rows(build: Path, k: int) -> dict[str, dict[str, float]]:
    """HR@k and NDCG@k on the test split, full ranking, of each model in the build's teacher report."""
    report = json.loads((build / "teacher" / "report.json").read_text())
    test = report["evaluation"]["full"]["test"]
    return {model: {f"hit@{k}": test[model][f"HR@{k}"], f"ndcg@{k}": test[model][f"NDCG@{k}"]} for model in TEACHER_ROWS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="the folder `datagen export recbole` wrote: DIR/NAME")
    parser.add_argument("--build", type=Path, required=True, help="the exported build, for its teacher's report")
    parser.add_argument("--model", default="SASRec")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--patience", type=int, default=3, help="RecBole's stopping_step: validations without a gain")
    parser.add_argument("--seed", type=int, default=2020)
    args = parser.parse_args()

    np.float_, np.complex_, np.unicode_ = np.float64, np.complex128, np.str_
    os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"
    from recbole.quick_start import run_recbole

    export, build = args.export.resolve(), args.build.resolve()
    name = export.name
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        os.chdir(scratch)  # RecBole writes its log/ and log_tensorboard/ into the working folder
        result = run_recbole(
            model=args.model,
            dataset=name,
            config_file_list=[str(export / f"{name}.yaml")],
            config_dict={
                "data_path": str(export.parent),
                "checkpoint_dir": scratch,
                "loss_type": "CE",
                "train_neg_sample_args": None,
                "eval_args": {"mode": "full", "order": "TO", "group_by": "user"},
                "metrics": ["Hit", "NDCG"],
                "topk": [5, 10],
                "valid_metric": "NDCG@10",
                "epochs": args.epochs,
                "stopping_step": args.patience,
                "seed": args.seed,
                "show_progress": False,
            },
        )
    seconds = time.perf_counter() - started
    test = {key: float(value) for key, value in result["test_result"].items()}
    yardstick = teacher_test_rows(build, 10)
    print(f"\n| model | HR@10 | NDCG@10 |\n|---|---:|---:|\n| RecBole {args.model} | {test['hit@10']:.4f} | {test['ndcg@10']:.4f} |")
    for model, metrics in yardstick.items():
        print(f"| datagen {model} | {metrics['hit@10']:.4f} | {metrics['ndcg@10']:.4f} |")
    save_result(
        f"recbole-{args.model.lower()}-{name}",
        {
            "export": str(args.export),
            "build": str(args.build),
            "model": args.model,
            "epochs": args.epochs,
            "patience": args.patience,
            "seed": args.seed,
            "seconds": round(seconds, 1),
            "best_validation": {key: float(value) for key, value in result["best_valid_result"].items()},
            "test": test,
            "teacher_report_test": yardstick,
            "machine": platform.processor() or platform.machine(),
        },
    )


if __name__ == "__main__":
    main()
