"""HTTP load benchmark: requests/s and latency of ``GET /users/{id}/recommendations`` under load.

Builds a biased-MF model over a synthetic 60,000-item catalogue (random
initial weights: ranking speed does not depend on training), saves it, starts
the real service (``embrec.serving.server.serve`` under uvicorn) in a
subprocess on a free loopback port, waits for ``/health``, then drives it from
a separate process with a fixed number of requests at a fixed concurrency over
keep-alive connections, and stops the server. It prints requests/s, p50/p99
latency, the error count and the load average::

    python benchmarks/http_load.py --workers 2 --concurrency 16 --requests 5000

The default client is a minimal asyncio HTTP/1.1 client (a few microseconds
per request), so that on a 2-core machine the client does not eat the CPU the
server is measured on; ``--client httpx`` uses ``httpx.AsyncClient`` instead.
Every response is checked: status 200 and a JSON body with ``n`` items.
Connections are opened over ``--ramp`` seconds, as real traffic arrives; opened
all at once, one uvicorn worker can accept every connection before the other
wakes up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SERVER = (
    "from embrec.serving.server import serve\n"
    "serve({path!r}, host='127.0.0.1', port={port}, workers={workers}, access_log={log},\n"
    "      threads={threads})\n"
)


# ----------------------------------------------------------------------------- model
def build_model(folder: Path, *, n_users: int, n_items: int, n_ratings: int, dim: int) -> Path:
    """Save an (untrained) biased-MF recommender over synthetic ratings to ``folder``."""
    from embrec.config import TrainConfig
    from embrec.data.synthetic import generate
    from embrec.models import BiasedMFConfig
    from embrec.recommender import Recommender

    ratings = generate(n_users=n_users, n_items=n_items, n_ratings=n_ratings, seed=0).ratings
    config = BiasedMFConfig(embedding_dim=dim, init_std=0.15)
    model = config.build(ratings.n_users, ratings.n_items, scale=ratings.scale,
                         mean=float(ratings.rating.mean()))
    rec = Recommender.from_training(model, config, TrainConfig(epochs=1, seed=0), ratings)
    return rec.save(folder)


# ----------------------------------------------------------------------------- server
def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_server(path: Path, port: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    """Start ``serve`` in a subprocess (its own session, so it can be stopped as a group)."""
    code = SERVER.format(path=str(path), port=port, workers=args.workers, log=args.access_log,
                         threads=args.threads)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def wait_healthy(port: int, server: subprocess.Popen[bytes], timeout: float = 120.0) -> None:
    """Poll ``GET /health`` until it answers 200; fail after ``timeout`` s or if it exits."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"server exited with code {server.returncode} before it was healthy")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"server not healthy after {timeout:.0f} s")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """Stop the server (SIGTERM to its process group, SIGKILL if it lingers)."""
    import signal

    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=15)


# ----------------------------------------------------------------------------- CPU accounting
def group_cpu_seconds(group: int) -> float:
    """CPU seconds used so far by the live processes of process group ``group`` (Linux)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all cores have spent busy since boot (Linux ``/proc/stat``)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- clients
