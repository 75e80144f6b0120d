"""Save and load the package's Python-object formats through one interface.

``FORMATS`` maps a package file name to its :class:`Format`: how it is written and
read, what loading it needs installed, whether loading can execute code. ``model.onnx``
is listed for those facts only (``onnx_export``/``runtime`` write and run it).

Loading is verified; before a single byte is deserialised, (1) with
``SUPERKART_SIGNING_KEY`` set the manifest's HMAC signature must match, (2) the
file's size and sha256 must match the manifest, and only those hashed bytes are
deserialised, (3) recorded library versions are compared with the running ones.
While deserialising, scikit-learn's ``InconsistentVersionWarning`` is an error, and
a skops file may only name types in :data:`SKOPS_TRUSTED` (never ``trusted=True``).

Version decisions are in :mod:`superkart_lib.versions`.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superkart_lib import integrity, skops_audit
from superkart_lib import manifest as mf
from superkart_lib.errors import SuperKartError
from superkart_lib.skops_audit import SKOPS_TRUSTED, UntrustedTypeError
from superkart_lib.versions import (
    COMMON_RULES,
    PYTHON_WARN,
    VersionMismatchError,
    VersionRule,
    VersionSkewWarning,
    check_versions,
)

__all__ = [
    "FORMATS",
    "PYTHON_FORMATS",
    "SKOPS_TRUSTED",
    "Format",
    "FormatError",
    "UntrustedTypeError",
    "VersionMismatchError",
    "VersionSkewWarning",
    "get_format",
    "load",
    "register",
    "save",
    "verify",
    "writers",
]

PICKLE_PROTOCOL = 5
JOBLIB_COMPRESS = 3


class FormatError(SuperKartError):
    """A model file cannot be saved or loaded in its format."""


def _pickle_dumps(model: Any) -> bytes:
    return pickle.dumps(model, protocol=PICKLE_PROTOCOL)


def _pickle_loads(data: bytes, where: str) -> Any:
    return pickle.loads(data)


def _joblib_dumps(model: Any) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=JOBLIB_COMPRESS)
    return buffer.getvalue()


def _joblib_loads(data: bytes, where: str) -> Any:
    import joblib

    return joblib.load(io.BytesIO(data))


def _cloudpickle_dumps(model: Any) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(model, protocol=PICKLE_PROTOCOL)


@dataclass(frozen=True)
class Format:
    """One model file format: how it is written and read, and what loading it implies.

    ``dumps(model) -> bytes`` and ``loads(verified_bytes, where) -> model`` are None
    for a format another module handles (``handled_by``).
    """

    name: str
    filename: str
    requires: tuple[str, ...]
    executes_code: bool
    security: str
    rules: tuple[VersionRule, ...] = ()
    dumps: Callable[[Any], bytes] | None = None
    loads: Callable[[bytes, str], Any] | None = None
    handled_by: str = __name__

    def save(self, model: Any, path: str | Path) -> None:
        """Write ``model`` to ``path`` in this format."""
        if self.dumps is None:
            raise FormatError(f"{path}: {self.name} files are written by {self.handled_by}")
        Path(path).write_bytes(self.dumps(model))

    def load(self, package_dir: str | Path, manifest: dict[str, Any] | None = None) -> Any:
        """Verify, then deserialise, this format's file of a package (see :func:`load`)."""
        return load(package_dir, self.filename, manifest)


_PICKLED = "pickle underneath: loading can execute arbitrary code the file names"
FORMATS: dict[str, Format] = {}


def register(fmt: Format) -> Format:
    """Add or replace the format for ``fmt.filename``."""
    FORMATS[fmt.filename] = fmt
    return fmt


_PYTHON_NEEDS = ("scikit-learn", "numpy", "superkart_lib")

