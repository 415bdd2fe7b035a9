"""The error tree: builtin bases, message shape (what, where, hint)."""

from __future__ import annotations

import pytest

from embrec import errors


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [(errors.DataError, ValueError), (errors.ConfigError, ValueError),
     (errors.UnknownIdError, KeyError), (errors.ArtifactError, OSError),
     (errors.DownloadError, OSError), (errors.TrainingError, RuntimeError),
     (errors.ParseError, errors.DataError), (errors.MissingColumnError, errors.DataError)],
)
def test_each_error_is_also_its_builtin(cls: type, builtin: type) -> None:
    assert issubclass(cls, builtin) and issubclass(cls, errors.EmbrecError)


def test_data_error_message_has_file_line_and_hint() -> None:
    error = errors.ParseError("column 'rating': cannot parse 'x'", path="r.csv", line=3,
                              column="rating", value="x", hint="fix the row")
    assert str(error) == "r.csv:3: column 'rating': cannot parse 'x'\n  hint: fix the row"
    assert (error.line, error.column, error.value) == (3, "rating", "x")


def test_unknown_id_error_str_is_not_a_repr() -> None:
    error = errors.UnknownIdError("user", [42])
    assert str(error).startswith("unknown user 42\n  hint:")
