"""``GET /metrics``: Prometheus text whose counters add up to the requests a test sent.

A real server with two workers (prometheus-client's multi-process mode) answers a known mix of
requests; its exposition is parsed with prometheus-client's own text parser and compared to the
mix, and so are the files the workers leave when they stop. In-process tests show the hot route
goes through the middleware; totals counted in the worker and flushed give the exposition that
observing each value gives; counts from threads and the event loop all arrive; a graceful stop
flushes; a full queue is written at once; ``superkart_model_info`` follows a version change;
``SUPERKART_METRICS=off`` removes it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from superkart_lib.course.serving import answers_200, free_port, stop_process, wait_until
from superkart_lib.production import metrics
from superkart_lib.production import record_validation as records
from tests.conftest import ROOT, STARTUP_TIMEOUT, to_csv

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
REQUESTS = "superkart_requests_total"


def parse(text: str) -> Samples:
    """Every sample of an exposition, keyed by sample name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@contextlib.contextmanager
def serving(package: Path, log: Path, env: dict[str, str], *options: str) -> Iterator[str]:
    """``superkart serve`` in its own process group with ``env`` added; yields its URL once ready."""
    port = free_port()
    command = [sys.executable, "-m", "superkart_lib.cli", "serve", "--model", str(package), "--port", str(port)]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [*command, *options],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            start_new_session=True,
            env={**os.environ, **env},
        )
    try:
        wait_until(process, lambda: answers_200(f"http://127.0.0.1:{port}/readyz"), STARTUP_TIMEOUT, log=log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, group=True)


def test_two_workers_metrics_add_up_to_the_requests_sent(small_package, tmp_path):
    directory = tmp_path / "prometheus"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left by an earlier run: must be emptied at start")
    record = records.example_record()
    bad = {**record, "Product_Weight": "heavy"}
    secret_key, secret_path = f"zz_{uuid.uuid4().hex}", f"/no-such-{uuid.uuid4().hex}"
    csv_body = to_csv([record] * 5)
    with serving(
        small_package, tmp_path / "server.log", {"PROMETHEUS_MULTIPROC_DIR": str(directory)}, "--workers", "2"
    ) as url:
        for _ in range(200):  # a fresh connection each: either worker may take it
            assert httpx.post(f"{url}/v1/predict", json=record).status_code == 200
        with httpx.Client(base_url=url) as client:
            for _ in range(30):
                assert client.post("/v1/predict", json={"records": [record] * 5}).status_code == 200
            for _ in range(20):
                assert client.post("/v1/predict", json=bad).status_code == 422
            for _ in range(10):
                answer = client.post("/v1/predict/csv", files={"file": ("rows.csv", csv_body, "text/csv")})
                assert answer.status_code == 200
            assert client.post("/v1/predict", json={**record, secret_key: 1}).status_code == 422
            for _ in range(5):
                assert client.get(secret_path).status_code == 404
            assert client.head("/metrics").status_code == 200
            # The worker answering flushes its own totals first; its sibling's last second may lag.
            deadline = time.monotonic() + 10 * metrics.FLUSH_SECONDS
            while True:
                scrape = client.get("/metrics")
                answered = value(parse(scrape.text), REQUESTS, route="/v1/predict", method="POST", status="200")
                if answered >= 230 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        version = httpx.get(f"{url}/v1/model").json()["package_version"]
    assert scrape.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = scrape.text
    assert secret_key not in text and secret_path not in text and "heavy" not in text
    samples = parse(text)

    requests = "superkart_requests_total"
    assert value(samples, requests, route="/v1/predict", method="POST", status="200") == 230
    assert value(samples, requests, route="/v1/predict", method="POST", status="422") == 21
    assert value(samples, requests, route="/v1/predict/csv", method="POST", status="200") == 10
    assert value(samples, requests, route="other", method="GET", status="404") == 5
    assert value(samples, requests, route="/metrics", method="HEAD", status="200") == 1
    durations = "superkart_request_duration_seconds_count"
    assert value(samples, durations, route="/v1/predict") == 251
    assert value(samples, durations, route="/v1/predict/csv") == 10
    assert value(samples, "superkart_rows_predicted_total") == 200 + 30 * 5 + 10 * 5
    assert value(samples, "superkart_prediction_dollars_count") == 400
    assert value(samples, "superkart_prediction_dollars_bucket", le="+Inf") == 400
    failures = "superkart_validation_failures_total"
    assert value(samples, failures, field="Product_Weight") == 20
    assert value(samples, failures, field="other") == 1  # the unknown key, never its name
    assert value(samples, "superkart_model_info", version=version) == 1
    assert value(samples, "superkart_model_reloads_total", result="success") == 2  # one load per worker
    assert value(samples, "superkart_model_reloads_total", result="failure") == 0

    routes = {dict(labels).get("route") for name, labels in samples if name.startswith("superkart_request")}
    assert routes <= {"/v1/predict", "/v1/predict/csv", "/v1/model", "/readyz", "/metrics", "other"}
    fields = {dict(labels)["field"] for name, labels in samples if name == failures}
    assert fields <= metrics.FIELDS | {"other"}
    leftovers = sorted(p.name for p in directory.iterdir())
    assert "counter_1.db" not in leftovers  # emptied at start
    assert not [name for name in leftovers if name.startswith("gauge_live")], leftovers  # workers marked dead

    # Stopped gracefully, each worker flushed what it counted after the scrape: nothing is lost.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    final = parse(generate_latest(registry).decode())
    assert value(final, REQUESTS, route="/v1/predict", method="POST", status="200") == 230
    assert value(final, "superkart_rows_predicted_total") == 400
    assert value(final, REQUESTS, route="/v1/model", method="GET", status="200") == 1  # sent last


