"""The model package's five file formats: what loading each needs and risks, and its checks.

``FORMATS`` maps a package file name to its :class:`Format`: the distributions loading it
needs, whether loading can execute code, and the version rules (:mod:`.versions`) that apply
to it. Writing and reading the files is the environments' business: the Python-object
formats in :mod:`superkart_lib.development.python_formats`, ONNX in
:mod:`superkart_lib.development.onnx_export` and :mod:`superkart_lib.production.runtime`.

:func:`verify` is every check short of deserialising, run by every loader first:
(1) with ``SUPERKART_SIGNING_KEY`` set, the manifest's HMAC signature must match, (2) the
file's size and sha256 must match the manifest, (3) recorded library versions are compared
with the running ones. It returns the hashed bytes, the only bytes a loader may deserialise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superkart_lib.contract import integrity
from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import FormatError
from superkart_lib.contract.versions import COMMON_RULES, PYTHON_WARN, VersionRule, check_versions, running_version

ONNX_FILE = "model.onnx"


@dataclass(frozen=True)
class Format:
    """One model file format: what loading it needs installed, what it risks, which version rules apply."""

    name: str
    filename: str
    requires: tuple[str, ...]
    executes_code: bool
    security: str
    rules: tuple[VersionRule, ...] = ()

    def missing(self) -> list[str]:
        """The distributions loading needs that are not installed here (empty when it can load)."""
        return [name for name in self.requires if running_version(name) is None]


_PICKLED = "pickle underneath: loading can execute arbitrary code the file names"
_PYTHON_NEEDS = ("scikit-learn", "numpy", "superkart_lib")

FORMATS: dict[str, Format] = {
    f.filename: f
    for f in (
        Format("pickle", "model.pkl", _PYTHON_NEEDS, True, _PICKLED, rules=(*COMMON_RULES, PYTHON_WARN)),
        Format(
            "joblib",
            "model.joblib",
            (*_PYTHON_NEEDS, "joblib"),
            True,
            _PICKLED,
            rules=(*COMMON_RULES, PYTHON_WARN, VersionRule("joblib", warn="exact", why="joblib reads older files")),
        ),
        Format(
            "cloudpickle",
            "model.cloudpickle",
            (*_PYTHON_NEEDS, "cloudpickle"),
            True,
            _PICKLED + ", including functions it carries by value",
            rules=(
                *COMMON_RULES,
                VersionRule("python", error="minor", why="code cloudpickle carries is bytecode of one Python minor"),
                VersionRule("cloudpickle", warn="exact", why="cloudpickle reads older files"),
            ),
        ),
        Format(
            "skops",
            "model.skops",
            (*_PYTHON_NEEDS, "skops"),
            False,
            "audited: only allow-listed types are constructed, no arbitrary code runs",
            rules=(*COMMON_RULES, PYTHON_WARN, VersionRule("skops", warn="exact", why="skops reads older protocols")),
        ),
        Format(
            "onnx",
            ONNX_FILE,
            ("numpy", "onnxruntime"),
            False,
            "a computation graph run by onnxruntime: no code execution on load",
            rules=(VersionRule("onnxruntime", warn="exact", why="onnxruntime runs graphs of older opsets"),),
        ),
    )
}


def get_format(name: str | Path) -> Format:
    """The format of package file ``name``; unknown names list the known ones."""
    try:
        return FORMATS[Path(name).name]
    except KeyError:
        raise FormatError(f"{name}: not a model file name (known: {', '.join(FORMATS)})") from None


def verify(package_dir: str | Path, name: str, manifest: dict[str, Any] | None = None) -> bytes:
    """Every check short of deserialising: signature, sha256 and size, versions.

    Returns
    -------
    bytes
        The verified content of ``name``, the only bytes a loader may deserialise.

    Raises
    ------
    SuperKartError
        Naming the file: an unsigned or wrongly signed manifest, a missing or altered file,
        a library a format needs that is not installed, or an error-level version difference.
    """
    fmt = get_format(name)
    if manifest is None:  # the link to the current version is read once: manifest and file from one version
        package_dir, manifest = mf.open_package(package_dir)
    package_dir = Path(package_dir)
    integrity.check_signature_if_configured(manifest, str(package_dir / mf.MANIFEST))
    data = integrity.verify_file(package_dir, fmt.filename, manifest)
    check_versions(fmt.rules, fmt.requires, manifest, str(package_dir / fmt.filename))
    return data
