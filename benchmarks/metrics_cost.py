"""Benchmark what Prometheus metrics cost ``superkart serve``: the same server with and without them.

Usage::

    python benchmarks/metrics_cost.py [--package DIR] [--workers 1] [--requests 20000] [--rounds 5]
                                      [--in-process-runs 15] [--in-process-requests N]

Two servers run at once on free 127.0.0.1 ports, identical (the app factory and settings
``run_server`` uses) but for ``SUPERKART_METRICS``: ``metrics`` records every request in the
middleware and every prediction, in prometheus-client's multi-process mode (a
``PROMETHEUS_MULTIPROC_DIR`` of its own: what ``--workers N`` runs, the costlier of the two
modes, a locked write to a shared file per value, which each worker makes once a second for
what it counted in between); ``off`` has no middleware and no ``/metrics``.
They take turns under the same ``wrk`` client (one-record ``POST /v1/predict``, keep-alive
connections, a fixed number of requests); each cell is the median of ``--rounds`` runs, the
order alternating between rounds. Afterwards the metrics server's ``/metrics`` must count every
request sent (read once it stops changing: another worker's last second may lag a scrape).

On a shared 2-core machine those throughputs move by 10-20 % from run to run, so the cost of
each round (the two servers measured back to back) is printed too, and, before the servers
stop, the same two apps are timed in-process, in a child process in multi-process mode:
``create_app`` with metrics on and off, called as ``await app(scope, receive, send)`` (the
driver of ``predict_route.py``), taking turns every 100 requests, in CPU time of the one thread
doing all the work (the flush included: see :func:`time_apps`); the median per-run difference
is what metrics add to one request. Without ``--package`` a small package is trained first
(~1 minute).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from serving import (
    ROOT,
    LoadResult,
    Server,
    add_pair_options,
    compare_pair,
    load_note,
    note,
    sample_body,
    start_factory,
)

from superkart_lib.compat import http
from superkart_lib.production import server as serve
from superkart_lib.production.metrics import ENV as METRICS_SWITCH
from superkart_lib.production.metrics import FLUSH_SECONDS

SERVERS = ("metrics", "off")
BENCHMARKS = Path(__file__).resolve().parent


def start(name: str, package: Path, workers: int, logs: Path) -> Server:
    """uvicorn on the app factory with the settings ``run_server`` uses; metrics on or off."""
    env = dict(os.environ)
    env.pop(serve.METRICS_DIR_ENV, None)
    if name == "metrics":
        env[serve.METRICS_DIR_ENV] = str(logs / "prometheus")
        (logs / "prometheus").mkdir()
    else:
        env[METRICS_SWITCH] = "off"
    return start_factory(name, package, workers, logs, http.http_protocol(), env)


def counted_predictions(url: str, timeout: float = 10.0) -> int:
    """``POST /v1/predict`` answers 200 counted by the server's ``/metrics``, once every worker flushed.

    The worker answering a scrape flushes first, its siblings every ``FLUSH_SECONDS``: the count
    is read until it has not changed for longer than that (or ``timeout`` seconds passed).
    """
    deadline = time.monotonic() + timeout
    counted, steady_since = scraped_predictions(url), time.monotonic()
    while time.monotonic() - steady_since <= FLUSH_SECONDS + 0.25 and time.monotonic() < deadline:
        time.sleep(0.25)
        now = scraped_predictions(url)
        if now != counted:
            counted, steady_since = now, time.monotonic()
    return counted


def scraped_predictions(url: str) -> int:
    """One scrape's count of ``POST /v1/predict`` answered 200."""
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


def in_process(package: Path, logs: Path, runs: int, requests: int, block: int) -> dict[str, list[float]]:
    """µs per request of the metrics and off apps, per run, timed in a child in multi-process mode."""
    directory = logs / "in-process-prometheus"
    directory.mkdir()
    env = {**os.environ, serve.METRICS_DIR_ENV: str(directory)}  # read when prometheus-client is imported
    env.pop(METRICS_SWITCH, None)
    code = (
        f"import sys; sys.path.insert(0, {str(BENCHMARKS)!r}); import metrics_cost; "
        f"metrics_cost.time_apps({str(package)!r}, {runs}, {requests}, {block})"
    )
    note(f"in-process: {runs} runs of {requests:,} requests per app")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=max(600, runs * 60)
    )
    if done.returncode != 0:
        raise SystemExit(f"the in-process measurement failed:\n{done.stdout}{done.stderr}")
    result: dict[str, list[float]] = json.loads(done.stdout.splitlines()[-1])
    return result


