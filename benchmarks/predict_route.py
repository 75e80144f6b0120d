"""Benchmark the in-process cost of one ``POST /v1/predict`` through the ASGI app (no network).

Usage::

    python benchmarks/predict_route.py [--package DIR] [--requests 2000] [--runs 15] [--json out.json]

Three apps (and a control) answer the same one-record body, each built by ``create_app(package)`` with its model
loaded synchronously (``app.state.model.load()``) and called as ``await app(scope, receive, send)``:

- shipped: ``/v1/predict`` is :class:`~superkart_lib.production.handlers.PredictEndpoint`, a plain
  ASGI endpoint registered as an ordinary starlette ``Route`` (middleware and routing apply);
- FastAPI route: the baseline, the same handler (``handlers.predict_json`` after reading the body)
  as an ordinary ``async def`` FastAPI route taking a ``Request``, inserted before the shipped one;
- shipped + middleware: the shipped app with one no-op pure-ASGI middleware, which now runs on the
  hot path.

A second, identical shipped app is the control: its difference from the first is the noise floor
(each app has its own ONNX session; a few µs). Two reference rows frame them:
``handlers.predict_json`` called directly (validation, ONNX, JSON; no ASGI at all) and this driver
alone (an ASGI app that answers at once). Each run sends ``--requests`` requests to every app, one
after another, the apps taking turns every ``--block`` requests in a rotating order, so the
machine's drift and bursts of other work hit them alike; the medians over ``--runs`` runs are
printed with the load average. Before timing, every app must give the same answer as the shipped
one, to a valid record and to a wrong Content-Type, from the endpoint it is meant to use. Without
``--package`` a small package is trained first (~1 minute).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import serving
from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute

from superkart_lib.contract.limits import MAX_JSON_BYTES
from superkart_lib.production import handlers
from superkart_lib.production.app import create_app

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PREDICT_PATH = serving.PREDICT_PATH
SHIPPED = "shipped: PredictEndpoint as a starlette Route"
FASTAPI_ROUTE = "baseline: FastAPI @app.post route, Request"
MIDDLEWARE = "shipped + one no-op ASGI middleware"
CONTROL = "control: the shipped app, a second instance"
DRIVER = "reference: this driver alone (no app)"
HANDLER = "reference: handlers.predict_json alone"


class NoOpMiddleware:
    """Pure ASGI middleware that only passes the call on: the least any middleware can cost."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


@dataclass
class Row:
    """One line of the table: µs per request of every run, and their median."""

    variant: str
    runs_us: list[float]
    median_us: float = 0.0


# --- the apps --------------------------------------------------------------------------------


def loaded_app(package: Path) -> FastAPI:
    """``create_app(package)`` with its model loaded now (no lifespan runs in-process)."""
    app = create_app(package)
    state: handlers.ModelState = app.state.model
    state.load()
    if state.model is None:
        raise SystemExit(f"model package {package} did not load: {state.error}")
    return app


def fastapi_route_app(package: Path) -> FastAPI:
    """The shipped app with an ordinary FastAPI route for ``POST /v1/predict`` ahead of the ASGI one."""
    app = loaded_app(package)
    state: handlers.ModelState = app.state.model

    async def predict(request: Request) -> Response:
        content_type = handlers.media_type(request.headers.get("content-type", ""))
        body: bytes | None = b""
        if content_type == "application/json":  # the same body rules as PredictEndpoint (413 included)
            body = await handlers.read_body(request.receive, request.headers.get("content-length", ""), MAX_JSON_BYTES)
        if body is None:
            return Response(status_code=400)  # the client went away: nobody reads this
        status, content = handlers.predict_json(state, content_type, body)
        headers = {"Retry-After": "1"} if status == 503 else None
        return Response(content, status, headers, media_type="application/json")

    app.post(PREDICT_PATH, include_in_schema=False)(predict)
    # Moved first, so the router matches it before the shipped Route (which stays registered).
    route = app.router.routes.pop()
    if not (isinstance(route, APIRoute) and route.endpoint is predict):
        raise RuntimeError(f"expected the new FastAPI route last in the router, found {route!r}")
    app.router.routes.insert(0, route)
    return app


def middleware_app(package: Path) -> FastAPI:
    """The shipped app plus :class:`NoOpMiddleware` (added before the first call builds the stack)."""
    app = loaded_app(package)
    app.add_middleware(NoOpMiddleware)
    return app


