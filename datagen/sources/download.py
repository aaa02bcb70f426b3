"""Fetch the official raw files (UCSD/McAuley lab, GroupLens, RecBole) into a cache folder, resumably and verified.

A download goes to `NAME.part` and is renamed only once its size (and sha256,
where known) checks out; a rerun resumes a `.part` with an HTTP Range request.
Each file has hosts tried in order (the lab's current domain, then the old one
or the Hub); an archive is unpacked into a staging folder, then renamed. A
host that does not answer within $DATAGEN_DOWNLOAD_TIMEOUT seconds (30) gives
way to the next; a download that brings less than 1 KiB a second over twice
that time stops, its bytes kept for a resume.

    $ datagen download steam
    $ datagen download amazon:Gift_Cards --reviews 5core
    $ datagen download amazon:Video_Games --release 2023
    $ datagen download movielens:ml-1m
    $ datagen download recbole:amazon-beauty     # RecBole's atomic files: datagen build recbole:Amazon_Beauty
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests
import urllib3

from datagen.errors import DataError
from datagen.output import sha256
from datagen.redact import redact_url
from datagen.timeouts import seconds_from_env

# Each file's hosts in the order tried: the lab's current domain first, the old one as a fallback.
STEAM_HOSTS = ("https://mcauleylab.ucsd.edu/public_datasets/data/steam/", "https://cseweb.ucsd.edu/~wckang/")
AMAZON_HOSTS = ("https://mcauleylab.ucsd.edu/public_datasets/data/amazon_v2/", "https://jmcauley.ucsd.edu/data/amazon_v2/")
AMAZON_REVIEW_KINDS = {
    "5core": "categoryFilesSmall/{category}_5.json.gz",
    "full": "categoryFiles/{category}.json.gz",
    "ratings": "categoryFilesSmall/{category}.csv",
}
# Amazon Reviews 2023: the lab's gzipped files, else the same files (uncompressed) in its Hub dataset.
AMAZON_2023_HOST = "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/"
AMAZON_2023_HUB_REPO = "McAuley-Lab/Amazon-Reviews-2023"
AMAZON_RELEASES = ("2018", "2023")
MOVIELENS_HOST = "https://files.grouplens.org/datasets/movielens/"
# RecBole's processed atomic files (RecBole's dataset list), those LLM-recommendation papers use most: the download's
# name and its zip under RECBOLE_HOST; the files inside keep RecBole's names (`datagen build recbole:Amazon_Beauty`).
RECBOLE_HOST = "https://recbole.s3-accelerate.amazonaws.com/ProcessedDatasets/"
RECBOLE_DATASETS = {
    "ml-100k": "MovieLens/ml-100k.zip",
    "ml-1m": "MovieLens/ml-1m.zip",
    "ml-20m": "MovieLens/ml-20m.zip",
    "amazon-beauty": "Amazon_ratings/Amazon_Beauty.zip",
    "amazon-sports-outdoors": "Amazon_ratings/Amazon_Sports_and_Outdoors.zip",
    "amazon-toys-games": "Amazon_ratings/Amazon_Toys_and_Games.zip",
    "amazon-video-games": "Amazon_ratings/Amazon_Video_Games.zip",
    "steam": "Steam/merged/steam.zip",
    "yelp": "Yelp/yelp.zip",
    "lastfm": "LastFM/lastfm.zip",
    "anime": "Anime/anime.zip",
}

# sha256 of official files that we have seen unchanged (shared/data/README.md).
KNOWN_SHA256 = {
    "steam_games.json.gz": "717f4653a26585fec8f463f59311a654127c2ed66b07b9f78b4c0ce64961c740",
    "Gift_Cards_5.json.gz": "41e1f0e50d3c1c9d7d949fb6315944c8bde51ea6b7429a29fdd0d02cbc07ef25",
    "meta_Gift_Cards.json.gz": "07fd154b7275ab9b1537e3802913508c7a5f84ed00f73201cd3fa18b2b51b342",
    "All_Beauty_5.json.gz": "8e49737fefaec9290187c69bf92889452df8be0ab5e36c9476520d6639683279",
    "meta_Magazine_Subscriptions.json.gz": "147cb78dac0f9ce04849b196e2e13cad6a504bff45d53500b7a1fe8121d91595",
}

_CHUNK = 1 << 16
TIMEOUT_ENV = "DATAGEN_DOWNLOAD_TIMEOUT"
DEFAULT_TIMEOUT = 30.0  # seconds to connect, and between two reads of a download
STALL_WINDOWS = 2  # a download is judged on its pace over twice the timeout (60 s by default)...
MIN_BYTES_PER_SECOND = 1024  # ... and must bring at least this many bytes a second over it


@dataclass(frozen=True)
class RemoteFile:
    """One official file and where to get it: (url, local name) pairs, tried in order."""

    mirrors: tuple[tuple[str, str], ...]
    unpack: bool = False  # a zip archive, unpacked beside it once verified

    @property
    def name(self) -> str:
        return self.mirrors[0][1]


def remote(name: str, *urls: str, unpack: bool = False) -> RemoteFile:
    """A file saved as `name` whichever of `urls` serves it."""
    return RemoteFile(tuple((url, name) for url in urls), unpack)


def hub_url(repo_id: str, path: str) -> str:
    """A file of a Hub dataset repository, through $HF_ENDPOINT when set (a mirror)."""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/datasets/{repo_id}/resolve/main/{path}"


def official_files(source: str, argument: str | None = None, reviews: str = "5core", base_url: str | None = None, release: str = "2018") -> list[RemoteFile]:
    """The files `datagen download SOURCE[:ARGUMENT]` fetches; `base_url` replaces the official hosts (a mirror)."""
    if source == "steam":
        hosts = (base_url,) if base_url else STEAM_HOSTS
        return [remote(name, *(host + name for host in hosts)) for name in ("steam_games.json.gz", "steam_reviews.json.gz")]
    if source == "amazon":
        if not argument:
            raise DataError("amazon needs a category, e.g. `datagen download amazon:Gift_Cards`")
        if release not in AMAZON_RELEASES:
            raise DataError(f"--release must be one of {', '.join(AMAZON_RELEASES)}, not {release!r}")
        if release == "2023":
            return _amazon_2023_files(argument, base_url)
        if reviews not in AMAZON_REVIEW_KINDS:
            raise DataError(f"--reviews must be one of {', '.join(AMAZON_REVIEW_KINDS)}, not {reviews!r}")
        hosts = (base_url,) if base_url else AMAZON_HOSTS
        paths = (AMAZON_REVIEW_KINDS[reviews].format(category=argument), f"metaFiles2/meta_{argument}.json.gz")
        return [remote(Path(path).name, *(host + path for host in hosts)) for path in paths]
    if source == "movielens":
        from datagen.sources.movielens import RELEASES

        if argument not in RELEASES:
            raise DataError(f"movielens needs a release, one of {', '.join(RELEASES)} (e.g. `datagen download movielens:ml-100k`)")
        return [remote(f"{argument}.zip", (base_url or MOVIELENS_HOST) + f"{argument}.zip", unpack=True)]
    if source == "recbole":
        if argument not in RECBOLE_DATASETS:
            raise DataError(f"recbole needs one of {', '.join(RECBOLE_DATASETS)} (e.g. `datagen download recbole:ml-1m`), not {argument!r}")
        return [remote(f"recbole-{argument}.zip", (base_url or RECBOLE_HOST) + RECBOLE_DATASETS[argument], unpack=True)]
    raise DataError(f"`datagen download` knows steam, amazon, movielens and recbole, not {source!r}; bring other catalogs with the table source")


def _amazon_2023_files(category: str, base_url: str | None) -> list[RemoteFile]:
    files = []
    for folder, name in (("review_categories", f"{category}.jsonl"), ("meta_categories", f"meta_{category}.jsonl")):
        if base_url:
            files.append(remote(f"{name}.gz", f"{base_url}{folder}/{name}.gz"))
        else:
            lab = (f"{AMAZON_2023_HOST}{folder}/{name}.gz", f"{name}.gz")
            hub = (hub_url(AMAZON_2023_HUB_REPO, f"raw/{folder}/{name}"), name)
            files.append(RemoteFile((lab, hub)))
    return files


class _Unavailable(Exception):
    """This host cannot serve the file (unreachable, or an HTTP error): the next mirror may."""


def download(remote: RemoteFile, folder: Path, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Fetch `remote` into `folder` from the first host that serves it, resuming a partial download.

    Returns the verified file, or for an archive the folder it unpacked to.
    """
    folder.mkdir(parents=True, exist_ok=True)
    failures = []
    for url, name in remote.mirrors:
        try:
            path = _fetch(url, folder / name, progress)
        except _Unavailable as error:
            failures.append(f"{urlparse(url).netloc.rpartition('@')[2]} ({error})")
            continue
        return unpack_zip(path) if remote.unpack else path
    raise DataError(
        f"cannot fetch {remote.name}: " + "; ".join(failures),
        hint=f"Offline, or the hosts moved. Fetch {redact_url(remote.mirrors[0][0])} elsewhere and put it in {folder}, "
        "pass --base-url a mirror, or point `datagen build --raw-dir` at a folder holding the files.",
    )


