"""Files written whole or not at all, links replaced in one step, and sha256: the file helpers of the library.

A file is written to a temporary sibling and renamed over its target (:func:`atomic_write`); a
link is made under a temporary name and renamed over the old one (:func:`replace_link`), which
is how a package directory is published (:mod:`superkart_lib.contract.package_dir`). A reader
follows a link once (:func:`resolve_link`) and reads every file from where it pointed then.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from superkart_lib.contract.errors import SuperKartError, WriteError

_BLOCK = 1 << 20


def sha256_of(source: bytes | str | Path) -> str:
    """Hex sha256 of ``source``: the bytes themselves, or the content of the file at that path (streamed)."""
    if isinstance(source, bytes):
        return hashlib.sha256(source).hexdigest()
    digest = hashlib.sha256()
    with open(source, "rb") as f:
        for block in iter(lambda: f.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def write_failure(target: str | Path, exc: OSError) -> WriteError:
    """The one-line error for an OS error while writing ``target`` (the path the user named)."""
    return WriteError(f"cannot write {target}: {exc.strerror or exc}")


def make_parent(target: Path) -> None:
    """Create ``target``'s parent directories; a file in the way is named in a :class:`WriteError`."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in target.parents if p.exists() and not p.is_dir()), target.parent)
        raise WriteError(f"cannot write {target}: {blocker} is not a directory") from None


@contextlib.contextmanager
def atomic_write(target: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``target``; it replaces ``target`` only if the block succeeds.

    A reader never sees a half-written file, and a failure (an exception, Ctrl-C, a full disk)
    leaves the previous ``target`` untouched and no temporary file behind. Text is written with
    ``newline=""`` so line endings are exactly what the writer puts (CSV writers choose their own).

    Parameters
    ----------
    target : path
        The file to write; its parent directory is created if needed.
    mode : {"w", "wb"}
        Text or binary.
    encoding : str or None
        Text encoding (ignored in binary mode).

    Raises
    ------
    WriteError
        When ``target`` is a directory, or the OS refuses a write (full disk, file too large,
        read-only, a parent that is a file); the handle's own writes raise it too, naming
        ``target``. Any other error of the block passes unchanged.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    target = Path(target)
    if target.is_dir():  # refused before the work, not after it
        raise WriteError(f"cannot write {target}: it is a directory")
    make_parent(target)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:
        raise write_failure(target, exc) from None
    handle = _open_out(fd, mode, encoding, target)
    try:
        yield handle
        try:
            handle.flush()
            os.fsync(handle.fileno())  # the rename below must not publish blocks still in the page cache
            handle.close()
            os.chmod(name, 0o644)  # mkstemp makes it private; results are meant to be shared
            os.replace(name, target)
        except OSError as exc:
            raise write_failure(target, exc) from None
    except BaseException:
        with contextlib.suppress(OSError):  # the bytes still buffered are discarded with the file
            handle.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


class _NamesTarget:
    """Write errors name the file the user asked for (write(2) names none, and the temporary file is no help)."""

    target = ""

    def write(self, data: Any) -> int:
        try:
            return super().write(data)  # type: ignore[misc]
        except OSError as exc:
            raise write_failure(self.target, exc) from None


class _TextOut(_NamesTarget, io.TextIOWrapper):
    pass


class _BinaryOut(_NamesTarget, io.BufferedWriter):
    pass


def _open_out(fd: int, mode: str, encoding: str | None, target: Path) -> IO[Any]:
    handle: _TextOut | _BinaryOut
    if mode == "wb":
        handle = _BinaryOut(io.FileIO(fd, "w"))
    else:
        handle = _TextOut(io.BufferedWriter(io.FileIO(fd, "w")), encoding=encoding, newline="")
    handle.target = str(target)
    return handle


def write_text_atomically(target: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` through :func:`atomic_write`."""
    with atomic_write(target) as f:
        f.write(text)


# --- Links ---------------------------------------------------------------------------------


def resolve_link(path: str | Path) -> Path:
    """``path`` with its last component's symlinks followed: the version a reader reads from.

    Only the link itself is read (one ``readlink`` each), so the answer is one version even while
    a writer swaps the link; a plain directory is returned unchanged.
    """
    path = Path(path)
    for _ in range(40):
        if not path.is_symlink():
            return path
        target = Path(os.readlink(path))
        path = target if target.is_absolute() else path.parent / target
    raise SuperKartError(f"{path}: too many levels of symbolic links")


def fsync_path(path: Path) -> None:
    """Flush a file's or a directory's entries to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_link(link: Path, points_to: str, temporary: Path) -> None:
    """Make ``link`` point at ``points_to`` in one atomic step: a new link ``temporary`` renamed over it."""
    os.symlink(points_to, temporary)
    try:
        os.replace(temporary, link)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise
    with contextlib.suppress(OSError):  # the link is published; this only hastens its durability
        fsync_path(link.parent)
