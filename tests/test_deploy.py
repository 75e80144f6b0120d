"""Deployment files: the naive baseline works, and the Docker, compose and nginx files say what they must.

No Docker here: the Dockerfile and compose.yaml are parsed and checked for the production rules
(the serve extra only, a non-root user, a health check, replicas behind nginx); nginx.conf goes
through Debian's ``nginx -t``, then runs for real on loopback in front of a ``superkart serve``
(request ids, access log, gzip, rate limit, failover). The naive app is checked through Flask's
test client and once for real under gunicorn with its own config file.
"""

from __future__ import annotations

import contextlib
import grp
import gzip
import importlib.util
import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from superkart_lib.contract import schema
from superkart_lib.contract.limits import MAX_CSV_BYTES, MULTIPART_SLACK
from superkart_lib.course.serving import free_port, stop_process
from superkart_lib.development import python_formats
from tests.conftest import ROOT, dockerfile_lines, json_records, live_server, to_csv

DEPLOY = ROOT / "deploy"
NAIVE = DEPLOY / "naive"
STARTUP_SECONDS = 60.0


# --- a small package (seconds, not the session's full training) ----------------------------


@pytest.fixture(scope="module")
def package(small_package) -> Path:
    """A real model package: one quick model family, no search (conftest)."""
    return small_package


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    """Synthetic records as a client sends them: plain JSON values, no target."""
    from superkart_lib.development.synthetic import generate

    return json_records(generate(rows=25, seed=11).drop(columns=[schema.TARGET]))


@pytest.fixture(scope="module")
def reference(package) -> Any:
    """The package's joblib model, loaded the verified way (hashes and versions checked)."""
    return python_formats.load(package, "model.joblib")


def expected(model: Any, record: dict[str, Any]) -> float:
    import pandas as pd

    return float(model.predict(pd.DataFrame([record]))[0])


# --- the naive app ---------------------------------------------------------------------------


