"""Feature tables: encoding, the schema's JSON round trip, and errors that name file:line:column."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from embrec.data.feature_files import read_features
from embrec.data.features import FeatureSchema, features_from_frame
from embrec.errors import DataError, MissingColumnError, ParseError


def write(tmp_path: Path, text: str, name: str = "users.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_reads_categorical_multi_numeric_and_flag_columns(tmp_path: Path) -> None:
    path = write(tmp_path, "id,age,gender,genres,member\n1,20,F,Comedy|Drama,1\n"
                           "2,40,M,Drama,0\n\nx,30,M,,1\n")
    features = read_features(path)
    kinds = {c.name: c.kind for c in features.schema.columns}
    assert kinds == {"age": "numeric", "gender": "categorical", "genres": "multi",
                     "member": "flag"}
    assert features.schema.names == ["age", "gender=F", "gender=M", "genres=Comedy",
                                     "genres=Drama", "member"]
    rows = features.rows([2, "x", "unknown"]).toarray()
    np.testing.assert_allclose(rows[0], [np.sqrt(1.5), 0, 1, 0, 1, 0])  # (40 - 30) / sd
    np.testing.assert_allclose(rows[1], [0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(rows[2], np.zeros(6))  # no features: a zero row
    again = FeatureSchema.from_dict(json.loads(json.dumps(features.schema.to_dict())))
    assert again == features.schema
    frame = pd.DataFrame({"age": [30], "gender": ["F"], "genres": ["Drama|Horror"]})
    np.testing.assert_allclose(again.encode(frame).toarray(), [[0, 1, 0, 0, 1, 0]])


def test_frame_with_explicit_kinds() -> None:
    frame = pd.DataFrame({"occupation": [3, 7, 3], "age": [1, 2, 3]}, index=[10, 11, 12])
    features = features_from_frame(frame, kind="user", categorical=("occupation",))
    assert features.schema.names == ["occupation=3", "occupation=7", "age"]
    assert features.matrix.shape == (3, 3)


@pytest.mark.parametrize(("text", "match"), [
    ("id,age\n1,20\n2,old\n", r"users\.csv:3: column 'age': cannot parse 'old'"),
    ("id,age\n1,20\n2,30\n3,40,9\n", r"users\.csv:4: wrong number of fields: 3 fields"),
    ("id,age,gender\n1,20,F\n2,30\n", r"users\.csv:3: too few fields: no value for column "
                                      "'gender'"),
    ("id,age\n1,20\n2,30\n1,40\n", r"users\.csv:4: column 'id': user '1' appears again "
                                   r"\(first on line 2"),
    ("id,age\n1,20\n,30\n", r"users\.csv:3: column 'id': empty user id"),
    ("", r"users\.csv:1: the feature file is empty"),
])
def test_errors_name_file_line_and_column(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(DataError, match=match) as caught:
        read_features(write(tmp_path, text))
    assert "hint:" in str(caught.value)


def test_parse_error_carries_its_location(tmp_path: Path) -> None:
    with pytest.raises(ParseError) as caught:
        read_features(write(tmp_path, "user\tage\n1\t20\n2\t3x\n", "users.tsv"))
    assert (caught.value.line, caught.value.column, caught.value.value) == (3, "age", "3x")


def test_missing_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(MissingColumnError, match="no item feature column 'genre'"):
        read_features(write(tmp_path, "id,genres\n1,A|B\n"), kind="item", columns=["genre"])
    with pytest.raises(DataError, match="no such user feature file"):
        read_features(tmp_path / "absent.csv")


def test_movielens_layout_attaches_features(tmp_path: Path) -> None:
    from embrec.data.features import layout_features

    users = pd.DataFrame({"age": [24, 53], "gender": ["M", "F"], "occupation": ["a", "b"],
                          "zip_code": ["1", "2"]}, index=pd.Index([1, 2], name="id"))
    items = pd.DataFrame({"title": ["T (1990)", "U (2000)", "V"],
                          "release_date": ["", "01-Jan-1998", ""],
                          "genres": ["Action|Comedy", "Drama", ""]},
                         index=pd.Index([5, 6, 7], name="id"))
    user_features, item_features = layout_features("ml-100k", users, items)
    assert user_features is not None and item_features is not None
    assert user_features.schema.names[:3] == ["age", "gender=F", "gender=M"]
    assert item_features.schema.names == ["genres=Action", "genres=Comedy", "genres=Drama",
                                          "year"]
    year = item_features.schema.columns[-1]
    assert year.mean == 1994.0  # 1990 from the title, 1998 from the date, none for V
    np.testing.assert_allclose(item_features.rows([7]).toarray()[0, -1], 0.0)
    assert layout_features("goodbooks-10k", None, items) == (None, None)
