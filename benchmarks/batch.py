"""Benchmark batch scoring (`superkart predict`) on a large file: in-process against Dask, and against another tree.

Usage::

    python benchmarks/batch.py [--rows 1000000] [--repeats 2] [--package DIR] [--chunk-rows N] [--baseline DIR]

Writes ``--rows`` synthetic rows with ``superkart data`` (kept in ``--workdir`` and reused),
trains a package with ``superkart train --n-iter 2`` unless ``--package`` is given, then scores
the file ``--repeats`` times in each mode, interleaved so a burst of other work hits them alike:

- ``in-process``: one process, chunk after chunk;
- ``dask (embedded)``: ``--dask``: a LocalCluster of 2 single-threaded workers, started per run
  (its start-up is in the time, as a user of ``superkart predict --dask`` pays it);
- ``dask (running cluster)``: ``--dask --scheduler ADDR`` on a cluster started once, warm;
- ``baseline in-process`` (with ``--baseline DIR``): ``superkart predict`` of the source tree at
  ``DIR`` (a checkout from before a change), run in a subprocess with that tree first on the path;
  its rows/s is the one its own summary line reports, timed as ``predict_file`` times itself.

Every output's sha256 must be the same (the modes write identical bytes); rows/s is the median
over runs of rows read per second of wall time (reading, validating, scoring and writing).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from superkart_lib.contract.files import sha256_of
from superkart_lib.development.cluster import dask_client
from superkart_lib.development.dask_batch import DaskChunks
from superkart_lib.production.batch import predict_file

MODES = ("in-process", "dask (embedded)", "dask (running cluster)")
BASELINE = "baseline in-process"


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


def baseline(tree: Path, package: Path, data: Path, out: Path, chunk_rows: int) -> tuple[float, float]:
    """(rows/s, seconds) of ``superkart predict`` from the source tree ``tree``, as its summary line reports them."""
    command = [sys.executable, "-m", "superkart_lib.cli", "predict", "--model", str(package.resolve())]
    command += ["--input", str(data.resolve()), "--output", str(out.resolve()), "--chunk-rows", str(chunk_rows)]
    env = {**os.environ, "PYTHONPATH": str(tree.resolve())}
    done = subprocess.run([*command, "--quiet"], cwd=tree, env=env, capture_output=True, text=True, check=False)
    found = re.search(r"in ([\d.]+) s \(([\d,]+) rows/s", done.stdout)
    if done.returncode or not found:
        sys.exit(f"{BASELINE} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return float(found.group(2).replace(",", "")), float(found.group(1))


def score(
    mode: str, package: Path, data: Path, out: Path, chunk_rows: int, address: str | None, tree: Path | None
) -> tuple[float, str]:
    """(rows/s, sha256 of the output) of one run; the output is deleted afterwards."""
    if mode == BASELINE:
        assert tree is not None
        rate, seconds = baseline(tree, package, data, out, chunk_rows)
    else:
        cluster = None if mode == "in-process" else DaskChunks(address if mode == "dask (running cluster)" else None)
        report = predict_file(package, data, out, chunk_rows=chunk_rows, progress=False, cluster=cluster)
        rate, seconds = report.rows_per_second, report.seconds
    digest = sha256_of(out)
    out.unlink()
    print(f"  {mode:<24}{rate:>12,.0f} rows/s  {seconds:7.1f} s  {digest[:16]}", flush=True)
    return rate, digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the file (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic data")
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode (default 2)")
    parser.add_argument("--chunk-rows", type=int, default=50_000, help="rows per chunk (default 50,000)")
    parser.add_argument("--package", type=Path, help="model package (default: train one in --workdir)")
    parser.add_argument("--workdir", type=Path, default=Path("runs/benchmarks/batch"), help="data, package, outputs")
    parser.add_argument("--baseline", type=Path, metavar="DIR", help="also score with the source tree at DIR")
    args = parser.parse_args()
    modes = (BASELINE, *MODES) if args.baseline else MODES

    data, package = prepare(args.workdir, args.rows, args.seed, args.package)
    print(f"python {platform.python_version()} on {platform.platform()}; before: {load_note()}")
    print(
        f"{args.rows:,} rows ({data.stat().st_size / 1e6:,.0f} MB), chunks of {args.chunk_rows:,}, {args.repeats} runs"
    )
    rates: dict[str, list[float]] = {mode: [] for mode in modes}
    digests: set[str] = set()
    with dask_client() as client:
        address = client.scheduler_info()["address"]
        for run in range(1, args.repeats + 1):
            print(f"run {run}:")
            for mode in modes:
                out = args.workdir / "scored.csv"
                rate, digest = score(mode, package, data, out, args.chunk_rows, address, args.baseline)
                rates[mode].append(rate)
                digests.add(digest)
    print(f"after: {load_note()}")
    base = statistics.median(rates["in-process"])
    for mode in modes:
        median, best = statistics.median(rates[mode]), max(rates[mode])
        print(f"{mode:<24} median {median:>8,.0f} rows/s ({median / base:.2f}x in-process), best {best:>8,.0f}")
    print(f"outputs identical across modes and runs: {'yes' if len(digests) == 1 else 'NO'}")
    if len(digests) != 1:
        sys.exit(1)


if __name__ == "__main__":
    started = time.perf_counter()
    main()
    print(f"benchmark took {time.perf_counter() - started:.0f} s", file=sys.stderr)
