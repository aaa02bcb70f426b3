"""The InstructRec dataset (Zhang et al. 2023) on real builds: Amazon Gift_Cards and the Steam sample with its teacher."""

from __future__ import annotations

import json
import re
import shutil

import polars as pl
import pytest
from click.testing import CliRunner
from rapidfuzz import fuzz

from datagen.buildfolder import BuildFolder
from datagen.cli import main
from datagen.ingest.categories import category_path
from datagen.instructrec.build import FILL_END, InstructRecSettings, generate_instructrec, join_fills, load_library, required_annotations
from datagen.layout import read_split, skipped_per_template
from datagen.pipeline import BuildConfig, build
from datagen.publish.release import finalize
from datagen.teacher.folder import load_teacher
from datagen.teacher.ranking import TeacherRanker


@pytest.fixture(scope="module")
def gift_cards(shared_data, tmp_path_factory) -> tuple[BuildFolder, dict]:
    """The real Amazon Gift_Cards 5-core, canonical tables only, and its InstructRec rows (random negatives)."""
    out = tmp_path_factory.mktemp("gift") / "gift-cards"
    build(BuildConfig("amazon:Gift_Cards", raw_dir=shared_data / "amazon", out_dir=out))
    folder = BuildFolder.open(out)
    report = generate_instructrec(folder, InstructRecSettings())
    finalize(out)  # as `datagen instructrec` does: the build stays one that passes `datagen validate`
    return BuildFolder.open(out), report


def _rows(folder: BuildFolder, split: str, task: str) -> pl.DataFrame:
    return read_split(folder.path, "instructrec", split).filter(pl.col("task") == task)


def test_every_template_is_used_or_its_skip_is_counted(gift_cards):
    folder, report = gift_cards
    assert report["label_check_failures"] == []
    ids = {t.id for t in load_library().templates}
    assert len(ids) == 39  # appendix A 17, B 9, C 13, as Table 2 counts
    used = {template for split in report["rows_per_template"].values() for template in split}
    skipped = dict(skipped_per_template(report))
    assert used | {template for template, _ in skipped} == ids
    # Without an annotator, nothing that needs P2 or I1 is made, and each such template says why.
    needs = {t.id for t in load_library().templates if required_annotations(t)}
    assert needs and not needs & used
    assert all(any(t == template and "no annotator" in reason for t, reason in skipped) for template in needs)
    users = folder.sequences.height
    assert report["rows"]["test"]["select"] == users and report["rows"]["test"]["pointwise"] == 2 * users


def test_t3_candidates_hold_the_target_once_and_nothing_the_user_had(gift_cards):
    folder, _ = gift_cards
    items_of = dict(folder.sequences.select("user_id", "item_ids").rows())
    titles = folder.items.sort("item_id")["title"].to_list()
    rows = _rows(folder, "test", "select")
    for row in rows.iter_rows(named=True):
        candidates = row["candidate_item_ids"]
        assert len(set(candidates)) == len(candidates) == 10 and candidates.count(row["target_item_id"]) == 1
        assert not (set(candidates) - {row["target_item_id"]}) & set(items_of[row["user_id"]])
        assert row["completion"][0]["content"] == titles[row["target_item_id"]]
        assert all(f"'{titles[item]}'" in row["prompt"][-1]["content"] for item in candidates)
    positions = [row["candidate_item_ids"].index(row["target_item_id"]) for row in rows.iter_rows(named=True)]
    assert len(set(positions)) == 10


def test_t0_is_balanced_and_yes_only_for_the_target(gift_cards):
    folder, _ = gift_cards
    rows = _rows(folder, "train", "pointwise")
    answers = rows["completion"].list.get(0).struct.field("content").to_list()
    assert answers.count("Yes") == answers.count("No") == rows.height // 2
    for row, answer in zip(rows.iter_rows(named=True), answers):
        assert (answer == "Yes") == (row["candidate_item_ids"] == [row["target_item_id"]])


def test_a_paths_prefixes_read_as_the_path():
    prefixes = ["Envelopes", "Envelopes, Mailers & Shipping Supplies", "Envelopes, Mailers & Shipping Supplies, Envelopes"]
    assert category_path(prefixes) == "Envelopes, Mailers & Shipping Supplies, Envelopes"
    assert category_path(["Action", "Indie"]) == "Action, Indie"
    assert category_path([]) == ""


def test_i2_is_the_targets_category_path(gift_cards):
    folder, _ = gift_cards
    paths = {item: category_path(c) for item, c in folder.items.select("item_id", "categories").rows()}
    rows = _rows(folder, "train", "recommend").filter(pl.col("query_kind") == "specific_intention")
    assert rows.height > 0
    for row in rows.iter_rows(named=True):
        assert paths[row["target_item_id"]] and paths[row["target_item_id"]] in row["prompt"][-1]["content"]


def test_an_annotations_stop_gives_way_to_the_templates():
    library = load_library()
    a04 = next(t for t in library.templates if t.id == "zhang2023/a04")  # "...preference. {P2}. Please predict..."
    preference = "The user prefers puzzle games."
    _, text = a04.render({"history": "'Portal'", "explicit_preference": preference + FILL_END})
    assert "The user prefers puzzle games. Please predict" in join_fills(text)
    assert join_fills(f"tastes: {preference}{FILL_END}, please") == "tastes: The user prefers puzzle games, please"
    assert join_fills(f"query: {preference}{FILL_END} and ultimately") == f"query: {preference} and ultimately"  # no stop follows: kept


