"""Demo 01: one trained model, five file formats, the same predictions after a round trip.

Trains a small gradient-boosting pipeline, writes the full model package, loads every
format back through the library's verified loaders and compares predictions row by row.
Run: python serialization_demos/01_round_trip.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from superkart_lib.contract import formats, schema
from superkart_lib.development import python_formats
from superkart_lib.development.data import load_training_data
from superkart_lib.development.package import WRITERS, write_package
from superkart_lib.development.train import compare_zoo, split, train
from superkart_lib.production.runtime import OnnxModel

ROWS, SEED, REPEATS, BUDGET_S = 2000, 0, 3, 1.0
ONNX_TOLERANCE = 0.01  # dollars: the production environment's promise, within one cent on every row


def expect(condition: bool, message: str) -> None:
    """Exit non-zero, naming the lesson that did not hold."""
    if not condition:
        sys.exit(f"LESSON FAILED: {message}")


def median_seconds(action: Callable[[], object]) -> float:
    """Median wall time of up to REPEATS runs (fewer once BUDGET_S is spent), after an untimed warm-up."""
    action()  # the first call pays for imports and caches
    times: list[float] = []
    while len(times) < REPEATS and sum(times) < BUDGET_S:
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    frame, facts = load_training_data(None, rows=ROWS, seed=SEED)
    data = split(frame, seed=SEED)
    # One family and no tuning keeps the demo fast; a single-process zoo avoids starting loky workers.
    zoo = compare_zoo(data, seed=SEED, families=["gradient_boosting"], n_jobs=1)
    result = train(frame, seed=SEED, n_iter=0, zoo=zoo)
    model = result.model
    expected = model.predict(data.X_test)
    print(f"Trained {result.family} on {result.train_rows} synthetic rows; test R2 {result.metrics['r2']:.3f}.")

    with tempfile.TemporaryDirectory() as tmp:
        package = write_package(result, Path(tmp) / "model", facts)
        scratch = Path(tmp) / "scratch"
        scratch.mkdir()
        print(f"Package written: {', '.join(sorted(p.name for p in package.iterdir()))}\n")
        print("save = the package's writer for the file (ONNX: export + parity check on probe rows);")
        print(f"load = sha256 + version checks + deserialise. Median of up to {REPEATS} runs.")
        print(f"{'format':<12} {'file':<18} {'size KB':>9} {'save ms':>9} {'load ms':>9}  max |diff| vs memory")

        columns = {name: data.X_test[name].to_numpy() for name in schema.FEATURE_COLUMNS}
        for name, write in WRITERS.items():
            size_kb = (package / name).stat().st_size / 1024
            save_s = median_seconds(lambda write=write, name=name: write(model, scratch / name))
            if name == "model.onnx":
                load_s = median_seconds(lambda: OnnxModel.from_package(package))
                got = OnnxModel.from_package(package).predict(columns)
            else:
                load_s = median_seconds(lambda name=name: python_formats.load(package, name))
                got = python_formats.load(package, name).predict(data.X_test)
            worst = float(np.max(np.abs(got - expected)))
            fmt = formats.get_format(name).name
            verdict = "bit-for-bit" if np.array_equal(got, expected) else f"${worst:.6f}"
            print(f"{fmt:<12} {name:<18} {size_kb:>9.1f} {save_s * 1e3:>9.1f} {load_s * 1e3:>9.1f}  {verdict}")
            if name == "model.onnx":
                expect(worst <= ONNX_TOLERANCE, f"ONNX differs by ${worst:.4f} (> ${ONNX_TOLERANCE})")
            else:
                expect(np.array_equal(got, expected), f"{fmt} predictions are not bit-for-bit identical")

    print(f"\nAll {len(expected)} test rows checked in every format.")
    print(
        "Lesson: pickle, joblib, cloudpickle and skops rebuild the same Python objects, so predictions are "
        "bit-for-bit identical;\nONNX is a re-implementation of the pipeline as a graph, so it is checked to "
        f"within ${ONNX_TOLERANCE} on every row."
    )


if __name__ == "__main__":
    main()
