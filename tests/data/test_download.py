"""fetch() against a local HTTP server only: success, cache reuse, and every failure path.

No test here touches the real network: the registry entry is copied with
``dataclasses.replace`` to point at a server on 127.0.0.1 with the test
archive's own size and SHA-256.
"""

from __future__ import annotations

import hashlib
import io
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from embrec.data import datasets
from embrec.data.datasets import DATASETS, DatasetInfo, fetch, is_cached
from embrec.data.download import download, verify
from embrec.errors import ConfigError, DownloadError

U_ITEM = "1|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n"


def ml100k_zip(folder: str = "ml-100k", *, with_data: bool = True) -> bytes:
    """A tiny archive in GroupLens' ml-100k layout."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        if with_data:
            bundle.writestr(f"{folder}/u.data", "1\t1\t5\t881250949\n2\t1\t3\t881250950\n")
        bundle.writestr(f"{folder}/u.item", U_ITEM)
        bundle.writestr(f"{folder}/README", "test archive")
    return buffer.getvalue()


@dataclass
class Server:
    """Serves ``routes[path] = (mode, body)``; mode is 'ok' or 'truncate'."""

    url: str = ""
    routes: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)


@pytest.fixture()
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            if self.path not in state.routes:
                self.send_error(404, "Not Found")
                return
            mode, body = state.routes[self.path]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if mode == "ok" else body[: len(body) // 2])
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def entry(server: Server, body: bytes, *, mode: str = "ok", **changes: object) -> DatasetInfo:
    """Serve ``body`` and return the ml-100k registry entry pointed at it."""
    server.routes["/ml-100k.zip"] = (mode, body)
    pinned: dict[str, object] = {"url": f"{server.url}/ml-100k.zip", "size": len(body),
                                 "sha256": hashlib.sha256(body).hexdigest()}
    pinned.update(changes)
    return replace(DATASETS["ml-100k"], **pinned)  # type: ignore[arg-type]


def leftovers(home: Path) -> list[str]:
    root = home / "datasets"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_fetch_downloads_verifies_and_reuses_the_cache(server: Server, tmp_path: Path) -> None:
    info = entry(server, ml100k_zip())
    target = fetch(info, home=tmp_path, progress=False)
    assert target == tmp_path / "datasets" / "ml-100k"
    assert (target / "u.data").read_text().startswith("1\t1\t5")
    assert is_cached(info, tmp_path) and leftovers(tmp_path) == ["ml-100k"]
    assert fetch(info, home=tmp_path, progress=False) == target
    assert server.requests == ["/ml-100k.zip"]  # the second call stayed offline


def test_archive_without_a_top_folder_is_found(server: Server, tmp_path: Path) -> None:
    target = fetch(entry(server, ml100k_zip(folder="")), home=tmp_path, progress=False)
    assert (target / "u.data").is_file()


def test_url_override_downloads_from_a_mirror(server: Server, tmp_path: Path) -> None:
    body = ml100k_zip()
    server.routes["/mirror.zip"] = ("ok", body)
    info = entry(server, body, url="http://127.0.0.1:9/unused.zip")
    fetch(info, home=tmp_path, progress=False, url=f"{server.url}/mirror.zip")
    assert server.requests == ["/mirror.zip"]


def test_checksum_mismatch_is_reported_and_leaves_nothing(server: Server,
                                                          tmp_path: Path) -> None:
    info = entry(server, ml100k_zip(), sha256="0" * 64)
    with pytest.raises(DownloadError, match="SHA-256") as caught:
        fetch(info, home=tmp_path, progress=False)
    assert info.url is not None and info.url in str(caught.value)
    assert str(tmp_path / "datasets") in str(caught.value)  # where to drop the files
    assert leftovers(tmp_path) == []


def test_size_mismatch_without_checksum(server: Server, tmp_path: Path) -> None:
    info = entry(server, ml100k_zip(), sha256=None, size=123)
    with pytest.raises(DownloadError, match="expected 123"):
        fetch(info, home=tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_http_404(server: Server, tmp_path: Path) -> None:
    info = replace(DATASETS["ml-100k"], url=f"{server.url}/missing.zip")
    with pytest.raises(DownloadError, match="HTTP 404") as caught:
        fetch(info, home=tmp_path, progress=False)
    message = str(caught.value)
    assert "missing.zip" in message and "unzip missing.zip into" in message
    assert str(tmp_path / "datasets" / "ml-100k" / "u.data") in message
    assert leftovers(tmp_path) == []


def test_connection_refused_reads_as_offline(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    info = replace(DATASETS["ml-100k"], url=f"http://127.0.0.1:{port}/ml-100k.zip")
    with pytest.raises(DownloadError, match="cannot reach 127.0.0.1") as caught:
        fetch(info, home=tmp_path, progress=False)
    assert "hint:" in str(caught.value)
    assert leftovers(tmp_path) == []


def test_interrupted_transfer_leaves_no_partial_cache(server: Server, tmp_path: Path) -> None:
    info = entry(server, ml100k_zip() * 50, mode="truncate")
    with pytest.raises(DownloadError, match="connection closed after"):
        fetch(info, home=tmp_path, progress=False)
    assert leftovers(tmp_path) == [] and not is_cached(info, tmp_path)


def test_ctrl_c_while_unpacking_leaves_no_partial_cache(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(datasets, "extract_zip", interrupt)
    with pytest.raises(KeyboardInterrupt):
        fetch(entry(server, ml100k_zip()), home=tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_not_a_zip_and_missing_files(server: Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="cannot unpack"):
        fetch(entry(server, b"<html>not a zip</html>"), home=tmp_path, progress=False)
    with pytest.raises(DownloadError, match="holds no u.data"):
        fetch(entry(server, ml100k_zip(with_data=False)), home=tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_incomplete_cache_folder_is_not_overwritten(server: Server, tmp_path: Path) -> None:
    target = tmp_path / "datasets" / "ml-100k"
    target.mkdir(parents=True)
    (target / "u.item").write_text(U_ITEM)
    with pytest.raises(DownloadError, match="exists but lacks u.data"):
        fetch(entry(server, ml100k_zip()), home=tmp_path, progress=False)
    assert server.requests == [] and (target / "u.item").is_file()


def test_progress_bar_goes_to_stderr_only_when_asked(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = ml100k_zip()
    server.routes["/a.zip"] = ("ok", body)
    download(f"{server.url}/a.zip", tmp_path / "quiet.zip", progress=False)
    assert capsys.readouterr() == ("", "")
    received, digest = download(f"{server.url}/a.zip", tmp_path / "loud.zip", progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "a.zip" in captured.err
    assert (received, digest) == (len(body), hashlib.sha256(body).hexdigest())


def test_malformed_url(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="full URL"):
        download("files.example/ml-100k.zip", tmp_path / "x.zip", progress=False)


def test_verify_says_what_it_checked() -> None:
    digest = hashlib.sha256(b"x").hexdigest()
    assert verify("u", 1, digest, size=1, sha256=digest.upper()) == "SHA-256 verified"
    assert verify("u", 1, digest, size=1, sha256=None) == "no pinned checksum; size checked"
    assert "not verified" in verify("u", 1, digest, size=None, sha256=None)


def test_synthetic_and_unknown_names_are_not_fetched(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nothing to fetch"):
        fetch("synthetic", home=tmp_path)
    with pytest.raises(ValueError, match="did you mean 'ml-100k'"):
        fetch("ml-100", home=tmp_path)