async def answer_at_once(scope: Scope, receive: Receive, send: Send) -> None:
    """An ASGI app that answers without reading anything: what the driver itself costs."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


# --- the driver ------------------------------------------------------------------------------


class Exchange:
    """One request's ASGI plumbing: a fresh scope, a receive that yields the body, a send that records."""

    def __init__(self, body: bytes, content_type: bytes = b"application/json"):
        self.body = body
        self.headers = [
            (b"host", b"testserver"),
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
        ]
        self.status = 0
        self.content = b""
        self._sent = False

    def scope(self) -> Scope:
        """A new HTTP scope (routers write into it, so it is never reused)."""
        self._sent, self.status = False, 0
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": PREDICT_PATH,
            "raw_path": PREDICT_PATH.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": list(self.headers),
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }

    async def receive(self) -> Message:
        if self._sent:
            return {"type": "http.disconnect"}
        self._sent = True
        return {"type": "http.request", "body": self.body, "more_body": False}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        elif message["type"] == "http.response.body":
            self.content = message.get("body", b"")


async def call_once(app: ASGIApp, exchange: Exchange) -> tuple[int, bytes, Any]:
    """Status, body and the endpoint the router chose for one request."""
    scope = exchange.scope()
    await app(scope, exchange.receive, exchange.send)
    return exchange.status, exchange.content, scope.get("endpoint")


async def time_requests(
    app: ASGIApp, exchange: Exchange, requests: int, clock: Callable[[], int] = time.perf_counter_ns
) -> int:
    """Nanoseconds of ``clock`` (wall time by default) for ``requests`` calls in a row; the last must answer 200."""
    scope, receive, send = exchange.scope, exchange.receive, exchange.send
    started = clock()
    for _ in range(requests):
        await app(scope(), receive, send)
    elapsed = clock() - started
    if exchange.status != 200:
        raise SystemExit(f"answer {exchange.status} during timing: {exchange.content[:200]!r}")
    return elapsed


def time_handler(state: handlers.ModelState, body: bytes, requests: int) -> int:
    """Nanoseconds for ``requests`` calls of ``handlers.predict_json`` alone: the work every route wraps."""
    started = time.perf_counter_ns()
    for _ in range(requests):
        handlers.predict_json(state, "application/json", body)
    return time.perf_counter_ns() - started


async def one_run(
    timed: dict[str, ASGIApp], state: handlers.ModelState, exchange: Exchange, requests: int, block: int, turn: int
) -> dict[str, float]:
    """µs per request of every variant in one run of ``requests`` each, in blocks taking turns.

    The variants alternate every ``block`` requests in a rotating order: this machine's speed drifts
    over seconds, and fine-grained turns spread the drift over all of them alike.
    """
    names = [HANDLER, *timed]
    spent = dict.fromkeys(names, 0)
    done = 0
    while done < requests:
        count = min(block, requests - done)
        first = turn % len(names)
        for name in names[first:] + names[:first]:
            if name == HANDLER:
                spent[name] += time_handler(state, exchange.body, count)
            else:
                spent[name] += await time_requests(timed[name], exchange, count)
        done, turn = done + count, turn + 1
    return {name: ns / requests / 1000 for name, ns in spent.items()}


def middleware_in_stack(app: FastAPI) -> bool:
    """Whether the built middleware stack holds a :class:`NoOpMiddleware` (it must, on the hot path)."""
    layer: Any = app.middleware_stack
    while layer is not None:
        if isinstance(layer, NoOpMiddleware):
            return True
        layer = getattr(layer, "app", None)
    return False


async def check_parity(apps: dict[str, FastAPI], body: bytes) -> list[str]:
    """Every app answers like the shipped one (a record and a wrong Content-Type), from its own endpoint."""
    expected: dict[bytes, tuple[int, bytes]] = {}
    lines = []
    for content_type in (b"application/json", b"text/plain"):
        exchange = Exchange(body, content_type)
        for name, app in apps.items():
            status, content, endpoint = await call_once(app, exchange)
            # The router records the endpoint it chose: the shipped Route, or the inserted FastAPI function.
            ok = (
                inspect.iscoroutinefunction(endpoint)
                if name == FASTAPI_ROUTE
                else isinstance(endpoint, handlers.PredictEndpoint)
            )
            if not ok:
                raise SystemExit(f"{name}: /v1/predict was answered by {endpoint!r}")
            first = expected.setdefault(content_type, (status, content))
            if (status, content) != first:
                raise SystemExit(f"{name} answered {status} {content!r}, the shipped app {first[0]} {first[1]!r}")
        status, content = expected[content_type]
        lines.append(f"  {content_type.decode():<17} -> {status} {content.decode()[:90]}")
    if not middleware_in_stack(apps[MIDDLEWARE]):
        raise SystemExit("the no-op middleware is not in the app's middleware stack")
    return lines


