"""A model folder on disk: its marker and manifest, and a save that never loses a user's file.

A folder is embrec's when it holds ``embrec-manifest.json`` with
``"format": "embrec-model"`` (older folders: a ``config.json`` with that format
whose ``files`` list covers the folder). The manifest is also the integrity
record: the size and SHA-256 of every other file, config.json included, and a
digest of the manifest itself. It guards against accidental corruption and
edits; it is not a signature.

:func:`write_model_dir` saves with these guarantees:

- a folder that is not empty and not embrec's is refused, never touched;
- files the user added to a model folder are kept (moved into the new model);
  a user file whose name the new model needs makes the save refuse;
- the new model is written to ``.NAME.embrec-staging.PID.RANDOM`` beside the
  target and exchanged with it in one ``renameat2(RENAME_EXCHANGE)`` (Linux), so
  the target is always the whole old or the whole new model;
- staging is removed on every path; staging left by a killed save is cleaned
  by a later save or load when its name, marker and dead owner prove it is ours,
  and only files with embrec's own names are ever deleted;
- concurrent saves to one target are serialised by ``.NAME.embrec-lock``
  (``flock``; a dead holder releases it), waiting at most ``lock_timeout``;
- a symlinked target is followed: the model is written where the link points,
  and the link stays.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embrec.errors import ArtifactError

__all__ = ["FORMAT", "MANIFEST", "OWN_NAMES", "check_target", "file_above", "process_alive",
           "read_manifest", "remove_stale_staging", "same_file", "write_manifest",
           "write_model_dir"]

log = logging.getLogger(__name__)

FORMAT = "embrec-model"
MANIFEST = "embrec-manifest.json"
STAGING_MARKER = ".embrec-staging"
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


# ----------------------------------------------------------------------------- manifest
def _digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
    file = folder / MANIFEST
    hint = "re-save the model with rec.save(path), or copy the whole directory again"
    data = _read_small_json(file, hint)
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


def _read_small_json(file: Path, hint: str) -> Any:
    """Parse a JSON file of at most 1 MiB that is a regular file inside its folder."""
    try:
        if file.is_symlink() or not file.is_file():
            raise ArtifactError(f"{file}: missing or not a regular file", hint=hint)
        if file.stat().st_size > MAX_MANIFEST_BYTES:
            raise ArtifactError(f"{file}: larger than {MAX_MANIFEST_BYTES} bytes", hint=hint)
        return json.loads(file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        problem = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]
        raise ArtifactError(f"{file}: is not valid JSON ({problem})", hint=hint) from None


def owned_names(folder: Path) -> set[str] | None:
    """The names embrec wrote in ``folder``, or None when nothing proves it is embrec's."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(manifest, dict) and manifest.get("format") == FORMAT:
            listed = _names(manifest.get("files"))
            return {n for n in listed if n in OWN_NAMES} | {MANIFEST}
    except (OSError, ValueError, RecursionError):
        pass
    try:  # a folder saved before the manifest existed (format version 1)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        return None
    listed = _names(config.get("files"))
    owned = {n for n in listed if n in OWN_NAMES} | {"config.json"}
    return owned if set(os.listdir(folder)) <= owned else None


def _names(files: Any) -> list[str]:
    return [str(n) for n in files] if isinstance(files, dict) else []


# ----------------------------------------------------------------------------- save
def write_model_dir(target: str | Path, write: Callable[[Path], None], *, format_version: int,
                    lock_timeout: float = 60.0) -> Path:
    """Write a model folder at ``target`` with ``write(staging)`` and move it into place.

    Args:
        target: the model folder (followed if it is a symlink).
        write: writes the model's files (names from :data:`OWN_NAMES`) into a folder.
        format_version: recorded in the manifest.
        lock_timeout: seconds to wait for another save to the same target.

    Returns:
        The folder the model is in (the symlink's target for a symlink).

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
        staging = target.with_name(f".{target.name}.embrec-staging.{os.getpid()}."
                                   f"{secrets.token_hex(4)}")
        staging.mkdir(mode=0o755)
        old = staging
        try:
            (staging / STAGING_MARKER).write_text(str(os.getpid()))
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


def file_above(path: Path) -> Path | None:
    """The nearest existing entry above ``path`` if it is a file (nothing can go under it)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def _swap(staging: Path, target: Path, owned: set[str] | None) -> Path:
    """Put ``staging`` at ``target``; return where the old model (and the user's files) went."""
    if owned is None:
        os.rename(staging, target)  # target absent, or an empty folder (rename replaces it)
        return staging
    extras = set(os.listdir(target)) - owned
    clash = sorted(extras & set(os.listdir(staging)))
    if clash:
        raise ArtifactError(f"refusing to replace the model in {target}: your file {clash[0]!r} "
                            "has a name the new model needs",
                            hint="move that file out of the model folder, or save elsewhere")
    old = staging
    if not _exchange(staging, target):  # no RENAME_EXCHANGE: two renames, recovered if killed
        old = staging.with_name(f".{target.name}.embrec-staging.{os.getpid()}."
                                f"{secrets.token_hex(4)}")
        os.rename(target, old)
        os.rename(staging, target)
    _checkpoint("swapped")
    for name in sorted(extras):
        os.rename(old / name, target / name)
        _checkpoint("extra-moved")
    return old


_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux's renameat2; False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(a))


def _retire(folder: Path, target: Path) -> None:
    """Delete embrec's files in a staging folder; give the user's files back to ``target``."""
    fresh = (folder / STAGING_MARKER).exists()
    owned = OWN_NAMES if fresh else owned_names(folder)
    if owned is None:
        owned = set()
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
    return all((folder / n).is_file() and sha256(folder / n) == e["sha256"]
               for n, e in files.items())


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this machine is running (ours counts as running)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _locked(target: Path, timeout: float) -> Iterator[None]:
    """Hold ``.NAME.embrec-lock`` beside ``target`` (flock; released when a holder dies)."""
    lock = target.with_name(f".{target.name}.embrec-lock")
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() >= deadline:
                raise ArtifactError(
                    f"another process is saving a model to {target} (lock {lock.name})",
                    hint="wait for it to finish, or save to another folder") from None
            time.sleep(0.05)
            continue
        if same_file(fd, lock):
            break
        os.close(fd)  # the holder before us removed the file: lock the new one
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)


def same_file(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the file at ``path`` (not one removed and made anew)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)
