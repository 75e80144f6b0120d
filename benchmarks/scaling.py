"""Benchmark horizontal scaling: K single-worker API replicas behind a real nginx, for K = 1 and 2.

Usage::

    python benchmarks/scaling.py [--package DIR] [--replicas 1,2] [--requests 10000] [--concurrency 32]

What ``deploy/compose.yaml`` does with containers, done here with local processes (no Docker):
K ``run_server`` processes (one uvicorn worker each, as in the image) on their own 127.0.0.1
ports, and Debian's nginx running ``deploy/nginx.conf`` itself, with the ``server api:8000`` line
replaced by one line per replica and the listener moved to a free loopback port. The same wrk
client (see ``serving.py``) sends the same one-record body through nginx for each K; one replica
without nginx is measured too, to show what the proxy hop costs. Every process started here is
stopped at the end, also on errors. On a machine with C cores, K replicas can only scale while
K + nginx + wrk fit on them: the core count and load average are printed with the figures.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import serving
from serving import LoadResult, Server, find_tool, note

from superkart_lib.course.serving import answers_200, free_port

NGINX_CONF = serving.ROOT / "deploy" / "nginx.conf"
UPSTREAM_LINE = re.compile(r"^(\s*)server api:8000([^;]*);", re.MULTILINE)
LISTEN_LINE = re.compile(r"^(\s*)listen 80;", re.MULTILINE)
ACCESS_LOG_LINE = re.compile(r"^(\s*)access_log [^;]*;", re.MULTILINE)
HTTP_BLOCK = re.compile(r"^http \{", re.MULTILINE)
LIMIT_REQ_LINE = re.compile(r"^(\s*)limit_req zone=[^;]*;", re.MULTILINE)
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


def _replace_once(pattern: re.Pattern[str], replacement: str, text: str) -> str:
    """``pattern`` replaced exactly once; a deploy/nginx.conf of another shape is an error, not a silent skip."""
    result, count = pattern.subn(lambda m: replacement.format(*m.groups()), text)
    if count != 1:
        raise RuntimeError(f"{NGINX_CONF}: expected one match of {pattern.pattern!r}, found {count}")
    return result


def local_nginx_conf(ports: list[int], listen_port: int, prefix: Path) -> str:
    """deploy/nginx.conf pointed at local replicas, listening on loopback, logging each request's upstream."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    servers = "\n".join(f"{{0}}server 127.0.0.1:{port}{{1}};" for port in ports)
    text = _replace_once(UPSTREAM_LINE, servers, text)
    text = _replace_once(LISTEN_LINE, f"{{0}}listen 127.0.0.1:{listen_port};", text)
    # The example per-address rate limit would refuse most of a load test sent from one address:
    # this measures the proxy and the replicas, so the limit is off here (and only here).
    text = _replace_once(LIMIT_REQ_LINE, "{0}# limit_req off for the benchmark", text)
    # Which replica answered each request: to show that nginx spreads the load.
    log = f"{{0}}log_format upstream '$upstream_addr';\n{{0}}access_log {prefix / 'upstream.log'} upstream;"
    text = _replace_once(ACCESS_LOG_LINE, log, text)
    # Temporary files under our prefix, not the system's /var/lib/nginx.
    temps = "".join(f"\n    {name}_temp_path {prefix / name};" for name in TEMP_PATHS)
    return _replace_once(HTTP_BLOCK, "http {{" + temps, text)


def start_nginx(ports: list[int], workdir: Path) -> Server:
    """Debian's nginx in the foreground, in its own prefix under ``workdir``, proxying to ``ports``."""
    nginx = find_tool("nginx", "nginx")
    prefix = workdir / f"nginx-{len(ports)}"
    prefix.mkdir()
    prefix.chmod(0o755)  # nginx workers drop root privileges and must still reach their temp dirs
    listen_port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(local_nginx_conf(ports, listen_port, prefix), encoding="utf-8")
    command = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    command += ["-g", f"daemon off; pid {prefix / 'nginx.pid'};"]
    test = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
    if test.returncode != 0:
        raise RuntimeError(f"nginx -t failed:\n{test.stderr}")
    return serving.start_process(f"nginx-{len(ports)}", f"http://127.0.0.1:{listen_port}", command, prefix / "out.log")


def upstream_counts(nginx: Server) -> list[int]:
    """Requests answered by each replica, from nginx's upstream log (most first)."""
    log = nginx.log.parent / "upstream.log"
    lines = log.read_text(encoding="utf-8").split() if log.exists() else []
    return sorted(Counter(lines).values(), reverse=True)


