"""Save and load the package's Python-object formats: pickle, joblib, cloudpickle and skops.

Development environment: loading any of them rebuilds scikit-learn objects. Loading is
verified first (:func:`superkart_lib.contract.formats.verify`: signature, sha256, versions),
then only the hashed bytes are deserialised. While deserialising, scikit-learn's
``InconsistentVersionWarning`` is an error, and a skops file may only name types in
:data:`~superkart_lib.development.skops_audit.SKOPS_TRUSTED` (never ``trusted=True``).
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superkart_lib.contract.errors import FormatError, SuperKartError, VersionMismatchError, first_line
from superkart_lib.contract.formats import FORMATS, get_format, verify
from superkart_lib.development import skops_audit

PICKLE_PROTOCOL = 5
JOBLIB_COMPRESS = 3


def _pickle_dumps(model: Any) -> bytes:
    return pickle.dumps(model, protocol=PICKLE_PROTOCOL)


def _pickle_loads(data: bytes) -> Any:
    return pickle.loads(data)


def _joblib_dumps(model: Any) -> bytes:
    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=JOBLIB_COMPRESS)
    return buffer.getvalue()


def _joblib_loads(data: bytes) -> Any:
    import joblib

    return joblib.load(io.BytesIO(data))


def _cloudpickle_dumps(model: Any) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(model, protocol=PICKLE_PROTOCOL)


@dataclass(frozen=True)
class Codec:
    """How one format turns a model into bytes and verified bytes back into a model."""

    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]


CODECS: dict[str, Codec] = {
    "model.pkl": Codec(_pickle_dumps, _pickle_loads),
    "model.joblib": Codec(_joblib_dumps, _joblib_loads),
    # cloudpickle.loads is pickle.loads; code carried by value imports cloudpickle itself.
    "model.cloudpickle": Codec(_cloudpickle_dumps, _pickle_loads),
    "model.skops": Codec(skops_audit.dumps, skops_audit.loads),
}
#: File names of the formats this module saves and loads.
PYTHON_FORMATS: tuple[str, ...] = tuple(CODECS)


def _codec(name: str | Path) -> Codec:
    fmt = get_format(name)
    codec = CODECS.get(fmt.filename)
    if codec is None:
        raise FormatError(f"{name}: {fmt.name} files are not Python objects (see the ONNX export and runtime)")
    return codec


def save(model: Any, path: str | Path) -> None:
    """Write ``model`` to ``path``; the file name (``model.pkl``, ...) picks the format."""
    Path(path).write_bytes(_codec(path).dumps(model))


def writers() -> dict[str, Callable[[Any, Path], None]]:
    """File name -> ``write(model, path)`` for every format this module saves."""
    return {name: save for name in PYTHON_FORMATS}


def load(package_dir: str | Path, name: str, manifest: dict[str, Any] | None = None) -> Any:
    """Verify package file ``name`` (see :func:`~superkart_lib.contract.formats.verify`), then deserialise it.

    ``manifest`` defaults to the package's ``manifest.json``. Errors are
    :class:`~superkart_lib.contract.errors.SuperKartError` subclasses naming the file.
    """
    codec = _codec(name)
    fmt = FORMATS[Path(name).name]
    where = str(Path(package_dir) / fmt.filename)
    data = verify(package_dir, fmt.filename, manifest)
    from sklearn.exceptions import InconsistentVersionWarning

    # catch_warnings is process-global: load at start-up, not from concurrent threads.
    with warnings.catch_warnings():
        warnings.simplefilter("error", InconsistentVersionWarning)
        try:
            return codec.loads(data)
        except InconsistentVersionWarning as w:
            raise VersionMismatchError(
                f"{where}: {w.estimator_name} was saved with scikit-learn {w.original_sklearn_version} "
                f"but running scikit-learn {w.current_sklearn_version}; refusing to load it"
            ) from None
        except SuperKartError as exc:
            raise type(exc)(f"{where}: {exc}") from None
        except Exception as exc:  # a verified file that still fails: say which, in one line
            raise FormatError(f"{where}: cannot load as {fmt.name}: {first_line(exc, with_type=True)}") from exc
