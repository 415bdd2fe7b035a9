"""Measure the service's defences on loopback: big bodies, half-sent headers, a mixed soak.

Starts ``embrec serve`` on a small trained model in a subprocess and measures:

- the time to refuse a 28 MB ``POST /predict`` body, declared by Content-Length
  and sent chunked, and ``/health`` latency from another connection meanwhile;
- how many of 200 connections that send half a request are closed by the
  header timeout;
- server memory (VmRSS) over a soak of mixed good and bad requests, with the
  count of responses per status (there must be no 5xx).

Usage: ``PYTHONPATH=src python3 benchmarks/hardening.py [--soak-seconds 300]``;
writes ``benchmarks/results/hardening.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "hardening.json"
BIG = 28 * 1024 * 1024


def _train(folder: Path) -> None:
    import embrec
    from embrec.data.synthetic import generate
    from embrec.models import BiasedMFConfig

    data = generate(n_users=2000, n_items=1000, n_ratings=60_000, rank=8, seed=1).ratings
    rec = embrec.fit(BiasedMFConfig(embedding_dim=16), data,
                     embrec.TrainConfig(epochs=2, seed=1, progress=False))
    rec.save(folder)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(folder: Path, port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    server = subprocess.Popen([sys.executable, "-m", "embrec", "serve", str(folder), "--port",
                               str(port), "--no-access-log"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            _get(port, "/health")
            return server
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the server did not start")


def _get(port: int, path: str) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", path)
    status = connection.getresponse().status
    connection.close()
    return status


class _Pinger(threading.Thread):
    """GET /health every 10 ms on its own keep-alive connection, recording latency."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port, self.latencies, self.stop = port, [], threading.Event()

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self.stop.is_set():
            started = time.perf_counter()
            connection.request("GET", "/health")
            connection.getresponse().read()
            self.latencies.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)


def _refuse_big_body(port: int, chunked: bool) -> dict[str, Any]:
    pinger = _Pinger(port)
    pinger.start()
    time.sleep(0.3)
    baseline = len(pinger.latencies)
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    head = ("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + ("Transfer-Encoding: chunked\r\n" if chunked else f"Content-Length: {BIG}\r\n")
            + "\r\n").encode()
    started = time.perf_counter()
    sock.sendall(head)
    block, sent = b"[" * 65536, 0
    while sent < BIG and not select.select([sock], [], [], 0)[0]:
        try:
            sock.sendall((b"%x\r\n" % len(block) + block + b"\r\n") if chunked else block)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(block)
    answer = sock.recv(4096)
    seconds = time.perf_counter() - started
    sock.close()
    time.sleep(0.3)
    pinger.stop.set()
    pinger.join()
    during = pinger.latencies[baseline:]
    return {"status_line": answer.split(b"\r\n")[0].decode(), "seconds_to_refuse": seconds,
            "bytes_sent_before_refusal": sent, "health_max_ms": max(during),
            "health_median_ms": statistics.median(during), "health_samples": len(during)}


def _half_sent(port: int, n: int, wait: float) -> dict[str, Any]:
    socks = []
    for _ in range(n):
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(sock)
    time.sleep(wait)
    closed = 0
    for sock in socks:
        sock.settimeout(0.5)
        try:
            closed += sock.recv(1) == b""
        except (TimeoutError, ConnectionResetError):
            closed += 0
        sock.close()
    return {"connections": n, "waited_seconds": wait, "closed_by_server": closed}


GOOD = [("GET", "/health", None), ("GET", "/users/1/recommendations?n=10", None),
        ("GET", "/items/3/similar?n=5", None), ("GET", "/model", None),
        ("POST", "/predict", {"pairs": [{"user": 1, "item": i} for i in range(1, 50)]}),
        ("POST", "/recommendations", {"ratings": {"3": 4.0, "7": 2.0}, "n": 10})]
BAD = [("GET", "/users/" + "9" * 5000 + "/recommendations", None),
       ("GET", "/users/999999999/recommendations", None),
       ("GET", "/users/1/recommendations?n=100000", None),
       ("POST", "/predict", '{"pairs": [{"user": ' + "9" * 400 + ', "item": 1}]}'),
       ("POST", "/predict", "{not json"),
       ("POST", "/recommendations", '{"ratings": {"3": 1e308}}'),
       ("POST", "/recommendations", '{"ratings": {"3": NaN}}'),
       ("POST", "/predict", {"pairs": [{"user": 1, "item": 1}] * 20_000})]


def _soak(port: int, server: subprocess.Popen[bytes], seconds: float) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    memory: list[tuple[float, int]] = []
    stop = threading.Event()

    def client(seed: int) -> None:
        rng = random.Random(seed)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            method, path, body = rng.choice(GOOD if rng.random() < 0.5 else BAD)
            data = body if isinstance(body, str) or body is None else json.dumps(body)
            try:
                connection.request(method, path, body=data,
                                   headers={"content-type": "application/json"})
                response = connection.getresponse()
                response.read()
                statuses[response.status] += 1
                if response.getheader("connection") == "close":
                    connection.close()
            except (OSError, http.client.HTTPException) as error:
                statuses[-1] += 1
                errors[f"{method} {path[:40]}: {type(error).__name__}"] += 1
                connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(4)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    while time.perf_counter() - started < seconds:
        memory.append((time.perf_counter() - started, _rss_kb(server.pid)))
        time.sleep(min(5.0, seconds / 20))
    stop.set()
    for thread in threads:
        thread.join()
    memory.append((time.perf_counter() - started, _rss_kb(server.pid)))
    return {"seconds": time.perf_counter() - started, "requests": sum(statuses.values()),
            "statuses": {str(k): v for k, v in sorted(statuses.items())},
            "server_errors": sum(v for k, v in statuses.items() if k >= 500),
            "client_side_exceptions": dict(errors),
            "rss_mb_start": memory[0][1] / 1024, "rss_mb_end": memory[-1][1] / 1024,
            "rss_mb_max": max(m for _, m in memory) / 1024,
            "rss_mb_series": [(round(t, 1), round(m / 1024, 1)) for t, m in memory]}


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    """Run every measurement and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--soak-seconds", type=float, default=300.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        _train(folder)
        port = _free_port()
        server = _start(folder, port)
        try:
            from embrec.serving.limits import HEADER_TIMEOUT

            results = {
                "body_28mb_content_length": _refuse_big_body(port, chunked=False),
                "body_28mb_chunked": _refuse_big_body(port, chunked=True),
                "half_sent_headers": _half_sent(port, 200, HEADER_TIMEOUT + 2),
                "soak": _soak(port, server, args.soak_seconds),
                "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
            }
        finally:
            server.terminate()
            server.wait(timeout=30)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "soak"}, indent=2))
    print(json.dumps({k: v for k, v in results["soak"].items() if k != "rss_mb_series"}))


if __name__ == "__main__":
    main()
