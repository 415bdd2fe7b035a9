"""The one atomic writer: how embrec stages, renames, marks and verifies everything it writes.

A folder (a model, :mod:`embrec.modeldir`; a checkpoint, :mod:`embrec.training.checkpoint`)
is written into a staging folder :func:`stage` marks as embrec's, then put in place by
:func:`publish` in one rename, so its target is always the whole old or the whole new
folder. A small file is replaced through a flushed temporary file (:func:`replace_text`).
Each file's SHA-256 is recorded when written and checked by :func:`matches` when read.

Locks are ``flock`` on a file beside the path, holding the holder's pid (:func:`locked`):
the kernel releases one whose holder died. :func:`hold_outputs` holds one per output
for a whole command (``embrec train --out`` holds ``<out>`` and ``<out>.checkpoints``),
so a second process aiming at the same place is refused at once.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

from embrec.errors import ArtifactError, ConfigError

__all__ = ["STAGING_MARKER", "check_own_file", "checkpoint_dir", "file_above", "hold_outputs",
           "locked", "matches", "process_alive", "publish", "read_json", "replace_text",
           "sha256", "stage", "write_own_text"]

STAGING_MARKER = ".embrec-staging"
"""Present in a staging folder until it is complete: what proves an unfinished folder ours."""
RUN_LOCK = ".{name}.embrec-run"


def stage(staging: Path) -> Path:
    """Make the new staging folder ``staging``, marked as embrec's with this process's pid."""
    staging.mkdir(mode=0o755, parents=True)
    (staging / STAGING_MARKER).write_text(str(os.getpid()))
    return staging


def publish(staging: Path, target: Path, aside: Path) -> Path | None:
    """Put the staged folder at ``target`` in one rename; return where the old one went.

    An absent or empty ``target`` is replaced by a plain rename (None is returned).
    Otherwise the two are exchanged with Linux's ``renameat2`` and the old folder
    is left at ``staging``; where that is unsupported, the old folder is first
    moved to ``aside`` (a kill between the two renames leaves the new folder whole
    at ``staging``). The caller removes what it gets back.
    """
    (staging / STAGING_MARKER).unlink(missing_ok=True)
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        os.rename(staging, target)
        return None
    if _exchange(staging, target):
        return staging
    os.rename(target, aside)
    os.rename(staging, target)
    return aside


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


def replace_text(file: Path, text: str) -> None:
    """Replace ``file`` with ``text`` atomically: a flushed temporary file, then one rename."""
    temporary = file.with_name(f".{file.name}.embrec-tmp.{os.getpid()}")
    try:
        with temporary.open("w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, file)
    finally:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)


def file_above(path: Path) -> Path | None:
    """The nearest existing entry above ``path`` if it is a file (nothing can go under it)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def matches(file: Path, digest: Any, size: Any = None) -> bool:
    """Whether ``file`` is a regular file (not a link) with this SHA-256 (and size, if given)."""
    return (not file.is_symlink() and file.is_file()
            and (size is None or file.stat().st_size == size) and sha256(file) == digest)