register(
    Format(
        name="pickle",
        filename="model.pkl",
        requires=_PYTHON_NEEDS,
        executes_code=True,
        security=_PICKLED,
        rules=(*COMMON_RULES, PYTHON_WARN),
        dumps=_pickle_dumps,
        loads=_pickle_loads,
    )
)
register(
    Format(
        name="joblib",
        filename="model.joblib",
        requires=(*_PYTHON_NEEDS, "joblib"),
        executes_code=True,
        security=_PICKLED,
        rules=(*COMMON_RULES, PYTHON_WARN, VersionRule("joblib", warn="exact", why="joblib reads older files")),
        dumps=_joblib_dumps,
        loads=_joblib_loads,
    )
)
register(
    Format(
        name="cloudpickle",
        filename="model.cloudpickle",
        requires=(*_PYTHON_NEEDS, "cloudpickle"),
        executes_code=True,
        security=_PICKLED + ", including functions it carries by value",
        rules=(
            *COMMON_RULES,
            VersionRule("python", error="minor", why="code cloudpickle carries is bytecode of one Python minor"),
            VersionRule("cloudpickle", warn="exact", why="cloudpickle reads older files"),
        ),
        dumps=_cloudpickle_dumps,
        loads=_pickle_loads,  # cloudpickle.loads is pickle.loads; by-value code imports cloudpickle itself
    )
)
register(
    Format(
        name="skops",
        filename="model.skops",
        requires=(*_PYTHON_NEEDS, "skops"),
        executes_code=False,
        security="audited: only allow-listed types are constructed, no arbitrary code runs",
        rules=(*COMMON_RULES, PYTHON_WARN, VersionRule("skops", warn="exact", why="skops reads older protocols")),
        dumps=skops_audit.dumps,
        loads=skops_audit.loads,
    )
)
register(
    Format(
        name="onnx",
        filename="model.onnx",
        requires=("numpy", "onnxruntime"),
        executes_code=False,
        security="a computation graph run by onnxruntime: no code execution on load",
        rules=(VersionRule("onnxruntime", warn="exact", why="onnxruntime runs graphs of older opsets"),),
        handled_by="superkart_lib.onnx_export / superkart_lib.runtime",
    )
)

#: File names of the formats this module saves and loads itself.
PYTHON_FORMATS: tuple[str, ...] = tuple(name for name, fmt in FORMATS.items() if fmt.loads is not None)


def get_format(name: str) -> Format:
    """The format of package file ``name``; unknown names list the known ones."""
    try:
        return FORMATS[Path(name).name]
    except KeyError:
        raise FormatError(f"{name}: not a model file name (known: {', '.join(FORMATS)})") from None


def writers() -> dict[str, Callable[[Any, Path], None]]:
    """File name -> ``write(model, path)`` for every format this module saves."""
    return {name: FORMATS[name].save for name in PYTHON_FORMATS}


def save(model: Any, path: str | Path) -> None:
    """Write ``model`` to ``path``; the file name (``model.pkl``, ...) picks the format."""
    get_format(Path(path).name).save(model, path)


def verify(package_dir: str | Path, name: str, manifest: dict[str, Any] | None = None) -> bytes:
    """Every check short of deserialising: signature, sha256 and size, versions.

    Returns
    -------
    bytes
        The verified content of ``name``, the only bytes a loader may deserialise.
    """
    package_dir = Path(package_dir)
    fmt = get_format(name)
    manifest = mf.read(package_dir) if manifest is None else manifest
    integrity.check_signature_if_configured(manifest, str(package_dir / mf.MANIFEST))
    data = integrity.verify_file(package_dir, fmt.filename, manifest)
    check_versions(fmt.rules, fmt.requires, manifest, str(package_dir / fmt.filename))
    return data


def load(package_dir: str | Path, name: str, manifest: dict[str, Any] | None = None) -> Any:
    """Verify package file ``name`` (see :func:`verify`), then deserialise it.

    ``manifest`` defaults to the package's ``manifest.json``. Errors are
    :class:`~superkart_lib.errors.SuperKartError` subclasses naming the file.
    """
    fmt = get_format(name)
    where = str(Path(package_dir) / fmt.filename)
    if fmt.loads is None:
        raise FormatError(f"{where}: {fmt.name} files are loaded by {fmt.handled_by}")
    data = verify(package_dir, fmt.filename, manifest)
    from sklearn.exceptions import InconsistentVersionWarning

    # catch_warnings is process-global: load at start-up, not from concurrent threads.
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            return fmt.loads(data, where)
        except InconsistentVersionWarning as w:
            raise VersionMismatchError(
                f"{where}: {w.estimator_name} was saved with scikit-learn {w.original_sklearn_version} "
                f"but running scikit-learn {w.current_sklearn_version}; refusing to load it"
            ) from None
        except SuperKartError:
            raise
        except Exception as exc:  # a verified file that still fails: say which, in one line
            detail = str(exc).splitlines()[0] if str(exc) else ""
            raise FormatError(f"{where}: cannot load as {fmt.name}: {type(exc).__name__}: {detail}") from exc