def answer(app: Any, calls: list[tuple[str, str, dict[str, Any]]]) -> list[httpx.Response]:
    """The app's answers to ``calls`` (method, path, httpx options), in order, through its ASGI interface."""

    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return [await client.request(method, path, **options) for method, path, options in calls]

    return asyncio.run(run())


def test_the_hot_route_goes_through_the_middleware(small_package):
    from superkart_lib.production.app import create_app

    app = create_app(small_package)
    app.state.model.load()  # httpx's ASGI transport runs no lifespan
    bad = {"content": b"{", "headers": {"content-type": "application/json"}}
    calls = [("GET", "/metrics", {}), ("POST", "/v1/predict", {"json": records.example_record()})]
    calls += [("POST", "/v1/predict", bad), ("GET", "/metrics", {}), ("GET", "/openapi.json", {})]
    first, good, malformed, last, document = answer(app, calls)
    assert (good.status_code, malformed.status_code) == (200, 400)
    before, after = parse(first.text), parse(last.text)
    assert "/metrics" not in json.dumps(document.json()["paths"])

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "superkart_requests_total"
    assert delta(requests, route="/v1/predict", method="POST", status="200") == 1
    assert delta(requests, route="/v1/predict", method="POST", status="400") == 1
    assert delta("superkart_request_duration_seconds_count", route="/v1/predict") == 2
    assert delta("superkart_rows_predicted_total") == 1
    assert delta(requests, route="/metrics", method="GET", status="200") == 1


def test_metrics_off_leaves_no_route_and_counts_nothing(small_package, monkeypatch):
    from superkart_lib.production.app import create_app

    monkeypatch.setenv(metrics.ENV, "off")
    app = create_app(small_package)
    assert not any(m.cls is metrics.MetricsMiddleware for m in app.user_middleware)
    before = metrics.ROWS._value.get()
    app.state.model.load()
    predicted, scraped = answer(
        app, [("POST", "/v1/predict", {"json": records.example_record()}), ("GET", "/metrics", {})]
    )
    assert (predicted.status_code, scraped.status_code) == (200, 404)
    metrics.flush()
    assert metrics.ROWS._value.get() == before


