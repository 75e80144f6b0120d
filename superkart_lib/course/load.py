"""A bounded load against ``POST /v1/predict`` that keeps every answer, for checking, not only timing.

``wrk`` measures throughput; this client records, for each request, when it was sent and
answered, its status, and the ``model_version`` and prediction it got back, so a test (or the
lifecycle notebook) can prove that a model swap under load failed no request and that every
answer is the prediction of the version it names. Keep-alive connections, ``concurrency`` of
them, each sending its next request when the previous answer is in; HTTP parsed by ``h11``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import h11
import numpy as np

PREDICT_PATH = "/v1/predict"


@dataclass
class Answer:
    """One request: which record, sent and answered when (s since the load started), and what came back.

    ``status`` is 0 when no HTTP answer arrived (connection refused, reset or timed out).
    """

    record: int
    sent: float
    done: float
    status: int
    version: str = ""
    prediction: float | None = None
    problem: str = ""


@dataclass
class LoadLog:
    """Every answer of one load, in the order they completed."""

    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[Answer]:
        """Answers that are not a 200 with a prediction."""
        return [a for a in self.answers if a.status != 200 or a.prediction is None]

    def latency_ms(self, quantile: float) -> float:
        """A quantile (0-1) of the time from sending to answer, in milliseconds."""
        times = np.array([a.done - a.sent for a in self.answers])
        return float(np.quantile(times, quantile) * 1000) if len(times) else float("nan")

    def versions(self) -> Counter[str]:
        """Answers per model version."""
        return Counter(a.version for a in self.answers if a.status == 200)

    def timeline(self, step: float = 0.5) -> list[dict[str, Any]]:
        """Answers per version in each ``step`` seconds of the load, for a table or a plot."""
        rows: dict[int, Counter[str]] = {}
        for a in self.answers:
            if a.status == 200:
                rows.setdefault(int(a.done // step), Counter())[a.version] += 1
        return [{"from_s": k * step, **rows[k]} for k in sorted(rows)]


def _request(host: str, path: str, body: bytes) -> h11.Request:
    headers = [("Host", host), ("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    return h11.Request(method="POST", target=path, headers=headers)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn: h11.Connection, request: h11.Request, body: bytes
) -> tuple[int, bytes]:
    writer.write(conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
    await writer.drain()
    status, content = 0, bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await reader.read(65536)
            conn.receive_data(data)
            if not data and conn.their_state is not h11.DONE:
                raise ConnectionError("the server closed the connection mid-answer")
            continue
        if isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            content += event.data
        elif isinstance(event, h11.EndOfMessage):
            return status, bytes(content)


async def _client(
    url: str,
    bodies: Sequence[bytes],
    jobs: asyncio.Queue[int],
    log: LoadLog,
    start: float,
    timeout: float,
    rate: float | None,
) -> None:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path.rstrip("/") + PREDICT_PATH
    reader = writer = conn = None
    while True:
        try:
            index = jobs.get_nowait()
        except asyncio.QueueEmpty:
            break
        if rate:  # request i leaves no earlier than i / rate seconds into the load
            delay = index / rate - (time.perf_counter() - start)
            if delay > 0:
                await asyncio.sleep(delay)
        sent = time.perf_counter() - start
        answer = Answer(index, sent, sent, 0)
        try:
            if conn is None or conn.our_state is not h11.IDLE:
                if writer is not None:
                    writer.close()
                reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
                conn = h11.Connection(h11.CLIENT)
            body = bodies[index % len(bodies)]
            assert reader is not None and writer is not None
            status, content = await asyncio.wait_for(
                _exchange(reader, writer, conn, _request(parts.netloc, path, body), body), timeout
            )
            answer.status = status
            if status == 200:
                data = json.loads(content)
                answer.version, answer.prediction = data["model_version"], data["prediction"]
            else:
                answer.problem = content[:200].decode("utf-8", "replace")
            if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                conn.start_next_cycle()
            else:
                conn = None
        except (OSError, TimeoutError, h11.ProtocolError, ValueError, KeyError) as exc:
            answer.problem = f"{type(exc).__name__}: {exc}"
            conn = None
        answer.done = time.perf_counter() - start
        log.answers.append(answer)
    if writer is not None:
        writer.close()


async def _load(
    url: str,
    bodies: Sequence[bytes],
    requests: int,
    concurrency: int,
    timeout: float,
    log: LoadLog,
    rate: float | None,
) -> LoadLog:
    jobs: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        jobs.put_nowait(i)
    start = time.perf_counter()
    await asyncio.gather(*(_client(url, bodies, jobs, log, start, timeout, rate) for _ in range(concurrency)))
    log.seconds = time.perf_counter() - start
    return log


def run_load(
    url: str,
    records: Sequence[dict[str, Any]],
    requests: int,
    concurrency: int = 8,
    timeout: float = 10.0,
    log: LoadLog | None = None,
    rate: float | None = None,
) -> LoadLog:
    """Send ``requests`` one-record predictions to ``url`` over ``concurrency`` keep-alive connections.

    Parameters
    ----------
    url : str
        The server's base URL (``http://127.0.0.1:PORT``).
    records : sequence of dict
        Records sent in turn: request ``i`` sends ``records[i % len(records)]`` (``Answer.record`` is ``i``).
    requests : int
        How many requests in all: the load is bounded by count.
    concurrency : int
        Connections, each with one request in flight.
    timeout : float
        Seconds one request may take before it counts as failed.
    log : LoadLog, optional
        The log to fill (another thread may watch ``len(log.answers)`` grow); a new one by default.
    rate : float, optional
        Most requests per second sent (none: as fast as the answers come). A fixed pace keeps
        the load running long enough for what a test does meanwhile, on any machine.

    Returns
    -------
    LoadLog
        Every answer, failed ones included.
    """
    bodies = [json.dumps(r).encode() for r in records]
    log = log if log is not None else LoadLog()
    return asyncio.run(_load(url, bodies, requests, concurrency, timeout, log, rate))


def run_load_in_thread(
    url: str, records: Sequence[dict[str, Any]], requests: int, **options: Any
) -> tuple[LoadLog, Future[LoadLog]]:
    """Start :func:`run_load` on a thread: its log (filling as answers arrive) and a future for the end.

    The caller (a notebook cell, a test) promotes or rolls back meanwhile, watching the log's progress.
    """
    log = LoadLog()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="superkart-load")
    future = pool.submit(run_load, url, records, requests, log=log, **options)
    pool.shutdown(wait=False)
    return log, future
