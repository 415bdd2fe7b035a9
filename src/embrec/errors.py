"""Every exception and warning embrec raises, in one place.

Each error also inherits the builtin a caller would naturally catch, so
``except ValueError`` keeps working for code that does not know embrec::

    EmbrecError
    ├── DataError(ValueError)          bad input data: path, line, column, value, hint
    │   ├── MissingColumnError         a needed column is absent
    │   ├── ParseError                 a value cannot be parsed / is out of range
    │   └── DuplicateRatingError       the same (user, item) pair rated more than once
    ├── ConfigError(ValueError)        bad hyperparameter: field, value, constraint
    ├── UnknownIdError(KeyError)       raw id not seen in training
    ├── ArtifactError(OSError)         missing/corrupt saved model, version or hash mismatch
    ├── DownloadError(OSError)         offline / HTTP failure / checksum mismatch
    └── TrainingError(RuntimeError)    training diverged (NaN or infinite loss)

    EmbrecWarning(UserWarning)
    ├── DataWarning                    rows dropped or fixed up under a lenient policy
    ├── TrainingWarning                dead units, constant predictions, overfitting
    └── MetricWarning                  a metric is undefined for some users (NaN)

A message is one line saying what went wrong and where, then ``  hint: ...``
saying how to fix it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["ArtifactError", "ConfigError", "DataError", "DataWarning", "DownloadError",
           "DuplicateRatingError", "EmbrecError", "EmbrecWarning", "MetricWarning",
           "MissingColumnError", "ParseError", "TrainingError", "TrainingWarning",
           "UnknownIdError"]


def _with_hint(message: str, hint: str | None) -> str:
    return f"{message}\n  hint: {hint}" if hint else message


class EmbrecError(Exception):
    """Base class of every error embrec raises on purpose."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(_with_hint(message, hint))

    def __str__(self) -> str:
        return _with_hint(self.message, self.hint)


class DataError(EmbrecError, ValueError):
    """Input data is malformed; says which file, line, column and value."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None,
                 column: str | None = None, value: Any = None, hint: str | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line, self.column, self.value = line, column, value
        where = (self.path if line is None else f"line {line}" if self.path is None
                 else f"{self.path}:{line}")
        super().__init__(f"{where}: {message}" if where else message, hint=hint)


class MissingColumnError(DataError):
    """A column the reader needs is absent."""


class ParseError(DataError):
    """A value cannot be parsed, or lies outside its allowed range."""


class DuplicateRatingError(DataError):
    """The same (user, item) pair appears more than once."""


class ConfigError(EmbrecError, ValueError):
    """A configuration value is invalid; names the field and the constraint."""

    def __init__(self, field: str, value: Any, constraint: str, *, hint: str | None = None) -> None:
        self.field, self.value, self.constraint = field, value, constraint
        super().__init__(f"{field}={value!r} {constraint}", hint=hint)


class UnknownIdError(EmbrecError, KeyError):
    """A raw user or item id was not seen in training."""

    def __init__(self, kind: str, ids: Sequence[Any], *, hint: str | None = None) -> None:
        self.kind = kind
        self.ids = list(ids)
        shown = ", ".join(repr(i) for i in self.ids[:5])
        more = f" and {len(self.ids) - 5} more" if len(self.ids) > 5 else ""
        noun = kind if len(self.ids) == 1 else f"{kind}s"
        default_hint = f"the model knows only the {kind}s of its training data"
        super().__init__(f"unknown {noun} {shown}{more}", hint=hint or default_hint)


class ArtifactError(EmbrecError, OSError):
    """A saved model directory is missing, incomplete, corrupt or from another format."""


class DownloadError(EmbrecError, OSError):
    """A data set could not be downloaded or failed its checksum."""


class TrainingError(EmbrecError, RuntimeError):
    """Training could not go on, for example because the loss became NaN."""


class EmbrecWarning(UserWarning):
    """Base class of every warning embrec issues."""


class DataWarning(EmbrecWarning):
    """Rows were skipped, merged or fixed under a lenient policy."""


class TrainingWarning(EmbrecWarning):
    """Training finished but the model looks unhealthy (dead units, overfitting)."""


class MetricWarning(EmbrecWarning):
    """A metric is undefined for some users and was left out of the average."""
