"""Secrets never reach a message: servers on 127.0.0.1 that echo the request's headers, and the scrubber itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler

import pytest
from click.testing import CliRunner

from datagen.cli import main
from datagen.errors import DataError
from datagen.lm.chat import OpenAIChat
from datagen.pipeline import BuildConfig, build
from datagen.redact import redact, redact_url

KEY = "sk-test-0123456789abcdef"


class EchoHeaders(BaseHTTPRequestHandler):
    """Answers every POST with `status` and a body that echoes the request's headers, as some proxies do."""

    status = 401
    body_kind = "json"

    def do_GET(self):  # noqa: N802 (the http.server name)
        self.do_POST()

    def do_POST(self):  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        headers = dict(self.headers.items())
        if self.body_kind == "json":
            body = json.dumps({"error": "unauthorized", "request_headers": headers}).encode()
        elif self.body_kind == "key at the cut":  # the bare key straddling the 300 characters a message shows
            body = (" " * 295 + headers.get("Authorization", "").removeprefix("Bearer ")).encode()
        else:  # not a chat completion, echoing the key in plain text
            body = json.dumps({"choices": [], "note": f"key was {headers.get('Authorization', '')}"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_server(loopback):
    """echo_server(status, body_kind) -> the base URL of an EchoHeaders server answering `status` (conftest's loopback)."""
    return lambda status, body_kind="json": loopback(type("Handler", (EchoHeaders,), {"status": status, "body_kind": body_kind}))


@pytest.mark.parametrize(("status", "body_kind"), [(401, "json"), (500, "json"), (200, "not a completion")])
def test_the_annotators_errors_never_show_the_api_key(echo_server, monkeypatch, status, body_kind):
    monkeypatch.setenv("DATAGEN_LLM_API_KEY", KEY)
    url = echo_server(status, body_kind)
    backend = OpenAIChat(url, model="m", max_retries=0)
    with pytest.raises(DataError) as error:
        backend.complete([[{"role": "user", "content": "Say hi."}]], max_tokens=8)
    message = str(error.value)
    assert url in message  # the error still says who answered
    assert KEY not in message and "0123456789abcdef" not in message
    if status != 200:
        assert "Bearer ***" in message  # what was echoed is still readable, masked


def test_the_key_of_another_variable_and_token_shapes_are_masked(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_plainvalue42")
    text = "hf_plainvalue42 / Authorization: Basic dXNlcjpwYXNz / hf_AbCdEfGh12345678 / sk-proj-abcdefgh123"
    assert redact(text) == "*** / Authorization: *** / *** / ***"
    assert redact("a token named my-own-secret", "my-own-secret") == "a token named ***"
    assert redact("nothing secret here: HTTP 404 Not Found") == "nothing secret here: HTTP 404 Not Found"


@pytest.mark.parametrize("status", [401, 500])
def test_a_download_mirror_with_credentials_never_shows_them(echo_server, tmp_path, status):
    url = echo_server(status).removesuffix("/v1")
    mirror = url.replace("http://", "http://reader:mirror-pass-42@") + "/?sig=signed-0123456789/"
    result = CliRunner().invoke(main, ["download", "amazon:Gift_Cards", "--base-url", mirror, "--dest", str(tmp_path)])
    assert result.exit_code == 1
    assert url.removeprefix("http://") in result.output and f"HTTP {status}" in result.output  # it still says who answered what
    assert "mirror-pass-42" not in result.output and "signed-0123456789" not in result.output
    assert "cmVhZGVyOm1pcnJvci1wYXNzLTQy" not in result.output  # the Basic header the server echoed


def test_urls_lose_their_credentials_and_query():
    assert redact_url("https://me:s3cret@mirror.example:8443/amazon/?token=abc") == "https://***@mirror.example:8443/amazon/?***"
    assert redact_url("https://mcauleylab.ucsd.edu/public_datasets/data/steam/") == "https://mcauleylab.ucsd.edu/public_datasets/data/steam/"


@pytest.mark.parametrize("command", [["push", "--dry-run"], ["card"]])
def test_a_repo_given_as_a_url_with_credentials_is_refused_unshown(command, tmp_path):
    """The repo id is written into the card and the manifest: a URL there would carry its user and token along."""
    url = "https://me:hf_SecretToken12345@huggingface.co/datasets/me/steam"
    result = CliRunner().invoke(main, [command[0], "--repo", url, str(tmp_path / "nowhere"), *command[1:]])
    assert result.exit_code == 2 and "takes a Hub repository id, ORG/NAME" in result.output
    assert "SecretToken" not in result.output and "me:" not in result.output


def test_an_echo_is_masked_before_it_is_cut(echo_server, monkeypatch):
    """Cut first, the key's first characters were shown: too short to look like a key any more."""
    monkeypatch.setenv("DATAGEN_LLM_API_KEY", KEY)
    backend = OpenAIChat(echo_server(401, "key at the cut"), model="m", max_retries=0)
    with pytest.raises(DataError) as error:
        backend.complete([[{"role": "user", "content": "Say hi."}]], max_tokens=8)
    assert "HTTP 401" in str(error.value) and "sk-t" not in str(error.value)


def test_a_key_echoed_as_a_json_string_is_masked(monkeypatch):
    key = "abc/def+ghi0123456789=="  # base64-shaped: a server writing JSON may escape its slash
    monkeypatch.setenv("OPENAI_API_KEY", key)
    assert redact(json.dumps({"echo": key}).replace("/", "\\/")) == '{"echo": "***"}'
    assert redact(f"proxy saw key {key}") == "proxy saw key ***"


def test_an_annotator_url_with_credentials_is_shown_without_them(echo_server):
    url = echo_server(500).replace("http://", "http://annotator:url-pass-42@")
    backend = OpenAIChat(url, model="m", max_retries=0)
    assert "url-pass-42" not in backend.name and "url-pass-42" not in backend.identity
    with pytest.raises(DataError) as error:
        backend.complete([[{"role": "user", "content": "Say hi."}]], max_tokens=8)
    assert "url-pass-42" not in str(error.value) and "127.0.0.1" in str(error.value)


def test_a_hub_endpoint_with_credentials_is_shown_without_them(tmp_path):
    """HF_ENDPOINT may carry user:password@ for a private mirror; push's errors name the server without them."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = build(BuildConfig("steam", out_dir=tmp_path / "b")).out_dir
    env = {key: value for key, value in os.environ.items() if not key.startswith("HF_")}
    env.update(HF_ENDPOINT=f"http://mirror:hub-pass-42@127.0.0.1:{port}", HF_TOKEN="hf_secrettoken0123456789", HF_HOME=str(tmp_path / "hf"))
    done = subprocess.run([sys.executable, "-m", "datagen", "push", str(folder), "--repo", "my-org/steam"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1 and "could not be reached" in done.stderr, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr and "hub-pass-42" not in done.stdout + done.stderr
