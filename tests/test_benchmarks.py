"""Every script in ``benchmarks/`` runs at a tiny size and prints its figures.

The scripts are found by glob, so a new one cannot escape: it fails here until it has an entry in
:data:`TINY` (its options for a run of seconds) and :data:`FIGURES` (what its output must show).
Each runs as a subprocess, as a user runs it, with a bounded timeout; the ones that take a model
package share one small package trained once for this module. No timing is asserted anywhere:
the figures are checked for shape only (a table header, a number), never for their values.

``serving.py`` and ``read_deadlines.py`` need ``wrk``; ``scaling.py`` needs ``wrk`` and ``nginx``
(Debian packages). As in ``tests/test_deploy.py``, a missing tool fails the test under CI and skips it elsewhere, saying
which tool and how to install it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, make_package, run_cli

pytestmark = pytest.mark.slow  # trains a package and starts servers: about 1.5 minutes in all

BENCHMARKS = ROOT / "benchmarks"
SCRIPTS = sorted(path.name for path in BENCHMARKS.glob("*.py"))

#: Options for a run of seconds, with ``{package}`` (the module's small package) and ``{tmp}``
#: (the test's own directory) filled in. Every script's defaults stay those of real measurements.
TINY: dict[str, list[str]] = {
    "batch.py": [
        "--package", "{package}", "--rows", "2000", "--repeats", "1", "--chunk-rows", "500",
        "--workdir", "{tmp}/batch",
    ],
    "predict_route.py": ["--package", "{package}", "--requests", "50", "--runs", "2", "--warmup", "10"],
    "metrics_cost.py": [
        "--package", "{package}", "--requests", "64", "--rounds", "2", "--concurrency", "8", "--warmup", "8",
        "--max-seconds", "30",
    ],
    "read_deadlines.py": [
        "--package", "{package}", "--requests", "64", "--rounds", "2", "--concurrency", "8", "--warmup", "8",
        "--max-seconds", "30",
    ],
    "scaling.py": [
        "--package", "{package}", "--replicas", "1,2", "--requests", "200", "--concurrency", "8",
        "--warmup", "16", "--max-seconds", "30",
    ],
    "serialization.py": [
        "--package", "{package}", "--repeats", "1", "--latency-calls", "5", "--latency-seconds", "0",
        "--load-repeats", "1", "--chart", "{tmp}/serialization.png", "--json", "{tmp}/serialization.json",
    ],
    "swap_latency.py": [
        "--package", "{package}", "--second", "{second}", "--workers", "2", "--requests", "300", "--rounds", "1",
        "--move-every", "0.3", "--warmup", "20", "--concurrency", "8",
    ],
    "serving.py": [
        "--package", "{package}", "--workers", "1", "--requests-c1", "20", "--requests-c32", "64",
        "--warmup", "8", "--max-seconds", "30",
    ],
}  # fmt: skip

NUMBER = r"[\d,]+(?:\.\d+)?"
#: Patterns (multi-line) the standard output must match: the table's header and rows with numbers.
FIGURES: dict[str, list[str]] = {
    "batch.py": [
        rf"^in-process\s+median\s+{NUMBER} rows/s",
        rf"^dask \(running cluster\)\s+median\s+{NUMBER} rows/s",
        r"^outputs identical across modes and runs: yes$",
    ],
    "predict_route.py": [
        r"^every app answers alike:$",
        r"^variant\s+median µs\s+min µs\s+max µs\s+vs shipped",
        rf"^shipped: PredictEndpoint as a starlette Route\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+1\.00x",
        rf"^baseline: FastAPI @app\.post route, Request\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x",
        rf"^shipped \+ one no-op ASGI middleware\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x",
        rf"^reference: handlers\.predict_json alone\s+{NUMBER}",
        rf"^control: the shipped app, a second instance\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}x",
    ],
    "metrics_cost.py": [
        r"^server\s+conc\s+requests\s+seconds\s+req/s\s+p50 ms",
        rf"^metrics\s+8\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        rf"^off\s+8\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        r"^metrics cost -?[\d.]+% of throughput at c=8 \(median of 2 runs\)$",
        r"^/metrics counted every prediction answered: yes",
        r"^errors in all measured runs: 0$",
    ],
    "read_deadlines.py": [
        r"^server\s+conc\s+requests\s+seconds\s+req/s\s+p50 ms",
        rf"^deadlines\s+8\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        rf"^uvicorn\s+8\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        r"^read deadlines cost -?[\d.]+% of throughput at c=8 \(median of 2 runs\)$",
        r"^errors in all measured runs: 0$",
    ],
    "scaling.py": [
        r"^setup\s+replicas\s+requests\s+req/s\s+p50 ms\s+p99 ms\s+errors",
        rf"^direct, no nginx\s+1\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+0\s",
        rf"^nginx\s+1\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+0\s.*1\.00x",
        rf"^nginx\s+2\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+0\s.*{NUMBER}x\s+{NUMBER}, {NUMBER}",
    ],
    "serialization.py": [
        r"^format\s+size \(bytes\)\s+save ms\s+import ms\s+load ms",
        rf"^onnx\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        rf"^joblib\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        rf"ratio ONNX / scikit-learn\s+{NUMBER}",
        r"^chart: .*serialization\.png$",
    ],
    "swap_latency.py": [
        r"^mode\s+req/s\s+p50 ms\s+p99 ms\s+max ms\s+moves\s+failed\s+wrong$",
        rf"^steady\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+0\s+0\s+0$",
        rf"^swapping\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+\d+\s+0\s+0$",
    ],
    "serving.py": [
        r"^server\s+conc\s+requests\s+seconds\s+req/s\s+p50 ms",
        rf"^naive\s+1\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        rf"^superkart\s+32\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}",
        rf"superkart / naive throughput: {NUMBER}x",
        r"^errors in all measured runs: 0$",
    ],
}

#: Debian packages a script needs on PATH (nginx may live in /usr/sbin only).
TOOLS: dict[str, list[str]] = {
    "serving.py": ["wrk"],
    "read_deadlines.py": ["wrk"],
    "metrics_cost.py": ["wrk"],
    "scaling.py": ["wrk", "nginx"],
}
#: Seconds before a script is stopped; the tiny runs take 2-40 s on a busy 2-core machine.
TIMEOUT = {"serialization.py": 240.0}
DEFAULT_TIMEOUT = 120.0


def tool_or_skip(name: str) -> str:
    """Path of a Debian tool; a CI run without it fails, elsewhere the test says so and skips."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if path is None:
        message = f"{name} is not installed (Debian: apt-get install -y {name})"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_script(script: str, args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """``python benchmarks/SCRIPT ARGS`` in its own process group, stopped cleanly past ``timeout``.

    On timeout the script gets SIGTERM first (the server benchmarks then stop the servers they
    started, each in its own group), then whatever is left in its group is killed.
    """
    command = [sys.executable, str(BENCHMARKS / script), *args]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        pytest.fail(f"{script} still running after {timeout:.0f} s\n{tail(stdout, stderr)}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def tail(stdout: str, stderr: str, lines: int = 40) -> str:
    """The end of both streams, for a failure message."""
    cut = lambda text: "\n".join(text.splitlines()[-lines:])  # noqa: E731
    return f"--- stdout (end) ---\n{cut(stdout)}\n--- stderr (end) ---\n{cut(stderr)}"


@pytest.fixture(scope="module")
def tiny_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`superkart train --n-iter 0` on 400 synthetic rows (the data stays, so its test split rebuilds)."""
    directory = tmp_path_factory.mktemp("bench-package")
    data, package = directory / "data.csv", directory / "model"
    made = run_cli("data", "--rows", "400", "--out", str(data), timeout=120)
    assert made.returncode == 0, made.stderr
    trained = run_cli("train", "--data", str(data), "--out", str(package), "--n-iter", "0", timeout=300)
    assert trained.returncode == 0, trained.stderr
    return package


def test_the_glob_finds_the_scripts() -> None:
    # An empty or renamed directory must not pass by running nothing.
    assert {"serialization.py", "serving.py", "scaling.py", "batch.py", "predict_route.py", "read_deadlines.py"} <= set(
        SCRIPTS
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_script_runs_at_a_tiny_size(script: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    if script not in TINY or script not in FIGURES:
        pytest.fail(f"benchmarks/{script} has no tiny run here: add its options to TINY and its output to FIGURES")
    for tool in TOOLS.get(script, []):
        tool_or_skip(tool)
    package: Path = request.getfixturevalue("tiny_package")  # only once a script will run: training takes ~20 s
    second = make_package(tmp_path / "second" / "model", seed=5) if any("{second}" in a for a in TINY[script]) else None
    args = [arg.format(package=package, second=second, tmp=tmp_path) for arg in TINY[script]]
    result = run_script(script, args, TIMEOUT.get(script, DEFAULT_TIMEOUT))
    assert result.returncode == 0, f"{script} exited {result.returncode}\n{tail(result.stdout, result.stderr)}"
    missing = [p for p in FIGURES[script] if not re.search(p, result.stdout, re.MULTILINE)]
    assert not missing, f"{script} did not print {missing}\n{tail(result.stdout, result.stderr)}"
