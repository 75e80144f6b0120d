"""Prometheus metrics of the prediction service: defined once here, exposed at ``GET /metrics``.

Every label value is bounded and none is a client's: routes are the app's path templates (or
``other``), methods a fixed set (or ``other``), fields the schema's column names (or ``other``).
An unbounded label (a raw URL, a client's JSON key) would grow the series without limit.

Several workers (``superkart serve --workers N``) share their metrics through prometheus-client's
multi-process mode: ``run_server`` points ``PROMETHEUS_MULTIPROC_DIR`` at an emptied directory
before the workers start (prometheus-client reads it when first imported), each worker writes its
values to its own files there, and any worker answering ``/metrics`` adds up all of them. Without
that variable (one worker, an app made in a test), the process's default registry is exposed.

Counted in the worker, written every second
-------------------------------------------
In multi-process mode every ``inc()``/``observe()`` is a locked write to a memory-mapped file
(~2.7 us a counter, ~5.3 us a histogram value: ~17 us a one-record prediction, 26-42 us inside
the app, ~8 % of the service's throughput; ``benchmarks/README.md``). So a request or a
prediction is only appended to a queue here (:func:`record_request`, :func:`predictions`), and
:func:`flush` counts what was queued per series and per histogram bucket and adds it to the
prometheus-client metrics: one ``inc(n)`` per series and one per bucket
(:func:`~superkart_lib.compat.runtime.histogram_adder`). Inside the app that leaves 7-9 us.

- When: a daemon thread per worker flushes every :data:`FLUSH_SECONDS` s, started with the
  middleware (Starlette builds it in the worker, at the first ASGI event). A flush on the
  request path once a second had passed would leave an idle worker's last requests unwritten
  until its next request, so scrapes answered by its sibling would miss them indefinitely; the
  thread wakes once a second (a flush of a second's requests takes about a millisecond). Being a
  daemon, it never holds the process at exit.
- Scrapes: :func:`exposition` flushes this worker's queues first, so it always includes its own
  requests; another worker's last second of requests may be missing from one scrape and
  appears in the next. Nothing is lost at a graceful stop: :func:`process_exited` (the app's
  lifespan shutdown, after uvicorn has answered every request) and interpreter exit flush.
  A worker killed outright (SIGKILL) loses at most its last second of counts.
- Threads: requests are queued on the event loop's thread, CSV uploads' predictions on a
  threadpool thread, and flushes run on the flusher's (or a scrape's) thread. The queues are
  :class:`collections.deque`, whose appends and pops are thread-safe (documented; ``extend``
  appends each value): no lock on the hot path, and nothing else is shared. Only a flush pops, one
  flush at a time (a lock), so the ``n`` items a flush finds are still there when it pops ``n``
  from the left while others are appended on the right: each item is counted exactly once.
  (Totals updated in place would need a lock around every update: with the GIL, ``+=`` on a
  list item is still a read and a write another thread may come between. Measured inside the
  app, metrics cost 12-15 us a request that way.)
- Memory: a queue past :data:`FLUSH_AT_PENDING` items (half a minute of full load) is flushed by the
  request that finds it so, should the flusher ever be stopped or starved.
- Outside the prometheus-client versions whose histogram internals were checked (probed once at
  import), every value is observed directly as before: correct, at the old cost.

``SUPERKART_METRICS=off`` leaves the middleware and ``/metrics`` out (the benchmark's baseline).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess as _multiprocess
from starlette.routing import Mount, Route

from superkart_lib.compat.runtime import BucketAdder, histogram_adder
from superkart_lib.contract import schema
from superkart_lib.contract.errors import RequestError
from superkart_lib.production.server import METRICS_DIR_ENV

log = logging.getLogger("superkart.serve")

#: Set to ``off`` (or ``0``, ``false``, ``no``) to serve without metrics.
ENV = "SUPERKART_METRICS"
#: The Prometheus text format 0.0.4, what ``generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: prometheus-client chose its value store when imported: this process's answer, fixed with it.
MULTIPROCESS = bool(os.environ.get(METRICS_DIR_ENV))
#: Seconds between two flushes of a worker's totals: how far a scrape may lag another worker.
FLUSH_SECONDS = 1.0

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

_ADD_PREDICTIONS = histogram_adder(PREDICTION, PREDICTION_BUCKETS)
#: Whether histograms take counts per bucket here, so values are counted in the worker and flushed.
AGGREGATING = _ADD_PREDICTIONS is not None

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


#: Past this many requests (or values) waiting, the caller flushes them itself.
FLUSH_AT_PENDING = 100_000
_requests: deque[tuple[str, str, int, float]] = deque()  # (route, method, status, seconds) each
_values: deque[float] = deque()  # predictions queued one by one
_batches: deque[tuple[int, list[int], float]] = deque()  # larger batches: (rows, per-bucket counts, sum)
_flush_lock = threading.Lock()  # one flush at a time: only a flush pops
_flusher: tuple[threading.Thread, threading.Event] | None = None
_control_lock = threading.Lock()  # starting and stopping the flusher
_served: str | None = None  # the version this process's MODEL_INFO shows at 1
_info_lock = threading.Lock()


def enabled() -> bool:
    """Whether this process serves metrics (``SUPERKART_METRICS`` is not ``off``)."""
    return os.environ.get(ENV, "on").strip().lower() not in {"off", "0", "false", "no"}


def exposition() -> bytes:
    """All metrics as Prometheus text: every worker's added up in multi-process mode, else this process's.

    This process's queues are flushed first; another worker's may lag by up to :data:`FLUSH_SECONDS`.
    """
    flush()
    if MULTIPROCESS:
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest()


def record_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one answered request and its duration in seconds (labels already bounded)."""
    if not AGGREGATING:
        REQUESTS.labels(route, method, str(status)).inc()
        DURATION.labels(route).observe(seconds)
        return
    _requests.append((route, method, status, seconds))
    if len(_requests) > FLUSH_AT_PENDING:
        flush()


