"""The controllable dataset generated from a real build (the shipped Steam sample and its SASRec teacher)."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from datagen.buildfolder import BuildFolder
from datagen.cli import main
from datagen.controllable.build import ControllableSettings, generate_controllable, load_library, sample_points
from datagen.controllable.chat import load_sharegpt
from datagen.controllable.tasks import TASKS, Context, HeadExhausted, generate
from datagen.errors import DataError
from datagen.publish.release import finalize
from datagen.scoring.answers import TitleIndex, parse_answer
from datagen.scoring.catalog import Catalog
from datagen.teacher.ranking import TeacherRanker

FIXTURES = Path(__file__).parent / "fixtures"
CHAT = FIXTURES / "docs_chat.json"


def test_every_label_check_passes_on_a_real_build(sample_generated):
    folder, report, splits = sample_generated
    assert report["label_check_failures"] == []
    checks = report["label_checks"]
    for tasks in checks.values():
        for values in tasks.values():
            assert values["correct_count"] == 1.0 and values["repeat_item"] == 0.0
            assert values["non_exist"] == 0.0 and values["in_history"] == 0.0
            if values["hr_where_target_in_label"] is not None:
                assert values["hr_where_target_in_label"] == 1.0
    assert checks["test"]["i1_pos"]["tcp"] == 1.0 and checks["test"]["i1_neg"]["tcp"] == 0.0
    assert all(checks[s][t]["cpa"] == 1.0 for s in checks for t in checks[s] if t.startswith("i2"))
    assert "Failures: none" in (folder.path / "reports" / "controllable.md").read_text()


def test_splits_follow_section_3_1_1(sample_generated):
    folder, report, splits = sample_generated
    users = folder.sequences.height
    assert report["rows"]["validation"] == {"i0": 320, "i1_pos": 320, "i1_neg": 320, "i2_approx": 320}
    valid = splits["validation"]
    assert valid.group_by("task").agg(pl.col("user_id").n_unique())["user_id"].to_list() == [320] * 4
    assert valid["user_id"].n_unique() == 4 * 320  # each validation task has its own users
    test = splits["test"]
    assert set(report["rows"]["test"]) == {"i0", "i1_pos", "i1_neg", "i2_le", "i2_approx", "i2_ge", "item_count", "i1_pos_neg", "i2_le_neg"}
    assert report["rows"]["test"]["i0"] == report["rows"]["test"]["item_count"] == users
    assert test.group_by("task").agg(pl.col("user_id").n_unique() == pl.len())["user_id"].all()
    assert test.filter(pl.col("task") != "item_count")["k"].unique().to_list() == [10]
    assert set(test.filter(pl.col("task") == "item_count")["k"].unique().to_list()) == set(range(11, 16))
    proportions = test.filter(pl.col("family") == "i2").group_by("task").agg(pl.col("proportion").unique())
    assert dict(proportions.iter_rows()) == {"i2_le": [20], "i2_approx": [30], "i2_ge": [30]}
    targets = dict(zip(folder.sequences["user_id"], folder.sequences["test_item_id"]))
    assert all(targets[u] == t for u, t in test.select("user_id", "target_item_id").iter_rows())
    dropped = sum(d["count"] for d in report["dropped"] if d["split"] == "test")
    assert test.height + dropped == 9 * users


def test_train_rows_cover_every_task_and_mix_in_chat(sample_generated):
    folder, report, splits = sample_generated
    train = splits["train"]
    rows = report["rows"]["train"]
    assert {"i0", "i1_pos", "i1_neg", "i2_le", "i2_ge", "i2_approx", "i3_pos", "i3_neg", "i4_chat"} == set(rows)
    others = sum(n for task, n in rows.items() if task != "i4_chat")
    assert rows["i4_chat"] == round(0.5 * others)
    assert set(train["k"].drop_nulls().unique().to_list()) == set(range(1, 11))
    chat = train.filter(pl.col("task") == "i4_chat")
    assert chat["label_item_ids"].is_null().all()
    assert all(m[-1]["role"] == "assistant" and p == m[:-1] for m, p in zip(chat["messages"].to_list(), chat["prompt"].to_list()))
    assert report["chat"]["conversations"] == 10
    candidates = train.filter(pl.col("candidate_item_ids").is_not_null())
    assert 0.3 < candidates.height / train.filter(pl.col("family").is_in(["i0", "i1", "i3"])).height < 0.7


def test_rows_hold_the_facts_their_text_shows(sample_generated):
    folder, _, splits = sample_generated
    catalog = Catalog(folder.items)
    index = TitleIndex(catalog.titles, fuzzy_threshold=None)
    sequences = {u: items for u, items in folder.sequences.select("user_id", "item_ids").iter_rows()}
    for frame in splits.values():
        for row in frame.filter(pl.col("family") != "i4").iter_rows(named=True):
            answer = row["completion"][0]["content"]
            assert parse_answer(answer, index) == row["label_item_ids"]
            assert answer.startswith("1. ") and f"{row['k']}. " in answer
            user_text = row["prompt"][1]["content"]
            assert f"with {row['k']} different items" in user_text
            if row["proportion"] is not None:
                assert f"{row['proportion']}%" in user_text and "00%" not in user_text.replace("100%", "")
            if row["target_category"] is not None:
                assert f"'{row['target_category']}'" in user_text
            if row["candidate_item_ids"] is not None:
                assert set(row["label_item_ids"]) < set(row["candidate_item_ids"])
                assert len(set(row["candidate_item_ids"])) == len(row["candidate_item_ids"])
            if row["user_id"] is not None:
                seen = set(sequences[row["user_id"]][: sequences[row["user_id"]].index(row["target_item_id"])])
                assert not seen & set(row["label_item_ids"]) and not seen & set(row["candidate_item_ids"] or [])
                assert row["history_item_ids"] == sequences[row["user_id"]][: len(seen)][-10:]
                assert all(catalog.titles[i] in user_text for i in row["history_item_ids"])
                assert row["messages"] == row["prompt"] + row["completion"]


def test_generators_are_pure_functions_of_user_seed_and_teacher(sample_teacher):
    folder, teacher = sample_teacher
    context = Context(Catalog(folder.items), load_library(), folder.max_history)
    planned, _ = sample_points(folder.sequences, ControllableSettings(seed=3), dropped=Counter())
    point, jobs = next(p for p in planned if p[0].split == "test" and p[0].user_id == 5)
    order, allowed = TeacherRanker(teacher, folder.items).full_orders([point.prefix])
    ranking = order[0, : allowed[0]]
    assert not set(point.prefix) & set(ranking.tolist())
    for job in jobs:
        first, second = generate(job, point, ranking, 3, context), generate(job, point, ranking.copy(), 3, context)
        assert first == second
    other = [generate(job, point, ranking, 4, context) for job in jobs]
    assert any(a != b for a, b in zip([generate(job, point, ranking, 3, context) for job in jobs], other))


def test_a_sample_from_the_rankings_head_is_the_sample_from_the_whole_ranking(sample_teacher):
    """Labels from the best 20 items (sorted by top-k) equal those from the full sort; when a label needs more
    (a rare category), generate says so and the whole ranking answers."""
    folder, teacher = sample_teacher
    context = Context(Catalog(folder.items), load_library(), folder.max_history)
    planned, _ = sample_points(folder.sequences, ControllableSettings(seed=3), dropped=Counter())
    chosen = planned[::25]
    ranker = TeacherRanker(teacher, folder.items)
    orders, allowed_counts = ranker.full_orders([point.prefix for point, _ in chosen])
    heads, head_allowed, _ = ranker.best_first([point.prefix for point, _ in chosen], 20)
    assert head_allowed.tolist() == allowed_counts.tolist()
    exhausted = 0
    for (point, jobs), order, allowed, head in zip(chosen, orders, allowed_counts, heads):
        ranking = order[:allowed]
        assert head.tolist() == ranking[:20].tolist()
        for job in jobs:
            try:
                from_head = generate(job, point, head, 3, context, allowed=int(allowed))
            except HeadExhausted:
                exhausted += 1
                continue
            assert from_head == generate(job, point, ranking, 3, context)
    assert 0 < exhausted < sum(len(jobs) for _, jobs in chosen) / 2


def test_the_same_seed_gives_byte_identical_files(sample_generated, tmp_path):
    folder, _, _ = sample_generated
    copy = tmp_path / "copy"
    shutil.copytree(folder.path, copy)
    generate_controllable(BuildFolder.open(copy), ControllableSettings(seed=42, chat=str(CHAT)))
    for path in (folder.path / "data" / "controllable").glob("*.parquet"):
        assert (copy / "data" / "controllable" / path.name).read_bytes() == path.read_bytes(), path.name


def test_render_prints_real_samples_with_their_facts(sample_generated):
    folder, _, _ = sample_generated
    result = CliRunner().invoke(main, ["render", str(folder.path), "--task", "i2", "--n", "3", "--split", "test"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert result.output.count("proportion") >= 6 and result.output.count("assistant:") == 3
    assert "teacher's top items" in result.output and "1. " in result.output
    as_json = CliRunner().invoke(main, ["render", str(folder.path), "--task", "i1_neg", "--n", "2", "--json"])
    rows = [json.loads(line) for line in as_json.output.splitlines()]
    assert [row["task"] for row in rows] == ["i1_neg", "i1_neg"]
    missing = CliRunner().invoke(main, ["render", str(folder.path), "--task", "i9"])
    assert missing.exit_code == 1 and "no train rows of task 'i9'" in missing.output


def test_bad_chat_files_are_clear_errors(tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"conversations": []}\n{not json\n')
    with pytest.raises(DataError, match=r"broken.jsonl:2: not JSON"):
        load_sharegpt(broken)
    mixed = tmp_path / "mixed.json"
    good = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]
    mixed.write_text(json.dumps([{"conversations": good}, {"conversations": [{"from": "gpt", "value": "only me"}]}, {"x": 1}]))
    conversations, dropped = load_sharegpt(mixed)
    assert conversations == [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]]
    assert dropped == {"no assistant answer": 1, "no conversations list": 1}
    with pytest.raises(DataError, match="chat file not found"):
        load_sharegpt(tmp_path / "nosuch.json")


def test_the_chat_file_is_read_before_generation(sample_teacher, tmp_path):
    folder, _ = sample_teacher
    copy = tmp_path / folder.path.name
    shutil.copytree(folder.path, copy)
    finalize(copy)  # the fixture's teacher was trained below the CLI, which seals
    manifest = (copy / "manifest.json").read_bytes()
    missing = CliRunner().invoke(main, ["generate", str(copy), "--chat", str(tmp_path / "nosuch.json")])
    assert missing.exit_code == 1 and "chat file not found" in missing.output
    assert "Generating" not in missing.output
    assert (copy / "manifest.json").read_bytes() == manifest
    result = CliRunner().invoke(main, ["generate", str(copy), "--chat", str(CHAT), "--chat-ratio", "0.0005"])
    assert result.exit_code == 0 and "Generating" in result.output, result.output
    report = json.loads((copy / "reports" / "controllable.json").read_text())
    assert report["chat"]["conversations"] == 10 and 0 < report["chat"]["rows"] <= 10
    assert "NOTE: I4" not in result.output, "no conversation is used twice"
    assert [entry["file"] for entry in report["inputs"]] == [CHAT.name], "the chat file is an input of the build"


def test_a_hub_chat_dataset_offline_fails_with_a_clear_message(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # Both libraries read the variable at import, and other tests may have imported them already.
    for module in ("datasets.config", "huggingface_hub.constants"):
        monkeypatch.setattr(f"{module}.HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="Hub"):
        load_sharegpt("anon8231489123/ShareGPT_Vicuna_unfiltered")


def test_tasks_that_made_no_rows_are_listed_with_their_reasons_and_chat_reuse_announced(shared_data, tmp_path):
    """Amazon Gift Cards has too few categories for the exclusion tasks: they stay in the printed table, and a line
    each says why they are empty (they used to vanish from it). Its I4 rows outnumber the 10 chat conversations."""
    out = tmp_path / "gift"
    arguments = ["build", "amazon:Gift_Cards", "--raw-dir", str(shared_data / "amazon"), "--out", str(out), "--teacher-epochs", "2", "--chat", str(CHAT)]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    chat = json.loads((out / "reports" / "controllable.json").read_text())["chat"]
    times = -(-chat["rows"] // 10)
    assert times > 1 and f"{chat['rows']:,} train rows (--chat-ratio 0.5) from 10 conversations: each is used up to {times} times" in " ".join(result.output.split())
    rows = json.loads((out / "reports" / "controllable.json").read_text())["rows"]
    empty = [task for task in TASKS if not any(rows[split].get(task) for split in rows)]
    assert empty  # the point of this catalog
    first_cells = [line.split("│")[1].strip() for line in result.output.splitlines() if line.startswith("│")]
    for task in empty:
        assert task in first_cells
        (line,) = [line for line in result.output.splitlines() if line.startswith(f"no {task} rows: ")]
        assert re.search(r"\(\d[\d,]*\)$", line), line
