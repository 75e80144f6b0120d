"""Compare the package's model formats on the real model: size, save and load time,
single-row latency, batch throughput, parity with scikit-learn, what loading needs and risks.

Every timing is single-threaded (threadpoolctl here, thread variables in the load
children, the runtime's one-thread onnxruntime session) so formats compare like for
like, and is a median over ``repeats`` runs, interleaved across formats so a burst
of other work on the machine hits them all alike. Timings still depend on that work.
The table's text, chart and JSON: :mod:`superkart_lib.course.compare_report`.
"""

from __future__ import annotations

import gc
import json
import os
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

import superkart_lib
from superkart_lib.contract import formats, schema
from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import SuperKartError
from superkart_lib.contract.formats import ONNX_FILE
from superkart_lib.development import python_formats
from superkart_lib.production.runtime import OnnxModel

#: Parity and the scikit-learn side of the latency ratio are measured against this file's model.
REFERENCE = "model.joblib"
FALLBACK_ROWS, FALLBACK_SEED = 2000, 1
_DISTINCT_ROWS = 100  # one-row inputs cycled through, so no single row's cache luck decides
#: Columns of a comparison table, in order (what each holds: :func:`compare_formats`).
COLUMNS: tuple[str, ...] = (
    "format", "file", "size_bytes", "save_ms",
    "import_ms", "load_ms", "process_ms",  # in a fresh process
    "p50_us", "p99_us", "rows_per_s",  # in this one
    "parity_usd", "executes_code", "requires",
)  # fmt: skip
_SYNTHETIC_SOURCE = re.compile(r"synthetic\(rows=(\d+), seed=(-?\d+)\)")
#: Distribution name -> module a fresh process imports before the timed load.
_MODULE_OF = {
    "scikit-learn": "sklearn",
    "skops": "skops.io",
    "superkart_lib": "superkart_lib.development.python_formats",
}
_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")
# Runs in a fresh interpreter: import what the format needs, then time only the verified load.
_CHILD = f"""
import importlib, json, sys, time
start = time.perf_counter()
package_dir, filename, *modules = sys.argv[1:]
for name in modules:
    importlib.import_module(name)
imported = time.perf_counter()
if filename == {ONNX_FILE!r}:
    importlib.import_module("superkart_lib.production.runtime").OnnxModel.from_package(package_dir)
else:
    importlib.import_module("superkart_lib.development.python_formats").load(package_dir, filename)
done = time.perf_counter()
print(json.dumps({{"import_ms": (imported - start) * 1e3, "load_ms": (done - imported) * 1e3}}))
"""


def read_data(path: str | Path) -> pd.DataFrame:
    """Validated raw records from a SuperKart CSV (the target, if present, dropped)."""
    from superkart_lib.development.data import read_csv

    return read_csv(path, require_target=False).drop(columns=[schema.TARGET], errors="ignore")


def _training_frame(facts: dict[str, Any]) -> pd.DataFrame | None:
    """The training data rebuilt from the manifest's facts, or None unless its sha256 matches."""
    from superkart_lib.development.data import load_training_data  # the one place the data's sha256 convention lives

    source = str(facts.get("source", ""))
    synthetic = _SYNTHETIC_SOURCE.fullmatch(source)
    try:
        if synthetic:
            frame, rebuilt = load_training_data(None, rows=int(synthetic[1]), seed=int(synthetic[2]))
        elif source and Path(source).is_file():
            frame, rebuilt = load_training_data(source)
        else:
            return None
    except SuperKartError:
        return None
    return frame if rebuilt["sha256"] == facts.get("sha256") else None


def default_data(package_dir: str | Path, manifest: dict[str, Any] | None = None) -> tuple[pd.DataFrame, str]:
    """Rows to compare on: the package's test split if its training data is reproducible, else synthetic.

    Returns
    -------
    (pandas.DataFrame, str)
        Raw records without the target, and a description of where they came from.
    """
    from superkart_lib.development.settings import SEED, TEST_SIZE
    from superkart_lib.development.synthetic import generate
    from superkart_lib.development.train import split

    manifest = mf.read(package_dir) if manifest is None else manifest
    facts = manifest.get("training_data") or {}
    frame = _training_frame(facts)
    if frame is not None:
        seed = int((manifest.get("model") or {}).get("seed", SEED))
        test = split(frame, seed=seed, test_size=float(facts.get("test_size", TEST_SIZE))).X_test
        return test.reset_index(drop=True), f"test split of {facts['source']} ({len(test):,} rows)"
    rows = generate(FALLBACK_ROWS, seed=FALLBACK_SEED).drop(columns=[schema.TARGET])
    # A manifest records a CSV file by fingerprint only, never by path: the caller has the file.
    why = "not reproducible"
    if facts.get("source") == "file":
        why = "trained on a CSV file: pass --data FILE for its rows"
    return rows, f"synthetic(rows={FALLBACK_ROWS}, seed={FALLBACK_SEED}) (training data {why})"