def predictions(values: Sequence[float]) -> None:
    """Count predicted rows and their values (:data:`PREDICTION`, dollars); any thread may call it.

    A few values are queued one by one; a larger batch is counted per bucket with numpy here
    (~30 us for any batch) and queued as those counts. ``tests/test_metrics.py`` checks that
    both give the exposition ``observe`` gives.
    """
    if not AGGREGATING:
        ROWS.inc(len(values))
        for value in values:
            PREDICTION.observe(value)
        return
    if len(values) > _ONE_BY_ONE:
        counts, total = _per_bucket(_PREDICTION_BOUNDS, values)
        _batches.append((len(values), counts, total))
        pending = len(_batches)
    else:
        _values.extend(values)
        pending = len(_values)
    if pending > FLUSH_AT_PENDING:
        flush()


#: Batches up to this size are queued value by value (cheaper than numpy's set-up).
_ONE_BY_ONE = 8
_PREDICTION_BOUNDS = np.array(PREDICTION_BUCKETS, dtype=np.float64)
_DURATION_BOUNDS = np.array(DURATION_BUCKETS, dtype=np.float64)


def _per_bucket(bounds: np.ndarray, values: Sequence[float]) -> tuple[list[int], float]:
    """How many ``values`` fall in each bucket of ``bounds`` (+Inf last), and their sum."""
    observed = np.asarray(values, dtype=np.float64)
    # observe() counts a value in the first bucket whose upper bound is >= it: searchsorted's "left".
    counts = np.bincount(np.searchsorted(bounds, observed, side="left"), minlength=len(bounds) + 1)
    return counts.tolist(), float(observed.sum())


def flush() -> None:
    """Add what this process queued since the last flush to the prometheus-client metrics.

    Called by the flusher thread every :data:`FLUSH_SECONDS` s, by :func:`exposition` and at exit.
    """
    with _flush_lock:
        requests = [_requests.popleft() for _ in range(len(_requests))]
        values = [_values.popleft() for _ in range(len(_values))]
        batches = [_batches.popleft() for _ in range(len(_batches))]
        answered: dict[tuple[str, str, int], int] = {}
        durations: dict[str, list[float]] = {}
        for route, method, status, seconds in requests:
            key = (route, method, status)
            answered[key] = answered.get(key, 0) + 1
            durations.setdefault(route, []).append(seconds)
        for (route, method, status), count in answered.items():
            REQUESTS.labels(route, method, str(status)).inc(count)
        for route, durations_of_route in durations.items():
            _duration_adder(route)(*_per_bucket(_DURATION_BOUNDS, durations_of_route))
        if (values or batches) and _ADD_PREDICTIONS is not None:
            counts, total = _per_bucket(_PREDICTION_BOUNDS, values)
            for _, batch_counts, batch_total in batches:
                counts = [a + b for a, b in zip(counts, batch_counts, strict=True)]
                total += batch_total
            ROWS.inc(len(values) + sum(rows for rows, _, _ in batches))
            _ADD_PREDICTIONS(counts, total)


