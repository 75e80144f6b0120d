"""Benchmark the naive Flask/gunicorn baseline against ``superkart serve`` on one model package.

Usage::

    python benchmarks/serving.py [--package DIR] [--workers 2] [--json out.json] [--check]

Both servers run at once on free 127.0.0.1 ports, with the same worker count, the same model
package and the same single-record ``POST /v1/predict`` body; they take turns under the same
client, ``wrk`` (Debian package ``wrk``), driven by a generated Lua script that stops after a
fixed number of requests. Without ``--package`` a small package is trained first (~1 minute).
Every run is bounded in requests and seconds; every process started here is stopped at the end,
also on errors or Ctrl-C. Before each measured run both servers must be idle (the naive server
goes on computing queued answers after wrk stops). The client shares the CPU with the servers,
so the core count and load average are printed with the figures.

``benchmarks/scaling.py`` reuses the helpers here (servers, readiness, the wrk driver).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from superkart_lib.course.serving import answers_200, free_port, post_json, stop_process, wait_until

ROOT = Path(__file__).resolve().parents[1]
NAIVE_CONFIG = ROOT / "deploy" / "naive" / "gunicorn.conf.py"
PREDICT_PATH = "/v1/predict"
STARTUP_SECONDS = 120.0
#: Targets from the brief: superkart serve vs the naive server, and its tail at concurrency 32.
TARGET_SPEEDUP = 20.0
TARGET_P99_MS = 25.0
TARGET_CONCURRENCY = 32
#: Printed by the Lua script when a wrk thread has sent its share; the driver then stops wrk.
DONE_MARK = "superkart-bench: thread done"

# wrk runs for a fixed duration by design; this script makes each thread stop after its share of
# requests, records wall time with a monotonic clock (LuaJIT's ffi), and reports JSON from done().
WRK_SCRIPT = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct {{ long tv_sec; long tv_nsec; }} superkart_timespec;
int clock_gettime(int clock_id, superkart_timespec *tp);
]]
local ts = ffi.new("superkart_timespec")
local function now()
  ffi.C.clock_gettime(1, ts)  -- CLOCK_MONOTONIC
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end

wrk.method = "POST"
wrk.path = "{path}"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[{body}]==]

local threads = {{}}
local total, nthreads = {requests}, {threads}

function setup(thread)
  local index = #threads
  local share = math.floor(total / nthreads)
  if index < total % nthreads then share = share + 1 end
  thread:set("limit", share)
  table.insert(threads, thread)
end

function init(args)
  count, started, finished = 0, now(), 0
end

function response(status, headers, body)
  count = count + 1
  if count == limit then
    finished = now()
    io.stderr:write("{done_mark}\\n")
    io.stderr:flush()
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local first, last, all_finished = math.huge, 0, true
  for _, thread in ipairs(threads) do
    first = math.min(first, thread:get("started"))
    local finished = thread:get("finished")
    if finished == 0 then all_finished = false end
    last = math.max(last, finished)
  end
  local e = summary.errors
  io.write(string.format(
    '{{"requests":%d,"seconds":%.6f,"wrk_seconds":%.6f,"all_finished":%s,' ..
    '"p50_us":%.1f,"p90_us":%.1f,"p99_us":%.1f,"max_us":%.1f,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\\n',
    summary.requests, last - first, summary.duration / 1e6, tostring(all_finished),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


@dataclass
class LoadResult:
    """One bounded load run against one server at one concurrency."""

    server: str
    concurrency: int
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    error_kinds: dict[str, int]
    finished: bool  # False when the time cap stopped the run before its request count
    client_cpu: float = 0.0  # wrk's CPU time over the run's wall time (1.0 = one core busy)


@dataclass
class Server:
    """A server process we started: its name, base URL, log file and process group."""

    name: str
    url: str
    process: subprocess.Popen
    log: Path

    def wait_until(self, probe: Callable[[], bool], timeout: float = STARTUP_SECONDS, streak: int = 1) -> None:
        """Poll ``probe`` until it holds ``streak`` times in a row; fail with the log if the server dies or stalls."""
        wait_until(self.process, probe, timeout, streak, self.name, self.log)

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left after ``grace`` seconds."""
        stop_process(self.process, grace, group=True)


# --- machine and processes -----------------------------------------------------------------


def load_note() -> str:
    """Cores and load average: other processes share the CPU and move every figure."""
    loads = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return f"{os.cpu_count()} cores, load average (1, 5, 15 min) {loads}"


def note(message: str) -> None:
    """Progress on stderr (the results go to stdout)."""
    print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def find_tool(name: str, package: str) -> str:
    """Path of a command-line tool, or exit with how to install it."""
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")  # nginx: not on every PATH
    if path is None:
        raise SystemExit(f"{name} not found: install it (Debian: apt-get install -y {package})")
    return path


def start_process(name: str, url: str, command: list[str], log: Path, env: dict[str, str] | None = None) -> Server:
    """Start ``command`` in its own process group (so stopping it stops its workers too)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env, start_new_session=True
        )
    return Server(name, url, process, log)


def start_factory(name: str, package: Path, workers: int, logs: Path, http: str, env: dict[str, str]) -> Server:
    """uvicorn on the app factory with the settings ``run_server`` uses, ``http`` as its protocol and ``env``."""
    from superkart_lib.contract import limits
    from superkart_lib.production import server as serve

    port = free_port()
    call = (
        f"uvicorn.run({serve.APP_FACTORY!r}, factory=True, host='127.0.0.1', port={port}, workers={workers}, "
        f"http={http!r}, timeout_keep_alive={serve.KEEP_ALIVE_TIMEOUT}, "
        f"limit_concurrency={limits.MAX_CONNECTIONS}, log_level='warning')"
    )
    env = {**env, serve.MODEL_ENV: str(package.resolve())}
    command = [sys.executable, "-c", f"import uvicorn; {call}"]
    return start_process(name, f"http://127.0.0.1:{port}", command, logs / f"{name}.log", env)


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of group ``pgid`` (Linux /proc)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces
            if int(fields[2]) == pgid:
                ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wait_until_idle(servers: list[Server], window: float = 0.5, busy: float = 0.05, timeout: float = 60.0) -> float:
    """Wait until every server has used under ``busy`` of a core for ``window`` seconds; return the wait.

    A closed-loop client stops with requests still queued: a slow server goes on computing
    answers nobody reads, and the next measurement would share the CPU with it.
    """
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = [group_cpu_seconds(s.process.pid) for s in servers]
        time.sleep(window)
        used = [group_cpu_seconds(s.process.pid) - b for s, b in zip(servers, before, strict=True)]
        if max(used) < busy * window:
            break
    return time.monotonic() - started


@contextlib.contextmanager
def stopped_on_exit() -> Iterator[list[Server]]:
    """A list to append started servers to; all are stopped on leaving, errors and SIGTERM included."""
    servers: list[Server] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally below on kill
    try:
        yield servers
    finally:
        for server in reversed(servers):
            server.stop()
        signal.signal(signal.SIGTERM, previous)


# --- the two servers -----------------------------------------------------------------------


def start_naive(package: Path, workers: int, logs: Path) -> Server:
    """gunicorn (sync workers) serving ``deploy/naive/app.py``, which loads ``model.joblib``."""
    port = free_port()
    env = {**os.environ, "MODEL": str(package), "NAIVE_BIND": f"127.0.0.1:{port}", "NAIVE_WORKERS": str(workers)}
    command = [sys.executable, "-m", "gunicorn", "-c", str(NAIVE_CONFIG)]
    return start_process("naive", f"http://127.0.0.1:{port}", command, logs / "naive.log", env)


def start_superkart(package: Path, workers: int, logs: Path, name: str = "superkart", port: int = 0) -> Server:
    """``run_server`` (what ``superkart serve`` calls) serving the package's ONNX model."""
    port = port or free_port()
    call = f"run_server({str(package)!r}, host='127.0.0.1', port={port}, workers={workers})"
    command = [sys.executable, "-c", f"from superkart_lib.production.server import run_server; {call}"]
    return start_process(name, f"http://127.0.0.1:{port}", command, logs / f"{name}.log")


def wait_naive(server: Server, record: dict[str, Any]) -> None:
    """The naive app has no health route: ready once a prediction answers 200."""
    server.wait_until(lambda: answers_200(server.url + PREDICT_PATH, record))


