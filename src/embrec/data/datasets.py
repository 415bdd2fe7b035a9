"""Known rating data sets: where they come from, how they are cached, how to load them.

``DATASETS`` pins each public data set's URL, SHA-256, size, licence and citation.
Files live in ``$EMBREC_HOME/datasets/NAME/`` (default ``~/.cache/embrec``) in the
publisher's own layout, e.g. ``~/.cache/embrec/datasets/ml-100k/u.data``, so a
copy unzipped by hand works as well as a downloaded one. A cached data set never
touches the network; ``synthetic`` is generated in memory and never downloaded.
"""

from __future__ import annotations

import difflib
import logging
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embrec.data.download import download as download_file
from embrec.data.download import extract_zip, install, verify
from embrec.data.ratings import Duplicates, Ratings
from embrec.data.validation import OnBadLines
from embrec.errors import ConfigError, DataError, DownloadError

__all__ = [
    "DATASETS",
    "DatasetInfo",
    "data_home",
    "dataset_dir",
    "dataset_info",
    "fetch",
    "is_cached",
    "list_datasets",
    "load_dataset",
    "local_copy",
]

log = logging.getLogger(__name__)

GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
MOVIELENS_LICENCE = "GroupLens terms: research use only, no redistribution"
MOVIELENS_CITATION = (
    "F. Maxwell Harper and Joseph A. Konstan. 2015. The MovieLens Datasets: History and "
    "Context. ACM Transactions on Interactive Intelligent Systems 5, 4: 19:1-19:19. "
    "https://doi.org/10.1145/2827872"
)
SYNTHETIC_RATINGS = 100_000  # MovieLens-100K-like: 943 users x 1682 items, seed 0


@dataclass(frozen=True, kw_only=True, slots=True)
class DatasetInfo:
    """Everything needed to download, verify, cache and read one data set.

    Attributes:
        name: registry key and cache folder name.
        url: the publisher's download URL (``None`` for generated data).
        sha256: pinned SHA-256 of the archive, or ``None`` when none is known.
        size: archive size in bytes, or ``None`` when not known.
        archive_folder: folder inside the zip holding the files (``""``: the zip root).
        layout: layout name understood by :func:`embrec.data.layouts.read_layout`.
        files: files whose presence marks a complete cache folder.
        n_ratings: number of ratings the publisher documents.
        licence: short licence note.
        citation: what to cite when publishing results.
    """

    name: str
    url: str | None
    sha256: str | None
    size: int | None
    archive_folder: str
    layout: str
    files: tuple[str, ...]
    n_ratings: int
    licence: str
    citation: str


def _movielens(name: str, sha256: str, size: int, files: tuple[str, ...],
               n_ratings: int) -> DatasetInfo:
    return DatasetInfo(name=name, url=f"{GROUPLENS}{name}.zip", sha256=sha256, size=size,
                       archive_folder=name, layout=name, files=files, n_ratings=n_ratings,
                       licence=MOVIELENS_LICENCE, citation=MOVIELENS_CITATION)


# Checksums: tensorflow_datasets' url_checksums/movielens.txt (ml-100k, ml-1m,
# ml-latest-small, ml-25m); ml-32m: two independent projects' pins, consistent with
# GroupLens' published MD5 d472be332d4daa821edc399621853b57 and size; goodbooks-10k:
# Ludwig's datasets/configs/goodbooks_books.yaml (no size published).
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        _movielens("ml-100k", "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
                   4_924_029, ("u.data", "u.item"), 100_000),
        _movielens("ml-1m", "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
                   5_917_549, ("ratings.dat", "movies.dat"), 1_000_209),
        _movielens("ml-latest-small",
                   "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
                   978_202, ("ratings.csv", "movies.csv"), 100_836),
        _movielens("ml-25m", "8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
                   261_978_986, ("ratings.csv", "movies.csv"), 25_000_095),
        _movielens("ml-32m", "e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee",
                   238_950_008, ("ratings.csv", "movies.csv"), 32_000_204),
        DatasetInfo(
            name="goodbooks-10k",
            url="https://github.com/zygmuntz/goodbooks-10k/releases/download/v1.0/"
                "goodbooks-10k.zip",
            sha256="261b97b56db61f3fb2ce5aadbb13704d30179fcc986c17ace665a0af9ed00731",
            size=None, archive_folder="", layout="goodbooks-10k",
            files=("ratings.csv", "books.csv"), n_ratings=5_976_479,
            licence="CC BY-SA 4.0",
            citation="Zygmunt Zając. 2017. Goodbooks-10k: a new dataset for book "
                     "recommendations. FastML. https://github.com/zygmuntz/goodbooks-10k",
        ),
        DatasetInfo(
            name="synthetic", url=None, sha256=None, size=None, archive_folder="",
            layout="synthetic", files=(), n_ratings=SYNTHETIC_RATINGS,
            licence="generated by embrec (no restrictions)",
            citation="embrec.data.synthetic.generate(943, 1682, 100_000, seed=0)",
        ),
    )
}


