"""``GET /metrics``: Prometheus text whose counters add up to the requests a test sent.

A real server with two workers (prometheus-client's multi-process mode) answers a known mix of
requests; its exposition is parsed with prometheus-client's own text parser and compared to the
mix. In-process tests show the hot route goes through the middleware, the batch shortcut of the
prediction histogram equals ``observe``, and ``SUPERKART_METRICS=off`` removes it all.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from superkart_lib.course.serving import answers_200, free_port, stop_process, wait_until
from superkart_lib.production import metrics
from superkart_lib.production import record_validation as records
from tests.conftest import ROOT, STARTUP_TIMEOUT, to_csv

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


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
            scrape = client.get("/metrics")
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