def test_the_wording_is_the_appendixs(shared_data):
    paper = " ".join((shared_data.parent / "papers" / "002_b8a218565628a0c9.txt").read_text().split())
    for template in load_library().templates:
        _, text = template.render({name: "{" + name + "}" for name in template.variables})
        for fragment in re.split(r"\{\w+\}", text):
            assert fragment.strip() in paper, (template.id, fragment)
        assert re.search(r"⟨P[0-2].*T[0-3]⟩|turn the task around|chain-of-thought|enforcing", template.source), template.id


def _appendix_templates(paper_path) -> list[tuple[str, str]]:
    """(section letter, wording) of every template the appendix prints: a paragraph opening with its format or its kind in italics."""
    text = paper_path.read_text()
    appendix = text[text.index("## A INSTRUCTION TEMPLATES") : text.index("## C INSTRUCTION TEMPLATES")]
    appendix += text[text.index("## C INSTRUCTION TEMPLATES") :].split("\n## ", 1)[0]
    templates, section = [], ""
    for paragraph in appendix.split("\n"):
        if paragraph.startswith("## "):
            section = paragraph.split()[1]
        elif paragraph.startswith(("$\\langle", "*")):
            wording = re.sub(r"^(\$\\langle.*?\\rangle\$ \.|\*[^*]+\*)\s*", "", paragraph)
            templates.append((section, " ".join(wording.split())))
    return templates


def test_every_template_the_appendix_prints_is_shipped(shared_data):
    """Each of the 39 printed templates has one shipped template of its section that reads the same, and no two share one."""
    printed = _appendix_templates(shared_data.parent / "papers" / "002_b8a218565628a0c9.txt")
    assert [section for section, _ in printed].count("A") == 17
    assert [section for section, _ in printed].count("B") == 9
    assert [section for section, _ in printed].count("C") == 13

    names = r"(?:historical interactions|explicit preference|vague intention|specific intention|target item|candidate items)"
    # the paper's placeholders, also where its braces are missing ("preference: explicit preference and", "query: explicit preference/ vague intention/ specific intention}")
    paper_placeholder = re.compile(rf"\{{?{names}(?:\s*/\s*{names})*\s*\}}?")

    def without_placeholders(text: str) -> str:
        return re.sub(r"\{\w+\}", "{}", paper_placeholder.sub("{}", text))

    shipped = {}
    for template in load_library().templates:
        _, text = template.render({name: "{" + name + "}" for name in template.variables})
        shipped[template.id] = without_placeholders(" ".join(text.split()))
    matched = []
    for section, wording in printed:
        scores = {id_: fuzz.ratio(without_placeholders(wording), text) for id_, text in shipped.items()}
        best = max(scores, key=scores.get)
        assert scores[best] > 95, (wording[:80], best, scores[best])
        assert best.startswith(f"zhang2023/{section.lower()}"), (wording[:80], best)
        matched.append(best)
    assert sorted(matched) == sorted(shipped)


def test_teacher_negatives_are_the_teachers_best_items(sample_teacher, tmp_path):
    folder, _ = sample_teacher
    copy = tmp_path / "steam"
    shutil.copytree(folder.path, copy)
    copied = BuildFolder.open(copy)
    report = generate_instructrec(copied, InstructRecSettings(negatives="teacher", validation_users=0))
    assert report["label_check_failures"] == []
    rows = _rows(copied, "test", "select").head(50)
    sequences = dict(copied.sequences.select("user_id", "item_ids").rows())
    histories = [sequences[user][:-1] for user in rows["user_id"]]
    orders, allowed = TeacherRanker(load_teacher(copied), copied.items).full_orders(histories)
    for row, order, count in zip(rows.iter_rows(named=True), orders, allowed):
        best = [item for item in order[:count].tolist() if item not in set(sequences[row["user_id"]])][:9]
        assert sorted(set(row["candidate_item_ids"]) - {row["target_item_id"]}) == sorted(best)


def test_same_seed_same_bytes_and_the_cli(gift_cards, tmp_path):
    folder, _ = gift_cards
    copy = tmp_path / "gift"
    shutil.copytree(folder.path, copy)
    runner = CliRunner()
    made = runner.invoke(main, ["instructrec", str(copy), "-q"])
    assert made.exit_code == 0, made.output
    for path in sorted((folder.path / "data" / "instructrec").glob("*.parquet")):
        assert (copy / "data" / "instructrec" / path.name).read_bytes() == path.read_bytes(), path.name
    shown = runner.invoke(main, ["render", str(copy), "--family", "instructrec", "--task", "select", "--n", "1", "--split", "test"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "candidates" in shown.output
    card = (copy / "README.md").read_text()
    assert "## The InstructRec tasks (Zhang et al. 2023)" in card and "this build had no annotator" in card
    assert json.loads((copy / "reports" / "instructrec.json").read_text())["annotator"] is None
