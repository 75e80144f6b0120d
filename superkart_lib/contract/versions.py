"""Recorded library versions against running ones: what is an error, what warns.

Version decisions (error: :class:`VersionMismatchError`; warning:
:class:`VersionSkewWarning`; both name the file, the library and both versions):

- scikit-learn: any difference is an error for all four formats (estimator state
  is private to a release; scikit-learn supports loading only with the saving one).
- numpy: another major is an error (numpy 2 renamed ``numpy.core``; pickles do not
  cross it); any other difference warns: bit-for-bit is promised only for the pins.
- python: another minor is an error for cloudpickle (code it carries by value is one
  minor's bytecode), a warning for pickle, joblib and skops; patches are ignored.
- joblib, cloudpickle, skops, each for its own file: any difference warns (they
  read older files; a real break still fails loudly, naming the file).
- xgboost-cpu: any difference is an error when the manifest's model is XGBoost (or
  names no model but recorded xgboost): its pickled booster is not portable.
- superkart_lib: any difference warns (its transformers are saved by reference).
- pandas, onnx, onnxruntime: not checked; no pickled artifact holds their objects.

A library a format needs that is not installed, or an error-level library the
manifest does not record, is an error.
"""

from __future__ import annotations

import platform
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, Literal

from superkart_lib.contract.errors import VersionMismatchError, VersionSkewWarning

Level = Literal["major", "minor", "exact"]


def _always(manifest: dict[str, Any]) -> bool:
    return True


def _holds_xgboost(manifest: dict[str, Any]) -> bool:
    model = manifest.get("model") or {}
    named = f"{model.get('family', '')} {model.get('estimator', '')}".strip().lower()
    if named:
        return "xgb" in named
    return (manifest.get("versions") or {}).get("xgboost-cpu") is not None


@dataclass(frozen=True)
class VersionRule:
    """How a recorded library version must match the running one.

    ``error``/``warn`` give the coarsest version part whose difference is an error
    or a warning (``exact`` compares the whole string); ``applies`` limits the rule
    to some manifests; ``why`` ends the message.
    """

    library: str
    error: Level | None = None
    warn: Level | None = None
    why: str = ""
    applies: Callable[[dict[str, Any]], bool] = _always


def release(version: str) -> tuple[int, ...]:
    """Major, minor and patch of a version string as numbers: ``"1.32.0+cpu"`` -> ``(1, 32, 0)``."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def _differs(recorded: str, running: str, level: Level) -> bool:
    if level == "exact":
        return recorded != running
    parts = 1 if level == "major" else 2
    return release(recorded)[:parts] != release(running)[:parts]


def running_version(library: str) -> str | None:
    """The installed version of a distribution (``python`` for the interpreter), or None if absent."""
    if library == "python":
        return platform.python_version()
    if library == "superkart_lib":  # importable from a source tree that pip never installed
        import superkart_lib

        return superkart_lib.__version__
    # The plain "xgboost" wheel provides the same module as the "xgboost-cpu" the manifest tracks.
    for dist in (library, "xgboost") if library == "xgboost-cpu" else (library,):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


COMMON_RULES = (
    VersionRule("scikit-learn", error="exact", why="estimator state is private to one scikit-learn release"),
    VersionRule("numpy", error="major", warn="exact", why="bit-identical predictions are promised only for the pins"),
    VersionRule("superkart_lib", warn="exact", why="its transformers are saved by reference to its classes"),
    VersionRule("xgboost-cpu", error="exact", why="XGBoost's saved booster is not portable", applies=_holds_xgboost),
)
PYTHON_WARN = VersionRule("python", warn="minor", why="the pinned Python is the tested one")


def check_versions(
    rules: tuple[VersionRule, ...], requires: tuple[str, ...], manifest: dict[str, Any], where: str
) -> None:
    """Compare the manifest's recorded versions with the running ones under ``rules``.

    Raises
    ------
    VersionMismatchError
        Naming ``where``, the library and both versions, on an error-level difference.
    """
    recorded_versions = manifest.get("versions") or {}
    for rule in rules:
        if not rule.applies(manifest):
            continue
        lib, recorded, running = rule.library, recorded_versions.get(rule.library), running_version(rule.library)
        if running is None:
            if rule.error or lib in requires:
                raise VersionMismatchError(f"{where}: needs {lib} installed to load (recorded {recorded}); it is not")
            continue
        if recorded is None:
            if rule.error:
                raise VersionMismatchError(f"{where}: the manifest records no {lib} version; refusing to load it")
            continue
        msg = f"{where}: saved with {lib} {recorded} but running {lib} {running}; {rule.why}"
        if rule.error and _differs(recorded, running, rule.error):
            fix = f"run Python {recorded}" if lib == "python" else f"install {lib}=={recorded}"
            raise VersionMismatchError(f"{msg} ({fix} or rebuild the package)")
        if rule.warn and _differs(recorded, running, rule.warn):
            warnings.warn(VersionSkewWarning(msg), stacklevel=4)  # the caller of load()