def import_naive_app(package: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """deploy/naive/app.py imported as students run it: the package directory in $MODEL."""
    monkeypatch.setenv("MODEL", str(package))
    spec = importlib.util.spec_from_file_location("superkart_naive_app", NAIVE / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_naive_app_predicts_like_the_packaged_joblib_model(package, records, reference, monkeypatch):
    client = import_naive_app(package, monkeypatch).app.test_client()
    for record in records:
        answer = client.post("/v1/predict", json=record)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert set(answer.json) == {"prediction"}
        assert answer.json["prediction"] == expected(reference, record)


def test_naive_app_loads_the_joblib_file_unverified_on_purpose():
    source = (NAIVE / "app.py").read_text()
    assert 'joblib.load(os.environ["MODEL"] + "/model.joblib")' in source
    assert "pd.DataFrame([request.json])" in source
    assert "BEFORE" in source  # the comments say why this is the "before"
    assert "import superkart_lib" not in source and "from superkart_lib" not in source


def post_json(url: str, record: dict[str, Any]) -> tuple[int, bytes]:
    request = urllib.request.Request(url, json.dumps(record).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return 0, b""


@contextlib.contextmanager
def gunicorn(package: Path, log: Path) -> Iterator[str]:
    """gunicorn with deploy/naive/gunicorn.conf.py (one worker) on a free port; yields the predict URL."""
    port = free_port()
    env = {**os.environ, "MODEL": str(package), "NAIVE_BIND": f"127.0.0.1:{port}", "NAIVE_WORKERS": "1"}
    command = [sys.executable, "-m", "gunicorn", "-c", str(NAIVE / "gunicorn.conf.py")]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    try:
        yield f"http://127.0.0.1:{port}/v1/predict"
    finally:
        stop_process(process)


def test_naive_app_runs_under_gunicorn_with_its_config(package, records, reference, tmp_path):
    record = records[0]
    log = tmp_path / "gunicorn.log"
    with gunicorn(package, log) as url:
        deadline = time.monotonic() + STARTUP_SECONDS
        status, body = post_json(url, record)
        while status != 200:
            assert time.monotonic() < deadline, f"gunicorn not answering after {STARTUP_SECONDS}s:\n{log.read_text()}"
            time.sleep(0.2)
            status, body = post_json(url, record)
    assert json.loads(body) == {"prediction": expected(reference, record)}


def test_gunicorn_config_uses_sync_workers():
    settings: dict[str, Any] = {}
    exec((NAIVE / "gunicorn.conf.py").read_text(), {"__file__": str(NAIVE / "gunicorn.conf.py")}, settings)
    assert settings["worker_class"] == "sync"
    assert settings["wsgi_app"] == "app:app"
    assert Path(settings["chdir"]) == NAIVE
    assert settings["bind"].startswith("127.0.0.1:")  # loopback unless told otherwise


# --- Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    pairs = []
    for line in dockerfile_lines(path):
        keyword, _, rest = line.partition(" ")
        pairs.append((keyword.upper(), rest.strip()))
    return pairs


def final_stage(instructions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) argument list, or the shell form split like a shell would."""
    return json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)


def test_dockerfile_installs_only_the_serve_extra_with_the_constraints():
    text = (DEPLOY / "Dockerfile").read_text()
    installs = [args for keyword, args in dockerfile_instructions(DEPLOY / "Dockerfile") if "pip install" in args]
    assert installs, "no pip install in the Dockerfile"
    for command in installs:
        words = shlex.split(command)
        assert ".[serve]" in words, command
        assert "-c" in words and words[words.index("-c") + 1] == "constraints.txt", command
    assert "[dev]" not in text
    for package in ("scikit-learn", "sklearn", "pandas", "joblib", "xgboost"):
        assert not re.search(rf"\b{package}\b", "\n".join(installs)), package


def test_dockerfile_copies_only_what_exists_and_what_the_build_context_keeps():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for keyword, arguments in dockerfile_instructions(DEPLOY / "Dockerfile"):
        if keyword != "COPY" or "--from=" in arguments:
            continue
        *sources, _ = [word for word in shlex.split(arguments) if not word.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source.rstrip("/") in kept, f"{source} is excluded by Dockerfile.dockerignore"


def test_dockerfile_runs_superkart_serve_as_a_non_root_user_with_a_healthcheck():
    stage = final_stage(dockerfile_instructions(DEPLOY / "Dockerfile"))
    keywords = [keyword for keyword, _ in stage]
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users, "the final stage sets no USER (it would run as root)"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    assert keywords.index("USER") < keywords.index("CMD")
    healthchecks = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert re.search(r"127\.0\.0\.1:8000/(healthz|readyz)", healthchecks[0]), healthchecks[0]
    command = exec_form(next(args for keyword, args in stage if keyword == "CMD"))
    assert command == ["superkart", "serve", "--model", "/model", "--host", "0.0.0.0", "--port", "8000"]


# --- compose.yaml ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_runs_api_replicas_behind_nginx(compose):
    services = compose["services"]
    assert {"api", "nginx"} <= set(services)
    api, nginx = services["api"], services["nginx"]
    assert api["deploy"]["replicas"] >= 2
    assert (DEPLOY / api["build"]["context"]).resolve() == ROOT
    assert api["build"]["dockerfile"] == "deploy/Dockerfile"
    assert "ports" not in api, "replicas are reached through nginx only"
    assert str(nginx["image"]).startswith("nginx")
    mounts = [str(v).split(":") for v in nginx["volumes"]]
    assert any(m[0] == "./nginx.conf" and m[1] == "/etc/nginx/nginx.conf" for m in mounts), mounts
    assert nginx["depends_on"]["api"]["condition"] == "service_healthy"


def test_compose_mounts_the_model_package_read_only(compose):
    volumes = compose["services"]["api"]["volumes"]
    model = [v for v in volumes if isinstance(v, dict) and v.get("target") == "/model"]
    assert len(model) == 1 and model[0]["read_only"] is True


# --- nginx.conf ------------------------------------------------------------------------------


def nginx_directives(text: str, name: str) -> list[str]:
    return [m.group(1).strip() for m in re.finditer(rf"^\s*{name}\s+([^;]*);", text, re.MULTILINE)]


def test_nginx_conf_keeps_upstream_connections_and_the_apis_body_cap():
    text = (DEPLOY / "nginx.conf").read_text()
    upstream = re.search(r"upstream\s+(\w+)\s*\{(.*?)\}", text, re.DOTALL)
    assert upstream is not None
    name, block = upstream.groups()
    assert re.search(r"^\s*server api:8000\b", block, re.MULTILINE)
    assert nginx_directives(block, "keepalive") and int(nginx_directives(block, "keepalive")[0]) > 0
    assert set(nginx_directives(text, "proxy_pass")) == {f"http://{name}"}  # every proxied location
    assert nginx_directives(text, "proxy_http_version") == ["1.1"]  # keepalive to upstreams needs both
    assert 'proxy_set_header Connection ""' in text
    (size,) = nginx_directives(text, "client_max_body_size")
    units = {"k": 1024, "m": 1024**2, "": 1}
    number, unit = re.fullmatch(r"(\d+)([kKmM]?)", size).groups()
    assert int(number) * units[unit.lower()] == MAX_CSV_BYTES + MULTIPART_SLACK
    # nginx's own 413 answer states the same number, in the API's error shape
    assert f"body over the limit of {MAX_CSV_BYTES + MULTIPART_SLACK:,} bytes" in text


def nginx_or_skip() -> str:
    """Path of nginx; a CI run without it fails (Makefile: system-packages), elsewhere the test skips."""
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")  # sbin: not on every PATH
    if nginx is None:
        message = "nginx is not installed (Debian: apt-get install -y nginx; `make test` does it as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return nginx


def nginx_test(nginx: str, conf: Path, prefix: Path) -> subprocess.CompletedProcess:
    """``nginx -t`` in a private prefix: no system paths are read or written."""
    command = [nginx, "-t", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    command += ["-g", f"pid {prefix / 'nginx.pid'};"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30)


def test_nginx_conf_passes_nginx_t(tmp_path):
    nginx = nginx_or_skip()
    # nginx -t resolves upstream hosts and binds the listener: `api` only resolves inside compose,
    # and port 80 needs root and may be taken. Point both at loopback; nothing else changes.
    text = (DEPLOY / "nginx.conf").read_text()
    text, hosts = re.subn(r"^(\s*)server api:8000\b", r"\1server 127.0.0.1:8000", text, flags=re.MULTILINE)
    text, listeners = re.subn(r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{free_port()};", text, flags=re.MULTILINE)
    assert hosts == listeners == 1
    conf = tmp_path / "nginx.conf"
    conf.write_text(text)
    result = nginx_test(nginx, conf, tmp_path)
    assert result.returncode == 0, result.stderr


def test_scaling_benchmark_config_passes_nginx_t(tmp_path):
    nginx = nginx_or_skip()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import scaling  # benchmarks/scaling.py rewrites deploy/nginx.conf for local replicas
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    conf = tmp_path / "nginx.conf"
    conf.write_text(scaling.local_nginx_conf([free_port(), free_port()], free_port(), tmp_path))
    text = conf.read_text()
    assert text.count("server 127.0.0.1:") == 2 and not re.search(r"^\s*server api:", text, re.MULTILINE)
    result = nginx_test(nginx, conf, tmp_path)
    assert result.returncode == 0, result.stderr


def test_nginx_conf_retries_only_what_is_safe_and_limits_the_api():
    text = (DEPLOY / "nginx.conf").read_text()
    (retry,) = nginx_directives(text, "proxy_next_upstream")
    # A POST is retried on another replica only when it never reached one (connect errors).
    assert set(retry.split()) == {"error", "timeout", "http_503"}, retry
    assert nginx_directives(text, "proxy_next_upstream_tries") == ["2"]
    assert nginx_directives(text, "proxy_next_upstream_timeout"), "retries must be bounded in time"
    api = re.search(r"location /v1/ \{(.*?)\}", text, re.DOTALL)
    assert api is not None and nginx_directives(api.group(1), "limit_req"), "the API locations are rate-limited"
    assert nginx_directives(text, "limit_req_status") == ["429"]
    assert re.search(r"^\s*server api:8000 .*max_fails=\d+ fail_timeout=\d+s", text, re.MULTILINE)


# --- nginx for real: deploy/nginx.conf in front of a `superkart serve` ------------------------

REQUEST_ID = re.compile(r"[0-9a-f]{32}")  # nginx's own $request_id
SECONDS = r"\d+\.\d{3}"  # how nginx logs a time
NGINX_TEMPS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")  # its temporary directories


@dataclass
class Nginx:
    """A running nginx: its base URL and the access log it writes in the production format."""

    url: str
    access_log: Path


def local_nginx_conf(prefix: Path, upstreams: list[int], listen_port: int, rate: str | None = None) -> str:
    """deploy/nginx.conf as production runs it, moved onto loopback and into ``prefix``.

    The upstream line becomes one line per port in ``upstreams`` (127.0.0.1, with the production
    server parameters), the listener ``listen_port``; logs and temporary files go into ``prefix``
    and the workers run as the current user. ``rate`` replaces the rate limit's rate (``1r/m``).
    """

    def servers(match: re.Match[str]) -> str:
        indent, parameters = match.groups()
        return "\n".join(f"{indent}server 127.0.0.1:{port}{parameters};" for port in upstreams)

    temps = "".join(f"\n    {name}_temp_path {prefix / name};" for name in NGINX_TEMPS)
    replacements: list[tuple[str, Any]] = [
        (r"^(\s*)server api:8000([^;]*);", servers),
        (r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{listen_port};"),
        (r"^(\s*)access_log /dev/stdout (\w+);", rf"\1access_log {prefix / 'access.log'} \2;"),
        (r"^error_log /dev/stderr", f"error_log {prefix / 'error.log'}"),
        (r"^http \{", "http {" + temps),
    ]
    if rate is not None:
        replacements.append((r"rate=\d+r/[sm];", f"rate={rate};"))
    text = (DEPLOY / "nginx.conf").read_text()
    for pattern, replacement in replacements:
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"deploy/nginx.conf: {pattern!r} matched {count} times"
    if os.geteuid() == 0:  # as root, nginx's workers would otherwise switch to `nobody`
        text = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n" + text
    return text


@contextlib.contextmanager
def running_nginx(prefix: Path, upstreams: list[int], rate: str | None = None) -> Iterator[Nginx]:
    """Debian's nginx in the foreground on 127.0.0.1, everything it writes under ``prefix``."""
    nginx = nginx_or_skip()
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(local_nginx_conf(prefix, upstreams, port, rate))
    command = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
    command += ["-g", f"daemon off; pid {prefix / 'nginx.pid'};"]
    with open(prefix / "out.log", "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # /metrics is answered by nginx itself: ready whatever the upstreams do
            assert process.poll() is None, (prefix / "error.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/metrics", timeout=2).status_code == 404:
                    break
            assert time.monotonic() < deadline, "nginx did not answer within 30 s"
            time.sleep(0.05)
        yield Nginx(url, prefix / "access.log")
    finally:
        stop_process(process, group=True)


def log_line(nginx: Nginx, request_id: str) -> str:
    """The access log line of the request ``request_id`` (nginx writes it just after answering)."""
    deadline = time.monotonic() + 10
    while True:
        text = nginx.access_log.read_text() if nginx.access_log.exists() else ""
        lines = [line for line in text.splitlines() if f"request_id={request_id} " in line]
        if lines or time.monotonic() > deadline:
            assert len(lines) == 1, f"request {request_id}: {len(lines)} log lines in\n{text}"
            return lines[0]
        time.sleep(0.05)


@pytest.fixture(scope="module")
def api(package, tmp_path_factory) -> Iterator[str]:
    """A real ``superkart serve`` of the small package on a free 127.0.0.1 port, ready."""
    with live_server(package, tmp_path_factory.mktemp("api") / "server.log", ready_path="/readyz") as url:
        yield url


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


class _RecordingHandler(BaseHTTPRequestHandler):
    """An upstream that answers every GET with a small JSON and keeps the headers it was sent."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.headers_seen.append(dict(self.headers))  # type: ignore[attr-defined]
        body = b'{"status":"ok"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        pass


@contextlib.contextmanager
def recording_upstream() -> Iterator[tuple[int, list[dict[str, str]]]]:
    """A plain HTTP server on 127.0.0.1: yields its port and the headers of each request it got."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    server.daemon_threads = True
    server.headers_seen = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], server.headers_seen  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


def test_nginx_gives_each_request_an_id_and_passes_it_upstream(tmp_path):
    with recording_upstream() as (port, seen), running_nginx(tmp_path / "nginx", [port]) as nginx:
        own = httpx.get(f"{nginx.url}/healthz", timeout=10)
        given = httpx.get(f"{nginx.url}/healthz", headers={"X-Request-ID": "client-7.a:1_B"}, timeout=10)
        odd = httpx.get(f"{nginx.url}/healthz", headers={"X-Request-ID": "a b" + "x" * 200}, timeout=10)
        hidden = httpx.get(f"{nginx.url}/metrics", timeout=10)
    assert own.status_code == given.status_code == odd.status_code == 200
    # No id from the client: nginx's own, to the client and to the replica alike.
    assert REQUEST_ID.fullmatch(own.headers["x-request-id"]), own.headers
    assert seen[0]["X-Request-ID"] == own.headers["x-request-id"]
    # The client's id, passed through both ways.
    assert given.headers["x-request-id"] == seen[1]["X-Request-ID"] == "client-7.a:1_B"
    # An id with spaces, or too long, is replaced rather than carried into logs and headers.
    assert REQUEST_ID.fullmatch(odd.headers["x-request-id"]) and seen[2]["X-Request-ID"] == odd.headers["x-request-id"]
    assert len({own.headers["x-request-id"], odd.headers["x-request-id"]}) == 2
    # /metrics stays private, and nginx's own answers carry an id too.
    assert hidden.status_code == 404 and hidden.json()["detail"] == "not found"
    assert REQUEST_ID.fullmatch(hidden.headers["x-request-id"])
    assert len(seen) == 3, "nginx answered /metrics itself"


def test_nginx_logs_the_request_id_with_upstream_timings(api, records, tmp_path):
    with running_nginx(tmp_path / "nginx", [port_of(api)]) as nginx:
        answer = httpx.post(
            f"{nginx.url}/v1/predict", json=records[0], headers={"X-Request-ID": "log-me-1"}, timeout=10
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-request-id"] == "log-me-1"
        line = log_line(nginx, "log-me-1")
    assert '"POST /v1/predict HTTP/1.1" 200 ' in line, line
    expected_fields = (
        rf"request_id=log-me-1 upstream=127\.0\.0\.1:{port_of(api)} upstream_status=200 "
        rf"upstream_response_time={SECONDS} upstream_connect_time={SECONDS} request_time={SECONDS}$"
    )
    assert re.search(expected_fields, line), line


def test_nginx_gzips_csv_answers_to_the_same_bytes(api, records, tmp_path):
    upload = {"file": ("products.csv", to_csv(records), "text/csv")}
    direct = httpx.post(f"{api}/v1/predict/csv", files=upload, headers={"Accept": "text/csv"}, timeout=30)
    assert direct.status_code == 200 and "content-encoding" not in direct.headers
    assert len(direct.content) > 1024, "too small for gzip_min_length: the test would prove nothing"
    with running_nginx(tmp_path / "nginx", [port_of(api)]) as nginx:
        headers = {"Accept": "text/csv", "Accept-Encoding": "gzip"}
        with httpx.stream("POST", f"{nginx.url}/v1/predict/csv", files=upload, headers=headers, timeout=30) as answer:
            raw = b"".join(answer.iter_raw())  # the bytes on the wire, not decoded by the client
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["content-encoding"] == "gzip"
    assert "Accept-Encoding" in answer.headers["vary"]
    assert len(raw) < len(direct.content)
    assert gzip.decompress(raw) == direct.content


def test_nginx_rate_limits_the_api_with_429(api, tmp_path):
    text = (DEPLOY / "nginx.conf").read_text()
    (burst,) = re.findall(r"limit_req zone=\w+ burst=(\d+)", text)
    # The production zone, burst and status, with the rate slowed to 1 a minute: the burst is
    # then all that passes while this test runs, however fast or slow the machine is.
    with running_nginx(tmp_path / "nginx", [port_of(api)], rate="1r/m") as nginx, httpx.Client() as client:
        answers = [client.get(f"{nginx.url}/v1/schema", timeout=10) for _ in range(int(burst) + 5)]
        outside = client.get(f"{nginx.url}/readyz", timeout=10)  # not under /v1/: not limited
    statuses = [answer.status_code for answer in answers]
    assert statuses == [200] * (int(burst) + 1) + [429] * 4, statuses
    refused = answers[-1]
    assert refused.headers["retry-after"] == "1" and REQUEST_ID.fullmatch(refused.headers["x-request-id"])
    assert refused.json()["detail"].startswith("too many requests")
    assert outside.status_code == 200


def test_nginx_moves_on_from_a_lost_replica_even_for_post(api, records, tmp_path):
    lost = free_port()  # nothing listens there: a replica that is gone
    with running_nginx(tmp_path / "nginx", [lost, port_of(api)]) as nginx, httpx.Client() as client:
        answers = [
            client.post(f"{nginx.url}/v1/predict", json=record, headers={"X-Request-ID": f"failover-{i}"}, timeout=10)
            for i, record in enumerate(records[:6])
        ]
        lines = [log_line(nginx, f"failover-{i}") for i in range(6)]
    assert [answer.status_code for answer in answers] == [200] * 6, [answer.text for answer in answers]
    # At least one POST went to the lost replica first and was sent on: connect errors are retried.
    assert any(
        f"upstream=127.0.0.1:{lost}, 127.0.0.1:{port_of(api)} upstream_status=502, 200 " in line for line in lines
    )


def test_nginx_answers_503_in_the_apis_shape_when_no_replica_is_up(tmp_path):
    with running_nginx(tmp_path / "nginx", [free_port()]) as nginx:
        answer = httpx.get(f"{nginx.url}/v1/model", timeout=10)
    assert answer.status_code == 503
    assert answer.headers["retry-after"] == "1" and REQUEST_ID.fullmatch(answer.headers["x-request-id"])
    assert answer.json()["detail"] == "no API replica is available; retry shortly"
