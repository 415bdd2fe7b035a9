"""A model folder on disk: its marker and manifest, and a save that never loses a user's file.

A folder is embrec's when it holds ``embrec-manifest.json`` with
``"format": "embrec-model"``: the integrity record (size and SHA-256 of every
other file, and its own digest; against corruption and edits, not a signature).

:func:`write_model_dir` saves through :mod:`embrec.writers` with these guarantees:

- a folder that is not empty and not embrec's is refused, never touched;
- files the user added to a model folder are moved into the new model (one whose
  name the model needs makes the save refuse);
- the model is staged in ``.NAME.embrec-staging.PID.RANDOM`` and published in one
  rename, so the target is always the whole old or the whole new model;
- staging a killed save left is cleaned by a later save or load when its name,
  marker and dead owner prove it ours; only embrec's own names are ever deleted;
- saves to one target are serialised by ``.NAME.embrec-lock`` (at most
  ``lock_timeout``); a symlinked target is followed and the link stays.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from embrec.errors import ArtifactError
from embrec.writers import (
    STAGING_MARKER,
    file_above,
    locked,
    matches,
    process_alive,
    publish,
    read_json,
    sha256,
    stage,
)

__all__ = ["FORMAT", "MANIFEST", "OWN_NAMES", "RESAVE", "check_target", "read_manifest",
           "remove_stale_staging", "write_manifest", "write_model_dir"]

log = logging.getLogger(__name__)

FORMAT = "embrec-model"
MANIFEST = "embrec-manifest.json"
RESAVE = "re-save the model with rec.save(path), or copy the whole directory again"
OWN_NAMES = frozenset({
    "config.json", "weights.safetensors", "users.parquet", "items.parquet", "item_info.parquet",
    "metrics.json", "history.csv", "learning-curves.png", "test.parquet", MANIFEST,
    STAGING_MARKER,
})
"""The only names embrec ever writes into (or deletes from) a model folder."""
MAX_MANIFEST_BYTES = 1 << 20
_STAGING = re.compile(r"^\.(?P<name>.+)\.embrec-staging\.(?P<pid>\d+)\.[0-9a-f]{8}$")


def _checkpoint(stage: str) -> None:
    """A no-op the crash tests replace to kill the process at ``stage``."""


def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def write_manifest(folder: Path, format_version: int) -> None:
    """Record the size and hash of every file in ``folder`` in its manifest."""
    files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)}
             for p in sorted(folder.iterdir()) if p.name not in (MANIFEST, STAGING_MARKER)}
    body: dict[str, Any] = {"format": FORMAT, "format_version": format_version, "files": files}
    text = json.dumps({**body, "digest": _digest(body)}, indent=2) + "\n"
    (folder / MANIFEST).write_text(text, encoding="utf-8")


def read_manifest(folder: Path) -> dict[str, Any]:
    """Read and check ``folder``'s manifest: its digest and the shape of every entry.

    Raises:
        ArtifactError: if it is missing, too large, not JSON, or its digest or
            entries are wrong.
    """
    file, hint = folder / MANIFEST, RESAVE
    data = read_json(file, MAX_MANIFEST_BYTES, hint)
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ArtifactError(f"{file}: not an embrec manifest", hint=hint)
    body = {k: v for k, v in data.items() if k != "digest"}
    if data.get("digest") != _digest(body):
        raise ArtifactError(f"{file}: its digest does not match its content (edited or "
                            "corrupted after saving)", hint=hint)
    files = data.get("files")
    if not isinstance(files, dict):
        raise ArtifactError(f"{file}: malformed 'files' record", hint=hint)
    for name, entry in files.items():
        if not _entry_ok(name, entry):
            raise ArtifactError(f"{file}: entry {name[:60]!r} is not a file embrec writes with "
                                "a size and hash (only files inside the folder are read)",
                                hint=hint)
    return data


def _entry_ok(name: Any, entry: Any) -> bool:
    return (name in OWN_NAMES and name not in (MANIFEST, STAGING_MARKER)
            and isinstance(entry, dict) and type(entry.get("bytes")) is int
            and entry["bytes"] >= 0 and isinstance(entry.get("sha256"), str))


def owned_names(folder: Path) -> set[str] | None:
    """The names embrec wrote in ``folder``, or None when nothing proves it is embrec's.

    A folder saved before the manifest existed (format version 1) is proven by a
    ``config.json`` of that format whose ``files`` cover the whole folder.
    """
    for record in (MANIFEST, "config.json"):
        try:
            data = json.loads((folder / record).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(data, dict) and data.get("format") == FORMAT:
            files = data.get("files")
            owned = {str(n) for n in (files if isinstance(files, dict) else ()) if n in OWN_NAMES}
            owned.add(record)
            if record == MANIFEST or set(os.listdir(folder)) <= owned:
                return owned
    return None


def write_model_dir(target: str | Path, write: Callable[[Path], None], *, format_version: int,
                    lock_timeout: float = 60.0) -> Path:
    """Write a model folder at ``target`` with ``write(staging)`` and move it into place.

    ``write`` writes the model's files (names from :data:`OWN_NAMES`); ``format_version``
    goes in the manifest; another save to ``target`` is waited for ``lock_timeout``
    seconds. Returns the folder the model is in (a symlinked ``target`` is followed).

    Raises:
        ArtifactError: if ``target`` is a file or a non-empty folder that is not
            embrec's, if a user file there has a name the model needs, or if
            another save holds the lock for longer than ``lock_timeout``.
    """
    target = Path(os.path.realpath(Path(target).expanduser()))
    _owned_or_refuse(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _locked(target, lock_timeout):
        _remove_stale(target)
        owned = _owned_or_refuse(target)
        staging = stage(_staging_name(target))
        old = staging
        try:
            _checkpoint("staging-created")
            write(staging)
            _checkpoint("files-written")
            write_manifest(staging, format_version)
            (staging / STAGING_MARKER).unlink()
            _checkpoint("manifest-written")
            old = _swap(staging, target, owned)
        finally:
            for folder in (staging, old):
                if folder.exists():
                    _retire(folder, target)
    return target


def check_target(target: str | Path) -> None:
    """Refuse ``target`` now if :func:`write_model_dir` would refuse it (before hours of work).

    Raises:
        ArtifactError: if ``target`` is a file, a path under a file, or a non-empty
            folder that is not embrec's.
    """
    path = Path(os.path.realpath(Path(target).expanduser()))
    _owned_or_refuse(path)
    above = file_above(path)
    if above is not None:  # the save would fail to make the folder (so would checkpoints)
        raise ArtifactError(f"cannot save a model to {target}: {above} is a file",
                            hint="choose a folder path for the model")


def _owned_or_refuse(target: Path) -> set[str] | None:
    """None for an absent or empty folder, embrec's names in a model folder; else refuse."""
    if not target.exists():
        return None
    if not target.is_dir():
        raise ArtifactError(f"refusing to write a model to {target}: it is a file",
                            hint="choose a folder path for the model")
    if not any(target.iterdir()):
        return None
    owned = owned_names(target)
    if owned is None:
        raise ArtifactError(
            f"refusing to replace {target}: it is not an embrec model directory and not empty",
            hint="choose a new or empty folder; embrec never overwrites files it did not write")
    return owned


