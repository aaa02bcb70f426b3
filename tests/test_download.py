"""Downloads against a real HTTP server on loopback that serves the real files."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from datagen.cli import main
from datagen.errors import DataError
from datagen.sources.download import download, official_files, remote


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
    for official in official_files("amazon", "Gift_Cards", base_url=server):
        path = download(official, tmp_path)
        assert path.read_bytes() == (shared_data / "amazon" / official.name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Gift_Cards_5.json.gz", "meta_Gift_Cards.json.gz"]


def test_broken_download_resumes(server, shared_data, tmp_path):
    meta = remote("meta_Gift_Cards.json.gz", server + "metaFiles2/meta_Gift_Cards.json.gz")
    _FileServer.break_after = 200_000
    with pytest.raises(DataError, match=r"broke off after (\d+) bytes") as error:
        download(meta, tmp_path)
    assert "again to resume" in str(error.value)
    saved = (tmp_path / "meta_Gift_Cards.json.gz.part").stat().st_size
    assert 0 < saved <= 200_000 and f"after {saved} bytes" in str(error.value)
    seen = []
    path = download(meta, tmp_path, lambda done, total: seen.append((done, total)))
    assert path.read_bytes() == (shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes()
    assert seen[0][0] > saved and seen[-1] == (path.stat().st_size, path.stat().st_size)
    assert not (tmp_path / "meta_Gift_Cards.json.gz.part").exists()


def test_checksum_mismatch_keeps_nothing(server, tmp_path):
    beauty = remote("All_Beauty_5.json.gz", server + "categoryFilesSmall/All_Beauty_5.json.gz")
    with pytest.raises(DataError, match="sha256 differs"):
        download(beauty, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_offline_is_a_clear_error(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    games = official_files("steam", base_url=f"http://127.0.0.1:{port}/")[0]
    with pytest.raises(DataError, match=r"cannot fetch steam_games.json.gz: 127.0.0.1:\d+ \(unreachable") as error:
        download(games, tmp_path)
    assert "--raw-dir" in str(error.value)
    assert list(tmp_path.iterdir()) == []


def test_a_host_that_accepts_and_never_answers_times_out(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAGEN_DOWNLOAD_TIMEOUT", "1")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel accepts connections; nothing ever answers
        games = official_files("steam", base_url=f"http://127.0.0.1:{silent.getsockname()[1]}/")[0]
        started = time.monotonic()
        with pytest.raises(DataError, match=r"cannot fetch steam_games.json.gz: 127.0.0.1:\d+ \(unreachable: ReadTimeout\)"):
            download(games, tmp_path)
    assert time.monotonic() - started < 30
    monkeypatch.setenv("DATAGEN_DOWNLOAD_TIMEOUT", "soon")
    with pytest.raises(DataError, match=r"\$DATAGEN_DOWNLOAD_TIMEOUT must be a number of seconds above 0, not 'soon'"):
        download(games, tmp_path)


def test_official_urls():
    """The lab's current domain first, the old host as a fallback; Amazon 2023 falls back to its Hub dataset."""
    assert [[url for url, _ in r.mirrors] for r in official_files("amazon", "Movies_and_TV", reviews="full")] == [
        [
            "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/categoryFiles/Movies_and_TV.json.gz",
            "https://jmcauley.ucsd.edu/data/amazon_v2/categoryFiles/Movies_and_TV.json.gz",
        ],
        [
            "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/metaFiles2/meta_Movies_and_TV.json.gz",
            "https://jmcauley.ucsd.edu/data/amazon_v2/metaFiles2/meta_Movies_and_TV.json.gz",
        ],
    ]
    assert [url for url, _ in official_files("steam")[0].mirrors] == [
        "https://mcauleylab.ucsd.edu/public_datasets/data/steam/steam_games.json.gz",
        "https://cseweb.ucsd.edu/~wckang/steam_games.json.gz",
    ]
    reviews_2023 = official_files("amazon", "Video_Games", release="2023")[0]
    assert reviews_2023.mirrors == (
        ("https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/review_categories/Video_Games.jsonl.gz", "Video_Games.jsonl.gz"),
        ("https://huggingface.co/datasets/McAuley-Lab/Amazon-Reviews-2023/resolve/main/raw/review_categories/Video_Games.jsonl", "Video_Games.jsonl"),
    )
    assert official_files("movielens", "ml-1m")[0].mirrors == (("https://files.grouplens.org/datasets/movielens/ml-1m.zip", "ml-1m.zip"),)
    with pytest.raises(DataError, match="needs a category"):
        official_files("amazon")
    with pytest.raises(DataError, match="movielens needs a release"):
        official_files("movielens", "ml-3m")


