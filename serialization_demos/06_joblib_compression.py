"""Demo 06: joblib compression levels (size vs time) and memory mapping.

Dumps the project's random-forest pipeline at several compression levels, then loads an
uncompressed file with ``mmap_mode="r"`` to see which arrays stay on disk, shared by every
process that maps the file.
Run: python serialization_demos/06_joblib_compression.py
"""

from __future__ import annotations

import importlib.util
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
from threadpoolctl import threadpool_limits

from superkart_lib.development import python_formats
from superkart_lib.development.models import FAMILIES
from superkart_lib.development.synthetic import generate
from superkart_lib.development.train import split

REPEATS, BUDGET_S = 3, 1.0
ROWS = 1000  # a ~3 MB forest: big enough to compress, small enough for zlib 9 to take about a second
LEVELS: list[tuple[str, int | tuple[str, int]]] = [("none", 0), *((f"zlib {n}", ("zlib", n)) for n in (1, 3, 9))]
HAS_LZ4 = importlib.util.find_spec("lz4") is not None
if HAS_LZ4:
    LEVELS.append(("lz4 3", ("lz4", 3)))


def expect(condition: bool, message: str) -> None:
    """Exit non-zero, naming the lesson that did not hold."""
    if not condition:
        sys.exit(f"LESSON FAILED: {message}")


def median_seconds(action: Callable[[], object]) -> float:
    """Median wall time of up to REPEATS runs; slow actions (zlib 9) stop once BUDGET_S is spent."""
    times: list[float] = []
    while len(times) < REPEATS and sum(times) < BUDGET_S:
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def memmapped(obj: object) -> tuple[int, int]:
    """(count, bytes) of the numpy memmaps reachable through ``obj``'s attributes and containers."""
    count = size = 0
    stack, seen = [obj], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, np.memmap):
            count, size = count + 1, size + node.nbytes
        elif isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            stack.extend(node)
        elif hasattr(node, "__dict__"):
            stack.extend(vars(node).values())
    return count, size


def compression_table(model, folder: Path) -> dict[str, int]:
    print(f"   {'compress':<9} {'size KB':>9} {'dump ms':>9} {'load ms':>9}   (median of up to {REPEATS} runs)")
    sizes = {}
    for label, compress in LEVELS:
        path = folder / f"{label.replace(' ', '')}.joblib"
        dump_s = median_seconds(lambda path=path, compress=compress: joblib.dump(model, path, compress=compress))
        load_s = median_seconds(lambda path=path: joblib.load(path))
        sizes[label] = path.stat().st_size
        print(f"   {label:<9} {sizes[label] / 1024:>9.1f} {dump_s * 1e3:>9.1f} {load_s * 1e3:>9.1f}")
    if not HAS_LZ4:
        print("   lz4       not installed (pip install lz4 adds a fast compressor); skipped")
    return sizes


def mmap_report(name: str, model, X, folder: Path) -> int:
    """Load an uncompressed dump with and without mmap_mode; return how many arrays were mapped."""
    path = folder / f"{name}.joblib"
    joblib.dump(model, path)
    plain_s = median_seconds(lambda: joblib.load(path))
    mapped_s = median_seconds(lambda: joblib.load(path, mmap_mode="r"))
    mapped = joblib.load(path, mmap_mode="r")
    count, size = memmapped(mapped)
    kb = path.stat().st_size / 1024
    print(f"   {name:<23} {kb:>6.0f} KB file; load {plain_s * 1e3:.0f} ms (mapped {mapped_s * 1e3:.0f} ms)")
    print(f"   {'':<23} with mmap_mode='r': {count} arrays ({size / 1024:.0f} KB) stay mapped from disk")
    expect(np.array_equal(mapped.predict(X), model.predict(X)), f"the memory-mapped {name} should predict the same")
    return count


def main() -> None:
    data = split(generate(ROWS, seed=0))
    forest = FAMILIES["random_forest"].pipeline(0).fit(data.X_train, data.y_train)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        print(f"1) The project's random_forest pipeline (100 trees, {len(data.X_train)} rows) dumped with joblib:")
        sizes = compression_table(forest, folder)
        for label, size in sizes.items():
            if label != "none":
                expect(size < sizes["none"], f"{label} should be smaller than uncompressed")
        ratio = sizes["none"] / sizes["zlib 3"]
        level = python_formats.JOBLIB_COMPRESS
        print(f"   zlib 3 is {ratio:.1f}x smaller than none; the package uses compress={level}.")

        print("\n2) Memory mapping (uncompressed files only):")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            joblib.load(folder / "zlib3.joblib", mmap_mode="r")
        expect(any("compressed" in str(w.message) for w in caught), "mmap of a compressed file should warn")
        print(f"   compressed file: joblib warns: {str(caught[0].message).replace(tmp, '<tmp>')}")
        with threadpool_limits(1):  # HGB's OpenMP threads only fight each other on a busy 2-core machine
            boosted = FAMILIES["hist_gradient_boosting"].pipeline(0).fit(data.X_train, data.y_train)
        forest_maps = mmap_report("random_forest", forest, data.X_test, folder)
        boosted_maps = mmap_report("hist_gradient_boosting", boosted, data.X_test, folder)
        expect(forest_maps == 0 < boosted_maps, "only arrays kept as numpy attributes should be mapped")
        print("   scikit-learn's Tree (random forest, gradient boosting) copies its node arrays into its own memory")
        print("   on load, so mapping saves nothing there; HistGradientBoosting keeps plain numpy node arrays, which")
        print("   stay on disk and are shared by every server worker that maps the same file.")

    print(
        "\nLesson: compression shrinks the file several-fold for a little dump time (level 9 costs much more for"
        "\nlittle gain); mmap_mode needs an uncompressed file and helps only models that keep numpy arrays as is."
    )


if __name__ == "__main__":
    main()
