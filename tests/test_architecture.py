"""The architecture holds: import contracts, types, one helper per job, and a self-contained repository."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

BIN = Path(sys.executable).parent
PACKAGE = ROOT / "superkart_lib"


def _tool(name: str, *args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / name), *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600)


def test_import_contracts_hold():
    result = _tool("lint-imports", "--no-cache")
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: 3 kept, 0 broken", result.stdout), result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        ("production/runtime.py", "import pandas", "Production and the contract never import"),
        ("contract/schema.py", "from superkart_lib.production import runtime", "Layers"),
        ("production/batch.py", "from superkart_lib.development import train", "Layers"),
        ("contract/files.py", "import onnxruntime", "The contract needs only the standard library and numpy"),
    ],
)
def test_a_forbidden_import_breaks_the_contracts(tmp_path, module, line, broken):
    """The contracts are not vacuous: one forbidden import in a scratch copy of the package fails them."""
    shutil.copytree(PACKAGE, tmp_path / "superkart_lib", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "superkart_lib" / module
    target.write_text(target.read_text() + f"\n\ndef _forbidden() -> None:\n    {line}  # noqa\n")
    env = {"PATH": str(BIN), "PYTHONPATH": str(tmp_path)}  # the scratch copy comes before the installed one
    result = _tool("lint-imports", "--no-cache", cwd=tmp_path, env=env)
    assert result.returncode != 0, result.stdout
    assert broken in result.stdout and "BROKEN" in result.stdout, result.stdout
    assert module.removesuffix(".py").replace("/", ".") in result.stdout


def test_types_check_clean():
    result = _tool("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("Success: no issues found"), result.stdout


def _tracked(*patterns: str) -> list[Path]:
    listed = subprocess.run(["git", "ls-files", *patterns], capture_output=True, text=True, cwd=ROOT).stdout.split()
    return [ROOT / name for name in listed if (ROOT / name).is_file()]


def test_the_repository_documents_itself():
    """Nothing in the project points at a design file outside it: its own README and docs/ say it all."""
    outside = re.compile(r"DESIGN(\.md)?\b|\.\./shared\b")
    this_file = Path(__file__).resolve()  # the pattern above is the one mention allowed
    offenders = [
        str(p.relative_to(ROOT)) for p in _tracked() if p != this_file and outside.search(p.read_text(errors="ignore"))
    ]
    assert offenders == []
    assert (ROOT / "docs" / "architecture.md").is_file()


def _library_lines(pattern: str) -> dict[str, list[int]]:
    """Library module -> lines (1-based) matching ``pattern``."""
    regex = re.compile(pattern)
    found: dict[str, list[int]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        hits = [i for i, line in enumerate(path.read_text().splitlines(), 1) if regex.search(line)]
        if hits:
            found[str(path.relative_to(PACKAGE))] = hits
    return found


@pytest.mark.parametrize(
    ("job", "pattern", "owners"),
    [
        ("hashing files", r"hashlib\.sha256\(", {"contract/files.py"}),
        (
            "replacing a file atomically",
            r"os\.replace\(|[\"']\.partial|\.partial[\"']|\w\.replace\((out|target|staging)\b",
            {"contract/files.py", "development/package.py"},
        ),
        ("the first line of an exception", r"splitlines\(\)(\s*or\s*\[[^]]*\]\))?\[0\]", set()),
        ("defining a request limit", r"^(MAX_\w+|MULTIPART_SLACK|BATCH_CHUNK_ROWS)\s*=", {"contract/limits.py"}),
        ("defining an exception", r"^class \w+\((\w*Error|Exception|\w*Warning)\)", {"contract/errors.py"}),
    ],
)
def test_one_helper_per_job(job, pattern, owners):
    found = _library_lines(pattern)
    assert set(found) <= owners, f"{job} outside {sorted(owners) or 'the helper'}: {found}"


def test_importing_the_export_module_registers_nothing():
    """Converters are registered when an export runs, not as a side effect of an import."""
    ours = "[c for c in skl2onnx.supported_converters() if c.startswith(('SuperKart', 'XGBoost'))]"
    code = (
        "import skl2onnx, superkart_lib.development.onnx_export as export, superkart_lib.development.package;"
        f"print({ours}); export.register_converters(); print({ours})"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    before, after = result.stdout.strip().splitlines()
    assert before == "[]" and after == "['SuperKartCategoryMapper', 'SuperKartFloat32Cast', 'XGBoostXGBRegressor']"


def test_the_readme_states_the_limits_the_code_enforces():
    from superkart_lib.contract import limits
    from superkart_lib.production import server
    from tests.test_supervision import UPLOAD_MEMORY_BOUND_MIB

    readme = (ROOT / "README.md").read_text()
    for stated in (
        f"(1 to {limits.MAX_RECORDS:,})",
        f"(up to {limits.mib(limits.MAX_CSV_BYTES)}, {limits.MAX_CSV_ROWS:,} rows)",
        f"413 for a body over {limits.mib(limits.MAX_JSON_BYTES)}",
        f"in chunks of {limits.BATCH_CHUNK_ROWS:,} rows",
        f"at most {limits.MAX_UPLOADS_IN_FLIGHT} CSV uploads at once",
        f"Past {limits.MAX_CONNECTIONS:,} open connections",
        f"within {server.HEAD_TIMEOUT:g} s of the connection opening (`--head-timeout`)",
        f"within {server.BODY_TIMEOUT:g} s of its headers (`--body-timeout`)",
        f"closes after {server.KEEP_ALIVE_TIMEOUT:g} s",
        f"any number of concurrent uploads to {UPLOAD_MEMORY_BOUND_MIB} MiB",
    ):
        assert stated in readme, stated
