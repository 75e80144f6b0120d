"""Prometheus metrics of the prediction service: defined once here, exposed at ``GET /metrics``.

Every label value is bounded and none is a client's: routes are the app's path templates (or
``other``), methods a fixed set (or ``other``), fields the schema's column names (or ``other``).
An unbounded label (a raw URL, a client's JSON key) would grow the series without limit.

Several workers (``superkart serve --workers N``) share their metrics through prometheus-client's
multi-process mode: ``run_server`` points ``PROMETHEUS_MULTIPROC_DIR`` at an emptied directory
before the workers start (prometheus-client reads it when first imported), each worker writes its
values to its own files there, and any worker answering ``/metrics`` adds up all of them. Without
that variable (one worker, an app made in a test), the process's default registry is exposed.

``SUPERKART_METRICS=off`` leaves the middleware and ``/metrics`` out (the benchmark's baseline).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from starlette.routing import Mount, Route

from superkart_lib.compat.runtime import add_to_histogram
from superkart_lib.contract import schema
from superkart_lib.contract.errors import RequestError
from superkart_lib.production.server import METRICS_DIR_ENV

#: Set to ``off`` (or ``0``, ``false``, ``no``) to serve without metrics.
ENV = "SUPERKART_METRICS"
#: The Prometheus text format 0.0.4, what ``generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: prometheus-client chose its value store when imported: this process's answer, fixed with it.
MULTIPROCESS = bool(os.environ.get(METRICS_DIR_ENV))

METHODS = frozenset({"GET", "HEAD", "POST"})
FIELDS = frozenset(schema.INPUT_COLUMNS)
OTHER = "other"
#: Dollars; Product_Store_Sales_Total lies in [0, 1,000,000] but mostly between $1,000 and $8,000.
PREDICTION_BUCKETS = (500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000, 6000, 8000, 10_000, 50_000)
#: Seconds; a one-record prediction takes ~0.2 ms, a 10,000-row CSV upload about a second.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REQUESTS = Counter("superkart_requests", "HTTP requests answered", ["route", "method", "status"])
DURATION = Histogram(
    "superkart_request_duration_seconds", "Time to answer a request", ["route"], buckets=DURATION_BUCKETS
)
ROWS = Counter("superkart_rows_predicted", "Records and CSV rows predicted")
PREDICTION = Histogram(
    "superkart_prediction_dollars", "Predicted Product_Store_Sales_Total", buckets=PREDICTION_BUCKETS
)
VALIDATION_FAILURES = Counter(
    "superkart_validation_failures",
    "Requests refused by the schema (422), by each field they named; a request naming two fields counts for both",
    ["field"],
)
MODEL_INFO = Gauge(
    "superkart_model_info", "The model package version served (1)", ["version"], multiprocess_mode="livemax"
)
MODEL_RELOADS = Counter("superkart_model_reloads", "Model package loads, including the first", ["result"])

for _field in (*sorted(FIELDS), OTHER):  # a series at 0 from the start, so rate() sees the first failure
    VALIDATION_FAILURES.labels(_field)
for _result in ("success", "failure"):
    MODEL_RELOADS.labels(_result)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def enabled() -> bool:
    """Whether this process serves metrics (``SUPERKART_METRICS`` is not ``off``)."""
    return os.environ.get(ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


def exposition() -> bytes:
    """All metrics as Prometheus text: every worker's added up in multi-process mode, else this process's."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def predictions(values: Sequence[float]) -> None:
    """Count predicted rows and observe their values in :data:`PREDICTION`.

    A few values are observed one by one. A batch is counted per bucket with numpy and added
    with one increment per bucket (:func:`~superkart_lib.compat.runtime.add_to_histogram`: ~30 us
    for any batch, where observing each value costs ~3.5 us a value in multi-process mode);
    ``tests/test_metrics.py`` checks that both give the same exposition.
    """
    ROWS.inc(len(values))
    if len(values) > _ONE_BY_ONE:
        observed = np.asarray(values, dtype=np.float64)
        # observe() puts a value in the first bucket whose upper bound is >= it: searchsorted's "left".
        counts = np.bincount(np.searchsorted(_UPPER_BOUNDS, observed, side="left"), minlength=len(_UPPER_BOUNDS) + 1)
        if add_to_histogram(PREDICTION, PREDICTION_BUCKETS, counts.tolist(), float(observed.sum())):
            return
    for value in values:
        PREDICTION.observe(value)


_UPPER_BOUNDS = np.array(PREDICTION_BUCKETS, dtype=np.float64)
#: Batches up to this size are observed one by one (cheaper than numpy's set-up).
_ONE_BY_ONE = 8


def refused(exc: RequestError) -> None:
    """Count a 422 by the schema fields it names (any other name counts as ``other``)."""
    if exc.status != 422:
        return
    for field in {e.field if e.field in FIELDS else OTHER for e in exc.errors}:
        VALIDATION_FAILURES.labels(field).inc()


def model_loaded(version: str, ok: bool) -> None:
    """Record a load of the model package: its version (when it loaded) and the result."""
    MODEL_RELOADS.labels("success" if ok else "failure").inc()
    if ok:
        MODEL_INFO.labels(version).set(1)


def process_exited() -> None:
    """Drop this worker's live gauges (its model version) from the shared directory."""
    if MULTIPROCESS:
        _multiprocess.mark_process_dead(os.getpid())


class MetricsMiddleware:
    """Pure ASGI middleware: each HTTP request's route, method, status and duration.

    The route label is the path of the app's route that serves the request, or a mount's prefix
    for the files under it, looked up in a table made from ``routes`` (the app's routes, all
    fixed paths); any other path is ``other``. A request whose app raised before answering counts
    as a 500, the status the server's error middleware then sends.
    """

    def __init__(self, app: ASGIApp, routes: Iterable[Any]):
        self.app = app
        routes = list(routes)
        self._paths = {r.path: r.path for r in routes if isinstance(r, Route)}
        self._prefixes = tuple((r.path + "/", r.path) for r in routes if isinstance(r, Mount))
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def route(self, path: str) -> str:
        """The route label of a request path: a known route's path, a mount's prefix, or ``other``."""
        route = self._paths.get(path)
        if route is None:
            route = next((name for prefix, name in self._prefixes if path.startswith(prefix)), OTHER)
        return route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = self.route(scope["path"])
            method = scope["method"] if scope["method"] in METHODS else OTHER
            key = (route, method, status)
            # labels() takes a lock and builds a key on every call; the children are looked up once.
            children = self._children.get(key)
            if children is None:
                children = self._children[key] = (REQUESTS.labels(route, method, str(status)), DURATION.labels(route))
            children[0].inc()
            children[1].observe(time.perf_counter() - start)
