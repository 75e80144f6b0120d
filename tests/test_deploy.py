"""Deployment files: the naive baseline works, and the Docker, compose and nginx files say what they must.

No Docker here: the Dockerfile and compose.yaml are parsed and checked for the production rules
(the serve extra only, a non-root user, a health check, replicas behind nginx); nginx.conf goes
through Debian's ``nginx -t``. The naive app is checked through Flask's test client and once
for real under gunicorn with its own config file.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from superkart_lib.contract import schema
from superkart_lib.contract.limits import MAX_CSV_BYTES, MULTIPART_SLACK
from superkart_lib.course.serving import free_port, stop_process
from superkart_lib.development import python_formats
from tests.conftest import ROOT, json_records

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
    logical, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        logical.append(current + stripped)
        current = ""
    pairs = []
    for line in logical:
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
    assert nginx_directives(text, "proxy_pass") == [f"http://{name}"]
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
