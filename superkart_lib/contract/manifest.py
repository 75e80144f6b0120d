"""The package manifest: what was trained, on what, with which library versions.

Pure Python (no scikit-learn, no pandas) so the production runtime can read it. A manifest is
untrusted input until :func:`check_shape` accepts it; :func:`read` and :func:`open_package` (the
one way every reader gets a manifest) apply it, so `superkart verify` and the server accept
exactly the same manifests.
"""

from __future__ import annotations

import json
import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from superkart_lib.contract.errors import IntegrityError, ManifestError, SuperKartError
from superkart_lib.contract.files import resolve_link, sha256_of

MANIFEST = "manifest.json"
#: The manifest layout this release writes and reads.
FORMAT_VERSION = 1
#: Bytes a manifest may have: a real one is about 10 kB, so this only stops a hostile file.
MANIFEST_SIZE_LIMIT = 1 << 20
#: The model card, rendered from the manifest and listed in it.
CARD = "MODEL_CARD.md"
#: The training inputs' statistics that drift is measured against (optional: older packages lack it).
REFERENCE_STATS = "reference_stats.json"

#: Distributions whose versions the manifest records: every library an artifact's loading or
#: predictions can depend on, plus this one.
TRACKED = (
    "scikit-learn",
    "numpy",
    "pandas",
    "joblib",
    "cloudpickle",
    "skops",
    "onnx",
    "onnxruntime",
    "xgboost-cpu",
    "superkart_lib",
)