@dataclass
class _Candidate:
    """One format loaded in this process: its one-row and all-rows prediction paths."""

    fmt: formats.Format
    model: Any
    single: Callable[[Any], Any]
    inputs: list[Any]  # one-row DataFrames (scikit-learn) or record dicts (ONNX)
    batch: Callable[[], Any]


def _modules_needed(fmt: formats.Format, model: Any) -> list[str]:
    """Modules a fresh process imports before its timed load: the format's needs and the model's classes."""
    needed = [_MODULE_OF.get(r, r) for r in fmt.requires]
    if fmt.filename == ONNX_FILE:
        return [*needed, "superkart_lib.production.runtime"]
    parts = model.get_params(deep=True).values() if hasattr(model, "get_params") else ()
    return [*needed, *sorted({type(p).__module__ for p in (model, *parts) if hasattr(p, "fit")})]


def _candidates(package_dir: Path, frame: pd.DataFrame) -> dict[str, _Candidate]:
    """Every format of ``FORMATS`` loaded (verified) from the package, by file name."""
    one_rows = [frame.iloc[[i]] for i in range(min(len(frame), _DISTINCT_ROWS))]
    records = frame[list(schema.FEATURE_COLUMNS)].iloc[:_DISTINCT_ROWS].to_dict("records")
    columns = {name: frame[name].to_numpy() for name in schema.FEATURE_COLUMNS}
    found = {}
    for name, fmt in formats.FORMATS.items():
        if name in python_formats.CODECS:
            model = python_formats.load(package_dir, name)
            found[name] = _Candidate(fmt, model, model.predict, one_rows, partial(model.predict, frame))
        elif name == ONNX_FILE:
            onnx = OnnxModel.from_package(package_dir)
            found[name] = _Candidate(fmt, onnx, onnx.predict, records, partial(onnx.predict, columns))
        else:
            raise SuperKartError(f"{name}: no comparison for {fmt.name} files")
    return found


