"""Shared pieces of the benchmark scripts: busy loops, fresh-process runs, machine facts, tables.

``busy_loops()`` starts the load the issue measures under: two
``timeout 300 sh -c 'while :; do :; done'`` processes, one per core of the
2-core reference machine, each in its own session so that it (and only it)
is killed when the block ends, even after an error. The scripts start fresh
loops for each measurement, so the 300 s safety net never ends the load
halfway through a part; a loop that ended early anyway is reported on stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

BUSY_COMMAND = ["timeout", "300", "sh", "-c", "while :; do :; done"]


@contextlib.contextmanager
def busy_loops(count: int = 2, settle: float = 1.0) -> Iterator[list[int]]:
    """Keep ``count`` cores busy with shell loops while the block runs; yield their pids."""
    loops: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            # its own process group (killed whole below) but this session, as `cmd &` typed in
            # the shell that runs the benchmark: with Linux's autogroup scheduler every session
            # is one group, so loops in new sessions would each weigh as much as the whole
            # benchmarked process, a harsher load than two loops started from one shell
            loops.append(subprocess.Popen(BUSY_COMMAND, process_group=0,
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(settle)  # let the scheduler see them before anything is timed
        yield [p.pid for p in loops]
        if any(loop.poll() is not None for loop in loops):
            print("warning: a busy loop ended before the measurement did", file=sys.stderr)
    finally:
        for loop in loops:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(loop.pid, signal.SIGKILL)  # the loop's own session: timeout + sh
            loop.wait()


def condition(busy: bool) -> contextlib.AbstractContextManager[Any]:
    """``busy_loops()`` when ``busy``, else a no-op block."""
    return busy_loops() if busy else contextlib.nullcontext()


def run_json(command: Sequence[str], env: dict[str, str] | None = None,
             timeout: float | None = None) -> dict[str, Any]:
    """Run ``command`` in a fresh process; return the JSON object on its last stdout line.

    On failure the result is ``{"error": ...}`` with the tail of stderr, so one
    broken framework does not lose the other measurements.
    """
    try:
        done = subprocess.run(list(command), capture_output=True, text=True, check=False,
                              env={**os.environ, **(env or {})}, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = done.stderr.strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: {' / '.join(tail)}"[:300]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def machine() -> dict[str, Any]:
    """Facts about the machine the numbers come from (no heavy imports)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform()}


def load() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """Render ``rows`` as a Markdown table of ``columns`` (missing cells are blank)."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:,.0f}" if abs(value) >= 10_000 else f"{value:.4g}"
        return "" if value is None else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def command_line() -> str:
    """The command that ran this script, as typed (relative script path)."""
    return " ".join(["python", *sys.argv])


def save_section(folder: Path, name: str, section: dict[str, Any],
                 render: dict[str, Any]) -> None:
    """Store ``section`` as ``name`` in ``engine.json`` and rewrite ``engine.md`` from all sections.

    Args:
        folder: the results folder.
        name: the part measured (catalogue, contention, scale, correctness).
        section: its facts and rows (JSON-ready).
        render: part name -> function(section) -> Markdown, for every part.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "engine.json"
    sections = json.loads(path.read_text()) if path.exists() else {}
    sections[name] = section
    path.write_text(json.dumps(sections, indent=1, default=str) + "\n")
    parts = ["# embrec training engine: figures of issue 7", "",
             "Each part records its own command, date, machine and load averages; "
             "`busy` rows ran with two `timeout 300 sh -c 'while :; do :; done'` loops.", ""]
    for key in render:
        if key in sections:
            facts = sections[key]["facts"]
            parts += [f"## {key}", "", *(f"- {k}: {v}" for k, v in facts.items()), "",
                      render[key](sections[key]), ""]
    (folder / "engine.md").write_text("\n".join(parts))


def publish(lines: list[str], out: str | Path | None) -> None:
    """Close a Markdown report with the load average; print it, and write it to ``out``."""
    lines = [*lines, f"load average at the end: {os.getloadavg()[0]:.1f}"]
    text = "\n".join(lines) + "\n"
    print(text)
    if out:
        Path(out).write_text(text)
