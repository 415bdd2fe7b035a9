"""Measure how often tests fail over training seeds: the flaky-test audit's instrument.

Two modes, both running pytest in a subprocess with ``benchmarks/seed_sweep_plugin.py``:

* ``--discover``: run the given tests (default: the whole suite) once and list every test in
  which a ``fit`` drew a random seed (no seed given anywhere).
* ``--order reverse`` (or ``shuffle:N``): run them once in that order and list the failures.
* otherwise: run the given tests once per seed ``0..N-1`` with every unseeded draw forced to
  that seed, and count the failures of each test.

No tests named means the whole suite. ``--seeded`` adds every test file that sets a training
seed (``seed=`` or ``--seed``); with ``--override-seeded`` their fits run at the swept seeds
instead, which shows whether a test passes only at the seed it was pinned to.

Usage (from the repository root)::

    PYTHONPATH=src python3 benchmarks/seed_sweep.py --discover --out benchmarks/results/x.json
    PYTHONPATH=src python3 benchmarks/seed_sweep.py --seeds 15 --out benchmarks/results/y.json \\
        tests/test_cli.py::test_train_with_no_options_uses_synthetic ...
    PYTHONPATH=src python3 benchmarks/seed_sweep.py --in-process --override-seeded --seeds 8 \\
        --seeded --out benchmarks/results/z.json           # every seeded test file
    PYTHONPATH=src python3 benchmarks/seed_sweep.py --in-process --override-seeded --seeds 8 \\
        --out benchmarks/results/suite.json                # the whole suite

Results are written as JSON (and a Markdown table beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def seeded_files() -> list[str]:
    """Every test file that sets a training seed (``seed=`` or ``--seed``), repo-relative."""
    pattern = re.compile(r"\bseed=|--seed\b")
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                  if pattern.search(p.read_text()))


def _pytest(tests: list[str], env: dict[str, str], junit: Path) -> float:
    """Run pytest on ``tests`` with the plugin; return the wall seconds."""
    paths = [str(ROOT / "src"), str(ROOT / "benchmarks"), str(ROOT)]
    env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join(paths)}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "seed_sweep_plugin",
               "-p", "no:cacheprovider", f"--junitxml={junit}", *tests]
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def _outcomes(junit: Path) -> dict[str, str]:
    """Test id -> passed/failed/skipped, read from a JUnit XML report."""
    outcomes: dict[str, str] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        name = f"{module}.py::{case.get('name')}"
        kinds = {child.tag for child in case}
        outcomes[name] = ("failed" if kinds & {"failure", "error"} else
                          "skipped" if "skipped" in kinds else "passed")
    return outcomes


def discover(tests: list[str], scratch: Path) -> dict[str, object]:
    log = scratch / "draws.log"
    seconds = _pytest(tests, {"EMBREC_SEED_LOG": str(log)}, scratch / "d.xml")
    draws = log.read_text().splitlines() if log.exists() else []
    counts = {test: draws.count(test) for test in sorted(set(draws))}
    return {"mode": "discover", "tests": tests or ["<suite>"], "seconds": round(seconds, 1),
            "unseeded_draws": counts, "outcomes": _outcomes(scratch / "d.xml")}


def order(tests: list[str], how: str, scratch: Path) -> dict[str, object]:
    seconds = _pytest(tests, {"EMBREC_TEST_ORDER": how}, scratch / "o.xml")
    outcomes = _outcomes(scratch / "o.xml")
    return {"mode": "order", "order": how, "tests": tests or ["<suite>"],
            "seconds": round(seconds, 1), "counts": {k: list(outcomes.values()).count(k)
                                                   for k in ("passed", "failed", "skipped")},
            "failed": sorted(t for t, o in outcomes.items() if o == "failed")}


def _ratios(log: Path) -> dict[str, list[float]]:
    """Test id -> train RMSE / mean-predictor RMSE of each degenerate check (> 1: exit 3)."""
    ratios: dict[str, list[float]] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        row = json.loads(line)
        if row["rmse"] is not None and row["baseline"]:
            ratios.setdefault(row["test"], []).append(row["rmse"] / row["baseline"])
    return ratios


def sweep_in_process(tests: list[str], seeds: int, scratch: Path,
                     override: bool = False) -> dict[str, object]:
    """One pytest run in which every test runs once per seed (ids gain ``seedK``)."""
    junit, log = scratch / "p.xml", scratch / "p.jsonl"
    seconds = _pytest(tests, {"EMBREC_FORCE_SEEDS": str(seeds), "EMBREC_DEGENERATE_LOG": str(log),
                              "EMBREC_OVERRIDE_SEEDED": "1" if override else "0"}, junit)
    failures: dict[str, list[int]] = {}
    for name, outcome in _outcomes(junit).items():
        match = re.fullmatch(r"(.*?)(?:\[seed(\d+)\]|-seed(\d+)\]|\[seed(\d+)-)(.*)", name)
        if match is None:
            continue
        seed = int(next(g for g in match.groups()[1:4] if g is not None))
        rest = match.group(5)
        test = match.group(1) + (f"[{rest}" if match.group(4) else "]" if match.group(3) else "")
        failures.setdefault(test, [])
        if outcome == "failed":
            failures[test].append(seed)
    ratios: dict[str, list[float]] = {}
    for test, values in _ratios(log).items():
        ratios.setdefault(re.sub(r"\[seed\d+\]|-seed\d+(?=\])|seed\d+-", "", test), []).extend(
            values)
    return {"mode": "sweep", "in_process": True, "override_seeded": override,
            "seeds": list(range(seeds)), "tests": tests or ["<suite>"],
            "seconds": round(seconds, 1), "failing_seeds": failures,
            "failure_rate": {t: f"{len(s)}/{seeds}" for t, s in failures.items()},
            "worst_train_rmse_over_mean_rmse": {t: round(max(v), 4) for t, v in ratios.items()},
            "train_rmse_over_mean_rmse": {t: [round(x, 4) for x in v] for t, v in ratios.items()}}


def sweep(tests: list[str], seeds: int, scratch: Path) -> dict[str, object]:
    failures: dict[str, list[int]] = {}
    worst: dict[str, float] = {}
    seconds = []
    for seed in range(seeds):
        junit, log = scratch / f"s{seed}.xml", scratch / f"s{seed}.jsonl"
        seconds.append(_pytest(tests, {"EMBREC_FORCE_SEED": str(seed),
                                       "EMBREC_DEGENERATE_LOG": str(log)}, junit))
        for test, outcome in _outcomes(junit).items():
            failures.setdefault(test, [])
            if outcome == "failed":
                failures[test].append(seed)
        for test, ratios in _ratios(log).items():
            worst[test] = round(max(worst.get(test, 0.0), *ratios), 4)
    return {"mode": "sweep", "seeds": list(range(seeds)), "tests": tests,
            "seconds_per_run": round(sum(seconds) / len(seconds), 1),
            "failing_seeds": failures,
            "failure_rate": {t: f"{len(s)}/{seeds}" for t, s in failures.items()},
            "worst_train_rmse_over_mean_rmse": worst}


def _markdown(result: dict[str, object]) -> str:
    if result["mode"] == "order":
        return (f"order {result['order']}: {result['counts']} in {result['seconds']} s\n"
                + "".join(f"- failed: `{t}`\n" for t in result["failed"]))  # type: ignore
    if result["mode"] == "discover":
        rows = [f"| `{t}` | {n} |" for t, n in result["unseeded_draws"].items()]  # type: ignore
        return "| test | unseeded fits |\n|---|---|\n" + "\n".join(rows) + "\n"
    rate, seeds = result["failure_rate"], result["failing_seeds"]
    worst = result["worst_train_rmse_over_mean_rmse"]
    rows = [f"| `{t}` | {rate[t]} | {seeds[t]} | {worst.get(t, '')} |"  # type: ignore
            for t in sorted(rate)]  # type: ignore
    failing = sorted(t for t in rate if seeds[t])  # type: ignore
    swept = "every fit" if result.get("override_seeded") else "unseeded fits"
    summary = (f"{len(rate)} tests x {len(result['seeds'])} seeds ({swept} at the swept seed):"  # type: ignore
               f" {len(failing)} failed on some seed{''.join(f'; `{t}`' for t in failing)}\n\n")
    return (summary + "| test | failures | failing seeds | worst train RMSE / mean RMSE |\n"
            "|---|---|---|---|\n" + "\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="*")
    parser.add_argument("--discover", action="store_true")
    parser.add_argument("--seeds", type=int, default=15)
    parser.add_argument("--in-process", action="store_true",
                        help="sweep the seeds in one pytest process (a seed parameter)")
    parser.add_argument("--override-seeded", action="store_true",
                        help="with --in-process: force the seed of seeded fits too")
    parser.add_argument("--seeded", action="store_true",
                        help="add every test file that sets a training seed to the tests")
    parser.add_argument("--order", help="reverse or shuffle:N: run the tests in that order")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.seeded:
        args.tests = sorted(set(args.tests) | set(seeded_files()))
    with tempfile.TemporaryDirectory() as scratch:
        result = (discover(args.tests, Path(scratch)) if args.discover
                  else order(args.tests, args.order, Path(scratch)) if args.order
                  else sweep_in_process(args.tests, args.seeds, Path(scratch),
                                        args.override_seeded)
                  if args.in_process else sweep(args.tests, args.seeds, Path(scratch)))
    result["command"] = " ".join(sys.argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(_markdown(result))
    print(_markdown(result))


if __name__ == "__main__":
    main()
