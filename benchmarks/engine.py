"""The figures of issue 7 (training engine), each measured quiet and under two busy loops.

Usage::

    python benchmarks/engine.py catalogue  --baseline-python /work/baselines-venv/bin/python
    python benchmarks/engine.py contention --baseline-python /work/baselines-venv/bin/python
    python benchmarks/engine.py scale
    python benchmarks/engine.py hugepages   # 1.5M catalogue, tables on huge pages or not
    python benchmarks/engine.py collector   # first notebook fit, cycle collector paused or on
    python benchmarks/engine.py fused       # first notebook fit, fused MLP step or general loop
    python benchmarks/engine.py correctness
    python benchmarks/engine.py all        --baseline-python /work/baselines-venv/bin/python
    python benchmarks/engine.py catalogue --quick     # small sizes: checks the script, not a figure

Parts:

- ``catalogue``: 1,000,000 synthetic ratings over 15,000 and over 1,500,000 users
  plus items (half each; the ratings are drawn over the whole catalogue, so the
  large one touches many more rows). Biased MF, 32 factors, batch 2048, one
  epoch, one thread: ``embrec.fit`` (epoch seconds and whole-fit seconds), a plain
  PyTorch loop (``nn.Embedding(sparse=True)`` + ``SparseAdam``, dense Adam for the
  global bias) on the same rows, and LIBMF: 20 passes, 32 factors, 2 threads.
- ``hugepages``: the 1.5M catalogue's ``embrec.fit`` with its tables on transparent
  huge pages (the default, ``embrec.training.sparse.huge_zeros``) and on torch's allocator,
  alternating, quiet and busy.
- ``collector``: a fresh process's first ``movielens-notebook`` fit with Python's cycle
  collector paused during ``fit`` (the default, ``embrec.training.process.paused``) and left
  on, alternating, quiet and busy (median of ``--repeats``).
- ``fused``: a fresh process's first ``movielens-notebook`` fit through the fused
  MLP step (the default, ``embrec.training.fused``) and through the general loop,
  alternating, quiet and busy (median of ``--repeats``; the train RMSE shows that
  both trained the same weights).
- ``contention``: ``benchmarks/compare.py --busy`` (Keras notebook code for the
  notebook presets, Surprise ``SVD()`` for ``default``, on ML-100K).
- ``scale``: the ``default`` preset, one epoch, on 25M ML-25M-shaped ratings
  (``benchmarks/scaling.py``'s data) with 1 and 2 threads, and on 10M ratings over
  10M users and 1M items; seconds and peak resident memory of the process.
- ``correctness``: mean prediction over the training pairs minus the mean
  training rating, ``default`` preset, for several weight decays (no timing,
  so it runs quiet only).

The baselines live in their own virtual environment (never in CI)::

    python3 -m venv /work/baselines-venv
    /work/baselines-venv/bin/pip install tensorflow-cpu==2.21.0 keras==3.15.1 \\
        scikit-surprise==1.1.5 libmf==0.9.2 pandas numpy torch==2.13.0

(``torch`` there only if the CPU wheel is at hand: the SparseAdam loop runs under
embrec's interpreter.) Synthetic data are generated once into ``--cache``
(``/tmp/embrec-engine``) before any timing starts.

Every measurement runs in a fresh interpreter (``engine_workers.py``); each part
stores its rows in ``benchmarks/results/engine.json`` and ``engine.md`` is
rewritten from all stored parts, so parts can be run one at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import harness

HERE = Path(__file__).resolve().parent
WORKERS = HERE / "engine_workers.py"
RESULTS = HERE / "results"
CONDITIONS = ("quiet", "busy")
WORKER_ENV: dict[str, str] = {}
"""Extra environment for every worker (``--worker-env``), e.g. ``OMP_WAIT_POLICY=PASSIVE``."""
SPEEDUP = "embrec speed-up (baseline s / embrec s, medians)"


def arrays(name: str, n_ratings: int, n_users: int, n_items: int, cache: Path,
           rank: int = 16) -> Path:
    """Generate synthetic ratings once into ``cache/name`` (the format scaling.py uses)."""
    path = cache / name
    if (path / "shape.json").exists():
        return path
    import numpy as np

    from embrec.data.synthetic import generate

    path.mkdir(parents=True, exist_ok=True)
    data = generate(n_users=n_users, n_items=n_items, n_ratings=n_ratings, rank=rank, noise=0.8,
                    seed=0)
    for column in ("user", "item", "rating"):
        np.save(path / f"{column}.npy", getattr(data.ratings, column))
    (path / "shape.json").write_text(json.dumps({"n_users": n_users, "n_items": n_items}))
    return path


def work(python: str, name: str, timeout: float | None = None, **kwargs: Any) -> dict[str, Any]:
    """Run worker ``name`` of engine_workers.py under ``python`` in a fresh process."""
    return harness.run_json([python, str(WORKERS), name, json.dumps(kwargs)],
                            env={"PYTHONPATH": str(HERE.parent / "src"),
                                 "TF_CPP_MIN_LOG_LEVEL": "3", **WORKER_ENV}, timeout=timeout)


def measure(condition: str, python: str, name: str, timeout: float, **kwargs: Any
            ) -> dict[str, Any]:
    """One worker run, under fresh busy loops when ``condition`` is ``busy``; with the load."""
    with harness.condition(condition == "busy"):
        load = harness.load()
        return {"load": load, **work(python, name, timeout=timeout, **kwargs)}


def facts(args: argparse.Namespace, started: float) -> dict[str, Any]:
    """Machine, software, command, load averages and duration of one part."""
    return {**harness.machine(), "command": harness.command_line(),
            "worker environment": WORKER_ENV or "inherited only",
            "quick (sizes too small to be figures)": args.quick,
            "load average at the end (1, 5, 15 min)": tuple(round(x, 2) for x in os.getloadavg()),
            "part wall seconds": round(time.perf_counter() - started, 1)}


# ----------------------------------------------------------------------------- catalogue
def catalogue(args: argparse.Namespace) -> dict[str, Any]:
    """Catalogue scaling: embrec, the SparseAdam loop and LIBMF, quiet then busy."""
    started = time.perf_counter()
    n = 20_000 if args.quick else 1_000_000
    sizes = [1_500, 150_000] if args.quick else [15_000, 1_500_000]
    folders = {size: arrays(f"catalogue-{n}-{size}", n, size // 2, size // 2, args.cache)
               for size in sizes}
    jobs = [(sys.executable, "catalogue-embrec", {"threads": 1}),
            (sys.executable, "catalogue-torch", {"threads": 1}),
            (args.baseline_python, "catalogue-libmf", {"threads": 2, "passes": 20})]
    rows = []
    for name in CONDITIONS:
        for size, folder in folders.items():
            for python, worker, kwargs in jobs:
                runs = [measure(name, python, worker, args.timeout, data=str(folder), **kwargs)
                        for _ in range(args.repeats)]
                rows.append({"condition": name, "catalogue": size, "ratings": n,
                             "framework": worker, **summary(runs)})
                print(json.dumps(rows[-1]), flush=True)
    return {"facts": facts(args, started), "rows": rows}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median run (by epoch seconds) of ``runs``, with the min and the count."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[-1]
    good.sort(key=lambda r: r["epoch_s"])
    middle = dict(good[(len(good) - 1) // 2])
    middle.update(runs=len(good), epoch_s_min=good[0]["epoch_s"],
                  load=statistics.mean(r["load"] for r in good))
    return middle


def render_catalogue(section: dict[str, Any]) -> str:
    """Markdown: one line per condition, catalogue and framework; then the large/small ratios."""
    rows = section["rows"]
    lines = [harness.table(rows, ["condition", "catalogue", "framework", "epoch_s", "epoch_s_min",
                                  "fit_s", "ratings_per_s", "train_rmse", "threads", "runs",
                                  "load", "error"]), "",
             "Large/small catalogue time ratio (median run; whole fit and epoch alone):", ""]
    ratios = []
    for name in CONDITIONS:
        by = {(r["catalogue"], r.get("framework")): r for r in rows
              if r["condition"] == name and "epoch_s" in r}
        sizes = sorted({k[0] for k in by})
        for framework in sorted({k[1] for k in by}):
            pair = [by.get((s, framework)) for s in sizes]
            if len(sizes) == 2 and all(pair):
                ratios.append({"condition": name, "framework": framework,
                               "fit ratio": pair[1]["fit_s"] / pair[0]["fit_s"],  # type: ignore
                               "epoch ratio": pair[1]["epoch_s"] / pair[0]["epoch_s"]})  # type: ignore
    return "\n".join([*lines, harness.table(ratios, ["condition", "framework", "fit ratio",
                                                      "epoch ratio"])])


# ----------------------------------------------------------------------------- contention
def contention(args: argparse.Namespace) -> dict[str, Any]:
    """compare.py's tasks quiet and busy (Keras, Surprise from ``--baseline-python``)."""
    import compare

    started = time.perf_counter()
    seeds = [0] if args.quick else args.seeds
    tasks = args.tasks or (["movielens-notebook", "default"] if args.quick else list(compare.TASKS))
    rows = compare.collect(compare.DATA / "ml-100k", tasks, seeds, list(compare.WORKERS), [None],
                           args.baseline_python, busy=True)
    table = compare.summarise(rows)
    return {"facts": facts(args, started), "rows": rows,
            "summary": table.to_dict(orient="records")}


