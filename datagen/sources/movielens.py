"""MovieLens (GroupLens, Harper & Konstan 2015): every release, read as published.

    $ datagen build movielens:ml-100k --raw-dir data/movielens/ml-100k
    $ datagen build movielens:ml-1m --raw-dir data/movielens          # the folder holding ml-1m/

Three layouts: ml-100k's `u.data` (tab-separated `user item rating time`) and
`u.item` (pipe-separated, 19 genre flags named by `u.genre`); ml-1m's and
ml-10m's `ratings.dat` / `movies.dat` (`::`-separated, genres joined by `|`);
and the CSV releases (ml-20m, ml-25m, ml-32m, ml-latest, ml-latest-small:
`ratings.csv`, `movies.csv` with a header and quoted titles). The old files are
latin-1; a file is read as UTF-8 when it is valid UTF-8, else as latin-1.

Titles stay as published ("Toy Story (1995)", "Usual Suspects, The (1995)").
Genres are the categories, a set; "unknown" (ml-100k) and "(no genres listed)"
say nothing and are dropped. Times are unix seconds, checked to be plausible.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from datagen.cache import raw_cache_dir
from datagen.errors import DataError
from datagen.ingest.rawfiles import read_bytes
from datagen.ingest.report import BuildReport
from datagen.ingest.timestamps import checked_seconds
from datagen.sources import register_source
from datagen.sources.base import RawCatalog, Source, require_file

# The usage licence in the README GroupLens ships beside every release's files.
GROUPLENS_TERMS = (
    "GroupLens' usage licence (the README beside the data): research use; the data may not be redistributed "
    "without separate permission from GroupLens, nor used for revenue-bearing purposes without permission; "
    "publications must cite Harper & Konstan 2015."
)


@dataclass(frozen=True)
class Layout:
    ratings: str
    movies: str
    separator: str  # "csv": a CSV file with a header


LAYOUT_100K = Layout("u.data", "u.item", "\t")
LAYOUT_DAT = Layout("ratings.dat", "movies.dat", "::")
LAYOUT_CSV = Layout("ratings.csv", "movies.csv", "csv")
RELEASES = {
    "ml-100k": LAYOUT_100K,
    "ml-1m": LAYOUT_DAT,
    "ml-10m": LAYOUT_DAT,
    "ml-20m": LAYOUT_CSV,
    "ml-25m": LAYOUT_CSV,
    "ml-32m": LAYOUT_CSV,
    "ml-latest": LAYOUT_CSV,
    "ml-latest-small": LAYOUT_CSV,
}
# The folder each release's zip unpacks to, where it differs from the release's name.
ZIP_FOLDERS = {"ml-10m": "ml-10M100K"}
# ml-100k's genres by flag position, as its README and u.genre list them (u.genre wins when present).
GENRES_100K = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama", "Fantasy",
    "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
]  # fmt: skip
NO_GENRE = {"unknown", "(no genres listed)"}


@register_source
class MovieLensSource(Source):
    name = "movielens"
    summary = "MovieLens (GroupLens): ml-100k, ml-1m, ml-10m, ml-20m, ml-25m, ml-32m, ml-latest(-small), as published"
    argument = "RELEASE, e.g. movielens:ml-100k (" + ", ".join(RELEASES) + ")"

    def default_raw_dir(self, argument: str | None) -> Path | None:
        downloaded = raw_cache_dir() / "movielens"
        return downloaded if downloaded.is_dir() else None

    def load(self, raw_dir: Path, argument: str | None, options: dict[str, str], report: BuildReport) -> RawCatalog:
        self.resolve_options(options)
        if argument not in RELEASES:
            raise DataError(f"unknown MovieLens release {argument!r}; the releases are: {', '.join(RELEASES)}")
        layout = RELEASES[argument]
        folder = release_folder(raw_dir, argument, layout)
        hint = f"Run `datagen download movielens:{argument}`, or pass --raw-dir the unzipped {argument} folder."
        ratings_path = require_file(folder, [layout.ratings], f"MovieLens {argument} ratings", hint)
        movies_path = require_file(folder, [layout.movies], f"MovieLens {argument} movies", hint)
        genre_names = read_genre_names(folder / "u.genre") if layout is LAYOUT_100K else []
        return RawCatalog(
            items=read_movies(movies_path, layout, genre_names, report),
            interactions=read_ratings(ratings_path, layout, report),
            input_files=[ratings_path, movies_path],
            category_kind="MovieLens genres (a set; 'unknown' and '(no genres listed)' dropped)",
            catalog_noun="movies",
            citation_keys=("harper2015",),
            terms=GROUPLENS_TERMS,
            redistribution_forbidden=True,
        )


def release_folder(raw_dir: Path, release: str, layout: Layout) -> Path:
    """The folder with the release's files: `raw_dir` itself, or its subfolder named as the release (or its zip)."""
    for folder in (raw_dir, raw_dir / release, raw_dir / ZIP_FOLDERS.get(release, release)):
        if (folder / layout.ratings).is_file():
            return folder
    return raw_dir


