"""`superkart serve` as a supervised service: workers die with their parent, a restarted worker
takes no request before its model is ready, stalled clients are cut off, and concurrent uploads
cannot grow a worker's memory past the stated bound. Real servers on loopback ports throughout.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import psutil
import pytest
from conftest import ROOT, STARTUP_TIMEOUT, json_records

from superkart_lib.contract import limits
from superkart_lib.course.serving import answers_200, free_port, stop_process, wait_until

#: What the README promises a worker grows by, at most, under any number of concurrent uploads.
UPLOAD_MEMORY_BOUND_MIB = 200


def start_serve(package: Path, port: int, log: Path, *options: str) -> subprocess.Popen:
    """``superkart serve`` in its own process group; returns once ``/readyz`` answers 200."""
    command = [sys.executable, "-m", "superkart_lib.cli", "serve", "--model", str(package), "--port", str(port)]
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [*command, *options], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
        )
    wait_until(process, lambda: answers_200(f"http://127.0.0.1:{port}/readyz"), STARTUP_TIMEOUT, log=log)
    return process


@contextlib.contextmanager
def serving(package: Path, log: Path, *options: str):
    port = free_port()
    process = start_serve(package, port, log, *options)
    try:
        yield process, f"http://127.0.0.1:{port}"
    finally:
        stop_process(process, group=True)


def workers_of(process: subprocess.Popen) -> list[psutil.Process]:
    """The uvicorn worker processes (the supervisor's multiprocessing children that serve)."""
    workers = []
    for child in psutil.Process(process.pid).children():
        with contextlib.suppress(psutil.ZombieProcess, psutil.NoSuchProcess):  # a killed worker not yet reaped
            if "multiprocessing.resource_tracker" not in " ".join(child.cmdline()):
                workers.append(child)
    return workers


# --- workers die with their parent ------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    """Whether a new server could listen on ``port`` now (the check ``superkart serve`` makes)."""
    try:
        socket.create_server(("127.0.0.1", port)).close()
    except OSError:
        return False
    return True


def test_workers_stop_when_the_supervisor_is_killed_and_the_port_restarts_at_once(small_package, tmp_path):
    port = free_port()
    log = tmp_path / "server.log"
    first = start_serve(small_package, port, log, "--workers", "2")
    workers = workers_of(first)
    assert len(workers) == 2, [w.cmdline() for w in workers]
    replacement = None
    try:
        os.kill(first.pid, signal.SIGKILL)  # no chance to stop its children
        first.wait(timeout=10)
        killed = time.monotonic()
        while not port_is_free(port) and time.monotonic() - killed < 10:
            time.sleep(0.02)
        freed = time.monotonic() - killed
        # A new server on the same port, as a process manager restarting the service would start it.
        replacement = start_serve(small_package, port, log, "--workers", "2")
        gone, alive = psutil.wait_procs(workers, timeout=5)
        print(f"\nport {port} free {freed:.2f} s after SIGKILL of the supervisor; old workers gone; restarted")
        assert freed < 2.0
        assert not alive, f"workers still running 5 s after their supervisor died: {[p.pid for p in alive]}"
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["status"] == "ready"
    finally:
        for process in (first, replacement):
            if process is not None:
                stop_process(process, group=True)


def test_a_restarted_worker_takes_no_request_before_its_model_is_ready(small_package, tmp_path, synthetic_frame):
    """Kill a worker under load: the supervisor restarts it, and no client ever sees its loading 503."""
    records = json_records(synthetic_frame.head(50).drop(columns=["Product_Store_Sales_Total"]))
    with serving(small_package, tmp_path / "server.log", "--workers", "2") as (process, url):
        before = {w.pid for w in workers_of(process)}
        statuses: Counter[str] = Counter()
        stop = threading.Event()

        def client(index: int) -> None:
            while not stop.is_set():
                try:  # a fresh connection per request, so new connections reach the restarted worker
                    response = httpx.post(f"{url}/v1/predict", json=records[index % len(records)], timeout=10)
                    statuses[str(response.status_code)] += 1
                except httpx.TransportError as error:  # in flight on the killed worker
                    statuses[type(error).__name__] += 1

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            try:
                for i in range(8):
                    pool.submit(client, i)
                time.sleep(1.0)
                victim = min(before)
                os.kill(victim, signal.SIGKILL)
                deadline = time.monotonic() + 60
                while not (restarted := {w.pid for w in workers_of(process)} - before):
                    assert time.monotonic() < deadline, "the supervisor did not restart the killed worker"
                    time.sleep(0.05)
                answered_before = statuses["200"]
                time.sleep(4.0)  # the replacement loads, then serves its share
            finally:
                stop.set()
        print(f"\nworker {victim} killed, replaced by {restarted.pop()}; answers: {dict(statuses)}")
        assert statuses["503"] == 0
        assert statuses["200"] - answered_before >= 20  # fresh connections while the replacement loaded and served
        failed = sum(n for status, n in statuses.items() if status != "200")
        assert failed <= 8, statuses  # at most the requests in flight on the killed worker


# --- stalled clients --------------------------------------------------------------------------------


def stalled_sockets(url: str, count: int) -> list[socket.socket]:
    """``count`` connections that each send half a request head, then nothing (slowloris)."""
    host, port = url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        sockets.append(s)
    return sockets


def test_stalled_clients_are_cut_off_and_cannot_starve_new_ones(small_package, tmp_path):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 4096)), hard))
    stalled_count = 1_500  # more than one worker's connection limit
    with serving(small_package, tmp_path / "server.log", "--head-timeout", "1") as (_, url):
        sockets = stalled_sockets(url, stalled_count)
        try:
            opened = time.monotonic()
            answered = None
            while time.monotonic() - opened < 10:
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        answered = time.monotonic() - opened
                        break
                time.sleep(0.1)
            closed = Counter()
            for s in sockets:
                s.settimeout(5)
                try:
                    closed["408" if s.recv(64).startswith(b"HTTP/1.1 408") else "closed"] += 1
                except OSError:
                    closed["still open"] += 1
        finally:
            for s in sockets:
                s.close()
        print(f"\n{stalled_count} stalled connections; a new client answered after {answered} s; {dict(closed)}")
        assert answered is not None and answered < 5
        assert closed["408"] == stalled_count


def test_idle_and_slow_connections_are_closed(small_package, tmp_path):
    options = ("--head-timeout", "1", "--body-timeout", "1")
    with serving(small_package, tmp_path / "server.log", *options) as (_, url):
        host, port = url.removeprefix("http://").split(":")
        timings = {}
        with socket.create_connection((host, int(port))) as idle:  # connects, never sends a byte
            idle.settimeout(10)
            start = time.monotonic()
            assert idle.recv(64).startswith(b"HTTP/1.1 408")
            timings["silent connection"] = time.monotonic() - start
        with socket.create_connection((host, int(port))) as slow:  # a head, then half the body it declared
            slow.settimeout(10)
            head = (
                b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            )
            slow.sendall(head + b'{"Product_Weight": ')
            start = time.monotonic()
            assert slow.recv(64) == b""  # closed without an answer: the request never arrived whole
            timings["stalled body"] = time.monotonic() - start
        with socket.create_connection((host, int(port))) as kept:  # one request, then idle on keep-alive
            kept.settimeout(10)
            kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while not answer.endswith(b'{"status":"ok"}'):
                answer += kept.recv(4096)
            assert answer.startswith(b"HTTP/1.1 200")
            start = time.monotonic()
            assert kept.recv(64) == b""
            timings["idle keep-alive"] = time.monotonic() - start
        with socket.create_connection((host, int(port))) as reused:  # a whole request, then half of the next
            reused.settimeout(10)
            reused.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHo")
            start = time.monotonic()
            answer = b""
            while b"408 Request Timeout" not in answer and (chunk := reused.recv(4096)):
                answer += chunk
            assert answer.startswith(b"HTTP/1.1 200") and b"HTTP/1.1 408" in answer, answer
            timings["second request's head"] = time.monotonic() - start
        print("\nclosed after (s):", {k: round(v, 2) for k, v in timings.items()})
        assert 0.9 < timings["silent connection"] < 3
        assert 0.9 < timings["stalled body"] < 3
        assert 4 < timings["idle keep-alive"] < 8  # uvicorn's keep-alive timeout, set to 5 s
        assert 0.9 < timings["second request's head"] < 3
        assert httpx.get(f"{url}/healthz").status_code == 200


# --- memory under concurrent uploads ---------------------------------------------------------------


def largest_upload(frame) -> bytes:
    """A CSV at the upload limits: MAX_CSV_ROWS rows padded (with ignored target text) to MAX_CSV_BYTES."""
    rows = frame.sample(limits.MAX_CSV_ROWS, replace=True, random_state=0).reset_index(drop=True)
    text = rows.to_csv(index=False)
    spare = limits.MAX_CSV_BYTES - len(text.encode()) - 1_000
    pad = "7" * (spare // limits.MAX_CSV_ROWS)
    rows["Product_Store_Sales_Total"] = rows["Product_Store_Sales_Total"].astype(str) + pad
    out = io.StringIO()
    rows.to_csv(out, index=False)
    data = out.getvalue().encode()
    assert limits.MAX_CSV_BYTES - 20_000 < len(data) <= limits.MAX_CSV_BYTES
    return data


#: Polls a URL every 50 ms from its own process until its stdin closes; prints "status seconds" per check.
PROBE = """
import sys, threading, time, urllib.request
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
while not done.is_set():
    start = time.monotonic()
    with urllib.request.urlopen(sys.argv[1], timeout=30) as answer:
        print(answer.status, time.monotonic() - start, flush=True)
    time.sleep(0.05)
"""


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="peak RSS reset needs Linux /proc")
def test_concurrent_uploads_cannot_grow_a_worker_past_the_bound(small_package, tmp_path, synthetic_frame):
    upload = largest_upload(synthetic_frame)
    clients = 96
    with serving(small_package, tmp_path / "server.log") as (process, url):
        worker = psutil.Process(process.pid)  # one worker: the server process itself
        httpx.post(f"{url}/v1/predict/csv", files={"file": ("w.csv", upload[:200_000].rsplit(b"\n", 1)[0])})
        baseline = worker.memory_info().rss / 2**20
        Path(f"/proc/{process.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM) to now
        # Health checks from another process: the 96 sending threads here must not slow the prober.
        prober = subprocess.Popen(
            [sys.executable, "-c", PROBE, f"{url}/healthz"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

        def send(_: int) -> int:
            files = {"file": ("big.csv", upload)}
            response = httpx.post(f"{url}/v1/predict/csv", files=files, headers={"Accept": "text/csv"}, timeout=120)
            if response.status_code == 429:
                assert response.headers["retry-after"] == "1"
            return response.status_code

        with concurrent.futures.ThreadPoolExecutor(clients) as pool:
            statuses = Counter(pool.map(send, range(clients)))
        health = [
            tuple(map(float, line.split())) for line in prober.communicate(input="", timeout=60)[0].split("\n") if line
        ]
        growth = peak_rss_mib(process.pid) - baseline
        time.sleep(0.5)
        after = worker.memory_info().rss / 2**20 - baseline
        slowest = max(seconds for _, seconds in health)
        print(
            f"\n{clients} concurrent {len(upload) / 2**20:.2f} MiB uploads: {dict(statuses)}; worker baseline "
            f"{baseline:.0f} MiB, peak growth {growth:.0f} MiB (bound {UPLOAD_MEMORY_BOUND_MIB}), "
            f"{after:.0f} MiB after; {len(health)} health checks, slowest {slowest * 1000:.0f} ms"
        )
        assert set(statuses) <= {200, 429} and statuses[200] >= limits.MAX_UPLOADS_IN_FLIGHT
        assert growth < UPLOAD_MEMORY_BOUND_MIB
        assert after < UPLOAD_MEMORY_BOUND_MIB / 2
        assert len(health) >= 5 and all(status == 200 for status, _ in health)
