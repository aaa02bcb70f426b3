"""Fetch the official UCSD raw files into a cache folder, resumably and verified.

A download goes to `NAME.part` and is renamed only once its size (and sha256,
where known) checks out; a rerun resumes a `.part` with an HTTP Range request.

    $ datagen download steam
    $ datagen download amazon Gift_Cards --reviews 5core
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import requests

from datagen.cache import cache_root
from datagen.errors import DataError
from datagen.rawfiles import sha256

STEAM_BASE_URL = "https://cseweb.ucsd.edu/~wckang/"
AMAZON_BASE_URL = "https://jmcauley.ucsd.edu/data/amazon_v2/"
AMAZON_REVIEW_KINDS = {
    "5core": "categoryFilesSmall/{category}_5.json.gz",
    "full": "categoryFiles/{category}.json.gz",
    "ratings": "categoryFilesSmall/{category}.csv",
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


@dataclass(frozen=True)
class RemoteFile:
    name: str
    url: str


def cache_dir() -> Path:
    """Where downloaded raw files live: $DATAGEN_CACHE/raw, default ~/.cache/datagen/raw."""
    return cache_root() / "raw"


def official_files(source: str, category: str | None = None, reviews: str = "5core", base_url: str | None = None) -> list[RemoteFile]:
    """The files `datagen download SOURCE [CATEGORY]` fetches."""
    if source == "steam":
        base = base_url or STEAM_BASE_URL
        return [RemoteFile(name, base + name) for name in ("steam_games.json.gz", "steam_reviews.json.gz")]
    if source == "amazon":
        if not category:
            raise DataError("amazon needs a category, e.g. `datagen download amazon Gift_Cards`")
        if reviews not in AMAZON_REVIEW_KINDS:
            raise DataError(f"--reviews must be one of {', '.join(AMAZON_REVIEW_KINDS)}, not {reviews!r}")
        base = base_url or AMAZON_BASE_URL
        review_path = AMAZON_REVIEW_KINDS[reviews].format(category=category)
        meta_path = f"metaFiles2/meta_{category}.json.gz"
        return [RemoteFile(Path(path).name, base + path) for path in (review_path, meta_path)]
    raise DataError(f"`datagen download` knows steam and amazon, not {source!r}; bring other catalogs with the table source")


def download(remote: RemoteFile, folder: Path, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Fetch `remote` into `folder`, resuming a partial download; return the verified file."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.name
    if target.is_file() and _matches_known_checksum(target):
        return target
    partial = folder / (remote.name + ".part")
    done = partial.stat().st_size if partial.is_file() else 0
    headers = {"Range": f"bytes={done}-"} if done else {}
    try:
        response = requests.get(remote.url, headers=headers, stream=True, timeout=30)
    except requests.RequestException as error:
        host = urlparse(remote.url).netloc
        raise DataError(
            f"cannot reach {host} to fetch {remote.name} ({type(error).__name__})",
            hint=f"This machine seems to be offline. Fetch {remote.url} elsewhere, put it in {folder}, "
            "or point `datagen build --raw-dir` at a folder holding the files.",
        ) from None
    with response:
        if response.status_code == 416 and done:
            response.close()
            partial.unlink()
            return download(remote, folder, progress)
        if response.status_code not in (200, 206):
            raise DataError(f"{remote.url} answered HTTP {response.status_code}", hint="Check the category name and --base-url.")
        if response.status_code == 200:
            done = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        with open(partial, "ab" if done else "wb") as handle:
            try:
                for chunk in response.iter_content(_CHUNK):
                    handle.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            except requests.RequestException as error:
                raise DataError(
                    f"download of {remote.name} broke off after {done} bytes ({type(error).__name__})",
                    path=partial,
                    hint="Run the same command again to resume from there.",
                ) from None
    if total is not None and partial.stat().st_size != total:
        raise DataError(
            f"download stopped at {partial.stat().st_size} of {total} bytes",
            path=partial,
            hint="Run the same command again to resume.",
        )
    if not _matches_known_checksum(partial, remote.name):
        partial.unlink()
        raise DataError("sha256 differs from the official file's; the partial download was removed", path=target)
    os.replace(partial, target)
    return target


def _matches_known_checksum(path: Path, name: str | None = None) -> bool:
    expected = KNOWN_SHA256.get(name or path.name)
    if expected is None:
        return True
    return sha256(path) == expected
