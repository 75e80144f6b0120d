"""A package directory published as immutable versions behind one link: ``out -> out.versions/<version>``.

A writer stages the files beside ``out``, renames the staging directory to
``<out>.versions/<version>`` and replaces the link (:func:`publish_version`). Replacing a link is
one ``rename``, so a reader sees the old package or the new one, never a mix and never nothing,
and concurrent writers are safe (the last one wins). A reader resolves the link once
(:func:`~superkart_lib.contract.files.resolve_link`) and reads every file from that version.
POSIX only (symlinks, ``flock``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import uuid
from pathlib import Path

from superkart_lib.contract.errors import WriteError
from superkart_lib.contract.files import fsync_path, make_parent, replace_link, resolve_link
from superkart_lib.contract.manifest import MANIFEST
from superkart_lib.contract.writers import locked, remove_stale, temp_name

#: Version directories kept: the current one and two before it. A reader that resolved the link
#: just before a swap still finds its files until two more packages are written (seconds to
#: minutes each, while a read takes milliseconds), and the previous package stays at hand to
#: point the link back by hand.
KEEP_VERSIONS = 3
_STAGING, _LINK = "staging", "link"


def versions_dir(out: Path) -> Path:
    """Where the versions of the directory ``out`` live: the visible sibling ``<name>.versions``."""
    return out.parent / f"{out.name}.versions"


def _is_package(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def _locked(versions: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the versions directory's lock: housekeeping (migrate, clean, prune) is one writer at a time."""
    versions.mkdir(exist_ok=True)
    return locked(versions / ".lock")


def _temp_name(out: Path, kind: str) -> Path:
    return temp_name(out.parent, f".{out.name}.{kind}-")


def _remove_stale(out: Path) -> None:
    """Remove staging directories and temporary links whose writer's process is gone."""
    remove_stale(out.parent, tuple(f".{out.name}.{kind}-" for kind in (_STAGING, _LINK)))


def _point(out: Path, name: str) -> None:
    """Make ``out`` a link to version ``name`` in one atomic step."""
    # Relative, so the parent (a run directory) can be moved, copied or mounted whole.
    replace_link(out, f"{out.name}.versions/{name}", _temp_name(out, _LINK))


def _newest_first(versions: Path) -> list[Path]:
    entries = [p for p in versions.iterdir() if not p.name.startswith(".") and p.is_dir() and not p.is_symlink()]
    return sorted(entries, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def prepare_versioned(out: Path) -> None:
    """Get ``out`` ready for :func:`publish_version`: parent made, stale temporaries removed, layout current.

    A plain directory at ``out`` (a package written by an older release) is migrated: it is
    renamed into the versions directory, then ``out`` becomes a link to it. It is never copied or
    deleted, so a kill between the two steps loses nothing: ``out`` is briefly missing and the
    next call (every write starts here) points it at the newest version again. The same repair
    applies to a link whose version was removed. A directory at ``out`` that is not a package
    is refused rather than moved.

    Raises
    ------
    OSError
        From the file system; :class:`WriteError` when ``out`` is a file or a foreign directory.
    """
    make_parent(out)
    if not out.is_symlink() and out.exists():
        if not out.is_dir():
            raise WriteError(f"cannot write {out}: a file is in the way (not a package directory)")
        if any(out.iterdir()) and not _is_package(out):
            raise WriteError(f"cannot write {out}: a directory that is not a model package is in the way")
    versions = versions_dir(out)
    with _locked(versions):
        _remove_stale(out)
        if out.is_dir() and not out.is_symlink():
            if not any(out.iterdir()):
                out.rmdir()
            else:
                stat = out.stat()
                name = f"legacy-{uuid.uuid4().hex[:8]}"
                os.rename(out, versions / name)
                os.utime(versions / name, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # keep its age for pruning
                fsync_path(versions)
                _point(out, name)
        if not out.exists():  # missing (killed mid-migration, deleted) or dangling
            complete = [p for p in _newest_first(versions) if _is_package(p)]
            if complete:
                _point(out, complete[0].name)


def staging_dir(out: Path) -> Path:
    """A new, empty staging directory beside ``out``, named after this process (for stale clean-up)."""
    staging = _temp_name(out, _STAGING)
    staging.mkdir(mode=0o755)
    return staging


def publish_version(staging: Path, out: Path, version: str, keep: int = KEEP_VERSIONS) -> Path:
    """Make the complete directory ``staging`` version ``version`` and point ``out`` at it atomically.

    The files are flushed to disk, ``staging`` is renamed to ``<out>.versions/<version>``, and a
    new link is renamed over ``out``: the one step readers can observe. Versions beyond the
    newest ``keep`` (never the current one) are then removed. ``version`` must be a plain,
    unique name.

    Returns
    -------
    Path
        The version directory.
    """
    for path in staging.iterdir():
        fsync_path(path)
    fsync_path(staging)
    versions = versions_dir(out)
    target = versions / version
    if os.path.lexists(target):
        raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    os.rename(staging, target)
    try:
        fsync_path(versions)
        _point(out, version)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    with contextlib.suppress(OSError), _locked(versions):  # the package is published; pruning is tidying
        current = resolve_link(out).name
        for old in _newest_first(versions)[keep:]:
            if old.name not in (current, version):
                shutil.rmtree(old, ignore_errors=True)
    return target
