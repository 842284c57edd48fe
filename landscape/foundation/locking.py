"""One writer per output directory: an advisory lock that dies with its holder, and the cleanup it allows.

:func:`locked_directory` holds ``fcntl.flock`` on ``DIR/.lock`` for as long as a command writes ``DIR``
(a run directory, an analysis's ``--out``). A second process asking for the same directory is refused at
once with :class:`DirectoryLockedError`, which names the directory and the holder's process id (written
into the lock file). The kernel releases a ``flock`` when its holder exits, killed or not, so a lock left
by a killed process never blocks: the next writer takes it over. A clean exit removes the lock file.

Holding the lock makes the holder the only writer, so it removes the temporary files that an earlier,
killed writer left half-written (``.NAME.XXXX.tmp``, see :func:`landscape.foundation.runs.atomic_write_bytes`).

The lock is re-entrant within a process (a command that locks a directory may call another that locks it
again) and POSIX-only (``fcntl``).
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

LOCK_FILE = ".lock"
_TEMPORARY = re.compile(r"^\..+\.tmp\d*$")   # atomic_write_bytes: .NAME.XXXX.tmp; save_figure: .NAME.tmpPID
_held: dict[Path, list[int]] = {}             # resolved directory -> [lock file descriptor, depth]
_guard = threading.Lock()


class DirectoryLockedError(OSError):
    """Another process is writing the directory (its process id is in the message)."""


def check_output_directory(path: str | Path) -> Path:
    """``path`` as a ``Path``, after checking that it is, or can be created as, a directory.

    Raises:
        NotADirectoryError: ``path`` is an existing file, or lies under one.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{path} is an existing file, not a directory: choose another output directory "
                                 f"or move the file away")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise NotADirectoryError(f"{path} lies under {blocking}, which is a file, not a directory: choose another "
                                 f"output directory")
    return path


@contextlib.contextmanager
def locked_directory(path: str | Path) -> Iterator[Path]:
    """Create ``path`` if needed and hold its lock for the ``with`` block; on taking the lock, remove the
    temporary files a killed writer left (see the module docstring).

    Raises:
        NotADirectoryError: ``path`` is a file or lies under one.
        DirectoryLockedError: another live process holds the lock.
    """
    path = check_output_directory(path)
    path.mkdir(parents=True, exist_ok=True)
    key = path.resolve()
    with _guard:
        entry = _held.get(key)
        if entry is not None:
            entry[1] += 1
        else:
            _held[key] = [_acquire(path, key / LOCK_FILE), 1]
            remove_stale_temporaries(key)
    try:
        yield path
    finally:
        with _guard:
            entry = _held[key]
            entry[1] -= 1
            if entry[1] == 0:
                del _held[key]
                (key / LOCK_FILE).unlink(missing_ok=True)   # while still locked: no other writer sees it go
                os.close(entry[0])


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Remove the half-written temporary files under ``directory``, not descending into subdirectories with a
    lock file of their own (another writer's, which cleans them when it takes its lock); the files removed."""
    removed = []
    for root, dirs, files in os.walk(directory):
        if Path(root) != Path(directory) and LOCK_FILE in files:
            dirs.clear()
            continue
        for name in files:
            if _TEMPORARY.match(name):
                (Path(root) / name).unlink(missing_ok=True)
                removed.append(Path(root) / name)
    return removed


def _acquire(path: Path, lock_file: Path) -> int:
    """The descriptor of ``lock_file``, exclusively flocked, with this process's id written into it."""
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DirectoryLockedError(f"{path} is being written by another process (pid {holder}): wait for it "
                                       f"to finish, or stop it, or choose another directory") from None
        try:
            current = os.stat(lock_file)
        except FileNotFoundError:
            current = None
        mine = os.fstat(fd)
        if current is not None and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
            break
        os.close(fd)   # the holder removed this file as we locked it: lock the new one
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd
