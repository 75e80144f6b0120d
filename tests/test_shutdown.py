"""``superkart serve`` stops without dropping a request: SIGTERM drains, then stops, then exits 0.

Real servers on loopback ports, real signals. Under load a stopping server first answers ``/readyz``
with 503 ``stopping`` while it still answers everything else (the drain), then refuses new
connections and answers every request it had taken; a request in flight when the signal arrives
is answered; a second signal ends the drain. Keep-alive clients record each request: answered
(with its status), refused at connect (the server had closed), or dropped (sent, never answered).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import STARTUP_TIMEOUT, json_records
from test_supervision import start_serve

from superkart_lib.compat import serving
from superkart_lib.contract import limits
from superkart_lib.contract.errors import SuperKartError
from superkart_lib.course.serving import free_port, stop_process
from superkart_lib.production.server import GRACE_PERIOD, run_server

#: Seconds allowed past drain + grace for the processes to start, stop and be reaped on a busy machine.
MARGIN = 15
CLIENTS = 16


@dataclass
class Outcome:
    """One request: when it was sent and finished (``time.monotonic``), and what came of it."""

    sent: float
    done: float
    result: str  # the HTTP status ("200"), "refused" (no connection), or "dropped: <error>"


@dataclass
class Load:
    """Keep-alive clients posting one-record predictions, each until the server refuses its connection."""

    port: int
    bodies: list[bytes]
    outcomes: list[Outcome] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, clients: int = CLIENTS, seconds: float = 90.0) -> None:
        deadline = time.monotonic() + seconds
        self.threads = [threading.Thread(target=self._client, args=(i, deadline)) for i in range(clients)]
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=60)

    def _client(self, index: int, deadline: float) -> None:
        conn: http.client.HTTPConnection | None = None
        while time.monotonic() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                try:
                    conn.connect()
                except ConnectionRefusedError:
                    now = time.monotonic()
                    self.outcomes.append(Outcome(now, now, "refused"))
                    return
            body = self.bodies[(index + len(self.outcomes)) % len(self.bodies)]
            sent = time.monotonic()
            try:
                conn.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
                response = conn.getresponse()
                response.read()
                self.outcomes.append(Outcome(sent, time.monotonic(), str(response.status)))
                if response.will_close:  # the server said "Connection: close": open a new one
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as error:
                self.outcomes.append(Outcome(sent, time.monotonic(), f"dropped: {type(error).__name__}"))
                conn.close()
                conn = None

    def answered_200(self) -> int:
        return sum(o.result == "200" for o in self.outcomes)


def readiness_probe(port: int, seen: list[tuple[float, int, str]], stop: threading.Event) -> None:
    """Ask ``/readyz`` every 50 ms on a fresh connection, as a load balancer does, until refused."""
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/readyz")
            response = conn.getresponse()
            seen.append((time.monotonic(), response.status, json.loads(response.read())["status"]))
        except ConnectionRefusedError:
            return
        except (OSError, http.client.HTTPException):
            pass
        finally:
            conn.close()
        time.sleep(0.05)


def multipart(csv: bytes) -> tuple[bytes, dict[str, str]]:
    """A ``POST /v1/predict/csv`` body with ``csv`` in field ``file``, and its headers."""
    boundary = "superkart-shutdown-test"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="rows.csv"\r\n'
    body = f"{head}Content-Type: text/csv\r\n\r\n".encode() + csv + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}", "Content-Length": str(len(body))}


def open_upload(port: int, body: bytes, headers: dict[str, str], sent_bytes: int) -> http.client.HTTPConnection:
    """A CSV upload whose head and first ``sent_bytes`` of body are sent; the caller sends the rest."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=GRACE_PERIOD + MARGIN)
    conn.putrequest("POST", "/v1/predict/csv")
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.endheaders()
    conn.send(body[:sent_bytes])
    return conn


def finish_upload(conn: http.client.HTTPConnection, rest: bytes) -> tuple[int, dict]:
    conn.send(rest)
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    return response.status, answer


def serve(package: Path, port: int, log: Path, workers: int, drain: float) -> subprocess.Popen:
    """``superkart serve`` started with every worker serving (a signal stops a worker still starting at once)."""
    process = start_serve(package, port, log, "--workers", str(workers), "--drain-seconds", str(drain))
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while log.read_text().count("Application startup complete.") < workers:
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return process


def refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


@pytest.fixture(scope="module")
def bodies(synthetic_frame) -> list[bytes]:
    records = json_records(synthetic_frame.head(200).drop(columns=["Product_Store_Sales_Total"]))
    return [json.dumps(r).encode() for r in records]


@pytest.fixture(scope="module")
def upload_csv(synthetic_frame) -> bytes:
    """The most rows an upload may have: it takes this server most of a second to score."""
    rows = synthetic_frame.sample(limits.MAX_CSV_ROWS, replace=True, random_state=1)
    return rows.to_csv(index=False).encode()


@pytest.mark.parametrize("workers", [2, 1])
def test_sigterm_under_load_drains_then_answers_every_request_it_took(
    small_package, tmp_path, bodies, upload_csv, workers
):
    drain = 2.0
    port = free_port()
    log = tmp_path / "server.log"
    process = serve(small_package, port, log, workers, drain)
    load = Load(port, bodies)
    readiness: list[tuple[float, int, str]] = []
    probe_stop = threading.Event()
    probe = threading.Thread(target=readiness_probe, args=(port, readiness, probe_stop))
    uploads: list[tuple[int, dict]] = []
    try:
        probe.start()
        load.start()
        while load.answered_200() < 500:  # the clients are connected and busy
            assert process.poll() is None and all(t.is_alive() for t in load.threads), log.read_text()
            time.sleep(0.05)
        # Two slow requests in flight when the signal arrives: all but their last bytes sent before
        # it, the rest just after; then the server reads and scores 10,000 rows each.
        body, headers = multipart(upload_csv)
        slow = [open_upload(port, body, headers, len(body) - 10) for _ in range(2)]
        senders = [threading.Thread(target=lambda c=c: uploads.append(finish_upload(c, body[-10:]))) for c in slow]
        for sender in senders:
            sender.start()
        signalled = time.monotonic()
        os.kill(process.pid, signal.SIGTERM)
        returncode = process.wait(timeout=drain + GRACE_PERIOD + MARGIN)
        exited = time.monotonic() - signalled
        load.join()
        for sender in senders:
            sender.join(timeout=30)
    finally:
        probe_stop.set()
        probe.join(timeout=30)
        stop_process(process, group=True)

    results = Counter(o.result for o in load.outcomes)
    in_flight = sum(o.sent <= signalled < o.done for o in load.outcomes)
    after = Counter(o.result for o in load.outcomes if o.sent > signalled)
    stopping = [t for t, status, text in readiness if status == 503 and text == "stopping"]
    dropped = {result: n for result, n in results.items() if result not in ("200", "refused")}
    print(
        f"\n{workers} worker(s), drain {drain:g} s, {CLIENTS} keep-alive clients: "
        f"{len(load.outcomes) - results['refused']} requests sent, {in_flight} in flight at SIGTERM "
        f"(+ 2 uploads of {limits.MAX_CSV_ROWS:,} rows), {results['200']} answered 200 "
        f"({after['200']} sent after SIGTERM), dropped {sum(dropped.values())}, "
        f"{results['refused']} refused at connect once closed; /readyz 503 stopping {len(stopping)} times; "
        f"exit {returncode} {exited:.2f} s after SIGTERM"
    )
    assert returncode == 0
    assert not dropped, f"requests sent and never answered (or not 200): {dropped}"
    assert in_flight >= 1 and after["200"] >= 1
    assert results["refused"] >= 1  # the clients ended because the server stopped accepting
    assert sorted((status, len(answer["predictions"])) for status, answer in uploads) == [
        (200, limits.MAX_CSV_ROWS),
        (200, limits.MAX_CSV_ROWS),
    ]
    # Readiness turned 503 "stopping" while predictions were still answered (the drain).
    assert any(t < signalled and text == "ready" for t, _, text in readiness)
    assert stopping, "/readyz never answered 503 stopping"
    assert any(o.result == "200" and o.sent > stopping[0] for o in load.outcomes)
    assert refuses(port)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_request_in_flight_at_sigterm_is_answered_after_the_server_stops_accepting(
    small_package, tmp_path, upload_csv, workers
):
    """No drain: the signal closes the listening socket at once, and the upload it interrupted still gets its answer."""
    port = free_port()
    process = serve(small_package, port, tmp_path / "server.log", workers, 0)
    try:
        body, headers = multipart(upload_csv)
        half = len(body) // 2
        upload = open_upload(port, body, headers, half)  # in flight: the head and half the body sent
        time.sleep(0.2)  # ... and arrived
        signalled = time.monotonic()
        os.kill(process.pid, signal.SIGTERM)
        while not refuses(port):  # the server no longer accepts connections ...
            assert time.monotonic() - signalled < GRACE_PERIOD, "the server still accepts connections"
            time.sleep(0.05)
        status, answer = finish_upload(upload, body[half:])  # ... yet reads the rest and answers
        returncode = process.wait(timeout=GRACE_PERIOD + MARGIN)
        print(f"\n{workers} worker(s): upload answered {status} with {len(answer.get('predictions', []))} predictions")
    finally:
        stop_process(process, group=True)
    assert status == 200, answer
    assert len(answer["predictions"]) == limits.MAX_CSV_ROWS
    assert returncode == 0


def wait_for_stopping(port: int, process: subprocess.Popen) -> None:
    """Wait until ``/readyz`` says the server is stopping (its drain has begun)."""
    deadline = time.monotonic() + 30
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/readyz")
        response = conn.getresponse()
        status = json.loads(response.read())["status"]
        conn.close()
        if status == "stopping":
            return
        assert process.poll() is None and time.monotonic() < deadline, f"/readyz still {status!r}"
        time.sleep(0.05)


def predicts(port: int, body: bytes) -> int:
    """The status of one prediction on a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/v1/predict", body, {"Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


@pytest.mark.parametrize("workers", [2, 1])
def test_a_second_sigterm_ends_the_drain(small_package, tmp_path, bodies, workers):
    drain = 120  # far longer than the test may wait: only the second signal can end it
    port = free_port()
    process = serve(small_package, port, tmp_path / "server.log", workers, drain)
    try:
        os.kill(process.pid, signal.SIGTERM)
        wait_for_stopping(port, process)
        assert predicts(port, bodies[0]) == 200  # draining: new connections are still served
        time.sleep(serving.SAME_STOP_SECONDS + 0.5)  # a later signal, not the first one delivered twice
        assert process.poll() is None  # still draining
        signalled = time.monotonic()
        os.kill(process.pid, signal.SIGTERM)
        returncode = process.wait(timeout=GRACE_PERIOD + MARGIN)
        print(f"\n{workers} worker(s): exit {returncode} {time.monotonic() - signalled:.2f} s after the second SIGTERM")
    finally:
        stop_process(process, group=True)
    assert returncode == 0
    assert refuses(port)


def test_a_signal_to_the_whole_process_group_drains_once(small_package, tmp_path, bodies):
    """Ctrl-C (or systemd's stop) reaches the workers directly and again through their supervisor: one drain."""
    drain = 4.0
    port = free_port()
    process = serve(small_package, port, tmp_path / "server.log", 2, drain)
    try:
        os.killpg(process.pid, signal.SIGINT)
        wait_for_stopping(port, process)
        time.sleep(1.0)  # past the supervisor passing the stop on to its workers
        answers = [predicts(port, body) for body in bodies[:20]]  # the drain was not cut short
        returncode = process.wait(timeout=drain + GRACE_PERIOD + MARGIN)
    finally:
        stop_process(process, group=True)
    assert answers == [200] * 20
    assert returncode == 0
    log = (tmp_path / "server.log").read_text()
    assert log.count("Draining for 4 s") == 2 and "the rest of the drain is skipped" not in log


def test_a_negative_drain_is_refused_before_anything_starts(small_package):
    with pytest.raises(SuperKartError, match="the drain must be 0 or more seconds"):
        run_server(small_package, port=free_port(), drain_seconds=-1)