def measure(name: str, url: str, body: bytes, args: argparse.Namespace) -> LoadResult:
    """Warm up, then one bounded wrk run at the chosen concurrency."""
    serving.run_wrk(name, url, body, args.warmup, min(8, args.warmup), 1, args.max_seconds, args.timeout)
    result = serving.run_wrk(
        name, url, body, args.requests, args.concurrency, args.wrk_threads, args.max_seconds, args.timeout
    )
    note(f"{name:<24} {result.rps:>9,.0f} req/s, p99 {result.p99_ms:.1f} ms")
    return result


def benchmark(args: argparse.Namespace, package: Path, workdir: Path) -> list[tuple[str, int, LoadResult, str]]:
    """Start max(K) replicas once; for each K, put a fresh nginx in front of the first K and measure."""
    find_tool("wrk", "wrk")
    find_tool("nginx", "nginx")
    body = serving.sample_body()
    rows: list[tuple[str, int, LoadResult, str]] = []
    with serving.stopped_on_exit() as servers:
        replicas = [serving.start_superkart(package, 1, workdir, f"replica{i}") for i in range(max(args.replicas))]
        servers.extend(replicas)
        for replica in replicas:
            replica.wait_until(lambda r=replica: answers_200(r.url + "/readyz"), streak=3)
        if args.direct:
            rows.append(("direct, no nginx", 1, measure("1 replica, direct", replicas[0].url, body, args), ""))
        for k in args.replicas:
            ports = [int(r.url.rsplit(":", 1)[1]) for r in replicas[:k]]
            nginx = start_nginx(ports, workdir)
            servers.append(nginx)
            nginx.wait_until(lambda n=nginx: answers_200(n.url + "/readyz"), timeout=30, streak=3)
            result = measure(f"nginx + {k} replica(s)", nginx.url, body, args)
            rows.append(("nginx", k, result, ", ".join(f"{n:,}" for n in upstream_counts(nginx))))
            nginx.stop()
    return rows


def report(rows: list[tuple[str, int, LoadResult, str]]) -> str:
    """The table: throughput and latency per setup, speed-up over one replica behind nginx."""
    base = next((r.rps for setup, k, r, _ in rows if setup == "nginx" and k == 1), None)
    header = f"{'setup':<18}{'replicas':>9}{'requests':>10}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
    header += f"{'errors':>8}{'wrk cpu':>9}{'vs K=1':>8}  requests per replica"
    lines = [header, "-" * len(header)]
    for setup, k, r, spread in rows:
        ratio = f"{r.rps / base:.2f}x" if base and setup == "nginx" else ""
        cap = "  (time cap hit)" if not r.finished else ""
        lines.append(
            f"{setup:<18}{k:>9}{r.requests:>10,}{r.rps:>10,.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{r.errors:>8}{r.client_cpu:>9.0%}{ratio:>8}  {spread}{cap}"
        )
    return "\n".join(lines)


def parse_replicas(text: str) -> list[int]:
    """'1,2' -> [1, 2]."""
    values = [int(x) for x in text.split(",") if x.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("replica counts are positive integers, e.g. 1,2")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    serving.add_common_options(parser, warmup_per="setup", max_seconds=120.0)
    parser.add_argument("--replicas", type=parse_replicas, default=[1, 2], help="replica counts (default 1,2)")
    parser.add_argument("--requests", type=int, default=10_000, help="requests per measurement (default 10,000)")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections (default 32)")
    parser.add_argument("--no-direct", dest="direct", action="store_false", help="skip the replica without nginx")
    args = parser.parse_args(argv)
    find_tool("wrk", "wrk")  # before any training or server start
    print(f"python {platform.python_version()} on {platform.platform()}; before: {serving.load_note()}")
    version = subprocess.run([find_tool("nginx", "nginx"), "-v"], capture_output=True, text=True).stderr.strip()
    print(
        f"{version}; deploy/nginx.conf with local replicas; wrk {args.requests:,} requests "
        f"at c={args.concurrency}; one-record POST {serving.PREDICT_PATH}"
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="superkart-scaling-") as tmp:
        rows = benchmark(args, serving.package_for(args, Path(tmp)), Path(tmp))
    print(report(rows))
    print(f"took {time.perf_counter() - started:.0f} s; after: {serving.load_note()}")
    if args.json:
        record = [{"setup": s, "replicas": k, "spread": spread, **asdict(r)} for s, k, r, spread in rows]
        Path(args.json).write_text(json.dumps({"machine": serving.load_note(), "rows": record}, indent=2) + "\n")
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
