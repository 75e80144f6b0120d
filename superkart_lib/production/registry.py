"""A model registry: immutable package versions, a ``current`` pointer, and a history of every move.

The layout of a registry directory ``DIR`` (a contract with ``superkart serve --registry``)::

    DIR/versions/<version>/     one complete, verified, immutable package per version
    DIR/current -> versions/<v> a relative link, replaced in one rename (the version servers load)
    DIR/history.jsonl           one JSON object per promotion or rollback, appended and fsynced
    DIR/data/<sha256>.csv       training data the registry holds, named by content
    DIR/reports/<version>.*     retrain comparison reports (written by ``superkart retrain``)
    DIR/.lock                   the flock every writer holds

A reader resolves ``current`` once (:func:`~superkart_lib.contract.files.resolve_link`) and loads
that version directory: the pointer changes in one rename, so it sees the old version or the new
one, never nothing. Every version is verified (:func:`~superkart_lib.production.verify.verify_package`)
when it is added and again before the pointer moves to it, so a package altered on disk is never
promoted. The history is a stack: a promotion pushes, a rollback pops. Standard library, the
contract and the verifier only: it runs in the production install. POSIX only (symlinks, flock).
"""

from __future__ import annotations

import contextlib
import getpass
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import IntegrityError, SuperKartError
from superkart_lib.contract.files import atomic_write, fsync_path, replace_link, resolve_link, sha256_of
from superkart_lib.contract.writers import locked, remove_stale, temp_name
from superkart_lib.production.registry_history import (
    HISTORY,
    PROMOTE,
    ROLLBACK,
    append_event,
    promotion_stack,
    read_events,
)
from superkart_lib.production.verify import verify_package

CURRENT = "current"
VERSIONS = "versions"
DATA = "data"
REPORTS = "reports"
LOCK = ".lock"
_STAGING = ".staging-"
#: Sentinel of :func:`promote`'s ``expect_current``: promote whatever is current.
ANY_CURRENT: Final = object()
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Entry:
    """One version of a registry, as ``superkart registry list`` shows it.

    ``metrics`` are the package's test-split figures (r2, rmse and mae in $, mape a fraction);
    ``problem`` is set (and the other facts may be missing) when the version's manifest is unreadable.
    """

    version: str
    created: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    family: str | None = None
    data_sha256: str | None = None
    data_rows: int | None = None
    current: bool = False
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (``superkart registry list --json``)."""
        return asdict(self)


def current_link(root: Path) -> Path:
    """The pointer servers follow: ``DIR/current``."""
    return Path(root) / CURRENT


def current_version(root: Path) -> str | None:
    """The version ``current`` points at now, or None when nothing was promoted yet."""
    link = current_link(root)
    if not os.path.lexists(link):
        return None
    return resolve_link(link).name


def login_name() -> str:
    """Who runs this command: the login name, or ``unknown`` when the system has none."""
    try:
        return getpass.getuser() or "unknown"
    except (OSError, KeyError):  # no name known for this uid (a bare container)
        return "unknown"


def _versions(root: Path) -> Path:
    return Path(root) / VERSIONS


def _require(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise SuperKartError(f"{root}: no such registry directory")
    return root


def _known(root: Path) -> list[str]:
    versions = _versions(root)
    if not versions.is_dir():
        return []
    return sorted(p.name for p in versions.iterdir() if not p.name.startswith(".") and p.is_dir())


def _locked(root: Path) -> contextlib.AbstractContextManager[None]:
    """Hold the registry's lock: one writer (add, promote, rollback) at a time, across processes."""
    return locked(Path(root) / LOCK)


def _remove_stale(root: Path) -> None:
    """Remove staging directories and temporary links left by writers whose process is gone."""
    remove_stale(_versions(root), (_STAGING,))
    remove_stale(Path(root), (f".{CURRENT}-",))


# --- Adding a version --------------------------------------------------------------------------