def wait_superkart(server: Server) -> None:
    """Ready once ``/readyz`` answers 200 on several fresh connections (each worker loads its own model)."""
    server.wait_until(lambda: answers_200(server.url + "/readyz"), streak=10)


def connections_by_process(port: int) -> list[int]:
    """Established connections to ``port`` per server process, most first (empty without ``ss``)."""
    ss = shutil.which("ss")
    if ss is None:
        return []
    query = [ss, "-tnpH", "state", "established", f"( sport = :{port} )"]
    out = subprocess.run(query, capture_output=True, text=True, timeout=10).stdout
    return sorted(Counter(re.findall(r"pid=(\d+)", out)).values(), reverse=True)


# --- the client ----------------------------------------------------------------------------


def sample_record(seed: int = 1) -> dict[str, Any]:
    """One synthetic record: the dataset's columns minus the target, as plain JSON values."""
    from superkart_lib.contract import schema
    from superkart_lib.development.synthetic import generate

    row = generate(rows=20, seed=seed).drop(columns=[schema.TARGET]).iloc[0].to_dict()
    return {key: value.item() if hasattr(value, "item") else value for key, value in row.items()}


def sample_body(seed: int = 1) -> bytes:
    """:func:`sample_record` as a JSON body."""
    return json.dumps(sample_record(seed)).encode()


def wrk_script(body: bytes, requests: int, threads: int, path: str = PREDICT_PATH) -> str:
    """The Lua script: POST ``body`` until ``requests`` responses, split over ``threads``."""
    text = body.decode()
    if "]==]" in text:
        raise ValueError("body cannot be embedded in a Lua long string")
    return WRK_SCRIPT.format(path=path, body=text, requests=requests, threads=threads, done_mark=DONE_MARK)


def _interrupt_until_exit(process: subprocess.Popen) -> None:
    """SIGINT wrk until it exits: its main thread only wakes from sleep(duration) if the signal lands there.

    A process-directed signal goes to any thread; while a load thread is still winding down it may
    take it (wrk's handler only sets a flag), so repeat until the load threads are gone.
    """
    while process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=0.2)


def _read_all(stream: Any, sink: list[str]) -> None:
    """Collect a pipe until it closes."""
    sink.append(stream.read())


def _stop_when_done(process: subprocess.Popen, threads: int, lines: list[str]) -> None:
    """Read wrk's stderr; interrupt it once every thread has its share (wrk then reports at once)."""
    assert process.stderr is not None
    done = 0
    for line in process.stderr:
        lines.append(line)
        if line.strip() == DONE_MARK:
            done += 1
            if done == threads:
                threading.Thread(target=_interrupt_until_exit, args=(process,), daemon=True).start()


def run_wrk(
    name: str,
    url: str,
    body: bytes,
    requests: int,
    concurrency: int,
    threads: int = 1,
    max_seconds: float = 300.0,
    timeout: float = 10.0,
    probe: Callable[[], None] | None = None,
) -> LoadResult:
    """Send ``requests`` POSTs of ``body`` over ``concurrency`` keep-alive connections (capped at ``max_seconds``).

    ``probe`` is called once, a second into the run (to look at the server under load).
    """
    wrk = find_tool("wrk", "wrk")
    threads = max(1, min(threads, concurrency))
    with tempfile.TemporaryDirectory(prefix="superkart-wrk-") as tmp:
        script = Path(tmp) / "bounded.lua"
        script.write_text(wrk_script(body, requests, threads), encoding="utf-8")
        command = [
            wrk,
            f"-t{threads}",
            f"-c{concurrency}",
            f"-d{math.ceil(max_seconds)}s",
            f"--timeout={timeout:g}s",
            "-s",
            str(script),
            url,
        ]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.monotonic()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stdout: list[str] = []
        stderr: list[str] = []
        # Not communicate(): the watcher alone must read stderr, or it may miss the done marks.
        readers = [
            threading.Thread(target=_read_all, args=(process.stdout, stdout), daemon=True),
            threading.Thread(target=_stop_when_done, args=(process, threads, stderr), daemon=True),
        ]
        for reader in readers:
            reader.start()
        timer = threading.Timer(1.0, probe) if probe else None
        if timer:
            timer.start()
        try:
            process.wait(timeout=max_seconds + 30)
        finally:
            if timer:
                timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
            for reader in readers:
                reader.join(timeout=5)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        wall = time.monotonic() - wall
    result = _parse_wrk(name, concurrency, "".join(stdout), "".join(stderr))
    # The client shares the machine: its CPU use shows whether it, not the server, was the limit.
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    result.client_cpu = cpu / wall if wall > 0 else 0.0
    return result


