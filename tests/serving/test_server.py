"""Running the service: startup refuses a bad model directory; one real uvicorn on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import embrec.serving.server as server_module
from embrec.data.ratings import Ratings
from embrec.errors import ArtifactError
from embrec.serving.server import SETTINGS_VARIABLE, app_from_environment, load_app, serve
from tests.serving.conftest import tiny_recommender


@pytest.fixture()
def model_dir(tiny: Ratings, tmp_path: Path) -> Path:
    return tiny_recommender(tiny).save(tmp_path / "model")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_serve_refuses_a_missing_directory_before_binding(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("uvicorn must not start")

    monkeypatch.setattr(server_module.uvicorn, "run", never)
    with pytest.raises(ArtifactError, match=r"no model directory at .*nowhere(.|\n)*hint"):
        serve(tmp_path / "nowhere", port=_free_port())


def test_serve_refuses_a_corrupt_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module.uvicorn, "run", lambda *a, **k: None)
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ArtifactError):
        serve(folder, port=_free_port())


def test_worker_factory_reads_the_settings_serve_leaves(
        model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = {"path": str(model_dir), "device": "cpu", "max_n": 7, "max_batch": 9}
    monkeypatch.setenv(SETTINGS_VARIABLE, json.dumps(settings))
    assert app_from_environment().title == "embrec"
    monkeypatch.delenv(SETTINGS_VARIABLE)
    with pytest.raises(ArtifactError, match=SETTINGS_VARIABLE):
        app_from_environment()


def test_multi_worker_listener_keeps_tcp_nodelay() -> None:
    config = server_module._TCPConfig("x:y", host="127.0.0.1", port=0, workers=2)
    with config.bind_socket() as sock:
        assert sock.proto == socket.IPPROTO_TCP  # accepted sockets inherit it: no Nagle delay


def test_load_app_serves_a_saved_model(model_dir: Path) -> None:
    routes = {getattr(route, "path", "") for route in load_app(model_dir).routes}
    assert "/users/{user_id}/recommendations" in routes


def test_real_server_on_loopback(model_dir: Path, tmp_path: Path) -> None:
    port = _free_port()
    code = ("from embrec.serving.server import serve\n"
            f"serve({str(model_dir)!r}, host='127.0.0.1', port={port})\n")
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen([sys.executable, "-c", code], stdout=log, stderr=log)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline, "server not healthy within 60 s"
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        response = httpx.get(f"{base}/users/1/recommendations", params={"n": 3}, timeout=10)
        assert response.status_code == 200
        body = response.json()
        assert body["user"] == 1 and len(body["items"]) == 3
        assert httpx.get(f"{base}/users/987654/recommendations", timeout=10).status_code == 404
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()


def test_core_imports_without_fastapi() -> None:
    code = ("import sys, embrec, embrec.recommender, embrec.artifacts, embrec.cli\n"
            "assert 'fastapi' not in sys.modules and 'uvicorn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
