"""Downloads against a real HTTP server on loopback that serves the real files."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from datagen.download import RemoteFile, download, official_files
from datagen.errors import DataError


class _FileServer(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}
    break_after: int | None = None  # send only this many bytes once, then drop the connection

    def do_GET(self):
        body = self.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].rstrip("-")) if self.headers.get("Range") else 0
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if type(self).break_after is not None:
            self.wfile.write(body[start : start + type(self).break_after])
            type(self).break_after = None
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(body[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server(shared_data):
    _FileServer.files = {
        "metaFiles2/meta_Gift_Cards.json.gz": (shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes(),
        "categoryFilesSmall/Gift_Cards_5.json.gz": (shared_data / "amazon" / "Gift_Cards_5.json.gz").read_bytes(),
        "categoryFilesSmall/All_Beauty_5.json.gz": b"not the official bytes",
    }
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _FileServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/"
    httpd.shutdown()


def test_downloads_verified_official_files(server, shared_data, tmp_path):
    for remote in official_files("amazon", "Gift_Cards", base_url=server):
        path = download(remote, tmp_path)
        assert path.read_bytes() == (shared_data / "amazon" / remote.name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Gift_Cards_5.json.gz", "meta_Gift_Cards.json.gz"]


def test_broken_download_resumes(server, shared_data, tmp_path):
    remote = RemoteFile("meta_Gift_Cards.json.gz", server + "metaFiles2/meta_Gift_Cards.json.gz")
    _FileServer.break_after = 200_000
    with pytest.raises(DataError, match=r"broke off after (\d+) bytes") as error:
        download(remote, tmp_path)
    assert "again to resume" in str(error.value)
    saved = (tmp_path / "meta_Gift_Cards.json.gz.part").stat().st_size
    assert 0 < saved <= 200_000 and f"after {saved} bytes" in str(error.value)
    seen = []
    path = download(remote, tmp_path, lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == (shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes()
    assert seen[0][0] > saved and seen[-1] == (path.stat().st_size, path.stat().st_size)
    assert not (tmp_path / "meta_Gift_Cards.json.gz.part").exists()


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    remote = RemoteFile("All_Beauty_5.json.gz", server + "categoryFilesSmall/All_Beauty_5.json.gz")
    with pytest.raises(DataError, match="sha256 differs"):
        download(remote, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_offline_is_a_clear_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    remote = official_files("steam", base_url=f"http://127.0.0.1:{port}/")[0]
    with pytest.raises(DataError, match=r"cannot reach 127.0.0.1:\d+ to fetch steam_games.json.gz") as error:
        download(remote, tmp_path)
    assert "--raw-dir" in str(error.value)


def test_official_urls():
    assert [r.url for r in official_files("amazon", "Movies_and_TV", reviews="full")] == [
        "https://jmcauley.ucsd.edu/data/amazon_v2/categoryFiles/Movies_and_TV.json.gz",
        "https://jmcauley.ucsd.edu/data/amazon_v2/metaFiles2/meta_Movies_and_TV.json.gz",
    ]
    with pytest.raises(DataError, match="needs a category"):
        official_files("amazon")
