"""Adversarial cases for per-rank reading under torchrun, each against one process on the file.

Usage::

    python benchmarks/sharded_cases.py --out benchmarks/results/sharded-cases.md
    python benchmarks/sharded_cases.py --only csv-bom csv-crlf --out /tmp/cases.md

Each case writes a small synthetic ratings file (``embrec.data.synthetic.generate``), runs
``torchrun --standalone --nproc_per_node=2 -m embrec train --data FILE --out DIR --json``
(loopback, gloo) and ``python -m embrec train`` with the same flags and seed, and records:

- both succeeded: whether the test RMSE and row counts agree (to 1e-6), and the notes;
- either failed: the exit codes, the ``error:`` lines each printed, and whether a rank
  printed a Python traceback from embrec's own code (torchrun's own ``ChildFailedError``
  report is not counted), and the seconds the job took (a hang shows as a timeout).
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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
SRC = os.environ.get("EMBREC_SRC", str(HERE.parent / "src"))
sys.path.insert(0, SRC)

from embrec.data.synthetic import generate  # noqa: E402
from embrec.distributed.shards import text_bounds  # noqa: E402

ENV = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
TRAIN = ["--model", "biased-mf", "--epochs", "2", "--batch-size", "97", "--seed", "3",
         "--embedding-dim", "4", "--json", "--quiet"]
TIMEOUT = 240
Builder = Callable[[Path], tuple[Path, list[str]]]


def frame(rows: int = 1203) -> pd.DataFrame:
    return generate(n_users=70, n_items=45, n_ratings=rows, rank=3, noise=0.1,
                    seed=5).ratings.to_pandas()[["user", "item", "rating"]]


def lines(data: pd.DataFrame) -> list[str]:
    return [f"{u},{i},{r:g}" for u, i, r in zip(data["user"], data["item"], data["rating"],
                                                 strict=True)]


def csv_file(folder: Path, body: list[str], *, header: str | None = "user,item,rating",
             end: str = "\n", last: bool = True, name: str = "r.csv",
             prefix: bytes = b"") -> Path:
    text = ([header] if header is not None else []) + body
    data = end.join(text) + (end if last else "")
    path = folder / name
    path.write_bytes(prefix + data.encode())
    return path


def parquet(folder: Path, data: pd.DataFrame, group: int, name: str = "r.parquet") -> Path:
    path = folder / name
    pq.write_table(pa.Table.from_pandas(data, preserve_index=False), path,
                   row_group_size=group)
    return path


def at_cut(path: Path, change: Callable[[str], str], before: bool = False) -> Path:
    """Rewrite the line starting at the byte cut of 2 ranks (or the one before it), same length."""
    data = path.read_bytes()
    cut = text_bounds(path, 2)[1]
    start = data.rfind(b"\n", 0, cut - 1) + 1 if before else cut
    stop = data.index(b"\n", start)
    new = change(data[start:stop].decode()).encode()
    assert len(new) == stop - start, (new, data[start:stop])
    path.write_bytes(data[:start] + new + data[stop:])
    return path


def _empty_group(folder: Path) -> tuple[Path, list[str]]:
    table = pa.Table.from_pandas(frame(), preserve_index=False)
    path = folder / "r.parquet"
    with pq.ParquetWriter(path, table.schema) as writer:
        writer.write_table(table.slice(0, 600))
        writer.write_table(table.slice(0, 0))
        writer.write_table(table.slice(600))
    sizes = [pq.ParquetFile(path).metadata.row_group(g).num_rows
             for g in range(pq.ParquetFile(path).metadata.num_row_groups)]
    print("  row groups:", sizes, flush=True)
    return path, []


def _quoted(folder: Path) -> tuple[Path, list[str]]:
    body = [f'{line},"title, with a comma {k}"' for k, line in enumerate(lines(frame()))]
    return csv_file(folder, body, header="user,item,rating,title"), []


def _newline_in_quotes_at_cut(folder: Path) -> tuple[Path, list[str]]:
    body = [f'{line},"t{k:05d}"' for k, line in enumerate(lines(frame()))]
    path = csv_file(folder, body, header="user,item,rating,title")
    # the line just before the cut gets a quoted field broken over two lines
    data = path.read_bytes()
    cut = text_bounds(path, 2)[1]
    start = data.rfind(b"\n", 0, cut - 1) + 1
    stop = cut - 1
    old = data[start:stop]
    new = old[:-4] + b"\n" + old[-3:]  # "t00|\n|123" -> still inside the quotes
    path.write_bytes(data[:start] + new[:len(old)] + data[stop:])
    return path, []


def _mixed_ids(folder: Path) -> tuple[Path, list[str]]:
    data = frame()
    data["user"] = data["user"].astype(str)
    data.loc[700:, "user"] = "u" + data.loc[700:, "user"]
    return csv_file(folder, lines(data)), []


def _leading_zero(folder: Path) -> tuple[Path, list[str]]:
    data = frame()
    data["item"] = data["item"].astype(str)
    data.loc[:300, "item"] = "00" + data.loc[:300, "item"]
    return csv_file(folder, lines(data)), []


def _long_header(folder: Path) -> tuple[Path, list[str]]:
    body = lines(frame(40))
    header = "user,item,rating," + "x" * (len("\n".join(body)) + 50)
    return csv_file(folder, [f"{b}," for b in body], header=header), []


def _blank_tail(folder: Path) -> tuple[Path, list[str]]:
    path = csv_file(folder, lines(frame(60)))
    path.write_bytes(path.read_bytes() + b"\n" * 2000)
    return path, []


def _skip_rank1(folder: Path) -> tuple[Path, list[str]]:
    body = lines(frame())
    body[600:] = [",".join([*b.split(",")[:2], "x"]) for b in body[600:]]
    return csv_file(folder, body), ["--on-bad-lines", "skip"]


def _bad_at_cut(folder: Path, before: bool) -> tuple[Path, list[str]]:
    path = csv_file(folder, lines(frame()))
    return at_cut(path, lambda s: s[:-1] + "x", before=before), []


def _dup_across(folder: Path) -> tuple[Path, list[str]]:
    body = lines(frame())
    first = body[0].split(",")
    last = body[-1].split(",")
    body[-1] = ",".join([*first[:2], last[2]])
    return csv_file(folder, body), []


def _timestamps(folder: Path, split: str) -> tuple[Path, list[str]]:
    data = frame()
    data["timestamp"] = range(len(data))
    body = [f"{u},{i},{r:g},{t}" for u, i, r, t in data.itertuples(index=False)]
    return csv_file(folder, body, header="user,item,rating,timestamp"), ["--split", split]


def _double_colon(folder: Path) -> tuple[Path, list[str]]:
    body = [s.replace(",", "::") + "::0" for s in lines(frame())]
    return csv_file(folder, body, header=None, name="ratings.dat"), []


def _nulls_rank1(folder: Path) -> tuple[Path, list[str]]:
    data = frame()
    data["user"] = data["user"].astype("float64")
    data.loc[1000, "user"] = float("nan")
    return parquet(folder, data, 100), []


def _blank_lines(folder: Path) -> tuple[Path, list[str]]:
    body = lines(frame())
    for k in (0, 5, 300, 598, 599, 600, 601, 602, 900):
        body.insert(k, "")
    path = csv_file(folder, ["", *body], header="user,item,rating")
    path.write_bytes(b"\n\n" + path.read_bytes() + b"\n\n\n")
    return path, []


def _uint64_ids(folder: Path) -> tuple[Path, list[str]]:
    data = frame()
    users = data["user"].to_numpy().astype(np.uint64)
    data["user"] = users * np.uint64(0x9E3779B97F4A7C15) + np.uint64(12345)  # wraps round
    return parquet(folder, data, 100), []


def _category_ids(folder: Path) -> tuple[Path, list[str]]:
    data = frame()
    data["item"] = ("i" + data["item"].astype(str)).astype("category")
    return parquet(folder, data, 100), []


def _float_ids(folder: Path) -> tuple[Path, list[str]]:
    data = frame()
    data["user"] = data["user"] + 0.5
    return parquet(folder, data, 100), []


CASES: dict[str, Builder] = {
    "parquet-uint64-hashed-ids": _uint64_ids,
    "parquet-category-ids": _category_ids,
    "parquet-fractional-float-ids": _float_ids,
    "parquet-one-row-group": lambda f: (parquet(f, frame(), 10**6), []),
    "parquet-tiny-row-groups": lambda f: (parquet(f, frame(), 7), []),
    "parquet-empty-row-group": _empty_group,
    "parquet-1-row": lambda f: (parquet(f, frame(1), 1), []),
    "parquet-3-rows": lambda f: (parquet(f, frame(3), 1), []),
    "parquet-null-id-on-rank-1": _nulls_rank1,
    "csv-header": lambda f: (csv_file(f, lines(frame())), []),
    "csv-no-header": lambda f: (csv_file(f, lines(frame()), header=None),
                                ["--user", "0", "--item", "1", "--rating", "2"]),
    "csv-crlf": lambda f: (csv_file(f, lines(frame()), end="\r\n"), []),
    "csv-bom": lambda f: (csv_file(f, lines(frame()), prefix=b"\xef\xbb\xbf"), []),
    "csv-bom-no-header": lambda f: (csv_file(f, lines(frame()), header=None,
                                             prefix=b"\xef\xbb\xbf"),
                                    ["--user", "0", "--item", "1", "--rating", "2"]),
    "csv-no-final-newline": lambda f: (csv_file(f, lines(frame()), last=False), []),
    "csv-blank-lines": _blank_lines,
    "csv-quoted-separator": _quoted,
    "csv-newline-in-quotes-at-cut": _newline_in_quotes_at_cut,
    "csv-bad-value-at-cut": lambda f: _bad_at_cut(f, False),
    "csv-bad-value-before-cut": lambda f: _bad_at_cut(f, True),
    "csv-duplicate-across-ranks": _dup_across,
    "csv-text-ids-on-rank-1-only": _mixed_ids,
    "csv-leading-zero-ids-on-rank-0": _leading_zero,
    "csv-rank-0-only-header": _long_header,
    "csv-rank-1-only-blank-lines": _blank_tail,
    "csv-skip-bad-every-rank-1-row": _skip_rank1,
    "csv-split-user": lambda f: _timestamps(f, "user"),
    "csv-split-time": lambda f: _timestamps(f, "time"),
    "csv-split-last": lambda f: _timestamps(f, "last"),
    "dat-double-colon": _double_colon,
    "tsv": lambda f: (csv_file(f, [s.replace(",", "\t") for s in lines(frame())],
                               header="user\titem\trating", name="r.tsv"), []),
    "csv-scale-given": lambda f: (csv_file(f, lines(frame())), ["--scale", "0", "10"]),
    "csv-test-size-0.6": lambda f: (csv_file(f, lines(frame())), ["--test-size", "0.6"]),
}


def run(command: list[str], cwd: Path) -> dict[str, Any]:
    started = time.monotonic()
    try:
        done = subprocess.run(command, env=ENV, capture_output=True, text=True,
                              timeout=TIMEOUT, cwd=cwd)
        code, out, err = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as expired:
        code, out, err = "timeout", str(expired.stdout or ""), str(expired.stderr or "")
    ours = re.findall(r'File ".*?/embrec/[^"]*", line \d+', err)
    return {"rc": code, "seconds": round(time.monotonic() - started, 1), "stdout": out,
            "stderr": err, "errors": [line for line in err.splitlines()
                                      if line.startswith("error:")],
            "embrec_traceback": bool(ours)}


def outcome(one: dict[str, Any], two: dict[str, Any]) -> str:
    if one["rc"] == 0 and two["rc"] == 0:
        a, b = json.loads(one["stdout"]), json.loads(two["stdout"])
        ra, rb = a["test"]["rmse"], b["test"]["rmse"]
        delta = abs(ra - rb) if ra is not None and rb is not None else float(ra != rb)
        same = (delta <= 1e-6 and a["test"]["n"] == b["test"]["n"]
                and a["train"]["n"] == b["train"]["n"])
        return (f"{'EQUAL' if same else 'DIFFERS'}: test rmse {ra} vs {rb}, "
                f"n {a['test']['n']:g}/{b['test']['n']:g}; "
                f"notes {b['notes']}; rows_per_rank {b.get('rows_per_rank')}")
    tb = " ; TRACEBACK from embrec" if two["embrec_traceback"] else ""
    return (f"1 process rc {one['rc']} {one['errors'][:1]} | 2 ranks rc {two['rc']} in "
            f"{two['seconds']} s, {len(two['errors'])} error line(s): {two['errors'][:2]}{tb}")


def case(name: str, build: Builder, folder: Path) -> str:
    here = folder / name
    here.mkdir()
    path, extra = build(here)
    one = run([sys.executable, "-m", "embrec", "train", "--data", str(path), *TRAIN, *extra,
               "--out", str(here / "one")], here)
    two = run([*TORCHRUN, "-m", "embrec", "train", "--data", str(path), *TRAIN, *extra,
               "--out", str(here / "two")], here)
    (here / "two.stderr").write_text(two["stderr"])
    (here / "one.stderr").write_text(one["stderr"])
    return outcome(one, two)


def _big(folder: Path) -> Path:
    data = generate(n_users=300, n_items=150, n_ratings=9001, rank=4, noise=0.3,
                    seed=2).ratings.to_pandas()[["user", "item", "rating"]]
    return csv_file(folder, lines(data))


def _rank_pids(launcher: int) -> dict[int, int]:
    """The worker processes under a torchrun launcher, by their RANK."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        rank = [e[5:] for e in environ if e.startswith(b"RANK=")]
        if parent == launcher and rank:
            found[int(rank[0])] = int(stat.parent.name)
    return found