def installed_versions() -> dict[str, str | None]:
    """Running versions of python and every tracked distribution (None if absent)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in TRACKED:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def file_entry(path: Path) -> dict[str, Any]:
    """sha256 and size in bytes of one file."""
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size}


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars (without importing numpy)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(manifest: dict[str, Any]) -> str:
    """Stable JSON text of a manifest (sorted keys, two-space indent).

    NaN and infinity are refused: they are not JSON, and the API could not publish the manifest.
    """
    try:
        return json.dumps(manifest, indent=2, sort_keys=True, default=json_default, allow_nan=False) + "\n"
    except ValueError as exc:
        raise SuperKartError(f"cannot write a manifest holding a number that is not finite ({exc})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def read(directory: str | Path) -> dict[str, Any]:
    """Load ``manifest.json`` from a package directory and check its shape (:func:`check_shape`).

    Raises
    ------
    ManifestError
        In one line naming the file: missing, unreadable, too big, not UTF-8 JSON, nested too
        deeply, or of the wrong shape (naming the key).
    """
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ManifestError(f"{path}: no manifest (is {directory} a model package?)")
    try:
        with open(path, "rb") as f:
            raw = f.read(MANIFEST_SIZE_LIMIT + 1)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if len(raw) > MANIFEST_SIZE_LIMIT:
        raise ManifestError(f"{path}: larger than {MANIFEST_SIZE_LIMIT:,} bytes; not a SuperKart manifest")
    try:
        manifest = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise ManifestError(f"{path}: not valid JSON (nested too deeply)") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise ManifestError(f"{path}: not valid JSON ({exc})") from None
    return check_shape(manifest, str(path))


def open_package(directory: str | Path) -> tuple[Path, dict[str, Any]]:
    """The version directory ``directory`` resolves to now, and its checked manifest.

    A reader reads every file from the returned directory: the link is followed once, so a
    package replaced mid-read cannot mix one version's manifest with another's model.
    """
    root = resolve_link(directory)
    if not root.is_dir():
        raise IntegrityError(f"{directory}: no such package directory")
    return root, read(root)


def package_file(root: Path, name: str) -> Path:
    """Path of listed file ``name`` in version directory ``root``; a symlink (a file elsewhere) is refused."""
    path = root / name
    if path.is_symlink():
        raise IntegrityError(f"{path}: a symbolic link, not a file of the package; refusing it")
    return path


# --- The shape: what build_manifest writes, checked before anything trusts a value ------------

_HEX64 = re.compile(r"[0-9a-f]{64}")
#: A package version is also a directory name and an HTTP header value.
_VERSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
#: A plain file name in the package directory: no separator, no "..", not hidden, no NUL.
_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,254}")
_MAX_DEPTH = 32
_JSON = {dict: "an object", list: "an array", str: "a string", bool: "true or false", int: "an integer"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}.get(
        type(value), type(value).__name__
    )


class _Checker:
    """Checks values at key paths; the first problem is a ManifestError naming the path."""

    def __init__(self, source: str):
        self.source = source

    def fail(self, where: str, problem: str) -> ManifestError:
        return ManifestError(f"{self.source}: {where or 'the manifest'}: {problem}")

    def typed(self, value: Any, expected: type, where: str) -> Any:
        # bool is an int in Python, never in a manifest
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise self.fail(where, f"expected {_JSON[expected]}, got {_kind(value)}")
        return value

    def number(self, value: Any, where: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(where, f"expected a number, got {_kind(value)}")

    def count(self, value: Any, where: str) -> None:
        if self.typed(value, int, where) < 0:
            raise self.fail(where, f"expected a count (>= 0), got {value}")

    def sha256(self, value: Any, where: str) -> None:
        if not _HEX64.fullmatch(self.typed(value, str, where)):
            raise self.fail(where, "expected 64 lowercase hex digits (a sha256)")

    def fields(self, parent: dict[str, Any], where: str, spec: dict[str, Any]) -> None:
        for key, check in spec.items():
            if key in parent:
                check(parent[key], f"{where}.{key}" if where else key)


def _key(where: str, key: str) -> str:
    """``where.key``, or ``where["key"]`` when the key is not a plain word (the message stays one line)."""
    return f"{where}.{key}" if key.isidentifier() else f"{where}[{json.dumps(key)}]"


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def check_shape(manifest: Any, source: str = MANIFEST) -> dict[str, Any]:
    """``manifest`` if it has the shape a SuperKart writer writes, else a one-line :class:`ManifestError`.

    Required: ``package_version`` (a plain name) and ``files``, an object mapping plain file
    names (no path, no ``..``, not hidden) to ``{"sha256": 64 hex, "bytes": count}``. Every other
    key the writer writes (``format_version``, ``created``, ``model``, ``metrics``, ``zoo``,
    ``training_data``, ``schema``, ``versions``, ``signature``) is checked when present; unknown
    keys are allowed. Nesting deeper than 32 levels is refused.
    """
    c = _Checker(source)
    c.typed(manifest, dict, "")
    if _depth_exceeds(manifest, _MAX_DEPTH):
        raise c.fail("", f"nested deeper than {_MAX_DEPTH} levels")
    for key in ("package_version", "files"):
        if key not in manifest:
            raise c.fail(key, "missing")
    fmt = manifest.get("format_version", FORMAT_VERSION)
    if c.typed(fmt, int, "format_version") > FORMAT_VERSION:
        raise c.fail("format_version", f"{fmt} is newer than this release reads ({FORMAT_VERSION}); upgrade superkart")
    if not _VERSION_ID.fullmatch(c.typed(manifest["package_version"], str, "package_version")):
        raise c.fail("package_version", "expected a plain name (letters, digits, '.', '_', '+', '-'; at most 128)")
    for name, entry in c.typed(manifest["files"], dict, "files").items():
        where = f"files[{json.dumps(name if len(name) <= 60 else name[:60] + '...')}]"  # one bounded line
        if name == MANIFEST or not _FILE_NAME.fullmatch(name) or ".." in name:
            raise c.fail(where, "not a plain file name in the package directory")
        c.typed(entry, dict, where)
        for key in ("sha256", "bytes"):
            if key not in entry:
                raise c.fail(f"{where}.{key}", "missing")
        c.sha256(entry["sha256"], f"{where}.sha256")
        c.count(entry["bytes"], f"{where}.bytes")

    def each(check: Any) -> Any:  # a check applied to every value of an object
        return lambda value, where: [check(v, _key(where, k)) for k, v in c.typed(value, dict, where).items()]

    def optional_str(value: Any, where: str) -> None:
        if value is not None:
            c.typed(value, str, where)

    def rows(value: Any, where: str) -> None:
        for i, row in enumerate(c.typed(value, list, where)):
            c.typed(row, dict, f"{where}[{i}]")

    def typed(expected: type) -> Any:
        return lambda value, where: c.typed(value, expected, where)

    model = {"family": typed(str), "estimator": typed(str), "params": typed(dict), "tuned": typed(bool)}
    data = {"source": typed(str), "sha256": c.sha256, "rows": c.count, "train_rows": c.count, "test_rows": c.count}
    c.fields(
        manifest,
        "",
        {
            "created": typed(str),
            "signature": typed(str),
            "model": typed(dict),
            "metrics": each(c.number),
            "zoo": rows,
            "training_data": typed(dict),
            "schema": typed(dict),
            "versions": each(optional_str),
        },
    )
    c.fields(manifest.get("model", {}), "model", {**model, "seed": typed(int), "n_iter": c.count})
    c.fields(manifest.get("training_data", {}), "training_data", {**data, "test_size": c.number})
    c.fields(manifest.get("schema", {}), "schema", {"target": typed(str), "columns": rows})
    return manifest