def data_home(home: str | os.PathLike[str] | None = None) -> Path:
    """Return embrec's data folder: ``home``, else ``$EMBREC_HOME``, else ``~/.cache/embrec``.

    Args:
        home: an explicit folder, which wins over the environment.

    Returns:
        The folder (it may not exist yet). The environment is read at each call.
    """
    if home is None:
        home = os.environ.get("EMBREC_HOME") or Path.home() / ".cache" / "embrec"
    return Path(home).expanduser()


def dataset_dir(name: str, home: str | os.PathLike[str] | None = None) -> Path:
    """Return the cache folder of data set ``name``: ``HOME/datasets/NAME``.

    Args:
        name: the data set name.
        home: embrec's data folder (see :func:`data_home`).

    Returns:
        The folder (it may not exist yet).
    """
    return data_home(home) / "datasets" / name


def is_cached(name: str | DatasetInfo, home: str | os.PathLike[str] | None = None) -> bool:
    """Tell whether a data set's files are all in its cache folder.

    Args:
        name: a registry name or a :class:`DatasetInfo`.
        home: embrec's data folder.

    Returns:
        ``True`` when every marker file exists (always ``True`` for ``synthetic``).

    Raises:
        DataError: for an unknown name.
    """
    info = _lookup(name)
    folder = dataset_dir(info.name, home)
    return all((folder / file).is_file() for file in info.files)


def _lookup(name: str | DatasetInfo) -> DatasetInfo:
    if isinstance(name, DatasetInfo):
        return name
    if name in DATASETS:
        return DATASETS[name]
    raise _unknown(name)


