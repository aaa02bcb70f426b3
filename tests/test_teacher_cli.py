"""`datagen build` with its teacher and controllable dataset, and `datagen teacher train|eval|rank`, on the shipped sample."""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest
from click.testing import CliRunner

from datagen.cli import main
from datagen.sources.steam import SAMPLE_DIR

pytestmark = pytest.mark.integration  # builds, trains and runs the CLI in subprocesses

SAMPLE = str(SAMPLE_DIR)  # explicit, so that $DATAGEN_DATA cannot swap in the real files


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """`datagen build steam` (the shipped sample) with a 2-epoch teacher."""
    cwd = tmp_path_factory.mktemp("cli")
    runner = CliRunner()
    result = runner.invoke(main, ["build", "steam", "--raw-dir", SAMPLE, "--teacher-epochs", "2", "-q", "--out", f"{cwd}/b"])
    assert result.exit_code == 0, result.output
    return runner, cwd


def test_build_trains_the_teacher_then_reuses_it(built):
    runner, cwd = built
    teacher = f"{cwd}/b/teacher"
    report = json.loads(open(f"{teacher}/report.json").read())
    assert report["data_version"] == json.loads(open(f"{cwd}/b/manifest.json").read())["data_version"]
    assert len(report["training"]["epochs"]) == 2
    again = runner.invoke(main, ["build", "steam", "--raw-dir", SAMPLE, "--teacher-epochs", "2", "--out", f"{cwd}/b"])
    assert again.exit_code == 0, again.output
    assert "Reused the SASRec teacher" in again.output
    assert "Label checks passed" in again.output
    assert sorted(p.name for p in (cwd / "b" / "data" / "controllable").iterdir()) == [
        "test-00000-of-00001.parquet", "train-00000-of-00001.parquet", "validation-00000-of-00001.parquet",
    ]  # fmt: skip
    assert json.loads(open(f"{teacher}/report.json").read())["checkpoint_sha256"] == report["checkpoint_sha256"]


def test_eval_prints_every_model_and_protocol(built):
    runner, cwd = built
    result = runner.invoke(main, ["teacher", "eval", f"{cwd}/b", "--json", "--negatives", "50", "--k", "10", "--k", "1"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report) == {"full", "sampled-uniform", "sampled-popularity"}
    assert set(report["full"]["test"]) == {"SASRec", "most-popular", "co-occurrence"}
    assert set(report["full"]["test"]["SASRec"]) == {"HR@1", "HR@10", "NDCG@1", "NDCG@10", "MRR@1", "MRR@10"}
    sasrec = report["full"]["test"]["SASRec"]
    assert sasrec["MRR@1"] == sasrec["HR@1"] and sasrec["NDCG@10"] >= sasrec["MRR@10"] >= sasrec["MRR@1"]


def test_eval_users_sample_the_report_and_the_card_says_so(built):
    runner, cwd = built
    users = pl.read_parquet(f"{cwd}/b/sequences.parquet").height
    sampled = runner.invoke(main, ["teacher", "eval", f"{cwd}/b", "--json", "--eval-users", "300"])
    every = runner.invoke(main, ["teacher", "eval", f"{cwd}/b", "--json", "--eval-users", "0"])
    assert sampled.exit_code == every.exit_code == 0, sampled.output + every.output
    assert json.loads(sampled.output) != json.loads(every.output)
    shutil.copytree(cwd / "b", cwd / "sampled")
    trained = runner.invoke(main, ["teacher", "train", f"{cwd}/sampled", "--epochs", "1", "--eval-users", "300", "-q"])
    assert trained.exit_code == 0, trained.output
    report = json.loads((cwd / "sampled" / "teacher" / "report.json").read_text())
    assert report["evaluated_users"] == 300 and report["evaluation_settings"]["users"] == 300
    assert f"Evaluated on 300 of {users:,} users (a seeded sample)." in (cwd / "sampled" / "teacher" / "report.md").read_text()
    assert f"on a seeded sample of 300 of the {users:,} users:" in (cwd / "sampled" / "README.md").read_text()
    assert "on a seeded sample" not in (cwd / "b" / "README.md").read_text()


def test_rank_shows_titles_and_writes_every_user(built):
    runner, cwd = built
    shown = runner.invoke(main, ["teacher", "rank", f"{cwd}/b", "--user", "0", "--include-category", "Strategy", "--top", "3", "--no-cache"])
    assert shown.exit_code == 0, shown.output
    assert "user 0: top 3 of" in shown.output
    written = runner.invoke(main, ["teacher", "rank", f"{cwd}/b", "--exclude-category", "Action", "--out", f"{cwd}/ranks.parquet", "--no-cache"])
    assert written.exit_code == 0, written.output
    ranks = pl.read_parquet(f"{cwd}/ranks.parquet")
    items = pl.read_parquet(f"{cwd}/b/data/items/train-00000-of-00001.parquet")
    action = set(items.filter(pl.col("categories").list.contains("Action"))["item_id"].to_list())
    assert ranks.height == pl.read_parquet(f"{cwd}/b/sequences.parquet").height
    assert not action & set(ranks["top_items"].explode().to_list())
    as_json = runner.invoke(main, ["teacher", "rank", f"{cwd}/b", "--exclude-category", "Action", "--user", "0", "--user", "2", "--json", "--no-cache"])
    lines = [json.loads(line) for line in as_json.output.splitlines()]
    expected = ranks.filter(pl.col("user_id").is_in([0, 2])).sort("user_id")
    assert [line["user_id"] for line in lines] == [0, 2]
    assert [[entry["item_id"] for entry in line["top"]] for line in lines] == expected["top_items"].to_list()
    assert [line["target_rank"] for line in lines] == expected["target_rank"].to_list()


def test_teacher_errors_are_clear(built):
    runner, cwd = built
    bad_heads = runner.invoke(main, ["teacher", "train", f"{cwd}/b", "--dim", "10", "--heads", "3"])
    assert bad_heads.exit_code == 2 and "divisible" in bad_heads.output
    unknown_user = runner.invoke(main, ["teacher", "rank", f"{cwd}/b", "--user", "999999"])
    assert unknown_user.exit_code == 1 and "no user_id 999999" in unknown_user.output
    tables_only = runner.invoke(main, ["build", "steam", "--raw-dir", SAMPLE, "--no-teacher", "-q", "--out", f"{cwd}/t"])
    assert tables_only.exit_code == 0
    missing = runner.invoke(main, ["teacher", "eval", f"{cwd}/t"])
    assert missing.exit_code == 1 and "no teacher checkpoint here" in missing.output and "datagen teacher train" in missing.output
    other = runner.invoke(main, ["build", "steam", "--raw-dir", SAMPLE, "--no-teacher", "-q", "--user-core", "6", "--out", f"{cwd}/other"])
    assert other.exit_code == 0
    refused = runner.invoke(main, ["teacher", "rank", f"{cwd}/other", "--checkpoint", f"{cwd}/b/teacher/model.safetensors"])
    assert refused.exit_code == 1 and "trained on data version" in refused.output