@pytest.mark.parametrize("size", [3, 1000])
def test_the_batch_shortcut_equals_observe(size):
    values = list(np.random.default_rng(size).gamma(2.0, 1800.0, size))
    values[:2] = [metrics.PREDICTION_BUCKETS[0], metrics.PREDICTION_BUCKETS[-1] * 3]  # on a bound, past the last
    registry = CollectorRegistry()
    reference = Histogram("reference", "", buckets=metrics.PREDICTION_BUCKETS, registry=registry)
    for v in values:
        reference.observe(v)
    expected = {
        (name.replace("reference", "superkart_prediction_dollars"), labels): v
        for (name, labels), v in parse(generate_latest(registry).decode()).items()
        if not name.endswith("_created")
    }

    def histogram() -> Samples:
        return {k: v for k, v in parse(metrics.exposition().decode()).items() if k in expected}

    before = histogram()
    metrics.predictions(values)
    after = histogram()
    assert {k: after[k] - before.get(k, 0.0) for k in expected} == pytest.approx(expected)


def reference_exposition(requests: list[tuple[str, str, int, float]], predicted: list[list[float]]) -> Samples:
    """The samples that observing each value directly gives, in a registry of their own."""
    registry = CollectorRegistry()
    counter = Counter("superkart_requests", "", ["route", "method", "status"], registry=registry)
    duration = Histogram(
        "superkart_request_duration_seconds", "", ["route"], buckets=metrics.DURATION_BUCKETS, registry=registry
    )
    rows = Counter("superkart_rows_predicted", "", registry=registry)
    dollars = Histogram("superkart_prediction_dollars", "", buckets=metrics.PREDICTION_BUCKETS, registry=registry)
    for route, method, status, seconds in requests:
        counter.labels(route, method, str(status)).inc()
        duration.labels(route).observe(seconds)
    for values in predicted:
        rows.inc(len(values))
        for v in values:
            dollars.observe(v)
    return {k: v for k, v in parse(generate_latest(registry).decode()).items() if not k[0].endswith("_created")}


def test_totals_counted_in_the_worker_equal_direct_observation():
    assert metrics.AGGREGATING  # prometheus-client is a checked version here: the flushed path is the one tested
    rng = np.random.default_rng(7)
    bounds = list(metrics.DURATION_BUCKETS)
    seconds = [*bounds, 0.0, 11.0, *rng.exponential(0.01, 300)]  # on every bound, below the first, past the last
    routes = [("/v1/predict", "POST", 200), ("/v1/predict", "POST", 422), ("other", "GET", 404)]
    requests = [(*routes[i % 3], s) for i, s in enumerate(seconds)]
    dollars = list(rng.gamma(2.0, 1800.0, 1000))
    dollars[:2] = [metrics.PREDICTION_BUCKETS[0], metrics.PREDICTION_BUCKETS[-1] * 3]
    predicted = [dollars[:1], dollars[1:4], dollars[4:900], dollars[900:]]  # one by one and in batches
    expected = reference_exposition(requests, predicted)

    before = parse(metrics.exposition().decode())
    for i, (route, method, status, s) in enumerate(requests):
        metrics.record_request(route, method, status, s)
        if i == len(requests) // 2:
            metrics.flush()  # totals flushed twice add up
    for values in predicted:
        metrics.predictions(values)
    after = parse(metrics.exposition().decode())

    assert len(expected) > 50
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in expected}
    assert {k: v for k, v in delta.items() if not k[0].endswith("_sum")} == {
        k: v for k, v in expected.items() if not k[0].endswith("_sum")
    }  # every count and bucket exactly
    assert {k: v for k, v in delta.items() if k[0].endswith("_sum")} == pytest.approx(
        {k: v for k, v in expected.items() if k[0].endswith("_sum")}, rel=1e-12
    )  # sums added in another order


