"""``embrec launch``: run an embrec command on N local ranks and end the way one process does.

Under a bare ``torchrun`` a rank that fails prints embrec's ``error:`` message,
then torchrun prints its own ``ChildFailedError`` traceback and exits 1, so the
last lines a user sees are not embrec's. ``launch`` runs ``torch.distributed.run``
with each rank's output teed through it, passes rank 0's lines on unprefixed
(other ranks keep their ``[defaultN]:`` prefix), holds torchrun's own lines back,
and ends with a failing rank's ``error:`` message (rank 0's when it printed one)
and its exit code. Only when no rank printed one (a crash, a launcher problem)
is torchrun's report shown.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

__all__ = ["add_launch", "cmd_launch"]

PREFIX = re.compile(r"^\[(?:default|rank)(\d+)\]:")  # torchrun tags a rank's lines
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
EXIT_CODE = re.compile(r"rank\s*:\s*(\d+)\D[^\n]*\n\s*exitcode\s*:\s*(-?\d+)")


def add_launch(sub: Any, command: Any) -> None:
    """Add ``embrec launch`` to the subcommand parsers ``sub``."""
    p = command(sub, "launch", "run an embrec command on N local ranks (torchrun)",
                "Run 'embrec COMMAND ...' as N data-parallel processes on this machine with "
                "torch.distributed.run. Rank 0's output is shown as one process shows it; a "
                "failing run ends with the rank's 'error:' message and exit code, not "
                "torchrun's traceback. Several machines: use torchrun itself "
                "(docs/scaling-out.md).",
                epilog="example: embrec launch --nproc 2 -- train --data r.parquet --out runs/big")
    p.add_argument("--nproc", type=int, default=2, metavar="N", help="processes (ranks)")
    p.add_argument("--max-restarts", type=int, default=0, metavar="N",
                   help="times torchrun restarts the ranks after a failure (with train "
                   "--resume they continue from the last checkpoint)")
    p.add_argument("args", nargs=argparse.REMAINDER, metavar="-- COMMAND ...",
                   help="the embrec command and its flags")
    p.set_defaults(handler=cmd_launch)


def cmd_launch(args: argparse.Namespace) -> int:
    """Run the command on ``args.nproc`` ranks; return rank 0's exit code (or the failing rank's).

    Raises:
        ConfigError: if ``--nproc`` or ``--max-restarts`` is out of range or no command is given.
    """
    from embrec.config import require

    command = args.args[1:] if args.args[:1] == ["--"] else args.args
    require(args.nproc >= 1, "nproc", args.nproc, "must be at least 1")
    require(args.max_restarts >= 0, "max_restarts", args.max_restarts, "must be at least 0")
    require(bool(command), "command", "", "is missing: say what to run, e.g. "
            "'embrec launch --nproc 2 -- train --data ratings.csv --out runs/big'")
    with tempfile.TemporaryDirectory(prefix="embrec-launch-") as logs:
        process = subprocess.Popen(
            [sys.executable, "-m", "torch.distributed.run", "--standalone",
             f"--nproc-per-node={args.nproc}", f"--max-restarts={args.max_restarts}",
             f"--log-dir={logs}", "--tee=3", "-m", "embrec", *command],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
            process_group=0)  # signals reach the ranks through the launcher, once
        streams = _Streams()
        stopped: list[int] = []  # the signal the launcher passed on, if one came
        # leaving the pool waits for both streams' ends
        with _forwarding(process, stopped), ThreadPoolExecutor(2) as readers:
            readers.submit(streams.pass_on, process.stdout, sys.stdout)
            readers.submit(streams.pass_on, process.stderr, sys.stderr)
            code = process.wait()
    if stopped:  # torchrun's SignalException traceback says nothing the user does not know
        name = signal.Signals(stopped[0]).name
        print(f"embrec launch: {name} passed on; the ranks were stopped", file=sys.stderr)
        return 128 + stopped[0]
    return code if code == 0 else streams.finish(code)


@contextlib.contextmanager
def _forwarding(process: subprocess.Popen[str], stopped: list[int]) -> Iterator[None]:
    """Pass Ctrl-C, ``kill`` and a closed terminal on to torchrun, which stops the ranks:
    killing the launcher must not leave ranks training (and holding ``--out``) behind."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals; a caller's thread keeps its own
        return

    def forward(signum: int, _frame: Any) -> None:
        if process.poll() is None and not stopped:
            stopped.append(signum)
            process.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in FORWARDED}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


class _Streams:
    """Rank lines passed on as they come; error messages and torchrun's lines held back."""

    def __init__(self) -> None:
        self.errors: dict[int, list[str]] = {}  # rank -> its latest error: message
        self.torchrun: list[str] = []
        self.lock = threading.Lock()

    def pass_on(self, source: IO[str] | None, target: IO[str]) -> None:
        """Copy ``source`` to ``target`` line by line, sorting each line by who wrote it."""
        for line in source or ():
            with self.lock:
                self._take(line, target)

    def _take(self, line: str, target: IO[str]) -> None:
        match = PREFIX.match(line)
        if match is None:
            self.torchrun.append(line)
            return
        rank, text = int(match[1]), line[match.end():]
        if text.startswith("error: "):
            self.errors[rank] = [text]
        elif rank in self.errors and text.startswith("  "):
            self.errors[rank].append(text)  # the message's hint lines
        else:
            target.write(text if rank == 0 else line)
            target.flush()

    def finish(self, code: int) -> int:
        """Print the failing rank's message last; return its exit code."""
        codes = {int(r): int(c) for r, c in EXIT_CODE.findall("".join(self.torchrun))}
        if not self.errors:  # rank 0 chose its code (3: degenerate) and said why, or a crash
            if codes.get(0, 0) > 0 and codes[0] != 1:
                return codes[0]
            sys.stderr.write("".join(self.torchrun))
            return code
        rank = min(self.errors)
        for other in sorted(self.errors)[1:]:  # a different reason, e.g. the line it could not read
            if self.errors[other] != self.errors[rank]:
                sys.stderr.write("".join(f"[default{other}]:{line}" for line in self.errors[other]))
        sys.stderr.write("".join(self.errors[rank]))
        return codes[rank] if codes.get(rank, 0) > 0 else 2
