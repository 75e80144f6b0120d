"""Files written whole or not at all, and their sha256: the two file helpers of the library."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

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


@contextlib.contextmanager
def atomic_write(target: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``target``; it replaces ``target`` only if the block succeeds.

    A reader never sees a half-written file, and a failure (an exception, Ctrl-C) leaves the
    previous ``target`` untouched and no temporary file behind. Text is written with
    ``newline=""`` so line endings are exactly what the writer puts (CSV writers choose their own).

    Parameters
    ----------
    target : path
        The file to write; its parent directory is created if needed.
    mode : {"w", "wb"}
        Text or binary.
    encoding : str or None
        Text encoding (ignored in binary mode).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write: mode must be 'w' or 'wb', got {mode!r}")
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        handle: IO[Any] = os.fdopen(fd, "wb") if mode == "wb" else os.fdopen(fd, "w", encoding=encoding, newline="")
        with handle:
            yield handle
        os.chmod(name, 0o644)  # mkstemp makes it private; results are meant to be shared
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def write_text_atomically(target: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` through :func:`atomic_write`."""
    with atomic_write(target) as f:
        f.write(text)
