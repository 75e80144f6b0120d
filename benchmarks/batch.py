"""Benchmark batch scoring (`superkart predict`) on a large file: in-process against Dask.

Usage::

    python benchmarks/batch.py [--rows 1000000] [--repeats 2] [--package DIR] [--chunk-rows N]

Writes ``--rows`` synthetic rows with ``superkart data`` (kept in ``--workdir`` and reused),
trains a package with ``superkart train --n-iter 2`` unless ``--package`` is given, then scores
the file ``--repeats`` times in each mode, interleaved so a burst of other work hits them alike:

- ``in-process``: one process, chunk after chunk;
- ``dask (embedded)``: ``--dask``: a LocalCluster of 2 single-threaded workers, started per run
  (its start-up is in the time, as a user of ``superkart predict --dask`` pays it);
- ``dask (running cluster)``: ``--dask --scheduler ADDR`` on a cluster started once, warm.

Every output's sha256 must be the same (the modes write identical bytes); rows/s is the median
over runs of rows read per second of wall time (reading, validating, scoring and writing).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from superkart_lib.batch import dask_client, predict_file
from superkart_lib.data import sha256_file

MODES = ("in-process", "dask (embedded)", "dask (running cluster)")


def load_note() -> str:
    """Cores and load average: other processes share the CPU and move every timing."""
    loads = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{os.cpu_count()} cores, load average (1, 5, 15 min) {loads}"


def superkart(*args: str) -> None:
    """Run the command line as a user would."""
    subprocess.run([sys.executable, "-m", "superkart_lib.cli", *args], check=True, stdout=subprocess.DEVNULL)


def prepare(workdir: Path, rows: int, seed: int, package: Path | None) -> tuple[Path, Path]:
    """The data file (generated once per rows and seed) and a model package."""
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / f"superkart-{rows}-seed{seed}.csv"
    if not data.exists():
        print(f"writing {rows:,} rows to {data} ...", file=sys.stderr, flush=True)
        superkart("data", "--rows", str(rows), "--seed", str(seed), "--out", str(data))
    if package is None:
        package = workdir / "model"
        if not (package / "manifest.json").exists():
            print(f"training a package in {package} ...", file=sys.stderr, flush=True)
            superkart("train", "--out", str(package), "--n-iter", "2")
    return data, package


def score(mode: str, package: Path, data: Path, out: Path, chunk_rows: int, address: str | None) -> tuple[float, str]:
    """(rows/s, sha256 of the output) of one run; the output is deleted afterwards."""
    options = {"dask": mode != "in-process", "scheduler": address if mode == "dask (running cluster)" else None}
    report = predict_file(package, data, out, chunk_rows=chunk_rows, progress=False, **options)
    digest = sha256_file(out)
    out.unlink()
    print(f"  {mode:<24}{report.rows_per_second:>12,.0f} rows/s  {report.seconds:7.1f} s  {digest[:16]}", flush=True)
    return report.rows_per_second, digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the file (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic data")
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode (default 2)")
    parser.add_argument("--chunk-rows", type=int, default=50_000, help="rows per chunk (default 50,000)")
    parser.add_argument("--package", type=Path, help="model package (default: train one in --workdir)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/benchmarks/batch"), help="data, package, outputs")
    args = parser.parse_args()

    data, package = prepare(args.workdir, args.rows, args.seed, args.package)
    print(f"python {platform.python_version()} on {platform.platform()}; before: {load_note()}")
    print(
        f"{args.rows:,} rows ({data.stat().st_size / 1e6:,.0f} MB), chunks of {args.chunk_rows:,}, {args.repeats} runs"
    )
    rates: dict[str, list[float]] = {mode: [] for mode in MODES}
    digests: set[str] = set()
    with dask_client() as client:
        address = client.scheduler.address
        for run in range(1, args.repeats + 1):
            print(f"run {run}:")
            for mode in MODES:
                out = args.workdir / "scored.csv"
                rate, digest = score(mode, package, data, out, args.chunk_rows, address)
                rates[mode].append(rate)
                digests.add(digest)
    print(f"after: {load_note()}")
    base = statistics.median(rates["in-process"])
    for mode in MODES:
        median, best = statistics.median(rates[mode]), max(rates[mode])
        print(f"{mode:<24} median {median:>8,.0f} rows/s ({median / base:.2f}x in-process), best {best:>8,.0f}")
    print(f"outputs identical across modes and runs: {'yes' if len(digests) == 1 else 'NO'}")
    if len(digests) != 1:
        sys.exit(1)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"benchmark took {time.perf_counter() - started:.0f} s", file=sys.stderr)
