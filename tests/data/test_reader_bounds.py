"""Readers: blank lines cost bounded memory, out-of-range values are named at their file line
in embrec's words (never PyArrow's or NumPy's), and a negative rating among 1-5 warns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import embrec
from embrec.errors import DataWarning, ParseError

SRC = str(Path(embrec.__file__).parent.parent)
MEASURE = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))  # never fill the machine
import embrec, pyarrow.csv, torch
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    embrec.read_ratings(sys.argv[1])
    outcome = "read"
except embrec.errors.DataError as error:
    outcome = str(error).splitlines()[0]
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"outcome": outcome, "mib": (after - before) / 1024}))
"""


def _ratings(rows: int) -> str:
    return "user,item,rating\n" + "".join(f"{k},{k % 7},{k % 5 + 1}\n" for k in range(rows))


def test_blank_lines_cost_bounded_memory(tmp_path: Path) -> None:
    tail = "9,9,five\n"  # an error that names a line: the blank lines are read and counted
    path = tmp_path / "blank.csv"
    with path.open("w") as handle:
        handle.write(_ratings(100))
        for _ in range(8):
            handle.write("\n" * (8 << 20))  # 64 MiB of blank lines
        handle.write(tail)
    run = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True,
                         text=True, timeout=300, env={"PYTHONPATH": SRC})
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    # one number per blank line held 26 bytes a byte (1.7 GB here); what is left is PyArrow's
    # threaded reader's blocks in flight, 25-130 MB depending on thread timing
    assert result["mib"] < 250, result
    assert f"blank.csv:{101 + (64 << 20) + 1}:" in result["outcome"]


def test_a_rating_too_large_for_float32_is_named_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(_ratings(100) + "\n5,6,1e39\n")
    with pytest.raises(ParseError, match=r"r.csv:103: column 'rating': 1e\+39 is too large"):
        embrec.read_ratings(path)
    with pytest.raises(ParseError, match="too large a value"):  # arrays: no NumPy warning
        embrec.Ratings.from_arrays(np.arange(2), np.arange(2), np.array([1.0, 1e39]))


def test_a_line_longer_than_a_block_is_worded_by_embrec(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(_ratings(10) + "5," + "x" * (20 << 20) + ",3\n")  # read on threads
    with pytest.raises(ParseError, match="a line is longer than 4 MiB") as caught:
        embrec.read_ratings(path)
    assert "straddl" not in str(caught.value) and "block size" not in str(caught.value)


def test_a_negative_rating_among_one_to_five_warns(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text(_ratings(50) + "51,3,-3\n")
    with pytest.warns(DataWarning, match="far outside the bulk of the data .1, 5.: -3"):
        ratings = embrec.read_ratings(path)
    assert ratings.scale == (-3.0, 5.0)
    symmetric = tmp_path / "s.csv"  # a scale with negatives in its bulk is no typo
    symmetric.write_text("user,item,rating\n" + "".join(
        f"{k},{k % 7},{k % 11 - 5}\n" for k in range(60)))
    embrec.read_ratings(symmetric)


def test_a_header_only_file_exits_2_every_time(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("user,item,rating\n")
    for _ in range(2):  # the exit-134 abort came from a read-ahead thread left running
        run = subprocess.run([sys.executable, "-m", "embrec", "train", "--data", str(path),
                              "--quiet"], capture_output=True, text=True, timeout=120,
                             env={"PYTHONPATH": SRC})
        assert run.returncode == 2 and run.stderr.startswith("error: "), run.stderr