def _swap(staging: Path, target: Path, owned: set[str] | None) -> Path:
    """Put ``staging`` at ``target``; return where the old model (and the user's files) went."""
    extras = set(os.listdir(target)) - owned if owned is not None else set()
    clash = sorted(extras & set(os.listdir(staging)))
    if clash:
        raise ArtifactError(f"refusing to replace the model in {target}: your file {clash[0]!r} "
                            "has a name the new model needs",
                            hint="move that file out of the model folder, or save elsewhere")
    old = publish(staging, target, aside=_staging_name(target))
    if old is None:  # target absent, or an empty folder
        return staging
    _checkpoint("swapped")
    for name in sorted(extras):
        os.rename(old / name, target / name)
        _checkpoint("extra-moved")
    return old


def _staging_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.embrec-staging.{os.getpid()}."
                            f"{secrets.token_hex(4)}")


def _retire(folder: Path, target: Path) -> None:
    """Delete embrec's files in a staging folder; give the user's files back to ``target``."""
    fresh = (folder / STAGING_MARKER).exists()
    owned = OWN_NAMES if fresh else owned_names(folder) or set()
    for name in sorted(set(os.listdir(folder)) - set(owned)):
        if target.is_dir() and not (target / name).exists():
            os.rename(folder / name, target / name)
    for name in set(os.listdir(folder)) & set(owned):
        entry = folder / name
        if entry.is_file() or entry.is_symlink():
            entry.unlink()
    try:
        folder.rmdir()
    except OSError:
        log.warning("left %s in place: it holds files embrec did not write", folder)


def remove_stale_staging(target: str | Path) -> None:
    """Clean staging a killed save left beside ``target``, if no save is running now.

    Never raises: a read-only parent or a busy lock just leaves things as they are.
    """
    path = Path(os.path.realpath(Path(target).expanduser()))
    try:
        if not any(_stale(path)):
            return
        with _locked(path, 0.0):
            _remove_stale(path)
    except (OSError, ArtifactError) as error:
        log.info("left stale staging beside %s: %s", path, error)


def _stale(target: Path) -> Iterator[Path]:
    for entry in target.parent.iterdir() if target.parent.is_dir() else ():
        match = _STAGING.match(entry.name)
        if (match and match["name"] == target.name and entry.is_dir() and not entry.is_symlink()
                and not process_alive(int(match["pid"]))):
            yield entry


def _remove_stale(target: Path) -> None:
    for folder in list(_stale(target)):
        marked = (folder / STAGING_MARKER).exists() or (folder / MANIFEST).exists()
        if not marked and any(folder.iterdir()):
            continue  # nothing proves it is ours
        if not target.exists() and not (folder / STAGING_MARKER).exists() and _complete(folder):
            os.rename(folder, target)  # a save killed between its two renames
            continue
        _retire(folder, target)


def _complete(folder: Path) -> bool:
    try:
        files = read_manifest(folder)["files"]
    except ArtifactError:
        return False
    return all(matches(folder / n, e["sha256"]) for n, e in files.items())


def _locked(target: Path, timeout: float) -> AbstractContextManager[None]:
    """Hold ``.NAME.embrec-lock`` beside ``target``: one save to a folder at a time."""
    lock = target.with_name(f".{target.name}.embrec-lock")
    return locked(lock, f"another process is saving a model to {target} (pid {{pid}}, lock "
                  f"{lock.name})", "wait for it to finish, or save to another folder", timeout)