def _fetch(url: str, target: Path, progress: Callable[[int, int | None], None] | None) -> Path:
    if target.is_file() and _matches_known_checksum(target):
        return target
    partial = target.with_name(target.name + ".part")
    done = partial.stat().st_size if partial.is_file() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    timeout = seconds_from_env(TIMEOUT_ENV, DEFAULT_TIMEOUT)
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=timeout)
    except requests.RequestException as error:
        raise _Unavailable(f"unreachable: {type(error).__name__}") from None
    with response:
        if response.status_code == 416 and done:
            response.close()
            partial.unlink()
            return _fetch(url, target, progress)
        if response.status_code not in (200, 206):
            raise _Unavailable(f"HTTP {response.status_code}")
        if response.status_code == 200:
            done = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        with open(partial, "ab" if done else "wb") as handle:
            try:
                pace = Pace(timeout * STALL_WINDOWS, done)
                for chunk in _arriving(response):
                    handle.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
                    if pace.too_slow(done):
                        raise DataError(
                            f"download of {target.name} crawled: {pace.last_bytes} bytes in the last {pace.window:g} s (below {MIN_BYTES_PER_SECOND:,} bytes a second)",
                            path=partial,
                            hint=f"{done} bytes are kept: run the same command again to resume, perhaps from another mirror (--base-url).",
                        )
            except (requests.RequestException, urllib3.exceptions.HTTPError) as error:
                raise DataError(
                    f"download of {target.name} broke off after {done} bytes ({type(error).__name__})",
                    path=partial,
                    hint="Run the same command again to resume from there.",
                ) from None
    if total is not None and partial.stat().st_size != total:
        raise DataError(
            f"download stopped at {partial.stat().st_size} of {total} bytes",
            path=partial,
            hint="Run the same command again to resume.",
        )
    if not _matches_known_checksum(partial, target.name):
        partial.unlink()
        raise DataError("sha256 differs from the official file's; the partial download was removed", path=target)
    os.replace(partial, target)
    return target


