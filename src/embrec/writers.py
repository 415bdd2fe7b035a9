"""One writer per output, and only embrec's own files overwritten.

:func:`hold_outputs` takes an exclusive lock beside each output path for as long
as a command runs (``embrec train --out`` holds ``<out>`` and
``<out>.checkpoints`` from before reading the data until after the save), so a
second process aiming at the same place is refused at once instead of
silently winning or mixing checkpoints. The lock is ``flock`` on
``.NAME.embrec-run`` beside the path: the kernel releases it when its holder
dies, so a crashed holder's lock (the file stays) is taken over by the next run
without any clean-up, and the holder's pid written in the file names it in the
refusal. A run that ends removes its lock file.

:func:`write_own_text` writes a text file (``embrec tune --out``) only when the
path is new or holds a file embrec wrote (its first line carries embrec's
mark), atomically through a temporary file beside it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path

from embrec.errors import ArtifactError
from embrec.modeldir import same_file

__all__ = ["check_own_file", "hold_outputs", "write_own_text"]

RUN_LOCK = ".{name}.embrec-run"


@contextmanager
def hold_outputs(*paths: str | Path | None, what: str = "training") -> Iterator[None]:
    """Hold the run lock of every path given (``None`` entries are skipped).

    Args:
        paths: the outputs this run writes (a model folder, its checkpoints).
        what: what this run does, for the refusal's wording.

    Raises:
        ArtifactError: if another live process holds one of the locks.
    """
    with ExitStack() as stack:
        for path in paths:
            if path is not None and str(path):
                stack.enter_context(_held(Path(os.path.abspath(Path(path).expanduser())), what))
        yield


@contextmanager
def _held(path: Path, what: str) -> Iterator[None]:
    lock = path.with_name(RUN_LOCK.format(name=path.name))
    with suppress(OSError):  # the save makes it anyway; a file above is refused later
        lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _lock(lock, path, what)
    try:
        yield
    finally:
        if fd is not None:
            lock.unlink(missing_ok=True)  # before closing: a waiter then finds a new file
            os.close(fd)


def _lock(lock: Path, path: Path, what: str) -> int | None:
    """Take ``lock`` (flock) and write our pid in it; None where no lock can be made."""
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:  # a read-only or missing parent: the save itself will say so
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise ArtifactError(
                f"another embrec process (pid {holder}) is already {what} into {path}",
                hint="wait for it to finish, or pass another --out") from None
        if same_file(fd, lock):  # not a file its last holder removed as we opened it
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)


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

    Raises:
        ArtifactError: if ``path`` holds something embrec did not write, or
            cannot be written.
    """
    if not text.startswith(mark):
        raise ValueError("the text must start with its mark")
    check_own_file(path, mark, flag=flag)
    file = Path(path).expanduser()
    temporary = file.with_name(f".{file.name}.embrec-tmp.{os.getpid()}")
    try:
        temporary.write_text(text)
        os.replace(temporary, file)
    except OSError as error:
        with suppress(OSError):
            temporary.unlink(missing_ok=True)
        raise ArtifactError(f"cannot write {path} ({error.strerror})",
                            hint="pick a path in an existing, writable folder") from None
