"""A corpus of malformed rating files, generated here, through read_ratings and `embrec train`.

Each must end in one DataError naming the file (and the line, column and value where
there is one) with a hint; the CLI prints one ``error:`` line and exits 2. Ids are
kept exactly as the file spells them. A hypothesis property: any generated CSV
reads with its exact row count and exact raw ids, or fails with a DataError.
"""

from __future__ import annotations

import csv
import gzip
import io
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embrec.cli import main
from embrec.data.readers import read_ratings
from embrec.errors import DataError, DataWarning

HEADER = b"user,item,rating\n"
GOOD = HEADER + b"1,10,4\n2,20,3\n3,30,5\n"
MANY = b"".join(b"%d,%d,4\n" % (u, u) for u in range(5000))


def _gz(data: bytes) -> bytes:
    return gzip.compress(data)


#: name -> (file name, bytes, regex the message must match)
CORPUS: dict[str, tuple[str, bytes, str]] = {
    "duplicate pair, text ids": ("r.csv", HEADER + b"u1,i1,4\nu2,i2,3\nu1,i1,5\n",
                                 r"r\.csv:4: 1 duplicate .*user 'u1', item 'i1'"),
    "plain text named .csv.gz": ("r.csv.gz", GOOD, r"r\.csv\.gz: cannot decompress"),
    "truncated .csv.gz": ("r.csv.gz", _gz(HEADER + MANY)[:900],
                          r"r\.csv\.gz: cannot decompress"),
    "UTF-16": ("r.csv", GOOD.decode().encode("utf-16"), r"r\.csv: the file holds UTF-16"),
    "UTF-16 gzipped": ("r.csv.gz", _gz(GOOD.decode().encode("utf-16")), "UTF-16"),
    "binary": ("r.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", r"r\.csv: .*binary"),
    "latin-1 id": ("r.csv", HEADER + b"1,10,4\nb\xe9a,20,3\n",
                   r"r\.csv:3: column 'user': the text is not valid utf-8"),
    "empty user id": ("r.csv", HEADER + b"1,10,4\n,20,3\n", r"r\.csv:3: column 'user'.*no user"),
    "empty item id": ("r.csv", HEADER + b"1,10,4\n2,,3\n", r"r\.csv:3: column 'item'"),
    "empty rating": ("r.csv", HEADER + b"1,10,4\n2,20,\n", r"r\.csv:3: column 'rating'"),
    "text rating": ("r.csv", HEADER + b"1,10,4\n2,20,five\n", r"r\.csv:3: .*'five'"),
    "NaN rating": ("r.csv", HEADER + b"1,10,4\n2,20,nan\n", r"r\.csv:3: column 'rating'"),
    "inf rating": ("r.csv", HEADER + b"1,10,4\n2,20,inf\n", r"r\.csv:3: column 'rating'"),
    "too many fields": ("r.csv", HEADER + b"1,10,4\n2,20,3,9\n", r"r\.csv:3: .*fields"),
    "too few fields": ("r.csv", HEADER + b"1,10,4\n2,20\n", r"r\.csv:3: .*fields"),
    "empty file": ("r.csv", b"", r"r\.csv: the file is empty"),
    "only a header": ("r.csv", HEADER, r"r\.csv"),
    "no rating column": ("r.csv", b"user,item,x\n1,2,3\n", r"r\.csv: no rating column"),
    "unknown suffix": ("r.xyz", GOOD, r"r\.xyz: cannot tell the format"),
    "empty gzip": ("r.csv.gz", _gz(b""), r"r\.csv\.gz: the file is empty"),
    "NUL in text": ("r.csv", HEADER + b"1,10,4\n2\x00,20,3\n", r"r\.csv: .*binary"),
}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_file_is_one_data_error(case: str, tmp_path: Path) -> None:
    name, data, pattern = CORPUS[case]
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(DataError, match=f"(?s){pattern}.*hint: ") as info:
        read_ratings(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize("case", ["duplicate pair, text ids", "plain text named .csv.gz",
                                  "truncated .csv.gz", "UTF-16", "empty user id", "binary"])
def test_bad_file_through_the_cli_is_exit_2(case: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    name, data, _ = CORPUS[case]
    (tmp_path / name).write_bytes(data)
    code = main(["train", "--data", str(tmp_path / name), "--epochs", "1", "--quiet",
                 "--out", str(tmp_path / "model")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and "Traceback" not in err
    assert "hint: " in err and not (tmp_path / "model").exists()


def _read(tmp_path: Path, text: str) -> list[object]:
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n" + text)
    return read_ratings(path).users.to_list()


def test_ids_are_kept_exactly(tmp_path: Path) -> None:
    ids = _read(tmp_path, "007,a,4\n7,a,5\n1e3,b,3\n1000,b,2\ntrue,c,1\n1,c,3\n")
    assert sorted(map(str, ids)) == ["007", "1", "1000", "1e3", "7", "true"]
    assert all(isinstance(i, str) for i in ids)
    assert _read(tmp_path, "7,a,4\n-3,a,5\n1000,b,3\n") == [-3, 7, 1000]  # integers stay integers


def test_an_id_of_2_63_or_more_does_not_make_the_column_float(tmp_path: Path) -> None:
    ids = _read(tmp_path, "1,2,4\n18446744073709551615,4,5\n8,3,2\n")
    assert sorted(ids) == ["1", "18446744073709551615", "8"]  # text, exact
    big = _read(tmp_path, "1,2,4\n9223372036854775807,4,5\n")
    assert big == [1, 2**63 - 1]


def test_an_http_style_lookup_matches_only_an_equal_id(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n196,1,4\n7,2,5\n")
    users = read_ratings(path).users
    assert users.coerce("196") == 196
    for text in ("196.00000000000001", "196.0", "0196", "1.96e2", "+196", " 196"):
        assert users.coerce(text) == text  # left as text: unknown, never user 196


def test_a_typo_far_outside_the_scale_warns_when_the_scale_is_inferred(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    rows = "".join(f"{u},{i},{(u + i) % 5 + 1}\n" for u in range(20) for i in range(5))
    path.write_text("user,item,rating\n" + rows + "99,99,1000\n")
    with pytest.warns(DataWarning, match=r"(?s)1 rating\(s\) far outside.*1000.*\[1, 1000\]"):
        assert read_ratings(path).scale == (1.0, 1000.0)
    with pytest.raises(DataError, match="1000"):
        read_ratings(path, scale=(1, 5))
    path.write_text("user,item,rating\n" + rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_ratings(path).scale == (1.0, 5.0)


_ID = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
            min_size=1, max_size=6),
    st.sampled_from(["007", "7", "1e3", "1000", "true", "1", "NaN", "null", "-0", " 1"]),
)


def _expected(ids: list[str]) -> list[object]:
    canonical = all(i == str(int(i)) if i.lstrip("-").isdigit() and i.isascii() else False
                    for i in ids)
    if canonical and all(-(2**63) <= int(i) < 2**63 for i in ids):
        return [int(i) for i in ids]
    return list(ids)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(_ID, _ID, st.integers(1, 5)), min_size=1, max_size=12,
                     unique_by=lambda r: (r[0], r[1])))
def test_any_csv_reads_exactly_or_is_a_data_error(tmp_path: Path,
                                                  rows: list[tuple[str, str, int]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["user", "item", "rating"])
    writer.writerows(rows)
    path = tmp_path / "r.csv"
    path.write_text(buffer.getvalue(), encoding="utf-8")
    read: Callable[[], object] = lambda: read_ratings(path)  # noqa: E731
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            ratings = read()
    except DataError:
        return
    assert len(ratings) == len(rows)  # type: ignore[arg-type]
    users = _expected([r[0] for r in rows])
    items = _expected([r[1] for r in rows])
    got_users = ratings.users.id_of(ratings.user).tolist()  # type: ignore[attr-defined]
    got_items = ratings.items.id_of(ratings.item).tolist()  # type: ignore[attr-defined]
    assert sorted(zip(got_users, got_items, strict=True), key=repr) == sorted(
        zip(users, items, strict=True), key=repr)


def test_uint64_ids_past_int64_stay_exact() -> None:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame({"user": np.array([1, 2**64 - 1], dtype=np.uint64),
                          "item": [1, 2], "rating": [3.0, 4.0]})
    assert sorted(read_ratings(frame).users.to_list()) == [1, 2**64 - 1]