def add_data(root: Path, data_csv: Path) -> str:
    """Copy a training CSV to ``DIR/data/<sha256>.csv`` (atomically; kept if already there); returns the sha256."""
    digest = sha256_of(data_csv)
    target = Path(root) / DATA / f"{digest}.csv"
    if not target.is_file() or sha256_of(target) != digest:
        with open(data_csv, "rb") as source, atomic_write(target, "wb") as out:
            shutil.copyfileobj(source, out)
    return digest


def data_path(root: Path, sha256: str) -> Path | None:
    """The registry's copy of the training data with this sha256, or None when it holds none."""
    if not _SHA256.fullmatch(sha256):
        return None
    path = Path(root) / DATA / f"{sha256}.csv"
    return path if path.is_file() else None


def add(root: Path, package_dir: Path, data_csv: Path | None = None) -> str:
    """Add a verified copy of a package as a new version; ``current`` does not move.

    Parameters
    ----------
    root : Path
        The registry directory (created if needed).
    package_dir : Path
        A model package (a link to a version directory is followed once).
    data_csv : Path, optional
        The CSV the package was trained on, kept as ``DIR/data/<sha256>.csv``.

    Returns
    -------
    str
        The new version: the package's ``package_version``.

    Raises
    ------
    SuperKartError
        The verifier's error (naming the file) when the package does not verify, or the version
        is already in the registry.
    """
    root = Path(root)
    source = resolve_link(package_dir)  # every file below comes from this one version
    verify_package(source)
    _, manifest = mf.open_package(source)
    version = manifest["package_version"]
    versions = _versions(root)
    versions.mkdir(parents=True, exist_ok=True)
    with _locked(root):
        _remove_stale(root)
        if os.path.lexists(versions / version):
            raise SuperKartError(f"{root}: version {version} is already in the registry")
        if data_csv is not None:
            add_data(root, Path(data_csv))
        staging = temp_name(versions, _STAGING)
        staging.mkdir(mode=0o755)
        try:
            for name in (mf.MANIFEST, *manifest["files"]):
                shutil.copyfile(mf.package_file(source, name), staging / name)
                fsync_path(staging / name)
            fsync_path(staging)
            verify_package(staging)  # the copy is what servers will load: it must verify too
            if mf.read(staging)["package_version"] != version:  # the source changed while it was copied
                raise SuperKartError(f"{package_dir}: the package changed while it was added; add it again")
            os.rename(staging, versions / version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        fsync_path(versions)
    return str(version)


# --- Reading -----------------------------------------------------------------------------------


def _entry(directory: Path, current: str | None) -> Entry:
    try:
        _, manifest = mf.open_package(directory)
    except SuperKartError as exc:
        return Entry(directory.name, current=directory.name == current, problem=str(exc))
    data = manifest.get("training_data", {})
    problem = None
    if manifest["package_version"] != directory.name:
        problem = f"{directory}: its manifest says version {manifest['package_version']}"
    return Entry(
        version=directory.name,
        created=manifest.get("created"),
        metrics=dict(manifest.get("metrics", {})),
        family=manifest.get("model", {}).get("family"),
        data_sha256=data.get("sha256"),
        data_rows=data.get("rows"),
        current=directory.name == current,
        problem=problem,
    )


def entries(root: Path) -> list[Entry]:
    """Every version of the registry, newest first (by the manifest's ``created``, then when it was added)."""
    root = _require(root)
    current = current_version(root)
    found = [(_entry(_versions(root) / name, current), _added(root, name)) for name in _known(root)]
    # ``created`` has whole seconds: versions trained in the same second are ordered by when they were added.
    ordered = sorted(found, key=lambda pair: (pair[0].created or "", pair[1], pair[0].version), reverse=True)
    return [entry for entry, _ in ordered]


def _added(root: Path, version: str) -> int:
    """When a version was copied in (its directory's mtime, ns): its files were written just before the rename."""
    try:
        return _versions(root).joinpath(version).stat().st_mtime_ns
    except OSError:
        return 0


def history(root: Path) -> list[dict[str, Any]]:
    """Every promotion and rollback, oldest first; a line torn by a crash is skipped."""
    return read_events(_require(root) / HISTORY)


# --- Moving the pointer --------------------------------------------------------------------------


def _verified(root: Path, version: str, doing: str) -> None:
    """Verify ``versions/<version>`` before the pointer moves to it; a failure names the file."""
    directory = _versions(root) / version
    try:
        verify_package(directory)
        _, manifest = mf.open_package(directory)
    except SuperKartError as exc:
        raise IntegrityError(f"{root}: refusing to {doing} version {version}: {exc}") from None
    if manifest["package_version"] != version:
        raise IntegrityError(
            f"{root}: refusing to {doing} version {version}: its manifest says {manifest['package_version']}"
        )


def _move(root: Path, action: str, version: str, previous: str | None, who: str, why: str) -> dict[str, Any]:
    """Point ``current`` at ``version`` (one rename), then record the move."""
    # Relative, so the registry directory can be moved, copied or mounted whole.
    replace_link(current_link(root), f"{VERSIONS}/{version}", temp_name(Path(root), f".{CURRENT}-"))
    event = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "action": action,
        "version": version,
        "previous": previous,
        "who": who,
        "why": why,
    }
    append_event(Path(root) / HISTORY, event)
    return event


