"""The package manifest: what was trained, on what, with which library versions.

Pure Python (no scikit-learn, no pandas) so the production runtime can read it.
"""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

from superkart_lib.contract.errors import SuperKartError
from superkart_lib.contract.files import sha256_of

MANIFEST = "manifest.json"
#: The model card, rendered from the manifest and listed in it.
CARD = "MODEL_CARD.md"

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
    """Stable JSON text of a manifest (sorted keys, two-space indent)."""
    return json.dumps(manifest, indent=2, sort_keys=True, default=json_default) + "\n"


def read(directory: str | Path) -> dict[str, Any]:
    """Load ``manifest.json`` from a package directory."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise SuperKartError(f"{path}: no manifest (is {directory} a model package?)")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SuperKartError(f"{path}: not valid JSON ({exc})") from None