def render_contention(section: dict[str, Any]) -> str:
    """Markdown: compare.py's summary (median fit seconds over seeds) for both conditions."""
    rows = section["summary"]
    speedups = []
    for name in CONDITIONS:
        for task in dict.fromkeys(r["task"] for r in rows):
            cell = [r for r in rows if r["condition"] == name and r["task"] == task]
            ours = [r for r in cell if r["framework"].startswith("embrec")]
            theirs = [r for r in cell if not r["framework"].startswith("embrec")]
            if ours and theirs:
                speedups.append({"condition": name, "task": task,
                                 "baseline": theirs[0]["framework"],
                                 SPEEDUP: theirs[0]["fit_s_median"] / ours[0]["fit_s_median"]})
    return "\n".join([harness.table(rows, list(rows[0]) if rows else []), "",
                      harness.table(speedups, ["condition", "task", "baseline", SPEEDUP])])


# ----------------------------------------------------------------------------- scale
def scale(args: argparse.Namespace) -> dict[str, Any]:
    """The default preset, one epoch, on ML-25M-shaped and 10M-user data; time and peak RSS."""
    import scaling

    started = time.perf_counter()
    if args.quick:
        shaped = scaling.generate_arrays("1M", args.cache)
        wide = arrays("wide-100k", 100_000, 100_000, 10_000, args.cache, rank=8)
    else:
        shaped = scaling.generate_arrays("25M", args.cache)
        wide = arrays("wide-10M", 10_000_000, 10_000_000, 1_000_000, args.cache, rank=8)
    jobs = [(shaped, 1), (shaped, 2), (wide, 1), (wide, 2)]
    rows = []
    for name in CONDITIONS:
        for folder, threads in jobs:
            result = measure(name, sys.executable, "scale", args.timeout, data=str(folder),
                             threads=threads)
            rows.append({"condition": name, "data": folder.name, **result})
            print(json.dumps(rows[-1]), flush=True)
    return {"facts": facts(args, started), "rows": rows}