def test_counts_from_threads_and_the_event_loop_all_arrive(small_package):
    from superkart_lib.production.app import create_app

    app = create_app(small_package)
    app.state.model.load()
    record = records.example_record()
    csv_call = ("POST", "/v1/predict/csv", {"files": {"file": ("rows.csv", to_csv([record] * 5), "text/csv")}})
    before = parse(metrics.exposition().decode())
    answers = answer(app, [("POST", "/v1/predict", {"json": record}), csv_call] * 10)
    assert [a.status_code for a in answers] == [200] * 20
    after = parse(metrics.exposition().decode())
    assert value(after, "superkart_rows_predicted_total") - value(before, "superkart_rows_predicted_total") == 60

    # Threads counting at once, with flushes in between, lose nothing.
    start = threading.Barrier(5)

    def count() -> None:
        start.wait()
        for _ in range(3000):
            metrics.predictions([1234.0])
            metrics.record_request("other", "GET", 404, 0.001)

    threads = [threading.Thread(target=count) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # threads take turns as often as the interpreter lets them: races show
    try:
        for thread in threads:
            thread.start()
        start.wait()
        while any(thread.is_alive() for thread in threads):
            metrics.flush()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    final = parse(metrics.exposition().decode())
    assert value(final, "superkart_rows_predicted_total") - value(after, "superkart_rows_predicted_total") == 12_000
    assert (
        value(final, "superkart_prediction_dollars_bucket", le="1500.0")
        - value(after, "superkart_prediction_dollars_bucket", le="1500.0")
        == 12_000
    )
    assert (
        value(final, REQUESTS, route="other", method="GET", status="404")
        - value(after, REQUESTS, route="other", method="GET", status="404")
        == 12_000
    )


@contextlib.asynccontextmanager
async def lifespan(app: Any) -> AsyncIterator[None]:
    """The app between its lifespan's startup and shutdown, as uvicorn runs it."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    yield
    await inbox.put({"type": "lifespan.shutdown"})
    assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
    await task


def test_a_graceful_stop_flushes_what_the_worker_counted(small_package):
    from superkart_lib.production.app import create_app

    app = create_app(small_package)
    labels = {"route": "/v1/predict", "method": "POST", "status": "200"}

    async def run() -> tuple[Samples, Samples, Samples]:
        async with lifespan(app):
            metrics.stop_flushing()  # no periodic flush from here on: only the shutdown's
            before = parse(generate_latest().decode())  # the registry as it is, nothing flushed
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                for _ in range(3):
                    assert (await client.post("/v1/predict", json=records.example_record())).status_code == 200
            pending = parse(generate_latest().decode())
        return before, pending, parse(generate_latest().decode())

    before, pending, stopped = asyncio.run(run())
    assert value(pending, REQUESTS, **labels) == value(before, REQUESTS, **labels)  # counted, not yet written
    assert value(stopped, REQUESTS, **labels) - value(before, REQUESTS, **labels) == 3
    rows = "superkart_rows_predicted_total"
    assert value(stopped, rows) - value(before, rows) == 3
    metrics.start_flushing()  # as the next worker would


def test_a_full_queue_is_written_by_the_request_that_fills_it():
    labels = {"route": "other", "method": "HEAD", "status": "404"}
    metrics.stop_flushing()  # as if the flusher were starved: the queue must still stay bounded
    try:
        before = value(parse(generate_latest().decode()), REQUESTS, **labels)
        for _ in range(metrics.FLUSH_AT_PENDING + 1):
            metrics.record_request("other", "HEAD", 404, 0.001)
        written = value(parse(generate_latest().decode()), REQUESTS, **labels)  # no flush asked for
        assert written - before == metrics.FLUSH_AT_PENDING + 1
    finally:
        metrics.start_flushing()


def test_model_info_follows_the_version_served(tmp_path):
    tag = uuid.uuid4().hex[:8]
    old, new, broken = f"1.0.0+{tag}", f"2.0.0+{tag}", f"3.0.0+{tag}"
    metrics.model_loaded(old, True)
    assert value(parse(metrics.exposition().decode()), "superkart_model_info", version=old) == 1
    metrics.model_loaded(new, True)
    metrics.model_loaded(broken, False)  # a failed load leaves the version served as it was
    info = {
        dict(k[1])["version"]: v
        for k, v in parse(metrics.exposition().decode()).items()
        if k[0] == "superkart_model_info"
    }
    assert info.get(new) == 1 and old not in info and broken not in info

    # Several workers: the series cannot be removed; this worker's old version drops to 0.
    script = (
        "from superkart_lib.production import metrics as m; "
        f"m.model_loaded({old!r}, True); m.model_loaded({new!r}, True); print(m.exposition().decode())"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    samples = parse(done.stdout)
    assert value(samples, "superkart_model_info", version=new) == 1
    assert value(samples, "superkart_model_info", version=old) == 0
