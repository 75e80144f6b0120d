"""The package manifest: what was trained, on what, with which library versions.

Pure Python (no scikit-learn, no pandas) so the production runtime can read it.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

MANIFEST = "manifest.json"

#: Distributions whose versions the manifest records (DESIGN: the model package).
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
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return {"sha256": digest, "bytes": path.stat().st_size}


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(manifest: dict[str, Any]) -> str:
    """Stable JSON text of a manifest (sorted keys, two-space indent)."""
    return json.dumps(manifest, indent=2, sort_keys=True, default=_json_default) + "\n"


def read(directory: str | Path) -> dict[str, Any]:
    """Load ``manifest.json`` from a package directory."""
    from superkart_lib.errors import SuperKartError

    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise SuperKartError(f"{path}: no manifest (is {directory} a model package?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SuperKartError(f"{path}: not valid JSON ({exc})") from None