def render_scale(section: dict[str, Any]) -> str:
    """Markdown: one line per condition, data set and thread count."""
    return harness.table(section["rows"], [
        "condition", "data", "ratings", "n_users", "n_items", "threads", "epoch_s", "fit_s",
        "ratings_per_s", "peak_rss_mib", "rss_after_load_mib", "train_rmse", "load", "error"])


# ----------------------------------------------------------------------------- correctness
def correctness(args: argparse.Namespace) -> dict[str, Any]:
    """Mean prediction minus mean training rating for the default preset at several decays."""
    started = time.perf_counter()
    n = 20_000 if args.quick else 200_000
    folder = arrays(f"correctness-{n}", n, n // 50, n // 100, args.cache)
    rows = []
    for bias_decay in (0.0, 0.3):
        for decay in (0.0, 0.08, 0.3):
            rows.append(work(sys.executable, "correctness", data=str(folder),
                             weight_decay=decay, bias_weight_decay=bias_decay))
            rows[-1]["within 0.02"] = abs(rows[-1].get("gap", 1.0)) <= 0.02
            print(json.dumps(rows[-1]), flush=True)
    return {"facts": {**facts(args, started), "ratings": n, "users": n // 50, "items": n // 100},
            "rows": rows}


def render_correctness(section: dict[str, Any]) -> str:
    """Markdown: one line per (bias_weight_decay, weight_decay)."""
    return harness.table(section["rows"], [
        "weight_decay", "bias_weight_decay", "train_mean", "mean_prediction", "gap",
        "mean_prediction_clipped", "gap_clipped", "within 0.02", "train_rmse", "error"])


# ----------------------------------------------------------------------------- A/B parts
def alternate(args: argparse.Namespace, condition: str, worker: str, option: str,
              **kwargs: Any) -> dict[bool, list[dict[str, Any]]]:
    """``--repeats`` runs of ``worker`` with ``option`` on and off, alternating: rows by setting."""
    runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for _ in range(args.repeats):
        for on in (True, False):
            runs[on].append(measure(condition, sys.executable, worker, args.timeout,
                                    **kwargs, **{option: on}))
    return runs


# ----------------------------------------------------------------------------- huge pages
def hugepages(args: argparse.Namespace) -> dict[str, Any]:
    """The 1.5M-row catalogue with tables on huge pages and on torch's allocator, alternating."""
    started = time.perf_counter()
    n, size = (20_000, 150_000) if args.quick else (1_000_000, 1_500_000)
    folder = arrays(f"catalogue-{n}-{size}", n, size // 2, size // 2, args.cache)
    rows = []
    for name in CONDITIONS:
        runs = alternate(args, name, "catalogue-embrec", "huge_pages", data=str(folder),
                         threads=1)
        rows += [{"condition": name, "catalogue": size, "ratings": n, "huge_pages": huge,
                  **summary(r)} for huge, r in runs.items()]
    return {"facts": facts(args, started), "rows": rows}


def render_hugepages(section: dict[str, Any]) -> str:
    columns = ["condition", "catalogue", "huge_pages", "epoch_s", "epoch_s_min", "fit_s",
               "peak_rss_mib",
               "runs", "load"]
    return harness.table(section["rows"], columns)


# ----------------------------------------------------------------------------- first fit A/B
def first_fit_ab(args: argparse.Namespace, option: str) -> dict[str, Any]:
    """A fresh process's first notebook-preset fit with ``option`` on and off, alternating.

    ``option`` is a keyword of ``engine_workers.first_fit``: ``pause`` (the cycle collector
    paused during ``fit``) or ``fused`` (the fused MLP step rather than the general loop).
    """
    started = time.perf_counter()
    rows = []
    for name in CONDITIONS:
        runs = alternate(args, name, "first-fit", option)
        for on, r in runs.items():
            good = sorted((x for x in r if "error" not in x), key=lambda x: x["fit_s"])
            rows.append({"condition": name, option: on, "runs": len(good),
                         **(good[len(good) // 2] if good else r[0]),
                         "fit_s_min": good[0]["fit_s"] if good else None})
    return {"facts": facts(args, started), "rows": rows}


def collector(args: argparse.Namespace) -> dict[str, Any]:
    """The first fit with Python's cycle collector paused during ``fit`` or left on."""
    return first_fit_ab(args, "pause")


def render_collector(section: dict[str, Any]) -> str:
    columns = ["condition", "pause", "fit_s", "fit_s_min", "collections_by_generation", "runs",
               "load"]
    return harness.table(section["rows"], columns)


def fused(args: argparse.Namespace) -> dict[str, Any]:
    """The first fit through the fused MLP step or through the general loop."""
    return first_fit_ab(args, "fused")


def render_fused(section: dict[str, Any]) -> str:
    columns = ["condition", "fused", "fit_s", "fit_s_min", "epoch_s", "train_rmse", "runs", "load"]
    return harness.table(section["rows"], columns)


PARTS = {"catalogue": (catalogue, render_catalogue),
         "collector": (collector, render_collector),
         "fused": (fused, render_fused),
         "hugepages": (hugepages, render_hugepages),
         "contention": (contention, render_contention),
         "scale": (scale, render_scale),
         "correctness": (correctness, render_correctness)}


def main(argv: list[str] | None = None) -> int:
    """Run the parts asked for; print each table; store it under benchmarks/results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=[*PARTS, "all"])
    parser.add_argument("--quick", action="store_true", help="small sizes, to check the script")
    parser.add_argument("--repeats", type=int, default=3, help="catalogue runs per cell (median)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="contention")
    parser.add_argument("--tasks", nargs="+", help="contention tasks (default: all)")
    parser.add_argument("--baseline-python", default=sys.executable,
                        help="interpreter with Keras, Surprise and libmf (a separate venv)")
    parser.add_argument("--timeout", type=float, default=290,
                        help="seconds before one measurement is abandoned (the loops last 300)")
    parser.add_argument("--worker-env", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra environment for the measured processes, e.g. "
                             "OMP_WAIT_POLICY=PASSIVE (recorded in the facts)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "embrec-engine")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick and args.out == RESULTS:  # quick numbers are not figures: keep them apart
        args.out = args.cache / "quick-results"
    WORKER_ENV.update(item.split("=", 1) for item in args.worker_env)
    os.environ.update(WORKER_ENV)  # compare.py's runs (contention) inherit it too
    render = {name: part[1] for name, part in PARTS.items()}
    for name in PARTS if args.part == "all" else [args.part]:
        section = PARTS[name][0](args)
        harness.save_section(args.out, name, section, render)
        print(f"\n## {name}\n\n{render[name](section)}\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
