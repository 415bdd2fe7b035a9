"""Fetching one archive over HTTP: stream, hash, verify, unpack, install atomically.

Every step writes inside a staging folder beside the cache folder, and only a
verified, extracted folder is moved into place (one ``os.replace``), so an interrupted
download never leaves a half-written cache. Failures are one
:class:`~embrec.errors.DownloadError` with the URL, the reason and a hint.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import sys
import zipfile
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import urlsplit
from urllib.request import Request, urlopen

from tqdm import tqdm

from embrec.errors import DownloadError

__all__ = ["download", "extract_zip", "install", "verify"]

log = logging.getLogger(__name__)

CHUNK_BYTES = 1 << 20
TIMEOUT_SECONDS = 60.0


def download(
    url: str,
    dest: Path,
    *,
    size: int | None = None,
    progress: bool = True,
    desc: str = "",
    hint: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
) -> tuple[int, str]:
    """Stream ``url`` into the file ``dest``, hashing it on the way.

    ``size`` sizes the progress bar (labelled ``desc``) when the server sends no
    ``Content-Length``; ``hint`` (how to get the files another way) ends any error.

    Returns:
        The number of bytes received and their SHA-256 as hex.

    Raises:
        DownloadError: the URL is malformed, the server is unreachable or answers
            with an HTTP error, or the connection drops before the announced
            length arrived.
    """
    digest = hashlib.sha256()
    received = 0
    announced: int | None = None
    try:
        request = Request(url, headers={"User-Agent": "embrec (Python urllib)"})
    except ValueError as error:
        raise DownloadError(f"cannot download {url!r}: {error}",
                            hint="pass a full URL such as https://host/file.zip") from None
    try:
        with urlopen(request, timeout=timeout) as response, dest.open("wb") as out:
            length = response.headers.get("Content-Length")
            announced = int(length) if length and length.isdigit() else None
            with tqdm(total=announced or size, unit="B", unit_scale=True, unit_divisor=1024,
                      desc=desc or Path(urlsplit(url).path).name, disable=not progress,
                      file=sys.stderr, leave=False) as bar:
                while chunk := response.read(CHUNK_BYTES):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except HTTPError as error:
        error.close()  # it holds the response and its socket
        raise DownloadError(f"cannot download {url}: HTTP {error.code} {error.reason}",
                            hint=hint) from None
    except URLError as error:
        host = urlsplit(url).netloc or url
        raise DownloadError(f"cannot download {url}: cannot reach {host} ({error.reason})",
                            hint=hint) from None
    except (OSError, http.client.HTTPException) as error:
        reason = str(error) or type(error).__name__
        raise DownloadError(f"cannot download {url}: transfer failed after {received:,} "
                            f"bytes ({reason})", hint=hint) from None
    if announced is not None and received != announced:
        raise DownloadError(f"cannot download {url}: connection closed after {received:,} "
                            f"of {announced:,} bytes", hint=hint)
    return received, digest.hexdigest()


def verify(
    url: str,
    received: int,
    digest: str,
    *,
    size: int | None,
    sha256: str | None,
    hint: str | None = None,
) -> str:
    """Check a downloaded file (``received`` bytes, ``digest``) against its pinned size and
    SHA-256 (either may be None).

    Returns:
        What was checked, e.g. ``"SHA-256 verified"`` or
        ``"no pinned checksum; size checked"``.

    Raises:
        DownloadError: the size or the checksum differs from the pinned one.
    """
    if size is not None and received != size:
        raise DownloadError(f"downloaded {url} has {received:,} bytes, expected {size:,}",
                            hint=hint)
    if sha256 is not None and digest != sha256.lower():
        raise DownloadError(
            f"downloaded {url} has SHA-256 {digest}, expected {sha256.lower()}",
            hint="the transfer was corrupted or the publisher changed the file; retry, or "
                 + (hint or "report the new checksum"),
        )
    if sha256 is not None:
        return "SHA-256 verified"
    if size is not None:
        return "no pinned checksum; size checked"
    return "no pinned checksum or size; not verified"


def extract_zip(archive: Path, dest: Path, *, hint: str | None = None) -> None:
    """Unpack the zip file ``archive`` into the folder ``dest``.

    ``zipfile`` drops absolute paths and ``..`` from member names, so nothing is
    written outside ``dest``.

    Raises:
        DownloadError: the file is not a valid zip archive.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(dest)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as error:
        raise DownloadError(f"cannot unpack {archive.name}: {error}", hint=hint) from None


def install(staged: Path, target: Path) -> bool:
    """Move the complete folder ``staged`` to ``target`` (on the same file system, not there
    yet) in one atomic rename; False if ``target`` appeared meanwhile (another process
    finished the same download first).

    Raises:
        DownloadError: the folder cannot be moved for another reason.
    """
    try:
        os.replace(staged, target)
    except OSError as error:
        if target.is_dir():
            log.info("%s was filled by another process meanwhile", target)
            return False
        raise DownloadError(f"cannot move {staged} to {target}: {error}",
                            hint="check the permissions of the cache folder") from None
    return True