def _seconds(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _save_ms(candidate: _Candidate, reference: Any, repeats: int) -> float:
    """Median time (ms) to serialise the loaded model again; ONNX: to export the reference pipeline."""
    codec = python_formats.CODECS.get(candidate.fmt.filename)
    if codec is not None:
        save = partial(codec.dumps, candidate.model)
    else:
        from superkart_lib.development.onnx_export import export_bytes

        save = partial(export_bytes, reference, check=False)
    return float(np.median([_seconds(save) for _ in range(repeats)])) * 1e3


def latency_us(
    predict: Callable[[Any], Any], inputs: Sequence[Any], calls: int, min_seconds: float = 0.0
) -> tuple[float, float]:
    """p50 and p99 in microseconds of one-row predictions cycling through ``inputs``.

    Times at least ``calls`` predictions and keeps going until ``min_seconds`` have passed,
    so a 50 µs model is timed over thousands of calls, not the 30 that take a 15 ms one
    half a second, and its p99 is a percentile rather than the slowest call.
    """
    gc.collect()  # so one format does not pay for the garbage another left
    times: list[int] = []
    deadline = time.perf_counter_ns() + int(min_seconds * 1e9)
    i = 0
    while i < calls or time.perf_counter_ns() < deadline:
        item = inputs[i % len(inputs)]
        started = time.perf_counter_ns()
        predict(item)
        times.append(time.perf_counter_ns() - started)
        i += 1
    p50, p99 = np.percentile(times, [50, 99]) / 1e3
    return float(p50), float(p99)


def _fresh_load(package_dir: Path, filename: str, modules: Sequence[str]) -> dict[str, float]:
    """Import and verified-load times (ms) measured inside a new interpreter, and its whole wall time."""
    src = str(Path(superkart_lib.__file__).resolve().parents[1])  # the directory holding the package
    env = {**os.environ, **dict.fromkeys(_THREAD_VARS, "1")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-c", _CHILD, str(package_dir), filename, *modules]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    wall_ms = (time.perf_counter() - started) * 1e3
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise SuperKartError(f"{package_dir / filename}: loading in a fresh process failed: {last}")
    return {**json.loads(lines[-1]), "process_ms": wall_ms}


def _timed_runs(
    found: dict[str, _Candidate], package_dir: Path, repeats: int, calls: int, seconds: float, load_repeats: int
) -> dict[str, dict[str, list[float]]]:
    """Per format, one sample per run of each timing; runs interleave formats."""
    samples: dict[str, dict[str, list[float]]] = {name: defaultdict(list) for name in found}
    for c in found.values():
        for item in c.inputs[:3]:  # first calls fill caches and lazy imports, which a server pays once
            c.single(item)
    for _ in range(repeats):
        for name, c in found.items():
            samples[name]["batch_s"].append(_seconds(c.batch))
            for key, value in zip(("p50_us", "p99_us"), latency_us(c.single, c.inputs, calls, seconds), strict=True):
                samples[name][key].append(value)
    modules = {name: _modules_needed(c.fmt, c.model) for name, c in found.items()}
    for _ in range(load_repeats):
        for name in found:
            for key, value in _fresh_load(package_dir, name, modules[name]).items():
                samples[name][key].append(value)
    return samples


def compare_formats(
    package_dir: str | Path,
    data: pd.DataFrame | None = None,
    repeats: int = 5,
    latency_calls: int = 30,
    latency_seconds: float = 0.25,
    load_repeats: int = 1,
) -> pd.DataFrame:
    """Measure every format of a model package on the same rows.

    Parameters
    ----------
    package_dir : path
        A model package (what ``superkart train --out`` writes).
    data : pandas.DataFrame, optional
        Raw records; default :func:`default_data`.
    repeats : int
        Runs of each in-process timing; a timing is the median over runs (p99 too: a burst
        of other work during one run does not move it).
    latency_calls : int
        Least number of timed one-row predictions per run and format (scikit-learn takes ~15 ms each).
    latency_seconds : float
        Least time spent timing one-row predictions per run and format.
    load_repeats : int
        Fresh processes per format; each pays an interpreter and a scikit-learn import (~2 s).

    Returns
    -------
    pandas.DataFrame
        One row per format of ``FORMATS``, columns :data:`COLUMNS`: ``size_bytes`` on disk;
        ``save_ms`` to serialise the model again (ONNX: export); ``import_ms`` and ``load_ms``
        inside a fresh process (imports the format needs, then the verified load) and
        ``process_ms`` its wall time; ``p50_us``/``p99_us`` for one row (a one-row DataFrame for
        scikit-learn formats, a dict for ONNX); ``rows_per_s`` predicting all rows at once;
        ``parity_usd``, max |prediction - the joblib model's| in $; ``requires`` and
        ``executes_code`` from ``FORMATS``. ``attrs``: ``data``, ``rows``, ``repeats``,
        ``latency_calls``, ``load_repeats`` and ``ratio`` (:func:`latency_ratio`).
    """
    package_dir = Path(package_dir)
    described = "given rows"
    if data is None:
        data, described = default_data(package_dir)
    missing = [c for c in schema.FEATURE_COLUMNS if c not in data.columns]
    if missing or data.empty:
        raise SuperKartError(f"comparison data: {f'missing column {missing[0]!r}' if missing else 'no rows'}")
    frame = data[[c for c in schema.INPUT_COLUMNS if c in data.columns]].reset_index(drop=True)
    repeats, calls, load_repeats = max(1, repeats), max(1, latency_calls), max(1, load_repeats)
    with threadpool_limits(1):
        found = _candidates(package_dir, frame)
        reference = found[REFERENCE].model
        expected = np.asarray(reference.predict(frame), dtype=np.float64)
        rows: dict[str, dict[str, Any]] = {}
        for name, c in found.items():
            got = np.asarray(c.batch(), dtype=np.float64).reshape(-1)
            rows[name] = {
                "format": c.fmt.name,
                "file": name,
                "size_bytes": (package_dir / name).stat().st_size,
                "save_ms": _save_ms(c, reference, repeats),
                "parity_usd": float(np.max(np.abs(got - expected))),
                "requires": tuple(c.fmt.requires),
                "executes_code": bool(c.fmt.executes_code),
            }
        samples = _timed_runs(found, package_dir, repeats, calls, max(0.0, latency_seconds), load_repeats)
    for name, row in rows.items():
        row.update({key: float(np.median(values)) for key, values in samples[name].items()})
        row["rows_per_s"] = len(frame) / row.pop("batch_s")
    table = pd.DataFrame(list(rows.values()))[list(COLUMNS)]
    table.attrs.update(data=described, rows=len(frame), repeats=repeats, latency_calls=calls)
    table.attrs.update(load_repeats=load_repeats, ratio=latency_ratio(table))
    return table


def latency_ratio(table: pd.DataFrame) -> dict[str, float]:
    """One-row p50s (µs) of ONNX from a dict and of the joblib pipeline on a one-row DataFrame,
    ``ratio`` (ONNX time / scikit-learn time) and ``speedup`` (its inverse)."""
    p50 = table.set_index("file")["p50_us"]
    onnx, sklearn = float(p50[ONNX_FILE]), float(p50[REFERENCE])
    ratio = {"onnx_dict_p50_us": onnx, "sklearn_pandas_p50_us": sklearn}
    return {**ratio, "ratio": onnx / sklearn, "speedup": sklearn / onnx}
