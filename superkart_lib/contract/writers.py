"""Several writers, one directory: an exclusive lock, temporaries named after their writer, and their clean-up.

A writer stages files under a name that holds its process id (:func:`temp_name`), so whoever
next holds the lock (:func:`locked`) can remove what a killed writer left (:func:`remove_stale`)
without touching the temporaries of a writer still running. POSIX only (``flock``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``lock_file`` (created if missing), across processes."""
    import fcntl  # POSIX only, as the links these writers replace are

    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def temp_name(parent: Path, prefix: str) -> Path:
    """A fresh name ``<parent>/<prefix><pid>-<random>`` for this process's temporary file or directory."""
    return parent / f"{prefix}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(parent: Path, prefixes: tuple[str, ...]) -> None:
    """Remove the entries of ``parent`` named by :func:`temp_name` with one of ``prefixes`` whose process is gone."""
    if not parent.is_dir():
        return
    for path in parent.iterdir():
        prefix = next((p for p in prefixes if path.name.startswith(p)), None)
        pid = path.name[len(prefix) :].split("-")[0] if prefix else ""
        if pid.isdigit() and not _alive(int(pid)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