def _unknown(name: str) -> DataError:
    close = difflib.get_close_matches(name, list(DATASETS), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return DataError(f"no data set or file named {name!r}",
                     hint=f"{hint}known data sets: {', '.join(DATASETS)}; or pass a path")


def _manual_hint(info: DatasetInfo, home: str | os.PathLike[str] | None) -> str:
    target = dataset_dir(info.name, home)
    archive = Path(info.url or info.name).name
    into = target.parent if info.archive_folder else target
    return (f"download {info.url} by hand and unzip {archive} into {into} so that "
            f"{target / info.files[0]} exists, or give the path of a folder holding "
            f"{info.files[0]} instead of the name {info.name!r}")


def local_copy(info: DatasetInfo, home: str | os.PathLike[str] | None = None) -> Path | None:
    """Find a copy of a data set already laid out on this machine, without downloading.

    Looks in its cache folder (also one level down, as unzipping the archive into
    that folder leaves it); without ``home``, also in the default cache (when
    ``$EMBREC_HOME`` points elsewhere) and in a folder of that name in the working
    directory.

    Args:
        info: the data set.
        home: embrec's data folder (see :func:`data_home`).

    Returns:
        The folder holding every marker file, or None.
    """
    cached = dataset_dir(info.name, home)
    places = [cached, cached / (info.archive_folder or info.name)]
    if home is None:  # $EMBREC_HOME may point away from a copy in the default cache
        places += [Path.home() / ".cache" / "embrec" / "datasets" / info.name,
                   Path.cwd() / info.name]
    for folder in places:
        if all((folder / file).is_file() for file in info.files):
            return folder
    return None


def fetch(
    name: str | DatasetInfo,
    *,
    home: str | os.PathLike[str] | None = None,
    progress: bool = True,
    url: str | None = None,
) -> Path:
    """Download, verify and unpack a data set into its cache folder, unless cached.

    The archive is streamed to a staging folder beside the cache folder, checked
    against its pinned size and SHA-256, extracted, and moved into place in one
    rename, so an interrupted download leaves no partial cache behind.

    Args:
        name: a registry name, or a :class:`DatasetInfo` (e.g. a registry
            entry changed with ``dataclasses.replace``).
        home: embrec's data folder (see :func:`data_home`).
        progress: show a progress bar on stderr.
        url: download from this URL (a mirror) instead of the registry's.

    Returns:
        The cache folder, holding the publisher's files.

    Raises:
        DataError: for an unknown name.
        ConfigError: for ``synthetic``, which is generated, not downloaded.
        DownloadError: offline, HTTP error, dropped connection, size or checksum
            mismatch, or a cache folder that exists but is incomplete.
    """
    info = _lookup(name)
    target = dataset_dir(info.name, home)
    if info.url is None:
        raise ConfigError("name", info.name, "is generated in memory; there is nothing to fetch",
                          hint="call load_dataset('synthetic') or embrec.data.synthetic.generate()")
    if is_cached(info, home):
        return target
    hint = _manual_hint(info, home)
    if target.exists():
        missing = [file for file in info.files if not (target / file).is_file()]
        raise DownloadError(f"{target} exists but lacks {', '.join(missing)}",
                            hint=f"delete that folder and fetch again, or {hint}")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{info.name}.", suffix=".part", dir=target.parent))
    try:
        _fetch_into(info, url or info.url, staging, target, progress=progress, hint=hint)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _fetch_into(info: DatasetInfo, url: str, staging: Path, target: Path, *,
                progress: bool, hint: str) -> None:
    log.info("downloading %s from %s", info.name, url)
    archive = staging / "archive.zip"
    received, digest = download_file(url, archive, size=info.size, progress=progress,
                                desc=info.name, hint=hint)
    checked = verify(url, received, digest, size=info.size, sha256=info.sha256, hint=hint)
    log.info("%s: %s (%d bytes)", info.name, checked, received)
    extract_zip(archive, staging / "unpacked", hint=hint)
    archive.unlink()
    folder = _locate(staging / "unpacked", info)
    if folder is None:
        raise DownloadError(f"the archive from {url} holds no {' and '.join(info.files)}",
                            hint=hint)
    if install(folder, target):
        log.info("%s cached in %s", info.name, target)


def _locate(unpacked: Path, info: DatasetInfo) -> Path | None:
    """Find the folder inside an unpacked archive that holds the marker files."""
    candidates = [unpacked / info.archive_folder, unpacked]
    candidates += sorted(path for path in unpacked.iterdir() if path.is_dir())
    for folder in candidates:
        if all((folder / file).is_file() for file in info.files):
            return folder
    return None


def load_dataset(
    name: str | os.PathLike[str] | DatasetInfo,
    *,
    home: str | os.PathLike[str] | None = None,
    download: bool = True,
    progress: bool = True,
    user: str | int | None = None,
    item: str | int | None = None,
    rating: str | int | None = None,
    timestamp: str | int | None = None,
    format: str | None = None,
    sep: str | None = None,
    scale: tuple[float, float] | None = None,
    duplicates: Duplicates = "error",
    on_bad_lines: OnBadLines = "error",
    user_features: str | os.PathLike[str] | None = None,
    item_features: str | os.PathLike[str] | None = None,
) -> Ratings:
    """Load a known data set by name (downloading it once), or ratings from a path.

    Args:
        name: a registry name (see ``DATASETS``), a :class:`DatasetInfo`, a folder
            in one of the publishers' layouts, or a ratings file.
        home: embrec's data folder (see :func:`data_home`).
        download: fetch a data set missing from the cache (otherwise raise).
        progress: show a download progress bar.
        user: the user id column of a ratings file, by name or 0-based position.
        item: the item id column of a ratings file.
        rating: the rating column of a ratings file.
        timestamp: the timestamp column of a ratings file.
        format: the file format (see :func:`~embrec.data.readers.read_ratings`).
        sep: the field separator of delimited text.
        scale: ``(min, max)`` to enforce instead of the inferred or published scale.
        duplicates: repeated (user, item) pairs: ``"error"``, ``"last"`` or ``"mean"``.
        on_bad_lines: ``"error"`` or ``"skip"`` malformed lines (with a warning).
        user_features: a user feature file (:func:`~embrec.data.features.read_features`)
            to attach as ``user_features``, replacing the data set's own.
        item_features: likewise for items.

    Returns:
        The ratings, with item titles when the data set carries them.

    Raises:
        DataError: for a name that is neither known nor an existing path, or for
            malformed files.
        ConfigError: for a reading option that does not apply (columns or ``sep``
            for a data set in a known layout, any option for ``synthetic``).
        DownloadError: the data set is not cached and cannot be downloaded (or
            ``download=False``).
    """
    options: dict[str, Any] = {
        "user": user, "item": item, "rating": rating, "timestamp": timestamp, "format": format,
        "sep": sep, "scale": scale, "duplicates": duplicates, "on_bad_lines": on_bad_lines}
    if user_features is not None or item_features is not None:
        from embrec.data.features import with_features

        ratings = load_dataset(name, home=home, download=download, progress=progress, **options)
        return with_features(ratings, user=user_features, item=item_features)
    from embrec.data.readers import read_ratings

    if isinstance(name, str) and name == "synthetic":
        _no_options("synthetic", options)
        from embrec.data.synthetic import generate

        return generate(n_users=943, n_items=1682, n_ratings=SYNTHETIC_RATINGS, seed=0).ratings
    if isinstance(name, DatasetInfo) or str(name) in DATASETS:
        info = _lookup(name if isinstance(name, DatasetInfo) else str(name))
        folder = local_copy(info, home)
        if folder is None:
            if not download:
                raise DownloadError(f"{info.name} is not in {dataset_dir(info.name, home)}",
                                    hint=f"pass download=True, run 'embrec datasets fetch "
                                         f"{info.name}', or {_manual_hint(info, home)}")
            folder = fetch(info, home=home, progress=progress)
        return read_ratings(folder, **{**options, "format": info.layout})
    path = Path(name).expanduser()
    if not path.exists():
        raise _unknown(str(path))
    return read_ratings(path, **options)


def _no_options(name: str, options: dict[str, Any]) -> None:
    defaults = {"duplicates": "error", "on_bad_lines": "error"}
    for key, value in options.items():
        if value is not None and value != defaults.get(key):
            raise ConfigError(key, value, f"does not apply to {name!r}",
                              hint="the data are generated, not read")


def list_datasets(home: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Describe every known data set without touching the network.

    Args:
        home: embrec's data folder (see :func:`data_home`).

    Returns:
        One dict per data set: ``name``, ``cached``, ``ratings``, ``size_mb``
        (download size), ``checksum`` (``sha256`` or ``none``), ``licence`` and ``path``.
    """
    rows = []
    for info in DATASETS.values():
        rows.append({
            "name": info.name,
            "cached": is_cached(info, home),
            "ratings": info.n_ratings,
            "size_mb": None if info.size is None else round(info.size / 1e6, 1),
            "checksum": "sha256" if info.sha256 else "none",
            "licence": info.licence,
            "path": "" if info.url is None else str(dataset_dir(info.name, home)),
        })
    return rows


def dataset_info(
    name_or_path: str | os.PathLike[str],
    *,
    home: str | os.PathLike[str] | None = None,
    download: bool = True,
    read: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Summarise a data set: counts, density, scale, quantiles, plus registry facts.

    Args:
        name_or_path: a registry name or a path (see :func:`load_dataset`).
        home: embrec's data folder (see :func:`data_home`).
        download: fetch a known data set missing from the cache.
        read: reading options passed to :func:`load_dataset` (``sep``, ``user``...).

    Returns:
        :meth:`Ratings.describe` (``ratings``, ``users``, ``items``, ``density``,
        ``scale``...) followed, for known data sets, by ``url``, ``licence`` and
        ``citation``.

    Raises:
        DataError: for an unknown name or malformed files.
        DownloadError: the data set is missing and cannot be downloaded.
    """
    ratings = load_dataset(name_or_path, home=home, download=download, progress=False,
                           **(read or {}))
    info = ratings.describe()
    known = DATASETS.get(str(name_or_path))
    if known is not None:
        info.update(url=known.url, licence=known.licence, citation=known.citation)
    return info
