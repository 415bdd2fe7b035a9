"""Run the HTTP service: load a saved model, refuse a bad one before binding, start uvicorn.

``serve(path)`` is what ``embrec serve DIR`` calls. With one worker the loaded
recommender is served directly; with several, uvicorn starts fresh worker
processes, and each builds its app with :func:`app_from_environment` from the
settings ``serve`` leaves in one environment variable (read when a worker
starts, never at import).
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from embrec.config import require
from embrec.errors import ArtifactError, ConfigError
from embrec.serving.limits import server_options

__all__ = ["SETTINGS_VARIABLE", "app_from_environment", "check_port_free", "load_app", "serve"]

log = logging.getLogger(__name__)

SETTINGS_VARIABLE = "EMBREC_SERVE_SETTINGS"
"""Environment variable through which ``serve`` hands its settings to worker processes."""


def load_app(
    path: str | Path,
    *,
    device: str = "cpu",
    max_n: int = 1000,
    max_batch: int = 10_000,
) -> FastAPI:
    """Load the model saved at ``path`` and build its app.

    Args:
        path: a directory written by ``Recommender.save``.
        device: where to put the weights (``"cpu"``, ``"cuda"``...).
        max_n: the largest ``n`` a request may ask for.
        max_batch: the most pairs (or ratings) one request may carry.

    Returns:
        The FastAPI app serving the model.

    Raises:
        ArtifactError: if ``path`` is missing or does not hold a valid model.
    """
    from embrec.recommender import load
    from embrec.serving.app import create_app

    folder = Path(path)
    if not folder.is_dir():
        raise ArtifactError(
            f"no model directory at {str(folder)!r}",
            hint="pass a directory written by `embrec train --out DIR` or Recommender.save(DIR)",
        )
    rec = load(folder, device=device)
    log.info("loaded %s model from %s (%d users, %d items)",
             rec.model_name, folder, rec.n_users, rec.n_items)
    return create_app(rec, max_n=max_n, max_batch=max_batch)


def app_from_environment() -> FastAPI:
    """Build the app from the settings ``serve`` stored in ``EMBREC_SERVE_SETTINGS``.

    This is the uvicorn factory each worker process calls when ``workers > 1``.

    Returns:
        The FastAPI app serving the model.

    Raises:
        ArtifactError: if the variable is unset or the model cannot be loaded.
    """
    raw = os.environ.get(SETTINGS_VARIABLE)
    if not raw:
        raise ArtifactError(f"{SETTINGS_VARIABLE} is not set",
                            hint="start the service with embrec.serving.server.serve(path)")
    settings: dict[str, Any] = json.loads(raw)
    threads = settings.pop("threads", None)
    if threads:
        _set_threads(int(threads))
    return load_app(**settings)


def _set_threads(threads: int) -> None:
    """Set this (server) process's PyTorch intra-op thread count."""
    import torch

    torch.set_num_threads(threads)


def serve(
    path: str | Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    device: str = "cpu",
    max_n: int = 1000,
    max_batch: int = 10_000,
    access_log: bool = True,
    threads: int = 1,
) -> None:
    """Serve the model saved at ``path`` over HTTP until interrupted.

    The model is loaded (and checked) before the port is bound, so a missing
    or corrupt directory fails at once with a clear message.

    Args:
        path: a directory written by ``Recommender.save``.
        host: interface to bind (``"0.0.0.0"`` for every interface).
        port: TCP port to bind.
        workers: number of worker processes.
        device: where to put the weights.
        max_n: the largest ``n`` a request may ask for.
        max_batch: the most pairs (or ratings) one request may carry.
        access_log: log one line per request.
        threads: PyTorch threads per worker. One is best for throughput: requests
            run one at a time per worker and idle intra-op threads spin; scale with
            ``workers`` instead.

    Raises:
        ArtifactError: if ``path`` is missing or does not hold a valid model.
        ConfigError: if ``workers``, ``port`` or ``threads`` is out of range.
    """
    require(workers >= 1, "workers", workers, "must be at least 1")
    require(0 <= port <= 65535, "port", port, "must be between 0 and 65535")
    require(threads >= 1, "threads", threads, "must be at least 1")
    check_port_free(host, port)
    settings = {"path": str(Path(path).resolve()), "device": device,
                "max_n": max_n, "max_batch": max_batch}
    app = load_app(path, device=device, max_n=max_n, max_batch=max_batch)
    options: dict[str, Any] = {"host": host, "port": port, "access_log": access_log,
                               "log_level": "info", **server_options()}
    if workers == 1:
        _set_threads(threads)
        uvicorn.run(app, **options)
        return
    del app  # each worker loads its own copy
    os.environ[SETTINGS_VARIABLE] = json.dumps({**settings, "threads": threads})
    config = _TCPConfig("embrec.serving.server:app_from_environment", factory=True,
                        workers=workers, **options)
    Multiprocess(config, sockets=[config.bind_socket()]).run()


def check_port_free(host: str, port: int) -> None:
    """Bind ``(host, port)`` once and let go, so a busy port is a clear error before serving.

    Raises:
        ConfigError: if the port is in use or the address cannot be bound.
    """
    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as error:
        problem = "is already in use" if error.errno == errno.EADDRINUSE else "cannot be bound"
        raise ConfigError("port", port, f"on {host} {problem} ({error.strerror or error})",
                          hint="stop the other server or pass another --port") from None


class _TCPConfig(uvicorn.Config):
    """uvicorn's config, binding a listener that keeps ``TCP_NODELAY`` on accepted sockets.

    With ``workers > 1`` uvicorn binds the socket itself with ``proto=0``; accepted
    connections inherit that, asyncio then leaves Nagle's algorithm on, and every
    keep-alive response waits ~40 ms for the client's delayed ACK (uvicorn issue
    #3149). Re-wrapping the listener with ``proto=IPPROTO_TCP`` fixes it.
    """

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto:
            return sock
        tcp = socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())
        tcp.set_inheritable(True)
        return tcp