def time_apps(package: str, runs: int, requests: int, block: int) -> None:
    """Print (JSON) CPU µs per request of ``create_app`` with metrics on and off, per run.

    The apps take turns every ``block`` requests. The flusher thread is stopped after the
    warm-up and each run ends with one timed :func:`~superkart_lib.production.metrics.flush`
    (a run's requests, as a second of load would), counted to the metrics app: its whole cost
    lands on one thread, whose CPU time (``time.thread_time_ns``: not the time other jobs hold
    the core) is what is measured.
    """
    from predict_route import Exchange, loaded_app, time_requests

    from superkart_lib.production import metrics

    if not metrics.MULTIPROCESS:
        raise SystemExit(f"{serve.METRICS_DIR_ENV} must be set before prometheus-client is imported")
    apps = {"metrics": loaded_app(Path(package))}
    os.environ[metrics.ENV] = "off"
    apps["off"] = loaded_app(Path(package))
    exchange = Exchange(sample_body())

    async def cpu_ns(app: Any, count: int) -> int:
        return await time_requests(app, exchange, count, clock=time.thread_time_ns)

    async def measure() -> dict[str, list[float]]:
        for app in apps.values():  # first calls fill caches; the metrics app starts its flusher
            await cpu_ns(app, min(requests, 500))
        metrics.stop_flushing()
        samples: dict[str, list[float]] = {name: [] for name in apps}
        for _ in range(runs):
            spent = dict.fromkeys(apps, 0)
            for turn, first in enumerate(range(0, requests, block)):
                for name in list(apps)[:: 1 if turn % 2 == 0 else -1]:
                    spent[name] += await cpu_ns(apps[name], min(block, requests - first))
            started = time.thread_time_ns()
            metrics.flush()
            spent["metrics"] += time.thread_time_ns() - started
            for name, ns in spent.items():
                samples[name].append(ns / requests / 1000)
        return samples

    print(json.dumps(asyncio.run(measure())))


def in_process_report(samples: dict[str, list[float]], requests: int, block: int) -> str:
    """Median µs per request of each app, and the median per-run difference."""
    runs = len(samples["metrics"])
    lines = [
        f"in-process, multi-process mode, CPU time: create_app with metrics on and off, one-record "
        f"POST /v1/predict, {runs} runs x {requests:,} requests per app, taking turns every {block}:"
    ]
    for name, us in samples.items():
        lines.append(f"  {name:<8} median {statistics.median(us):7.1f} µs a request (runs {min(us):.1f}-{max(us):.1f})")
    added = statistics.median(m - o for m, o in zip(samples["metrics"], samples["off"], strict=True))
    share = added / statistics.median(samples["off"])
    lines.append(f"metrics cost in-process: {added:+.1f} µs a request, {share:.1%} (median of per-run differences)")
    return "\n".join(lines)


def paired_line(measured: list[LoadResult], baseline: list[LoadResult]) -> str:
    """The cost in each round (the two servers ran back to back), with its median and spread."""
    costs = [1 - m.rps / b.rps for m, b in zip(measured, baseline, strict=True) if b.rps]
    if not costs:
        return "per round: no run finished"
    listed = ", ".join(f"{c:.1%}" for c in costs)
    return (
        f"metrics cost per round (the pair run back to back): {listed}; "
        f"median {statistics.median(costs):.1%}, from {min(costs):.1%} to {max(costs):.1%}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_pair_options(parser)
    parser.add_argument("--in-process-runs", type=int, default=15, help="in-process runs; 0 skips them (default 15)")
    parser.add_argument(
        "--in-process-requests",
        type=int,
        help="requests per in-process run and app (default: --requests, at most 2,000)",
    )
    args = parser.parse_args(argv)
    requests = args.in_process_requests or min(args.requests, 2_000)
    block = min(100, requests)
    started = time.perf_counter()
    where: dict[str, Path] = {}

    def start_noted(name: str, package: Path, workers: int, logs: Path) -> Server:
        where.update(package=package, logs=logs)
        return start(name, package, workers, logs)

    def inspect(server: Server) -> tuple[int, Any]:
        counted = counted_predictions(server.url)
        if args.in_process_runs < 1:
            return counted, None
        return counted, in_process(where["package"], where["logs"], args.in_process_runs, requests, block)

    runs, (counted, samples) = compare_pair(args, SERVERS, start_noted, "metrics", inspect=inspect)
    sent = sum(r.requests - r.errors for r in runs["metrics"])
    verdict = "yes" if counted >= sent else "NO"
    print(f"/metrics counted every prediction answered: {verdict} ({counted:,} counted, {sent:,} measured + warm-up)")
    print(f"errors in all measured runs: {sum(r.errors for rs in runs.values() for r in rs)}")
    print(paired_line(runs["metrics"], runs["off"]))
    if samples:
        print(in_process_report(samples, requests, block))
    print(f"took {time.perf_counter() - started:.0f} s; after: {load_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