class RawClient:
    """One keep-alive HTTP/1.1 connection: GET a path, return (status, body)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class HttpxClient:
    """The same interface over a shared ``httpx.AsyncClient``."""

    def __init__(self, client: Any) -> None:
        self.client = client

    async def get(self, path: str) -> tuple[int, bytes]:
        response = await self.client.get(path)
        return response.status_code, response.content

    async def close(self) -> None:
        return None


async def drive(port: int, users: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """Send ``args.requests`` requests over ``args.concurrency`` connections; time each one."""
    import httpx

    latencies: list[float] = []
    errors = 0
    todo = iter(range(args.requests))
    shared = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                               limits=httpx.Limits(max_connections=args.concurrency))

    async def connection(k: int) -> None:
        nonlocal errors
        await asyncio.sleep(k * args.ramp / args.concurrency)
        client = RawClient(port) if args.client == "raw" else HttpxClient(shared)
        rng = random.Random(k)
        for _ in todo:
            path = f"/users/{rng.choice(users)}/recommendations?n={args.n}"
            start = time.perf_counter()
            try:
                status, body = await client.get(path)
                ok = status == 200 and len(json.loads(body)["items"]) == args.n
            except (OSError, asyncio.IncompleteReadError, httpx.HTTPError, ValueError, KeyError):
                ok, client = False, RawClient(port) if args.client == "raw" else client
            latencies.append(time.perf_counter() - start)
            errors += not ok
        await client.close()

    start = time.perf_counter()
    await asyncio.gather(*(connection(k) for k in range(args.concurrency)))
    elapsed = time.perf_counter() - start
    await shared.aclose()
    return summarise(latencies, errors, elapsed)


def summarise(latencies: list[float], errors: int, elapsed: float) -> dict[str, Any]:
    """Requests/s, latency percentiles (ms) and errors of one run."""
    ordered = sorted(latencies)

    def percentile(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"requests": len(ordered), "seconds": round(elapsed, 3),
            "requests_per_s": round(len(ordered) / elapsed, 1),
            "p50_ms": round(percentile(0.50), 2), "p90_ms": round(percentile(0.90), 2),
            "p99_ms": round(percentile(0.99), 2), "errors": errors}


def run_driver(args: argparse.Namespace) -> None:
    """The load-driving process: a warm-up round, then the measured one, as one JSON line."""
    users = list(range(1, args.users + 1))
    warm = argparse.Namespace(**{**vars(args), "requests": min(500, args.requests)})
    asyncio.run(drive(args.port, users, warm))
    result = asyncio.run(drive(args.port, users, args))
    print(json.dumps({**result, "warm_up_requests": warm.requests}))


# ----------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="open connections")
    parser.add_argument("--requests", type=int, default=5000, help="measured requests")
    parser.add_argument("--n", type=int, default=10, help="items per recommendation")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=60_000)
    parser.add_argument("--ratings", type=int, default=500_000)
    parser.add_argument("--dim", type=int, default=64, help="embedding_dim")
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    parser.add_argument("--ramp", type=float, default=0.5, help="seconds to open the connections")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads per worker")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--model-dir", type=Path, help="reuse (or create) a model here")
    parser.add_argument("--drive", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def measure(server: subprocess.Popen[bytes], port: int,
            argv: list[str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the driver process; return its result and where the CPU time went meanwhile."""
    command = [sys.executable, __file__, "--drive", "--port", str(port),
               *(argv if argv is not None else sys.argv[1:])]
    before = (group_cpu_seconds(server.pid), machine_busy_seconds(),
              resource.getrusage(resource.RUSAGE_CHILDREN))
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            timeout=600).stdout
    after = (group_cpu_seconds(server.pid), machine_busy_seconds(),
             resource.getrusage(resource.RUSAGE_CHILDREN))
    result = json.loads(output.splitlines()[-1])
    server_s = after[0] - before[0]
    driver_s = (after[2].ru_utime + after[2].ru_stime) - (before[2].ru_utime + before[2].ru_stime)
    served = result["requests"] + result["warm_up_requests"]
    cpu = {"server_cpu_ms_per_request": round(1000 * server_s / served, 3),
           "cpu_seconds": {"server": round(server_s, 2), "driver (incl. warm-up)":
                           round(driver_s, 2), "whole machine": round(after[1] - before[1], 2)}}
    return result, cpu


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.drive:
        run_driver(args)
        return 0
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model_dir or Path(tmp) / "model"
        if not (folder / "config.json").is_file():
            started = time.perf_counter()
            build_model(folder, n_users=args.users, n_items=args.items,
                        n_ratings=args.ratings, dim=args.dim)
            print(f"built and saved the model in {time.perf_counter() - started:.1f} s")
        port = free_port()
        server = start_server(folder, port, args)
        try:
            wait_healthy(port, server)
            result, cpu = measure(server, port, argv)
        finally:
            stop_server(server)
    result = {**result, **cpu, "workers": args.workers,
              "concurrency": args.concurrency, "client": args.client, "items": args.items,
              "load_average_1m_before": round(load_before, 2),
              "load_average_1m_after": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
