"""Benchmark what Prometheus metrics cost ``superkart serve``: the same server with and without them.

Usage::

    python benchmarks/metrics_cost.py [--package DIR] [--workers 1] [--requests 20000] [--rounds 5]

Two servers run at once on free 127.0.0.1 ports, identical (the app factory and settings
``run_server`` uses) but for ``SUPERKART_METRICS``: ``metrics`` records every request in the
middleware and every prediction, in prometheus-client's multi-process mode (a
``PROMETHEUS_MULTIPROC_DIR`` of its own: what ``--workers N`` runs, the costlier of the two
modes, a locked write to a shared file per value); ``off`` has no middleware and no ``/metrics``.
They take turns under the same ``wrk`` client (one-record ``POST /v1/predict``, keep-alive
connections, a fixed number of requests); each cell is the median of ``--rounds`` runs, the
order alternating between rounds. Afterwards the metrics server's ``/metrics`` must count every
request sent. Without ``--package`` a small package is trained first (~1 minute).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.request
from pathlib import Path

from serving import (
    Server,
    add_pair_options,
    compare_pair,
    load_note,
    start_process,
)

from superkart_lib.compat import http
from superkart_lib.contract import limits
from superkart_lib.course.serving import free_port
from superkart_lib.production import server as serve

SERVERS = ("metrics", "off")


def start(name: str, package: Path, workers: int, logs: Path) -> Server:
    """uvicorn on the app factory with the settings ``run_server`` uses; metrics on or off."""
    port = free_port()
    call = (
        f"uvicorn.run({serve.APP_FACTORY!r}, factory=True, host='127.0.0.1', port={port}, workers={workers}, "
        f"http={http.http_protocol()!r}, timeout_keep_alive={serve.KEEP_ALIVE_TIMEOUT}, "
        f"limit_concurrency={limits.MAX_CONNECTIONS}, log_level='warning')"
    )
    env = {**os.environ, serve.MODEL_ENV: str(package.resolve())}
    env.pop(serve.METRICS_DIR_ENV, None)
    if name == "metrics":
        env[serve.METRICS_DIR_ENV] = str(logs / "prometheus")
        (logs / "prometheus").mkdir()
    else:
        env["SUPERKART_METRICS"] = "off"
    command = [sys.executable, "-c", f"import uvicorn; {call}"]
    return start_process(name, f"http://127.0.0.1:{port}", command, logs / f"{name}.log", env)


def counted_predictions(url: str) -> int:
    """``POST /v1/predict`` answers 200 counted by the server's ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return round(
        sum(
            s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == "superkart_requests_total"
            and s.labels == {"route": "/v1/predict", "method": "POST", "status": "200"}
        )
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_pair_options(parser)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    runs, counted = compare_pair(args, SERVERS, start, "metrics", inspect=lambda s: counted_predictions(s.url))
    sent = sum(r.requests - r.errors for r in runs["metrics"])
    verdict = "yes" if counted >= sent else "NO"
    print(f"/metrics counted every prediction answered: {verdict} ({counted:,} counted, {sent:,} measured + warm-up)")
    print(f"errors in all measured runs: {sum(r.errors for rs in runs.values() for r in rs)}")
    print(f"took {time.perf_counter() - started:.0f} s; after: {load_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
