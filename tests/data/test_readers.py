"""read_ratings(): every source format, column recognition, and every bad-input message."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from embrec.data.ratings import Ratings
from embrec.data.readers import read_ratings
from embrec.errors import (
    ConfigError,
    DataError,
    DataWarning,
    DuplicateRatingError,
    MissingColumnError,
    ParseError,
)

ML_HEADER = "userId,movieId,rating,timestamp\n"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def triples(ratings: Ratings) -> list[tuple[object, object, float]]:
    frame = ratings.to_pandas()
    return list(zip(frame["user"].tolist(), frame["item"].tolist(), frame["rating"].tolist(),
                    strict=True))


# ----------------------------------------------------------------------------- formats
def test_csv_with_header_recognises_movielens_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv",
                 ML_HEADER + "1,31,2.5,1260759144\n1,1029,3.0,1260759179\n2,31,4,1260759182\n")
    ratings = read_ratings(path)
    assert triples(ratings) == [(1, 31, 2.5), (1, 1029, 3.0), (2, 31, 4.0)]
    assert ratings.timestamp is not None
    assert ratings.timestamp.tolist() == [1260759144, 1260759179, 1260759182]
    assert ratings.users.is_integer and ratings.items.is_integer
    assert ratings.source == str(path)
    assert ratings.scale == (2.5, 4.0)


def test_tsv_with_string_ids_aliases_and_dates(tmp_path: Path) -> None:
    path = write(tmp_path, "s.tsv", "user\titem\tscore\tdate\nalice\tThe Matrix\t5\t2020-01-01\n"
                                    "bob\tThe Matrix\t4\t2020-01-02 10:00:00\n")
    ratings = read_ratings(path)
    assert triples(ratings) == [("alice", "The Matrix", 5.0), ("bob", "The Matrix", 4.0)]
    assert ratings.timestamp is not None
    assert ratings.timestamp.tolist() == [1577836800, 1577959200]


def test_no_header_with_explicit_positions(tmp_path: Path) -> None:
    path = write(tmp_path, "plain.txt", "196 242 3 881250949\n186 302 4 891717742\n")
    ratings = read_ratings(path, user=0, item=1, rating=2)
    assert triples(ratings) == [(196, 242, 3.0), (186, 302, 4.0)]
    assert ratings.timestamp is None


def test_no_header_without_positions_says_how_to_name_them(tmp_path: Path) -> None:
    path = write(tmp_path, "plain.txt", "196 242 3\n186 302 4\n")
    with pytest.raises(MissingColumnError, match="no header row") as info:
        read_ratings(path)
    assert "user=0, item=1, rating=2" in str(info.value)


def test_grouplens_u_data_is_read_by_position(tmp_path: Path) -> None:
    path = write(tmp_path, "u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    ratings = read_ratings(path)
    assert triples(ratings) == [(196, 242, 3.0), (186, 302, 3.0)]
    assert ratings.timestamp is not None and ratings.timestamp[0] == 881250949


def test_double_colon_separator(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.dat", "1::1193::5::978300760\n2::661::3::978302109\n")
    assert triples(read_ratings(path)) == [(1, 1193, 5.0), (2, 661, 3.0)]


def test_explicit_separator_and_named_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "r.csv", "who;what;how\na;x;1\nb;y;2\n")
    ratings = read_ratings(path, sep=";", user="who", item="what", rating="how")
    assert triples(ratings) == [("a", "x", 1.0), ("b", "y", 2.0)]


def test_gzip_compressed_csv(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write(ML_HEADER + "1,2,3,10\n4,5,1,11\n")
    assert triples(read_ratings(path)) == [(1, 2, 3.0), (4, 5, 1.0)]


def test_format_overrides_the_suffix(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.export", ML_HEADER + "1,2,3,10\n")
    assert triples(read_ratings(path, format="csv")) == [(1, 2, 3.0)]


def test_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": [1, 2], "item_id": ["a", "b"], "rating": [4.5, 3.0],
                          "extra": ["x", "y"]})
    frame.to_parquet(tmp_path / "r.parquet")
    ratings = read_ratings(tmp_path / "r.parquet")
    assert triples(ratings) == [(1, "a", 4.5), (2, "b", 3.0)]


def test_dataframe_by_alias_and_by_position() -> None:
    frame = pd.DataFrame({"uid": [3, 4], "book_id": [7, 8], "stars": [1, 5]})
    assert triples(read_ratings(frame)) == [(3, 7, 1.0), (4, 8, 5.0)]
    swapped = read_ratings(frame, user=1, item=0, rating=2)
    assert triples(swapped) == [(7, 3, 1.0), (8, 4, 5.0)]
    assert swapped.source == "DataFrame"


def test_npz_sparse_matrix_rows_are_users_columns_items(tmp_path: Path) -> None:
    matrix = sp.csr_matrix(np.array([[0, 5, 3], [1, 0, 0]], dtype=np.float32))
    sp.save_npz(tmp_path / "m.npz", matrix)
    ratings = read_ratings(tmp_path / "m.npz")
    assert sorted(triples(ratings)) == [(0, 1, 5.0), (0, 2, 3.0), (1, 0, 1.0)]


def test_sparse_matrix_object_and_stored_zeros_are_not_ratings() -> None:
    matrix = sp.coo_matrix(([4.0, 0.0, 2.0], ([0, 1, 2], [0, 1, 2])), shape=(3, 3))
    ratings = read_ratings(matrix)
    assert sorted(triples(ratings)) == [(0, 0, 4.0), (2, 2, 2.0)]
    with pytest.raises(ConfigError, match="does not apply to a sparse matrix"):
        read_ratings(matrix, user="row")


def test_npz_that_is_not_a_sparse_matrix(tmp_path: Path) -> None:
    np.savez(tmp_path / "dense.npz", a=np.ones((2, 2)))
    with pytest.raises(DataError, match="not a SciPy sparse matrix") as info:
        read_ratings(tmp_path / "dense.npz")
    assert "save_npz" in str(info.value)


def _movielens_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "userId": np.array([1, 1, 2], dtype=np.int32),
        "movieId": np.array([31, 1029, 31], dtype=np.int32),
        "rating": [2.5, 3.0, 4.0],
        "timestamp": np.array([1260759144, 1260759179, 1260759182], dtype=np.int32),
    })


def test_rdata_file_picks_the_ratings_frame(tmp_path: Path) -> None:
    pytest.importorskip("rdata", reason="reading R files needs the r extra: pip install -e '.[r]'")
    pyreadr = pytest.importorskip("pyreadr")
    path = tmp_path / "movielens-small.RData"
    pyreadr.write_rdata(str(path), _movielens_frame(), df_name="ratings")
    ratings = read_ratings(path)
    assert triples(ratings) == [(1, 31, 2.5), (1, 1029, 3.0), (2, 31, 4.0)]
    assert ratings.timestamp is not None and ratings.timestamp[0] == 1260759144
    assert ratings.users.ids.dtype == np.int64


def test_rds_file_with_ids_stored_as_doubles(tmp_path: Path) -> None:
    pytest.importorskip("rdata", reason="reading R files needs the r extra: pip install -e '.[r]'")
    pyreadr = pytest.importorskip("pyreadr")
    path = tmp_path / "ratings.rds"
    frame = pd.DataFrame({"userId": [1.0, 2.0], "movieId": [3.0, 4.0], "rating": [4.5, 3.0]})
    pyreadr.write_rds(str(path), frame)
    ratings = read_ratings(path)
    assert triples(ratings) == [(1, 3, 4.5), (2, 4, 3.0)]
    assert ratings.items.is_integer


def test_rdata_problems_use_r_row_numbers(tmp_path: Path) -> None:
    pytest.importorskip("rdata", reason="reading R files needs the r extra: pip install -e '.[r]'")
    pyreadr = pytest.importorskip("pyreadr")
    frame = _movielens_frame()
    frame.loc[1, "rating"] = np.nan  # the second row, row 2 in R
    path = tmp_path / "ratings.rda"
    pyreadr.write_rdata(str(path), frame, df_name="ratings")
    with pytest.raises(ParseError, match=r"ratings.rda: row 2: column 'rating': no rating"):
        read_ratings(path)


def test_rdata_without_a_ratings_frame_lists_what_it_holds(tmp_path: Path) -> None:
    rdata = pytest.importorskip("rdata")
    path = tmp_path / "two.rda"
    rdata.write_rda(path, {"a": _movielens_frame(), "b": _movielens_frame()})
    with pytest.raises(DataError, match=r"\['a', 'b'\]"):
        read_ratings(path)


def test_garbage_r_file(tmp_path: Path) -> None:
    path = write(tmp_path, "junk.rds", "not R at all")
    with pytest.raises(DataError, match="not a readable R data file"):
        read_ratings(path)


# ----------------------------------------------------------------------------- bad input
def test_malformed_line_names_file_line_and_text(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", ML_HEADER + "1,2,3,10\n2,31\n3,4,5,12\n")
    with pytest.raises(ParseError, match=r"ratings.csv:3: ") as info:
        read_ratings(path)
    error = info.value
    assert str(error).startswith(f"{path}:3: expected 4 fields, found 2: '2,31'")
    assert error.line == 3 and error.path == str(path)
    assert "on_bad_lines='skip'" in str(error)


def test_non_numeric_rating_names_line_column_and_value(tmp_path: Path) -> None:
    lines = ML_HEADER + "1,2,3,10\n1,3,4,11\n1,4,five,12\n"
    path = write(tmp_path, "ratings.csv", lines)
    with pytest.raises(ParseError, match=r"ratings.csv:4: column 'rating': cannot parse 'five' "
                                         "as a number") as info:
        read_ratings(path)
    assert info.value.column == "rating" and info.value.value == "five"


def test_nan_and_empty_ratings(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", ML_HEADER + "1,2,nan,10\n1,3,,11\n")
    with pytest.raises(ParseError) as info:
        read_ratings(path)
    message = str(info.value)
    assert ":2: column 'rating': nan is not a finite number" in message
    assert "line 3: column 'rating': no rating" in message


def test_missing_id_and_bad_time(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", ML_HEADER + "1,2,3,10\n,3,4,11\n2,3,4,yesterday\n")
    with pytest.raises(ParseError) as info:
        read_ratings(path)
    message = str(info.value)
    assert ":3: column 'userId': no user id" in message
    assert "line 4: column 'timestamp': cannot parse 'yesterday' as a time" in message


def test_rating_outside_the_scale(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", ML_HEADER + "1,2,3,10\n1,3,7,11\n")
    with pytest.raises(ParseError, match=r":3: column 'rating': 7 is outside the scale \[1, 5\]"
                       ) as info:
        read_ratings(path, scale=(1, 5))
    assert "scale=(min, max)" in str(info.value)
    assert len(read_ratings(path, scale=(1, 10))) == 2


def test_batch_reports_first_five_and_the_total(tmp_path: Path) -> None:
    body = "".join(f"1,{i},bad{i},10\n" for i in range(7))
    path = write(tmp_path, "ratings.csv", ML_HEADER + "9,9,1,1\n" + body)
    with pytest.raises(ParseError) as info:
        read_ratings(path)
    message = str(info.value)
    assert message.count("cannot parse") == 5
    assert "'bad0'" in message and "line 7: " in message and "'bad5'" not in message
    assert "7 bad lines in all" in message


def test_lines_count_blank_lines_and_crlf(tmp_path: Path) -> None:
    text = ML_HEADER + "1,2,3,10\n\n\n1,3,4,11\n2,2\n\n1,4,x,12\n"
    path = tmp_path / "ratings.csv"
    path.write_bytes(text.replace("\n", "\r\n").encode())
    with pytest.raises(ParseError) as info:
        read_ratings(path)
    message = str(info.value)
    assert message.startswith(f"{path}:6: expected 4 fields, found 2")
    assert "line 8: column 'rating': cannot parse 'x'" in message


def test_too_many_malformed_lines_stop_early(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", ML_HEADER + "1,2\n" * 1500)
    with pytest.raises(ParseError, match="at least 1000 bad lines in all"):
        read_ratings(path)


def test_double_colon_bad_line_shows_the_original_text(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.dat", "1::1193::5::978300760\n2::661\n")
    with pytest.raises(ParseError, match=r"ratings.dat:2: expected 4 fields, found 2: '2::661'"):
        read_ratings(path)


def test_missing_column_lists_what_was_found(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", "userId,movieId,ts\n1,2,3\n")
    with pytest.raises(MissingColumnError, match=r"no rating column; found \['userId', "
                                                 r"'movieId', 'ts'\]") as info:
        read_ratings(path)
    assert "pass rating=" in str(info.value)


def test_named_column_absent_suggests_a_close_name(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", ML_HEADER + "1,2,3,4\n")
    with pytest.raises(MissingColumnError, match="no rating column 'ratings'") as info:
        read_ratings(path, rating="ratings")
    assert "did you mean rating='rating'?" in str(info.value)
    with pytest.raises(MissingColumnError, match="not a column position"):
        read_ratings(path, rating=9)


def test_empty_and_header_only_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="empty"):
        read_ratings(write(tmp_path, "empty.csv", ""))
    with pytest.raises(DataError, match="no ratings found"):
        read_ratings(write(tmp_path, "header.csv", ML_HEADER))


def test_missing_file_suggests_a_neighbour(tmp_path: Path) -> None:
    write(tmp_path, "ratings.csv", ML_HEADER)
    with pytest.raises(DataError, match="no such file or folder") as info:
        read_ratings(tmp_path / "rating.csv")
    assert "ratings.csv" in str(info.value)


def test_unknown_suffix_lists_known_formats(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.xlsx", "x")
    with pytest.raises(DataError, match=r"'.xlsx'") as info:
        read_ratings(path)
    assert ".csv" in str(info.value) and "format=" in str(info.value)
    with pytest.raises(ConfigError, match="format"):
        read_ratings(path, format="excel")


def test_invalid_utf8_text(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_bytes(b"user,item,rating\nb\xe9a,x,3\n")
    with pytest.raises(ParseError, match="column 'user': the text is not valid utf-8"):
        read_ratings(path)


def test_duplicates_follow_the_policy_and_name_the_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", "user,item,rating\n1,2,3\n1,3,4\n1,2,5\n")
    with pytest.raises(DuplicateRatingError, match="user 1, item 2, at line 2, line 4") as info:
        read_ratings(path)
    assert info.value.line == 4 and "duplicates='last'" in str(info.value)
    assert sorted(triples(read_ratings(path, duplicates="last"))) == [(1, 2, 5.0), (1, 3, 4.0)]
    assert sorted(triples(read_ratings(path, duplicates="mean"))) == [(1, 2, 4.0), (1, 3, 4.0)]


def test_dataframe_problems_name_the_row_label() -> None:
    frame = pd.DataFrame({"user_id": [1, 2, None], "book_id": ["a", "b", "c"],
                          "rating": [1, "two", 3]}, index=[10, 11, 12])
    with pytest.raises(ParseError) as info:
        read_ratings(frame)
    message = str(info.value)
    assert message.startswith("DataFrame: row 11: column 'rating': cannot parse 'two' as a number")
    assert "row 12: column 'user_id': no user id" in message
    assert "rows" in message  # the hint speaks of rows, not lines


def test_bad_options_and_sources(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", ML_HEADER + "1,2,3,4\n")
    with pytest.raises(ConfigError, match="on_bad_lines"):
        read_ratings(path, on_bad_lines="ignore")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="duplicates"):
        read_ratings(path, duplicates="first")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="scale"):
        read_ratings(path, scale=(5, 1))
    with pytest.raises(TypeError, match="list"):
        read_ratings([1, 2, 3])


# ----------------------------------------------------------------------------- lenient
def test_skip_mode_drops_bad_lines_with_one_warning(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    text = ML_HEADER + "1,31,2.5,1\n\n1,1029,five,1\n2,31\n3,3,4,2\n"
    path = write(tmp_path, "ratings.csv", text)
    with caplog.at_level(logging.WARNING), pytest.warns(DataWarning) as record:
        ratings = read_ratings(path, on_bad_lines="skip")
    assert len(record) == 1
    message = str(record[0].message)
    assert "skipped 2 bad lines" in message
    assert "line 4: column 'rating': cannot parse 'five'" in message
    assert "line 5: expected 4 fields, found 2" in message
    assert record[0].filename == __file__  # points at the caller
    assert triples(ratings) == [(1, 31, 2.5), (3, 3, 4.0)]
    assert "skipped 2 bad lines" in caplog.text


def test_skip_mode_with_nothing_left_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "ratings.csv", ML_HEADER + "1,2,9,1\n1,3,0,1\n")
    with pytest.raises(DataError, match=r"all 2 were bad\n  hint: first: line 2: "
                                        r"column 'rating': 9 is outside"):
        read_ratings(path, scale=(1, 5), on_bad_lines="skip")


# ----------------------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(rows=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30),
                               st.sampled_from([0.5, 1.0, 3.5, 5.0])),
                     min_size=1, max_size=40, unique_by=lambda r: (r[0], r[1])),
       sep=st.sampled_from([",", "\t", ";", "::"]))
def test_written_text_reads_back_like_from_pandas(tmp_path_factory: pytest.TempPathFactory,
                                                  rows: list[tuple[int, int, float]],
                                                  sep: str) -> None:
    frame = pd.DataFrame(rows, columns=["user", "item", "rating"])
    path = tmp_path_factory.mktemp("prop") / "ratings.txt"
    path.write_text("user" + sep + "item" + sep + "rating\n"
                    + "".join(f"{u}{sep}{i}{sep}{r}\n" for u, i, r in rows))
    expected = Ratings.from_pandas(frame, source=str(path))
    got = read_ratings(path)
    assert got.fingerprint() == expected.fingerprint()
    assert got.n_users == expected.n_users and got.n_items == expected.n_items


@settings(max_examples=25, deadline=None)
@given(layout=st.lists(st.sampled_from(["good", "blank", "short"]), max_size=30),
       bad_at=st.integers(0, 30))
def test_reported_line_is_the_physical_line(tmp_path_factory: pytest.TempPathFactory,
                                            layout: list[str], bad_at: int) -> None:
    kinds = [*layout[:bad_at], "bad", *layout[bad_at:]]
    text = {"good": "1,{n},3\n", "blank": "\n", "short": "1\n", "bad": "1,{n},oops\n"}
    lines = [text[kind].format(n=n) for n, kind in enumerate(kinds)]
    path = tmp_path_factory.mktemp("lines") / "ratings.csv"
    path.write_text("user,item,rating\n" + "".join(lines))
    if "good" not in kinds:
        with pytest.raises(DataError, match="no ratings found"):
            read_ratings(path, on_bad_lines="skip")
        return
    with pytest.warns(DataWarning) as record:
        read_ratings(path, on_bad_lines="skip")
    physical = {n + 2: kind for n, kind in enumerate(kinds)}  # 1-based, after the header
    first_bad = sorted(line for line, kind in physical.items() if kind in ("bad", "short"))[:5]
    message = str(record[0].message)
    for line in first_bad:
        what = "cannot parse 'oops'" if physical[line] == "bad" else "expected 3 fields, found 1"
        assert f"line {line}: {what}" in message or f"line {line}: column 'rating': {what}" \
            in message


def test_sparse_problems_name_the_entry() -> None:
    matrix = sp.csr_matrix(np.array([[np.nan, 1.0], [2.0, np.inf]]))
    with pytest.raises(ParseError, match=r"sparse matrix: entry \(0, 0\): value: nan is not a "
                                         "finite number") as info:
        read_ratings(matrix)
    assert "entry (1, 1): value: inf" in str(info.value) and "those entries" in str(info.value)
