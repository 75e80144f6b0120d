"""Every private API of another library that SuperKart uses, in one place, each behind a version guard.

A private attribute or module can change in any release. Each use here names the versions it
was checked with (:data:`CHECKED`), and outside them it either falls back to the public API
(the runtime's fast path) or stops with a one-line error naming the installed version (the
ONNX export), never silently doing something else. ``tests/test_compat.py`` has a test per use.

Each module belongs to one environment, so production never imports training libraries:

- :mod:`.runtime` (production): onnxruntime's session binding, starlette's multipart parser,
  prometheus-client's histogram buckets.
- :mod:`.http` (production): uvicorn's httptools protocol, given read deadlines and a stop that
  loses no request.
- :mod:`.serving` (production): uvicorn's server and worker supervisor, draining before a stop.
- :mod:`.training` (development): scikit-learn's histogram-boosting trees and one-hot encoder
  internals, skl2onnx's tree-ensemble helpers, onnxmltools' XGBoost converter.
"""

from __future__ import annotations

from superkart_lib.contract.versions import release, running_version

#: Distribution -> (oldest, newest) release line whose private APIs used here were checked.
#: A newer release is allowed only after its own check: run ``tests/test_compat.py`` with it, then widen.
CHECKED: dict[str, tuple[str, str]] = {
    "onnxruntime": ("1.20", "1.32"),
    "starlette": ("0.40", "1.10"),
    "uvicorn": ("0.54", "0.54"),
    "prometheus-client": ("0.26", "0.26"),
    "scikit-learn": ("1.6", "1.9"),
    "skl2onnx": ("1.18", "1.20"),
    "onnxmltools": ("1.13", "1.16"),
}


def installed(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None."""
    return running_version(distribution)


def checked(distribution: str, version: str | None = None) -> bool:
    """Whether ``version`` (default: the installed one) is within the release lines checked for it."""
    version = installed(distribution) if version is None else version
    if version is None:
        return False
    oldest, newest = CHECKED[distribution]
    return release(oldest)[:2] <= release(version)[:2] <= release(newest)[:2]


def unchecked_message(distribution: str, what: str) -> str:
    """The one-line refusal for a private API used outside its checked versions."""
    oldest, newest = CHECKED[distribution]
    return (
        f"{what} relies on {distribution} internals checked with {oldest} to {newest}, "
        f"but {distribution} {installed(distribution)} is installed; install a checked version "
        f"(constraints.txt) or check this one and widen superkart_lib.compat.CHECKED"
    )
