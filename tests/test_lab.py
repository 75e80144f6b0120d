"""``make lab`` starts JupyterLab on the course notebooks, also as root, and lists them through its API."""

from __future__ import annotations

import os
import secrets
import subprocess

import httpx

from superkart_lib.course.runner import NOTEBOOKS
from superkart_lib.course.serving import free_port, stop_process, wait_until
from tests.conftest import ROOT


def test_make_lab_serves_the_notebooks(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    options = f"--no-browser --ServerApp.ip=127.0.0.1 --ServerApp.port={port} --IdentityProvider.token={token}"
    log = tmp_path / "lab.log"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}  # no state left in ~/.local
    with open(log, "wb") as out:
        lab = subprocess.Popen(
            ["make", "--no-print-directory", "lab", f"LAB_ARGS={options}"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:

        def listening() -> bool:
            try:
                return httpx.get(f"{url}/api/status", params={"token": token}, timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(lab, listening, 90, name="JupyterLab", log=log)
        listing = httpx.get(f"{url}/api/contents", params={"token": token}, timeout=10)
        assert listing.status_code == 200, listing.text
        names = {item["name"] for item in listing.json()["content"] if item["type"] == "notebook"}
        assert set(NOTEBOOKS) <= names, sorted(names)
        refused = httpx.get(f"{url}/api/contents", timeout=10)  # no token: the notebooks are not public
        assert refused.status_code == 403
        if os.geteuid() == 0:
            assert "--allow-root" in log.read_text()  # make printed the command it ran
    finally:
        stop_process(lab, group=True)
