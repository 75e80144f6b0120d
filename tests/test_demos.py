"""Every serialization demo runs as a student would run it, exits 0 and prints its lesson's figures.

Demos are discovered by globbing ``serialization_demos/NN_*.py``: a new demo is run and
must exit 0 and print a ``Lesson:`` line; ``EXPECTED`` adds the figures each known demo must print.
The demos run two at a time (the target machine has two cores) in a fresh TMPDIR each,
which must be empty afterwards: a demo cleans up after itself.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEMO_DIR = ROOT / "serialization_demos"
DEMOS = sorted(DEMO_DIR.glob("[0-9][0-9]_*.py"))
TIMEOUT_S = 180
#: onnxruntime 1.32 writes a telemetry session file (".ses") to the temp directory when imported.
NOT_DEMO_FILES = {".ses"}

#: Regular expressions each demo's stdout must match (figures and the lesson's key lines).
EXPECTED: dict[str, list[str]] = {
    "01_round_trip": [
        *(rf"{fmt}\s+model\.\w+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+bit-for-bit" for fmt in ("pickle", "joblib", "skops")),
        r"cloudpickle\s+model\.cloudpickle\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+bit-for-bit",
        r"onnx\s+model\.onnx\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+\$0\.00\d+",
        r"All \d+ test rows checked in every format",
    ],
    "02_lambda_and_main": [
        r"pickle\s+lambda\s+-> PicklingError",
        r"joblib\s+lambda\s+-> PicklingError",
        r"pickle\s+__main__ function\s+-> dumped fine",
        r"main\.pkl\s+-> AttributeError: Can't get attribute 'log_features'",
        r"main\.joblib\s+-> AttributeError: Can't get attribute 'log_features'",
        r"lambda\.cloudpickle\s+-> loaded and predicted",
        r"__main__\.cloudpickle\s+-> loaded and predicted",
        r"raw CPython 3\.\d+ bytecode \(\d+ bytes\): True",
        r"manifest records python 3\.\d+\.\d+",
        r"VersionMismatchError: .*saved with python 3\.\d+\.0 but running python",
        r"FunctionTransformer is not supported",
        r"by reference to superkart_lib\.development\.features: True",
    ],
    "03_malicious_pickle": [
        r"canary created: CANARY\.txt says 'code ran during unpickling'",
        r"IntegrityError: .*model\.pkl: sha256 \w+\.\.\. does not match",
        r"IntegrityError: .*manifest\.json: signature does not match",
        r"canary created: False",
        r"UntrustedTypeError: .*posix\.system",
    ],
    "04_version_skew": [
        *(
            rf"{fmt}\s+refused: .*saved with scikit-learn 1\.0\.0 but running scikit-learn \d"
            for fmt in ("pickle", "joblib", "cloudpickle", "skops")
        ),
        r"onnx\s+loads: .*\(opsets .*ai\.onnx\.ml \d+.*\), no Python objects",
        r"within \$0\.00\d+ of the in-memory model",
        r"constraints\.txt",
    ],
    "05_onnx_float32_drift": [
        r"NAIVE export .*\n\s+max \|ONNX - scikit-learn\| = \$[1-9]\d*\.\d\d; rows off by more than \$1: [1-9]",
        r"float32 scaler differs from float64-then-float32 on [1-9]\d* of \d+ values",
        r"give the naive ONNX output within \$0\.00\d+",
        r"PACKAGE export .*\n\s+max \|ONNX - scikit-learn\| = \$0\.00\d+ over the same \d+ rows",
    ],
    "06_joblib_compression": [
        *(rf"{level}\s+[\d.]+\s+[\d.]+\s+[\d.]+" for level in ("none", "zlib 1", "zlib 3", "zlib 9")),
        r"zlib 3 is \d+\.\dx smaller than none; the package uses compress=\d",
        r"not compatible with compressed file",
        r"random_forest .*\n\s+with mmap_mode='r': 0 arrays",
        r"hist_gradient_boosting .*\n\s+with mmap_mode='r': [1-9]\d* arrays",
    ],
}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    leftovers: list[str]


def run_demo(script: Path, tmpdir: Path) -> Run:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    env.pop("SUPERKART_SIGNING_KEY", None)  # demos set it themselves where signing is the lesson
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, cwd=ROOT, env=env, timeout=TIMEOUT_S
    )
    leftovers = sorted(p.name for p in tmpdir.iterdir() if p.name not in NOT_DEMO_FILES)
    return Run(done.returncode, done.stdout, done.stderr, time.perf_counter() - started, leftovers)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Run]:
    """Every demo, run two at a time."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {s.stem: pool.submit(run_demo, s, tmp_path_factory.mktemp(s.stem)) for s in DEMOS}
        return {stem: future.result() for stem, future in futures.items()}


def test_demos_are_found():
    assert len(DEMOS) >= 6, f"expected the demos in {DEMO_DIR}"
    unknown = set(EXPECTED) - {s.stem for s in DEMOS}
    assert not unknown, f"EXPECTED names demos that do not exist: {sorted(unknown)}"


def test_readme_lists_every_demo():
    readme = (DEMO_DIR / "README.md").read_text(encoding="utf-8")
    missing = [s.name for s in DEMOS if s.name not in readme]
    assert not missing, f"serialization_demos/README.md does not mention {missing}"


@pytest.mark.slow
@pytest.mark.parametrize("script", DEMOS, ids=[s.stem for s in DEMOS])
def test_demo(script: Path, runs: dict[str, Run]):
    run = runs[script.stem]
    assert run.returncode == 0, f"{script.name} exited {run.returncode}:\n{run.stdout}\n{run.stderr}"
    assert "LESSON FAILED" not in run.stdout + run.stderr
    assert "Lesson:" in run.stdout, f"{script.name} does not state its lesson"
    missing = [p for p in EXPECTED.get(script.stem, []) if not re.search(p, run.stdout)]
    assert not missing, f"{script.name} output lacks {missing}:\n{run.stdout}"
    assert not run.leftovers, f"{script.name} left files in its temporary directory: {run.leftovers}"
