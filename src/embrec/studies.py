"""Optuna storage for ``tune``: refused unless it is an Optuna store, and swept of dead trials.

A ``sqlite:///`` storage is checked read-only before Optuna touches it, so a user's
own database is never written into. A trial records the host and pid running it; one
left ``RUNNING`` by a process that is gone is marked failed when ``tune`` next opens
the study, and the starting point is enqueued again until a trial of it has finished.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from embrec.errors import ConfigError
from embrec.writers import process_alive

T = TypeVar("T")

__all__ = ["OPTUNA_TABLES", "check_storage", "mark_trial", "open_study", "start_if_missing",
           "sweep_stale", "with_retries"]

OPTUNA_TABLES = frozenset({"studies", "trials", "trial_params", "trial_values",
                           "version_info", "alembic_version"})
"""Tables every Optuna RDB store holds; a database holding tables but not these is not one."""
OPTUNA_NAMES = OPTUNA_TABLES | {"study_directions", "study_system_attributes",
                                "study_user_attributes", "trial_heartbeats",
                                "trial_intermediate_values", "trial_system_attributes",
                                "trial_user_attributes"}
"""Every table an Optuna store may hold: a database of only these is one, perhaps half made."""
CREATION_WAIT = 10.0
"""Seconds a half-made Optuna store is waited for before it is refused as incomplete."""
SQLITE_HEADER = b"SQLite format 3\x00"
HINT = "give an Optuna storage URL such as sqlite:///tune.db (a new file, or one tune made)"


def _refuse(storage: str, problem: str, hint: str = HINT) -> ConfigError:
    return ConfigError("storage", storage, problem, hint=hint)


def check_storage(storage: str | None) -> None:
    """Refuse a storage URL ``tune`` must not use, before anything is written.

    Raises:
        ConfigError: for a string that is not a URL, or a ``sqlite:///`` path
            that is a folder, lies in a missing folder, is not a SQLite file,
            cannot be read, or holds tables that are not an Optuna store's.
    """
    if storage is None:
        return
    if "://" not in storage:
        raise _refuse(storage, "is not a storage URL")
    if not storage.startswith("sqlite:///") or storage.startswith("sqlite:///:memory:"):
        return
    path = Path(storage[len("sqlite:///"):].split("?", 1)[0]).expanduser()
    if not path.parent.is_dir():
        raise _refuse(storage, f"lies in {path.parent}, which is not an existing folder")
    if not path.exists():
        return
    if not path.is_file():
        raise _refuse(storage, f"names {path}, which is not a regular file")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as error:
        raise _refuse(storage, f"cannot be read ({error.strerror})") from None
    if not head:
        return  # an empty file: SQLite makes a new database in it
    if head != SQLITE_HEADER:
        raise _refuse(storage, f"names {path}, which is not a SQLite database")
    tables = _settled_tables(storage, path)
    if tables and not tables >= OPTUNA_TABLES:
        missing = sorted(OPTUNA_TABLES - tables)
        problem = ("is an Optuna store missing tables" if "studies" in tables else
                   "is a SQLite database that is not an Optuna store")
        raise _refuse(storage, f"{problem} (no {', '.join(missing[:3])}); nothing was written",
                      hint="give a new file for the study; tune never writes into a "
                           "database it did not make")


def _settled_tables(storage: str, path: Path) -> set[str]:
    """The database's tables; an Optuna store still being made (by another ``tune`` that
    opened the same new file a moment earlier) is re-read until it is whole or
    :data:`CREATION_WAIT` seconds pass."""
    deadline = time.monotonic() + CREATION_WAIT
    tables = _tables(storage, path)
    while tables and tables <= OPTUNA_NAMES and not tables >= OPTUNA_TABLES \
            and time.monotonic() < deadline:
        time.sleep(0.05)
        tables = _tables(storage, path)
    return tables


def _tables(storage: str, path: Path) -> set[str]:
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as error:
        raise _refuse(storage, f"cannot be opened as SQLite ({error})") from None
    try:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
        names = {str(row[0]) for row in rows}
        problems = [str(r[0]) for r in connection.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.Error as error:
        raise _refuse(storage, f"cannot be read as SQLite ({error})") from None
    finally:
        connection.close()
    if problems != ["ok"]:
        raise _refuse(storage, f"is a damaged SQLite database ({problems[0][:200]})")
    return names


def open_study(optuna: Any, storage: str | None, name: str, direction: str) -> Any:
    """Create or load the study; retry while another process creates the same database.

    Raises:
        ConfigError: if the storage cannot hold the study.
    """
    check_storage(storage)
    return with_retries(str(storage), lambda: optuna.create_study(
        storage=storage, study_name=name, direction=direction, load_if_exists=True))


def with_retries(storage: str, call: Callable[[], T]) -> T:
    """``call()``, retried while another process holds the database (SQLite's lock).

    Raises:
        ConfigError: for a bad URL or schema at once, or after the sixth failed try.
    """
    for attempt in range(6):
        try:
            return call()
        except (ValueError, ImportError, RuntimeError) as error:  # a bad URL, an old schema
            raise _refuse(storage, f"cannot hold the study: {_first_line(error)}") from None
        except Exception as error:  # SQLAlchemy's errors while two processes write at once
            if attempt == 5:
                raise _refuse(storage, f"cannot hold the study: {type(error).__name__}: "
                                       f"{_first_line(error)}") from None
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


def mark_trial(trial: Any) -> None:
    """Record which process runs ``trial`` (read by :func:`sweep_stale`)."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def sweep_stale(optuna: Any, study: Any) -> int:
    """Fail the ``RUNNING`` trials whose process on this host is gone; return how many."""
    running = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    host, swept = socket.gethostname(), 0
    for trial in running:
        pid = trial.user_attrs.get("pid")
        if trial.user_attrs.get("host") == host and isinstance(pid, int) and not process_alive(pid):
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            swept += 1
    return swept


def start_if_missing(optuna: Any, study: Any, params: dict[str, Any]) -> None:
    """Enqueue the starting point unless a trial of it is finished, waiting or running."""
    state = optuna.trial.TrialState
    live = (state.COMPLETE, state.PRUNED, state.WAITING, state.RUNNING)
    if not any("fixed_params" in t.system_attrs for t in study.get_trials(deepcopy=False,
                                                                           states=live)):
        study.enqueue_trial(params)