async def measure(package: Path, body: bytes, args: argparse.Namespace) -> list[Row]:
    """Build the apps, check them, warm them, then time interleaved runs; one row per variant."""
    apps: dict[str, FastAPI] = {
        SHIPPED: loaded_app(package),
        FASTAPI_ROUTE: fastapi_route_app(package),
        MIDDLEWARE: middleware_app(package),
        CONTROL: loaded_app(package),
    }
    print("every app answers alike:")
    print("\n".join(await check_parity(apps, body)))
    timed: dict[str, ASGIApp] = {DRIVER: answer_at_once, **apps}
    exchange = Exchange(body)
    state: handlers.ModelState = apps[SHIPPED].state.model
    if args.warmup:  # first calls fill caches (routing, pydantic, onnxruntime)
        await one_run(timed, state, exchange, args.warmup, args.block, 0)
    samples: dict[str, list[float]] = {name: [] for name in (HANDLER, *timed)}
    for run in range(args.runs):
        for name, us in (await one_run(timed, state, exchange, args.requests, args.block, run)).items():
            samples[name].append(us)
        serving.note(f"run {run + 1}/{args.runs}: " + ", ".join(f"{s[-1]:.1f}" for s in samples.values()) + " µs")
    return [Row(name, runs, statistics.median(runs)) for name, runs in samples.items()]


# --- the report ------------------------------------------------------------------------------


def report(rows: list[Row]) -> str:
    """The table: median, fastest and slowest run per variant; ratio to the shipped route and overhead."""
    by = {r.variant: r for r in rows}
    shipped, handler = by[SHIPPED].median_us, by[HANDLER].median_us
    header = f"{'variant':<46}{'median µs':>11}{'min µs':>9}{'max µs':>9}{'vs shipped':>12}{'over handler µs':>17}"
    lines = [header, "-" * len(header)]
    for name in (HANDLER, DRIVER, SHIPPED, CONTROL, FASTAPI_ROUTE, MIDDLEWARE):
        r = by[name]
        ratio = f"{r.median_us / shipped:.2f}x" if name not in (HANDLER, DRIVER) else ""
        # What the app adds around the handler: routing, middleware, request and response objects.
        overhead = f"{r.median_us - handler:.1f}" if ratio else ""
        lines.append(
            f"{name:<46}{r.median_us:>11.1f}{min(r.runs_us):>9.1f}{max(r.runs_us):>9.1f}{ratio:>12}{overhead:>17}"
        )
    lines.append("")
    lines.append("per request, median of the per-run differences (each pair measured in the same run):")
    labels = {FASTAPI_ROUTE: "FastAPI route", MIDDLEWARE: "one no-op middleware", CONTROL: "second shipped app"}
    for variant, label in labels.items():
        note = "  (identical apps: the noise floor)" if variant == CONTROL else ""
        lines.append(f"  {label + ' - shipped route:':<38}{paired(by[variant], by[SHIPPED]):>+8.1f} µs{note}")
    return "\n".join(lines)


def paired(a: Row, b: Row) -> float:
    """Median over runs of ``a - b``: steadier than the difference of medians when the machine drifts."""
    return statistics.median(x - y for x, y in zip(a.runs_us, b.runs_us, strict=True))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--package", help="model package directory (default: train a small one)")
    parser.add_argument("--n-iter", type=int, default=2, help="search candidates when training (default 2)")
    parser.add_argument("--requests", type=int, default=2_000, help="requests per run and app (default 2,000)")
    parser.add_argument("--runs", type=int, default=15, help="interleaved runs; medians reported (default 15)")
    parser.add_argument("--warmup", type=int, default=500, help="untimed requests per app first (default 500)")
    parser.add_argument("--block", type=int, default=100, help="requests per turn of one app (default 100)")
    parser.add_argument("--json", help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if min(args.requests, args.runs, args.block) < 1 or args.warmup < 0:
        parser.error("--requests, --runs and --block must be at least 1, --warmup at least 0")
    print(f"python {platform.python_version()} on {platform.platform()}; before: {serving.load_note()}")
    print(
        f"one-record POST {PREDICT_PATH} in-process; {args.runs} runs x {args.requests:,} requests per app, "
        f"apps taking turns every {args.block} requests"
    )
    started = time.perf_counter()
    body = serving.sample_body()
    with tempfile.TemporaryDirectory(prefix="superkart-route-") as tmp:
        rows = asyncio.run(measure(serving.package_for(args, Path(tmp)), body, args))
    print(report(rows))
    print(f"took {time.perf_counter() - started:.0f} s; after: {serving.load_note()}")
    if args.json:
        record = {"machine": serving.load_note(), "requests": args.requests, "rows": [asdict(r) for r in rows]}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