def test_a_host_that_fails_gives_way_to_the_next(server, shared_data, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/"
    meta = remote("meta_Gift_Cards.json.gz", dead + "meta_Gift_Cards.json.gz", server + "missing/meta_Gift_Cards.json.gz", server + "metaFiles2/meta_Gift_Cards.json.gz")
    assert download(meta, tmp_path).read_bytes() == (shared_data / "amazon" / "meta_Gift_Cards.json.gz").read_bytes()
    gone = remote("meta_Gift_Cards.json.gz", dead + "x", server + "missing/x")
    with pytest.raises(DataError, match=r"cannot fetch .*unreachable.*HTTP 404"):
        download(gone, tmp_path / "other")


def test_movielens_zip_is_unpacked_into_place(server, shared_data, tmp_path):
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        for path in sorted((shared_data / "movielens" / "ml-100k").iterdir()):
            bundle.write(path, f"ml-100k/{path.name}")
    _FileServer.files["ml-100k.zip"] = archive.getvalue()
    folder = download(official_files("movielens", "ml-100k", base_url=server)[0], tmp_path)
    assert folder == tmp_path / "ml-100k"
    assert (folder / "u.data").read_bytes() == (shared_data / "movielens" / "ml-100k" / "u.data").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-100k", "ml-100k.zip"]


def test_download_command_takes_source_colon_argument(server, shared_data, tmp_path):
    result = CliRunner().invoke(main, ["download", "amazon:Gift_Cards", "--base-url", server, "--dest", str(tmp_path), "-q"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Gift_Cards_5.json.gz", "meta_Gift_Cards.json.gz"]


class _Trickle(BaseHTTPRequestHandler):
    """Promises 100,000 bytes and sends one every 0.1 s: never silent long enough for a read timeout."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(100_000):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:  # the client gave up
            pass

    def log_message(self, *args):
        pass


def test_a_server_that_trickles_is_stopped_and_its_bytes_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("DATAGEN_DOWNLOAD_TIMEOUT", "1")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Trickle)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    games = official_files("steam", base_url=f"http://127.0.0.1:{httpd.server_port}/")[0]
    started = time.monotonic()
    try:
        with pytest.raises(DataError, match=r"download of steam_games.json.gz crawled: \d+ bytes in the last 2 s \(below 1,024 bytes a second\)") as error:
            download(games, tmp_path)
    finally:
        httpd.shutdown()
    assert time.monotonic() - started < 10
    kept = (tmp_path / "steam_games.json.gz.part").stat().st_size
    assert 0 < kept < 100 and f"{kept} bytes are kept" in error.value.hint


def test_recbole_atomic_files_download_unpack_and_build(server, shared_data, tmp_path, monkeypatch):
    """RecBole's ml-100k zip as its host lays it out (ml-100k/ml-100k.inter, CONVERTED from GroupLens' u.data):
    `datagen download recbole:ml-100k` unpacks it into the cache, where `datagen build recbole:ml-100k` finds it."""
    lines = ["user_id:token\titem_id:token\trating:float\ttimestamp:float", *(shared_data / "movielens" / "ml-100k" / "u.data").read_text().splitlines()]
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("ml-100k/ml-100k.inter", "\n".join(lines) + "\n")
    _FileServer.files["MovieLens/ml-100k.zip"] = archive.getvalue()
    monkeypatch.setenv("DATAGEN_CACHE", str(tmp_path / "cache"))
    result = CliRunner().invoke(main, ["download", "recbole:ml-100k", "--base-url", server, "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(tmp_path / "cache" / "raw" / "recbole" / "ml-100k")
    built = CliRunner().invoke(main, ["build", "recbole:ml-100k", "--no-teacher", "--out", str(tmp_path / "build"), "-q"])
    assert built.exit_code == 0, built.output
    assert json.loads((tmp_path / "build" / "manifest.json").read_text())["stats"]["interactions"] > 90_000
    unknown = CliRunner().invoke(main, ["download", "recbole:ml-10m", "--base-url", server])
    assert unknown.exit_code != 0 and "recbole needs one of ml-100k, ml-1m" in unknown.output