def _parse_wrk(name: str, concurrency: int, stdout: str, stderr: str) -> LoadResult:
    """The JSON line printed by the script's done() as a :class:`LoadResult`."""
    line = next((x for x in stdout.splitlines() if x.startswith('{"requests"')), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{stdout}\n{stderr}")
    data = json.loads(line)
    finished = data["all_finished"]
    # Stopped by the time cap: some thread never finished, so use wrk's own run time.
    seconds = data["seconds"] if finished and data["seconds"] > 0 else data["wrk_seconds"]
    kinds = {k: int(data[k]) for k in ("connect", "read", "write", "status", "timeout")}
    return LoadResult(
        server=name,
        concurrency=concurrency,
        requests=int(data["requests"]),
        seconds=seconds,
        rps=data["requests"] / seconds if seconds else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=sum(kinds.values()),
        error_kinds={k: v for k, v in kinds.items() if v},
        finished=finished,
    )


# --- the report ----------------------------------------------------------------------------


def results_table(results: list[LoadResult]) -> str:
    """One line per (concurrency, server): throughput, latency percentiles and errors."""
    header = f"{'server':<12}{'conc':>5}{'requests':>10}{'seconds':>9}{'req/s':>10}"
    header += f"{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'errors':>8}{'wrk cpu':>9}"
    lines = [header, "-" * len(header)]
    for r in results:
        note = "" if r.finished else "  (time cap hit)"
        kinds = f"  {r.error_kinds}" if r.error_kinds else ""
        lines.append(
            f"{r.server:<12}{r.concurrency:>5}{r.requests:>10,}{r.seconds:>9.1f}{r.rps:>10,.0f}"
            f"{r.p50_ms:>9.2f}{r.p90_ms:>9.2f}{r.p99_ms:>9.2f}{r.max_ms:>9.1f}{r.errors:>8}"
            f"{r.client_cpu:>9.0%}{kinds}{note}"
        )
    return "\n".join(lines)


def comparison(results: list[LoadResult]) -> tuple[list[str], bool]:
    """Throughput ratio per concurrency and the targets, as lines; and whether every target is met."""
    by = {(r.server, r.concurrency): r for r in results}
    lines, ok = [], True
    for concurrency in sorted({r.concurrency for r in results}):
        naive, fast = by[("naive", concurrency)], by[("superkart", concurrency)]
        ratio = fast.rps / naive.rps if naive.rps else math.inf
        lines.append(f"c={concurrency:<3} superkart / naive throughput: {ratio:,.1f}x")
        if concurrency == TARGET_CONCURRENCY:
            speed_ok, tail_ok = ratio >= TARGET_SPEEDUP, fast.p99_ms <= TARGET_P99_MS
            lines.append(f"       target >= {TARGET_SPEEDUP:.0f}x: {'met' if speed_ok else 'MISSED'}")
            lines.append(
                f"       target p99 <= {TARGET_P99_MS:.0f} ms: {fast.p99_ms:.2f} ms, {'met' if tail_ok else 'MISSED'}"
            )
            ok = ok and speed_ok and tail_ok
    errors = sum(r.errors for r in results)
    lines.append(f"errors in all measured runs: {errors}")
    return lines, ok and errors == 0


def median_runs(runs: list[LoadResult]) -> LoadResult:
    """Of repeated runs of one cell, the one with the median throughput (kept whole, not mixed)."""
    ordered = sorted(runs, key=lambda r: r.rps)
    return ordered[(len(ordered) - 1) // 2]


# --- main ----------------------------------------------------------------------------------


def train_package(out: Path, n_iter: int) -> Path:
    """``superkart train --out OUT --n-iter N`` on the built-in synthetic data."""
    print(f"training a model package in {out} (n_iter={n_iter}) ...", file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "superkart_lib.cli", "train", "--out", str(out), "--n-iter", str(n_iter)]
    subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, timeout=900)
    return out


def add_common_options(parser: argparse.ArgumentParser, warmup_per: str, max_seconds: float) -> None:
    """The options both benchmarks take: the package, warm-up, the wrk client, time caps, JSON output."""
    parser.add_argument("--package", help="model package directory (default: train a small one)")
    parser.add_argument("--warmup", type=int, default=400, help=f"warm-up requests per {warmup_per} (default 400)")
    parser.add_argument("--wrk-threads", type=int, default=1, help="wrk threads (default 1)")
    help_ = f"time cap of one load run (default {max_seconds:g})"
    parser.add_argument("--max-seconds", type=float, default=max_seconds, help=help_)
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request timeout in seconds (default 10)")
    parser.add_argument("--n-iter", type=int, default=2, help="search candidates when training (default 2)")
    parser.add_argument("--json", help="also write the results as JSON here")


def package_for(args: argparse.Namespace, tmp: Path) -> Path:
    """``--package``, or a small package trained in ``tmp``; printed, and resolved."""
    package = Path(args.package) if args.package else train_package(tmp / "model", args.n_iter)
    print(f"package: {package}")
    return package.resolve()


def parity_line(naive: Server, fast: Server, record: dict[str, Any]) -> str:
    """Both servers' answer to the benchmark record (the ONNX model must agree to the cent)."""
    x = post_json(naive.url + PREDICT_PATH, record)[1]["prediction"]
    y = post_json(fast.url + PREDICT_PATH, record)[1]["prediction"]
    verdict = "agree to the cent" if abs(x - y) <= 0.01 else "DISAGREE"
    return f"the benchmark record: naive (joblib) {x:.4f}, superkart (ONNX) {y:.4f}; {verdict}"


def benchmark(args: argparse.Namespace, package: Path, logs: Path) -> tuple[list[LoadResult], bool]:
    """Start both servers, warm them, measure each concurrency in turns, print and return the results."""
    find_tool("wrk", "wrk")
    record = sample_record()
    body = json.dumps(record).encode()
    load = {1: args.requests_c1, 32: args.requests_c32}
    with stopped_on_exit() as servers:
        servers.append(start_naive(package, args.workers, logs))
        servers.append(start_superkart(package, args.workers, logs))
        naive, fast = servers
        started = time.monotonic()
        wait_naive(naive, record)
        wait_superkart(fast)
        note(f"both servers ready after {time.monotonic() - started:.1f} s")
        print(parity_line(naive, fast, record))
        for server in (naive, fast):  # first requests pay for imports and caches in every worker
            run_wrk(server.name, server.url, body, args.warmup, min(8, args.warmup), 1, args.max_seconds, args.timeout)
        cells: dict[tuple[str, int], list[LoadResult]] = {}
        split: list[int] = []
        fast_port = int(fast.url.rsplit(":", 1)[1])
        for round_ in range(args.rounds):
            for concurrency, requests in load.items():
                # Alternate the order between rounds, so a burst of other work does not hit one server only.
                order = (naive, fast) if round_ % 2 == 0 else (fast, naive)
                for server in order:
                    # Keep-alive connections stay with the worker that accepted them: record how they spread.
                    probe = None
                    if server is fast and concurrency > 1 and not split:
                        probe = lambda: split.extend(connections_by_process(fast_port))  # noqa: E731
                    settled = wait_until_idle(servers)
                    result = run_wrk(
                        server.name,
                        server.url,
                        body,
                        requests,
                        concurrency,
                        args.wrk_threads,
                        args.max_seconds,
                        args.timeout,
                        probe=probe,
                    )
                    cells.setdefault((server.name, concurrency), []).append(result)
                    note(
                        f"{server.name:<10} c={concurrency:<3} {result.rps:>9,.0f} req/s in {result.seconds:.1f} s "
                        f"(after {settled:.1f} s waiting for both servers to idle)"
                    )
    results = [median_runs(cells[(name, c)]) for c in load for name in ("naive", "superkart")]
    lines, ok = comparison(results)
    print(results_table(results))
    print("\n".join(lines))
    if split:
        print(f"superkart keep-alive connections per worker at c={max(load)} (1 s in): {split}")
    return results, ok


def add_pair_options(parser: argparse.ArgumentParser) -> None:
    """Options of a two-server comparison (``read_deadlines.py``, ``metrics_cost.py``)."""
    add_common_options(parser, warmup_per="server", max_seconds=120.0)
    parser.add_argument("--workers", type=int, default=1, help="worker processes of each server (default 1)")
    parser.add_argument("--requests", type=int, default=20_000, help="requests per run (default 20,000)")
    parser.add_argument("--concurrency", type=int, default=32, help="keep-alive connections (default 32)")
    parser.add_argument("--rounds", type=int, default=5, help="runs per server; the median is reported (default 5)")


def paired_rounds(servers: list[Server], body: bytes, args: argparse.Namespace) -> dict[str, list[LoadResult]]:
    """Warm each server, then ``args.rounds`` runs of each under the same wrk client, the order alternating.

    Both servers are idle before every run, so one's queued work never lands in the other's figures.
    """
    for server in servers:
        wait_superkart(server)
        run_wrk(server.name, server.url, body, args.warmup, min(8, args.warmup), 1, args.max_seconds, args.timeout)
    runs: dict[str, list[LoadResult]] = {server.name: [] for server in servers}
    for round_ in range(args.rounds):
        for server in servers if round_ % 2 == 0 else servers[::-1]:
            wait_until_idle(servers)
            result = run_wrk(
                server.name, server.url, body, args.requests, args.concurrency,
                args.wrk_threads, args.max_seconds, args.timeout,
            )  # fmt: skip
            runs[server.name].append(result)
            note(f"{server.name:<10} round {round_ + 1}: {result.rps:,.0f} req/s")
    return runs


def compare_pair(
    args: argparse.Namespace,
    names: Sequence[str],
    start: Callable[[str, Path, int, Path], Server],
    what: str,
    inspect: Callable[[Server], Any] | None = None,
) -> tuple[dict[str, list[LoadResult]], Any]:
    """A two-server comparison from start to end; the first of ``names`` is measured against the second.

    Prints the machine, then (after :func:`paired_rounds`) the table of medians and what the first
    costs in throughput against the second, as ``"{what} cost ..."``. ``start(name, package,
    workers, logs)`` starts one server; ``inspect`` is called with the first server before the
    servers stop. Returns every run per server and what ``inspect`` returned.
    """
    find_tool("wrk", "wrk")
    print(f"python {platform.python_version()} on {platform.platform()}; before: {load_note()}")
    body = json.dumps(sample_record()).encode()
    with tempfile.TemporaryDirectory(prefix="superkart-pair-") as tmp, stopped_on_exit() as servers:
        package = package_for(args, Path(tmp))
        servers.extend(start(name, package, args.workers, Path(tmp)) for name in names)
        runs = paired_rounds(servers, body, args)
        seen = inspect(servers[0]) if inspect else None
    results = [median_runs(runs[name]) for name in names]
    print(results_table(results))
    measured, baseline = results
    cost = 1 - measured.rps / baseline.rps if baseline.rps else 0.0
    print(f"{what} cost {cost:.1%} of throughput at c={args.concurrency} (median of {args.rounds} runs)")
    return runs, seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_options(parser, warmup_per="server", max_seconds=300.0)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of each server (default 2)")
    parser.add_argument("--requests-c1", type=int, default=2_000, help="requests at concurrency 1 (default 2,000)")
    parser.add_argument("--requests-c32", type=int, default=10_000, help="requests at concurrency 32 (default 10,000)")
    parser.add_argument("--rounds", type=int, default=1, help="measure each cell N times; median reported")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed or a request failed")
    args = parser.parse_args(argv)
    find_tool("wrk", "wrk")  # before any training or server start
    print(f"python {platform.python_version()} on {platform.platform()}; before: {load_note()}")
    print(
        f"{args.workers} workers each; wrk with {args.wrk_threads} thread(s); "
        f"{args.requests_c1:,} requests at c=1, {args.requests_c32:,} at c=32; one-record POST {PREDICT_PATH}"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="superkart-serving-") as tmp:
        results, ok = benchmark(args, package_for(args, Path(tmp)), Path(tmp))
    print(f"took {time.perf_counter() - started:.0f} s; after: {load_note()}")
    if args.json:
        record = {"workers": args.workers, "machine": load_note(), "results": [asdict(r) for r in results]}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"json: {args.json}")
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.exit(main())