def read_json(file: Path, limit: int, hint: str) -> Any:
    """Parse a JSON record of at most ``limit`` bytes that is a regular file, not a link.

    Raises:
        ArtifactError: naming ``file`` if it is missing, too large or not JSON
            (deep nesting included).
    """
    try:
        if file.is_symlink() or not file.is_file():
            raise ArtifactError(f"{file}: missing or not a regular file inside the folder",
                                hint=hint)
        if file.stat().st_size > limit:
            raise ArtifactError(f"{file}: larger than {limit} bytes", hint=hint)
        return json.loads(file.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        problem = "nested too deeply" if isinstance(error, RecursionError) else str(error)[:200]
        raise ArtifactError(f"{file}: is not valid JSON ({problem})", hint=hint) from None


@contextmanager
def locked(lock: Path, refusal: str, hint: str, timeout: float = 0.0) -> Iterator[None]:
    """Hold ``lock`` (flock) with our pid in it, waiting at most ``timeout`` seconds.

    Raises:
        ArtifactError: ``refusal`` (its ``{pid}`` the holder's) when another process
            still holds it.
        OSError: when the lock file cannot be made.
    """
    deadline = time.monotonic() + timeout
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            if time.monotonic() >= deadline:
                raise ArtifactError(refusal.replace("{pid}", holder), hint=hint) from None
            time.sleep(0.05)
            continue
        if same_file(fd, lock):  # not a file its last holder removed as we opened it
            break
        os.close(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # before closing: a waiter then finds a new file
        os.close(fd)


def same_file(fd: int, path: Path) -> bool:
    """Whether the open file ``fd`` is the file at ``path`` (not one removed and made anew)."""
    try:
        here = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)


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
def hold_outputs(*paths: str | Path | None, what: str = "training") -> Iterator[None]:
    """Hold the run lock of every output ``paths`` this run writes (``None`` entries are
    skipped); ``what`` the run does words the refusal.

    Raises:
        ArtifactError: if another live process holds one of the locks.
    """
    with ExitStack() as stack:
        for path in paths:
            if path is not None and str(path):
                _hold(stack, Path(os.path.abspath(Path(path).expanduser())), what)
        yield


def _hold(stack: ExitStack, path: Path, what: str) -> None:
    lock = path.with_name(RUN_LOCK.format(name=path.name))
    refusal = f"another embrec process (pid {{pid}}) is already {what} into {path}"
    with suppress(OSError):  # the save makes it anyway; a file above is refused later
        lock.parent.mkdir(parents=True, exist_ok=True)
    try:
        stack.enter_context(locked(lock, refusal, "wait for it to finish, or pass another --out"))
    except ArtifactError:
        raise
    except OSError:  # a read-only or missing parent: the save itself will say so
        pass


def checkpoint_dir(out: str | Path | None, *, resume: bool = False) -> Path | None:
    """Return where the CLI checkpoints a run whose model goes to ``out``: ``<out>.checkpoints``.

    A saved model directory is replaced whole when saved, so checkpoints live
    beside it. Without ``out`` there is nothing to resume from later.

    Raises:
        ConfigError: if ``resume`` is asked for without ``out``, or ``out`` is ``/``.
    """
    if not out:  # "" is no --out, as embrec train takes it
        if resume:
            raise ConfigError("resume", True, "needs --out (the run to continue)",
                              hint="pass the --out of the run to resume")
        return None
    path = Path(out).expanduser()  # as the model's save does: "--out=~/m" reaches us unexpanded
    if path.name in ("", ".."):  # "--out ." or "a/..": the folder named by its own name
        path = Path(os.path.abspath(path))
    if not path.name:
        raise ConfigError("out", str(out), "names no folder a model can go in",
                          hint="pass a folder path such as runs/model")
    return path.with_name(path.name + ".checkpoints")


def check_own_file(path: str | Path, mark: str, *, flag: str = "--out") -> None:
    """Refuse ``path`` unless it is absent or a file whose first line starts with ``mark``.

    Raises:
        ArtifactError: if ``path`` is a folder, or a file embrec did not write.
    """
    file = Path(path).expanduser()
    if not file.exists() and not file.is_symlink():
        return
    if not file.is_file():
        raise ArtifactError(f"refusing to write {path}: it is not a regular file",
                            hint=f"pass another {flag}")
    try:
        with file.open("rb") as handle:
            first = handle.read(len(mark.encode()))
    except OSError as error:
        raise ArtifactError(f"cannot read {path} to check that embrec wrote it "
                            f"({error.strerror})", hint=f"pass another {flag}") from None
    if first != mark.encode():
        raise ArtifactError(
            f"refusing to overwrite {path}: embrec did not write it (no {mark.strip()!r} line)",
            hint=f"pass a new file to {flag}; embrec never overwrites files it did not write")


def write_own_text(path: str | Path, text: str, mark: str, *, flag: str = "--out") -> None:
    """Write ``text`` (which must start with ``mark``) to ``path`` atomically.

    Only a new path or a file embrec wrote (its first line carries ``mark``) is written.

    Raises:
        ArtifactError: if ``path`` holds something embrec did not write, or
            cannot be written.
    """
    if not text.startswith(mark):
        raise ValueError("the text must start with its mark")
    check_own_file(path, mark, flag=flag)
    try:
        replace_text(Path(path).expanduser(), text)
    except OSError as error:
        raise ArtifactError(f"cannot write {path} ({error.strerror})",
                            hint="pick a path in an existing, writable folder") from None
