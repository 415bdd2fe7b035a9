"""CPU time of `embrec --help`, `--version` and every subcommand's `--help`.

Each command runs as the console script runs it (``from embrec.cli import main``) in a fresh
interpreter, five times; the median user+system CPU seconds of the child is reported, with
whether torch and pandas were imported. ``--src`` picks the source tree (e.g. another
checkout, for a before/after figure). Writes benchmarks/results/cli_speed.json.

    python benchmarks/cli_speed.py [--src src] [--label after]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "cli_speed.json"
PROBE = ("import sys\nfrom embrec.cli import main\ntry:\n    main(sys.argv[1:])\n"
         "except SystemExit:\n    pass\n"
         "print('HEAVY', [m for m in ('torch', 'pandas') if m in sys.modules], file=sys.stderr)")
COMMANDS = [["--help"], ["--version"], ["train", "--help"], ["tune", "--help"],
            ["datasets", "info", "--help"], ["evaluate", "--help"], ["serve", "--help"]]


def _cpu(src: str, argv: list[str]) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": src})
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    heavy = next((line for line in run.stderr.splitlines() if line.startswith("HEAVY")),
                 "HEAVY ? (" + (run.stderr.strip().splitlines() or ["no output"])[-1] + ")")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), heavy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default=str(Path(__file__).parent.parent / "src"))
    parser.add_argument("--label", default="after")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = {}
    for argv in COMMANDS:
        runs = [_cpu(args.src, argv) for _ in range(args.repeat)]
        rows[" ".join(argv)] = {"cpu_seconds_median": statistics.median(r[0] for r in runs),
                                "cpu_seconds_all": [round(r[0], 3) for r in runs],
                                "imports": runs[0][1]}
        print(f"embrec {' '.join(argv):<24} {rows[' '.join(argv)]['cpu_seconds_median']:.2f} s "
              f"{runs[0][1]}")
    record = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    record[args.label] = {"src": args.src, "load_average": os.getloadavg(), "commands": rows}
    RESULTS.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