def resume_after_kill(folder: Path, victim: int) -> str:
    """Kill -9 one rank between checkpoints, resume, compare with an uninterrupted run."""
    here = folder / f"resume-kill-rank-{victim}"
    here.mkdir()
    path = _big(here)
    flags = ["--data", str(path), "--model", "biased-mf", "--epochs", "4", "--batch-size",
             "250", "--seed", "0", "--json", "--quiet", "--checkpoint-every", "10"]
    whole = run([*TORCHRUN, "-m", "embrec", "train", *flags, "--out", str(here / "whole")], here)
    one = run([sys.executable, "-m", "embrec", "train", *flags, "--out", str(here / "one")],
              here)
    out = here / "model"
    job = subprocess.Popen([*TORCHRUN, "-m", "embrec", "train", *flags, "--out", str(out)],
                           env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    latest = here / "model.checkpoints" / "LATEST"
    deadline = time.monotonic() + 200
    while not latest.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    killed = _rank_pids(job.pid).get(victim)
    if killed is None:
        job.kill()
        return "could not find the rank to kill"
    os.kill(killed, 9)
    started = time.monotonic()
    _, err = job.communicate(timeout=TIMEOUT)
    ended = f"job rc {job.returncode} {time.monotonic() - started:.1f} s after the kill"
    (here / "killed.stderr").write_text(err)
    again = run([*TORCHRUN, "-m", "embrec", "train", *flags, "--out", str(out), "--resume"], here)
    (here / "resumed.stderr").write_text(again["stderr"])
    if again["rc"] != 0 or whole["rc"] != 0 or one["rc"] != 0:
        return f"{ended}; resume rc {again['rc']} {again['errors'][:2]}; whole rc {whole['rc']}"
    rmse = [json.loads(r["stdout"])["test"]["rmse"] for r in (again, whole, one)]
    single = run([sys.executable, "-m", "embrec", "train", *flags, "--out", str(out),
                  "--resume"], here)
    return (f"{ended}; resumed test rmse {rmse[0]:.9g}, uninterrupted 2 ranks {rmse[1]:.9g}, "
            f"1 process {rmse[2]:.9g}; resuming it in 1 process: rc {single['rc']} "
            f"{single['errors'][:1]}")


def checkpoint_folder(folder: Path, name: str) -> str:
    """The CLI's checkpoint folder <out>.checkpoints made a file, a link, or foreign."""
    here = folder / name
    here.mkdir()
    path = csv_file(here, lines(frame()))
    results = []
    for runner, out in (([*TORCHRUN, "-m"], "two"), ([sys.executable, "-m"], "one")):
        target = here / f"{out}.checkpoints"
        if name == "checkpoints-a-file":
            target.write_text("x")
        elif name == "checkpoints-a-link-to-a-folder":
            (here / f"{out}-real").mkdir()
            target.symlink_to(here / f"{out}-real")
        elif name == "checkpoints-a-dangling-link":
            target.symlink_to(here / f"{out}-nowhere")
        elif name == "checkpoints-a-link-to-a-file":
            (here / f"{out}-file").write_text("x")
            target.symlink_to(here / f"{out}-file")
        elif name == "checkpoints-foreign-files":
            target.mkdir()
            (target / "notes.txt").write_text("keep")
        got = run([*runner, "embrec", "train", "--data", str(path), *TRAIN, "--out",
                   str(here / out), "--checkpoint-every", "5"], here)
        (here / f"{out}.stderr").write_text(got["stderr"])
        tb = " TRACEBACK from embrec" if got["embrec_traceback"] else ""
        results.append(f"{out}: rc {got['rc']} in {got['seconds']} s {got['errors'][:2]}{tb}")
    return "; ".join(results)


CHECKPOINTS = ("checkpoints-a-file", "checkpoints-a-link-to-a-folder",
               "checkpoints-a-dangling-link", "checkpoints-a-link-to-a-file",
               "checkpoints-foreign-files")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None)
    parser.add_argument("--out", default=str(HERE / "results" / "sharded-cases.md"))
    parser.add_argument("--keep", help="keep the files and logs in this folder")
    args = parser.parse_args()
    names = args.only or [*CASES, *CHECKPOINTS, "resume-kill-rank-1", "resume-kill-rank-0"]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(args.keep or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        for name in names:
            print(name, flush=True)
            if name in CHECKPOINTS:
                result = checkpoint_folder(folder, name)
            elif name.startswith("resume-kill-rank-"):
                result = resume_after_kill(folder, int(name[-1]))
            else:
                result = case(name, CASES[name], folder)
            print("  ", result, flush=True)
            rows.append(f"| {name} | {result} |")
    table = "\n".join(["| case | outcome |", "|---|---|", *rows])
    Path(args.out).write_text(f"# Per-rank reading: adversarial cases\n\n{table}\n")


if __name__ == "__main__":
    main()