def _unknown(root: Path, version: str) -> SuperKartError:
    known = _known(root)
    listed = f"known: {', '.join(known)}" if known else "the registry has no versions yet"
    return SuperKartError(f"{root}: no version {version!r} in the registry ({listed})")


def promote(root: Path, version: str, who: str, why: str, *, expect_current: object = ANY_CURRENT) -> dict[str, Any]:
    """Verify ``version`` and point ``current`` at it; returns the history line written.

    ``expect_current`` (a version, or None for an empty pointer) makes the promotion conditional:
    it is refused if another writer moved ``current`` since the caller looked (``superkart
    retrain`` compares against the version it evaluated).

    Raises
    ------
    SuperKartError
        The registry or the version does not exist (the known versions are listed), the version
        is already current, ``current`` is not ``expect_current``, or the package does not verify
        (:class:`IntegrityError` naming the file; ``current`` is unchanged).
    """
    root = _require(root)
    with _locked(root):
        _remove_stale(root)
        if version.startswith(".") or version not in _known(root):
            raise _unknown(root, version)
        previous = current_version(root)
        if expect_current is not ANY_CURRENT and previous != expect_current:
            raise SuperKartError(
                f"{root}: current moved to {previous} (expected {expect_current}); not promoting {version}"
            )
        if previous == version:
            raise SuperKartError(f"{root}: version {version} is already current")
        _verified(root, version, PROMOTE)
        return _move(root, PROMOTE, version, previous, who, why)


def rollback(root: Path, who: str, why: str) -> dict[str, Any]:
    """Point ``current`` back at the version that was current before it was promoted.

    Rollbacks walk back through the promotions: after v1, v2, v3 were promoted, two rollbacks
    give v2, then v1. The target is verified first; returns the history line written.

    Raises
    ------
    SuperKartError
        No current version, nothing before it, or the target does not verify (``current`` unchanged).
    """
    root = _require(root)
    with _locked(root):
        _remove_stale(root)
        current = current_version(root)
        if current is None:
            raise SuperKartError(f"{root}: no current version; nothing to roll back")
        stack = promotion_stack(history(root))
        if not stack or stack[-1] != current:
            stack.append(current)  # the pointer moved outside the history: roll back from where it is
        if len(stack) < 2:
            raise SuperKartError(f"{root}: nothing to roll back to (version {current} is the first promoted)")
        target = stack[-2]
        if target not in _known(root):
            raise SuperKartError(f"{root}: cannot roll back to version {target}: it is no longer in {_versions(root)}")
        _verified(root, target, ROLLBACK)
        return _move(root, ROLLBACK, target, current, who, why)