def _duration_adder(route: str) -> BucketAdder:
    """The adder of a route's duration histogram, made once per route (and per process)."""
    add = _DURATION_ADDERS.get(route)
    if add is None:
        add = histogram_adder(DURATION.labels(route), DURATION_BUCKETS)
        if add is None:  # the same class as PREDICTION, which takes them (AGGREGATING)
            raise RuntimeError(f"prometheus-client refused counts per bucket for route {route}")
        _DURATION_ADDERS[route] = add
    return add


_DURATION_ADDERS: dict[str, BucketAdder] = {}


def start_flushing() -> None:
    """Start this process's flusher thread (a daemon) unless it runs; the middleware calls it."""
    global _flusher
    with _control_lock:
        if _flusher is not None and _flusher[0].is_alive():
            return
        stop = threading.Event()
        thread = threading.Thread(target=_flush_until, args=(stop,), name="superkart-metrics-flush", daemon=True)
        thread.start()
        _flusher = thread, stop


def stop_flushing() -> None:
    """Stop the flusher thread, if any, and flush what it had not written yet."""
    global _flusher
    with _control_lock:
        flusher, _flusher = _flusher, None
    if flusher is not None:
        flusher[1].set()
        flusher[0].join(timeout=10.0)
    flush()


def _flush_until(stop: threading.Event) -> None:
    while not stop.wait(FLUSH_SECONDS):
        try:
            flush()
        except Exception:  # one failed write (a full disk) must not stop the next ones
            log.exception("metrics: a flush failed; its counts are lost")


def refused(exc: RequestError) -> None:
    """Count a 422 by the schema fields it names (any other name counts as ``other``)."""
    if exc.status != 422:
        return
    for field in {e.field if e.field in FIELDS else OTHER for e in exc.errors}:
        VALIDATION_FAILURES.labels(field).inc()


def model_loaded(version: str, ok: bool) -> None:
    """Record a load of the model package (any thread): the result and, when it loaded, its version.

    The version loaded before (if another) leaves this process's ``superkart_model_info``: removed
    in one process, set to 0 in multi-process mode (which cannot remove a series; ``livemax``
    still shows 1 while another worker serves that version).
    """
    global _served
    MODEL_RELOADS.labels("success" if ok else "failure").inc()
    if not ok:
        return
    with _info_lock:
        previous, _served = _served, version
        MODEL_INFO.labels(version).set(1)
        if previous is not None and previous != version:
            if MULTIPROCESS:
                MODEL_INFO.labels(previous).set(0)
            else:
                MODEL_INFO.remove(previous)


def process_exited() -> None:
    """Flush this worker's queues and drop its live gauges (its model version) from the shared directory."""
    stop_flushing()
    if MULTIPROCESS:
        _multiprocess.mark_process_dead(os.getpid())


def _after_fork() -> None:
    # A forked child starts with empty queues (its parent flushes what it copied), fresh locks
    # (another thread may have held them at the fork) and no flusher thread.
    global _flush_lock, _control_lock, _info_lock, _flusher
    for queue in (_requests, _values, _batches):
        queue.clear()
    _flush_lock, _control_lock, _info_lock = threading.Lock(), threading.Lock(), threading.Lock()
    _flusher = None


os.register_at_fork(after_in_child=_after_fork)
atexit.register(flush)  # a process that never ran the app's shutdown still writes what it queued


class MetricsMiddleware:
    """Pure ASGI middleware: each HTTP request's route, method, status and duration.

    The route label is the path of the app's route that serves the request, or a mount's prefix
    for the files under it, looked up in a table made from ``routes`` (the app's routes, all
    fixed paths); any other path is ``other``. A request whose app raised before answering counts
    as a 500, the status the server's error middleware then sends. Made in the worker (Starlette
    builds its middleware at the first ASGI event), it starts the worker's flusher thread.
    """

    def __init__(self, app: ASGIApp, routes: Iterable[Any]):
        self.app = app
        routes = list(routes)
        self._paths = {r.path: r.path for r in routes if isinstance(r, Route)}
        self._prefixes = tuple((r.path + "/", r.path) for r in routes if isinstance(r, Mount))
        start_flushing()

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
            seconds = time.perf_counter() - start
            method = scope["method"] if scope["method"] in METHODS else OTHER
            record_request(self.route(scope["path"]), method, status, seconds)
