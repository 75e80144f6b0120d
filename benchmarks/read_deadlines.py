"""Benchmark what the read deadlines of ``superkart serve`` cost: its guarded HTTP protocol against uvicorn's own.

Usage::

    python benchmarks/read_deadlines.py [--package DIR] [--workers 1] [--requests 20000] [--rounds 5]

Two servers run at once on free 127.0.0.1 ports, identical but for uvicorn's ``http`` setting:
``superkart_lib.compat.http:GuardedHttpProtocol`` (what ``superkart serve`` uses: a deadline for
each request's head and body, armed when a read leaves a request incomplete) and plain
``httptools`` (the baseline). Both serve the same package through the same app factory with the same limits. They
take turns under the same ``wrk`` client (one-record ``POST /v1/predict``, keep-alive connections,
a fixed number of requests); each cell is the median of ``--rounds`` runs, the order alternating
between rounds. Without ``--package`` a small package is trained first (~1 minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from serving import (
    Server,
    add_pair_options,
    compare_pair,
    load_note,
    start_factory,
)

from superkart_lib.compat.http import GUARDED_HTTP

PROTOCOLS = {"deadlines": GUARDED_HTTP, "uvicorn": "httptools"}


def start(name: str, package: Path, workers: int, logs: Path) -> Server:
    """uvicorn on the app factory with ``http=PROTOCOLS[name]`` and the settings ``run_server`` uses."""
    return start_factory(name, package, workers, logs, PROTOCOLS[name], dict(os.environ))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_pair_options(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    runs, _ = compare_pair(args, list(PROTOCOLS), start, "read deadlines")
    print(f"errors in all measured runs: {sum(r.errors for rs in runs.values() for r in rs)}")
    print(f"took {time.perf_counter() - started:.0f} s; after: {load_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
