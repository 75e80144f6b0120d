"""The pins: environment.yml and the lock agree; the serve extra stays small."""

from __future__ import annotations

import re
import tomllib

import yaml

from tests.conftest import ROOT


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[_norm(name)] = version
    return pins


def test_environment_yml_agrees_with_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    lock = _lock()
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pinned = {}
    for dep in conda:
        name, _, version = dep.partition("==")
        if version:
            pinned[_norm(name)] = version
    assert len(pinned) >= 10
    mismatched = {n: (v, lock.get(n)) for n, v in pinned.items() if lock.get(n) != v}
    assert not mismatched, f"environment.yml vs constraints.txt: {mismatched}"
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-c constraints.txt" in pip and "-e .[dev]" in pip


def test_every_declared_dependency_is_pinned():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = _lock()
    declared = project["dependencies"] + [
        d for extra in project["optional-dependencies"].values() for d in extra if not d.startswith("superkart")
    ]
    for requirement in declared:
        name = _norm(re.split(r"[<>=\[; ]", requirement, maxsplit=1)[0])
        assert name in lock, f"{requirement} has no pin in constraints.txt"


def test_serve_extra_has_no_training_stack():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = " ".join(project["dependencies"] + project["optional-dependencies"]["serve"]).lower()
    for heavy in ("scikit-learn", "pandas", "scipy", "skl2onnx", "xgboost"):
        assert heavy not in runtime