def decode(raw: bytes) -> str:
    """GroupLens text: UTF-8 when the bytes are valid UTF-8 (the newer releases), else latin-1 (ml-100k, ml-1m)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def split_lines(path: Path, separator: str, width: int, what: str, report: BuildReport) -> pl.DataFrame:
    """The file's non-blank lines cut at `separator` into columns f0.., with `line`; rows of another width are bad rows."""
    text = decode(read_bytes(path))
    lines = pl.DataFrame({"text": text.split("\n")}).with_row_index("line", offset=1)
    lines = lines.with_columns(pl.col("text").str.strip_chars("\r")).filter(pl.col("text").str.strip_chars() != "")
    fields = lines.with_columns(pl.col("text").str.split(separator).alias("fields"))
    wrong = fields.filter(pl.col("fields").list.len() != width)
    report.skip_bad_rows(
        wrong.select(pl.col("line").cast(pl.UInt32), pl.lit("line").alias("field"), pl.lit(f"not {width} fields separated by {separator!r}").alias("reason")),
        total=lines.height,
        path=path,
        what=what,
    )
    fields = fields.filter(pl.col("fields").list.len() == width)
    return fields.select("line", *[pl.col("fields").list.get(i).alias(f"f{i}") for i in range(width)])


def read_csv(path: Path, columns: list[str]) -> pl.DataFrame:
    """A CSV release's file as text columns f0.. in the order of `columns`, which its header must hold."""
    try:
        frame = pl.read_csv(io.StringIO(decode(read_bytes(path))), infer_schema=False)
    except pl.exceptions.PolarsError as error:
        raise DataError(f"cannot read as CSV: {error}", path=path) from None
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise DataError(f"the header lacks {', '.join(missing)} (it has {', '.join(frame.columns)})", path=path, line=1)
    return frame.select(pl.col(name).alias(f"f{i}") for i, name in enumerate(columns)).with_row_index("line", offset=2)


def read_ratings(path: Path, layout: Layout, report: BuildReport) -> pl.DataFrame:
    if layout.separator == "csv":
        fields = read_csv(path, ["userId", "movieId", "rating", "timestamp"])
    else:
        fields = split_lines(path, layout.separator, 4, "ratings", report)
    seconds, time_problems = checked_seconds(fields["f3"].str.strip_chars(), "s", path=path, field="timestamp")
    parsed = fields.select(
        "line",
        pl.col("f0").str.strip_chars().alias("raw_user_id"),
        pl.col("f1").str.strip_chars().alias("raw_item_id"),
        pl.col("f2").str.strip_chars().cast(pl.Float64, strict=False).alias("rating"),
    ).with_columns(timestamp=seconds, time_problem=time_problems)
    numeric_id = r"^\d+$"
    problem = (
        pl.when(~pl.col("raw_user_id").str.contains(numeric_id)).then(pl.lit("user id"))
        .when(~pl.col("raw_item_id").str.contains(numeric_id)).then(pl.lit("movie id"))
        .when(pl.col("rating").is_null() | ~pl.col("rating").is_between(0.5, 5)).then(pl.lit("rating"))
        .when(pl.col("timestamp").is_null() | pl.col("time_problem").is_not_null()).then(pl.lit("timestamp"))
    )  # fmt: skip
    parsed = parsed.with_columns(problem.alias("field"))
    bad = parsed.filter(pl.col("field").is_not_null()).select(pl.col("line").cast(pl.UInt32), "field", pl.coalesce("time_problem", pl.format("missing or invalid {}", "field")).alias("reason"))
    report.skip_bad_rows(bad, total=parsed.height, path=path, what="ratings")
    return parsed.filter(pl.col("field").is_null()).select("raw_user_id", "raw_item_id", "timestamp", "rating", pl.col("line").cast(pl.Int64).alias("order_key"))


def read_genre_names(path: Path) -> list[str]:
    """ml-100k's u.genre (`name|index`) as the list of names by index; its README's list when the file is absent."""
    if not path.is_file():
        return GENRES_100K
    rows = [line.split("|") for line in decode(read_bytes(path)).splitlines() if line.strip()]
    try:
        by_index = {int(index): name for name, index in rows}
    except ValueError:
        raise DataError("not `name|index` lines", path=path) from None
    if sorted(by_index) != list(range(len(by_index))):
        raise DataError(f"genre indices are not 0..{len(by_index) - 1}", path=path)
    return [by_index[i] for i in range(len(by_index))]


def read_movies(path: Path, layout: Layout, genre_names: list[str], report: BuildReport) -> pl.DataFrame:
    if layout is LAYOUT_100K:
        fields = split_lines(path, "|", 5 + len(genre_names), "movies", report)
        flags = [pl.when(pl.col(f"f{5 + i}") == "1").then(pl.lit(name)) for i, name in enumerate(genre_names)]
        genres = pl.concat_list(flags).list.drop_nulls()
    else:
        if layout.separator == "csv":
            fields = read_csv(path, ["movieId", "title", "genres"])
        else:
            fields = split_lines(path, layout.separator, 3, "movies", report)
        genres = pl.col("f2").str.split("|")
    # ml-100k's movie 267 is a placeholder: title "unknown", no date, no genre.
    placeholder = fields.filter(pl.col("f1").str.strip_chars() == "unknown")
    report.skip_bad_rows(
        placeholder.select(pl.col("line").cast(pl.UInt32), pl.lit("title").alias("field"), pl.lit("placeholder title 'unknown'").alias("reason")),
        total=fields.height,
        path=path,
        what="movies",
    )
    return fields.filter(pl.col("f1").str.strip_chars() != "unknown").select(
        pl.col("f0").str.strip_chars().alias("raw_item_id"),
        pl.col("f1").alias("title"),
        genres.list.eval(pl.element().filter(~pl.element().is_in(list(NO_GENRE)))).alias("categories"),
    )