class Pace:
    """Whether a download has fallen below MIN_BYTES_PER_SECOND over the last `window` seconds: a server that sends
    a byte now and then never trips the read timeout, and would hold the command for ever."""

    def __init__(self, window: float, done: int):
        self.window, self.started, self.at_start, self.last_bytes = window, time.monotonic(), done, 0

    def too_slow(self, done: int) -> bool:
        now = time.monotonic()
        if now - self.started < self.window:
            return False
        self.last_bytes = done - self.at_start
        self.started, self.at_start = now, done
        return self.last_bytes < MIN_BYTES_PER_SECOND * self.window


def _arriving(response: requests.Response) -> Iterator[bytes]:
    """The body as it arrives, each piece as soon as there is one (iter_content waits for a whole chunk)."""
    while chunk := response.raw.read1(_CHUNK, decode_content=True):
        yield chunk


def unpack_zip(archive: Path) -> Path:
    """Unpack `archive` beside it (staged, then renamed into place); return the folder it holds."""
    staging = archive.with_name(f".{archive.name}.unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise DataError(f"unsafe path {member!r} in the archive", path=archive)
            bundle.extractall(staging)
    except zipfile.BadZipFile as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(f"not a zip archive ({error})", path=archive, hint="Delete it and download again.") from None
    entries = sorted(staging.iterdir())
    for entry in entries:
        destination = archive.parent / entry.name
        if destination.is_dir():
            shutil.rmtree(destination)
        os.replace(entry, destination)
    staging.rmdir()
    folders = [archive.parent / entry.name for entry in entries if (archive.parent / entry.name).is_dir()]
    return folders[0] if len(folders) == 1 else archive.parent


def _matches_known_checksum(path: Path, name: str | None = None) -> bool:
    expected = KNOWN_SHA256.get(name or path.name)
    if expected is None:
        return True
    return sha256(path) == expected
