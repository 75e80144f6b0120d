"""Benchmark the model package's five formats: size, save/load time, latency, throughput, parity.

Usage::

    python benchmarks/serialization.py [--package DIR] [--repeats N] [--chart out.png]

Without ``--package`` it trains a small package on the built-in synthetic data first (the
whole zoo, a short search) in a temporary directory. Timings are single-threaded medians;
other processes on the machine still move them, so the load average is printed with them.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from superkart_lib.contract.errors import SuperKartError
from superkart_lib.course import compare, compare_report

DEFAULT_CHART = Path("runs/benchmarks/serialization.png")


def train_package(out: Path, rows: int, n_iter: int, seed: int = 0) -> Path:
    """Train on synthetic data and write the package to ``out`` (its test split is reproducible)."""
    from superkart_lib.development.data import load_training_data
    from superkart_lib.development.package import write_package
    from superkart_lib.development.train import train

    frame, facts = load_training_data(None, rows=rows, seed=seed)
    print(f"training on {facts['source']} (n_iter={n_iter}) ...", file=sys.stderr, flush=True)
    result = train(frame, seed=seed, n_iter=n_iter)
    print(f"trained {result.family}: test r2={result.metrics['r2']:.4f}", file=sys.stderr)
    return write_package(result, out, facts)


def ratio_lines(ratio: dict[str, float]) -> list[str]:
    """ONNX-from-dict and scikit-learn-one-pandas-row p50 side by side, and their ratio."""
    rows = [
        ("ONNX, OnnxModel.predict(dict)", f"{ratio['onnx_dict_p50_us']:,.0f} µs"),
        ("scikit-learn pipeline, predict(one-row DataFrame)", f"{ratio['sklearn_pandas_p50_us']:,.0f} µs"),
        ("ratio ONNX / scikit-learn", f"{ratio['ratio']:.4f} (ONNX {ratio['speedup']:.1f}x faster)"),
    ]
    return ["single-row p50, measured in the same run:", *(f"  {label:<52}{value}" for label, value in rows)]


def load_note() -> str:
    """Cores and load average: other processes share the CPU and move every timing."""
    loads = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{os.cpu_count()} cores, load average (1, 5, 15 min) {loads}"


def run(args: argparse.Namespace, package: Path) -> None:
    print(f"python {platform.python_version()} on {platform.platform()}; before: {load_note()}")
    started = time.perf_counter()
    table = compare.compare_formats(
        package,
        data=compare.read_data(args.data) if args.data else None,
        repeats=args.repeats,
        latency_calls=args.latency_calls,
        latency_seconds=args.latency_seconds,
        load_repeats=args.load_repeats,
    )
    elapsed = time.perf_counter() - started
    print(f"package: {package}")
    print(compare_report.format_table(table))
    print()
    print("\n".join(ratio_lines(table.attrs["ratio"])))
    print(
        f"\n{args.repeats} runs x at least {args.latency_calls} one-row calls and {args.latency_seconds} s per format, "
        f"{args.load_repeats} fresh processes per format; took {elapsed:.0f} s; after: {load_note()}"
    )
    chart = Path(args.chart)
    chart.parent.mkdir(parents=True, exist_ok=True)
    compare_report.comparison_chart(table).savefig(chart, dpi=100)
    print(f"chart: {chart}")
    if args.json:
        compare_report.save_comparison(table, args.json)
        print(f"json: {args.json}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", help="model package directory (default: train a small one)")
    parser.add_argument("--data", help="SuperKart CSV to compare on (default: the package's test split)")
    parser.add_argument("--repeats", type=int, default=7, help="runs per timing; medians reported (default 7)")
    parser.add_argument("--latency-calls", type=int, default=200, help="least one-row calls per run and format")
    parser.add_argument(
        "--latency-seconds", type=float, default=0.5, help="least seconds of one-row calls per run and format"
    )
    parser.add_argument("--load-repeats", type=int, default=3, help="fresh processes per format (default 3)")
    parser.add_argument("--chart", default=str(DEFAULT_CHART), help=f"PNG to write (default {DEFAULT_CHART})")
    parser.add_argument("--json", help="also write the table and ratio as JSON here")
    parser.add_argument("--rows", type=int, default=8763, help="synthetic rows when training (default 8763)")
    parser.add_argument("--n-iter", type=int, default=2, help="search candidates when training (default 2)")
    args = parser.parse_args(argv)
    try:
        if args.package:
            run(args, Path(args.package))
            return 0
        with tempfile.TemporaryDirectory(prefix="superkart-bench-") as tmp:
            run(args, train_package(Path(tmp) / "model", args.rows, args.n_iter))
        return 0
    except SuperKartError as exc:
        print(f"serialization benchmark: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
