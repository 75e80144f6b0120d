"""The production install as a user makes it: a clean virtualenv with ``pip install -c constraints.txt '.[serve]'``.

It has numpy, onnxruntime and the web server only. There, ``superkart verify`` checks a whole
package, ``superkart predict`` writes the same bytes as the development install, the ONNX model
predicts within a cent of scikit-learn, and every development command says which extra it needs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import venv
from pathlib import Path

import numpy as np
import pytest

from superkart_lib.contract import schema
from superkart_lib.contract.formats import FORMATS, ONNX_FILE
from superkart_lib.development import python_formats
from tests.conftest import ROOT, TRAINING_STACK, flip_one_byte, run_cli

PYTHON_OBJECT_FILES = tuple(python_formats.PYTHON_FORMATS)


@pytest.fixture(scope="module")
def production(tmp_path_factory) -> Path:
    """The ``bin`` directory of a clean virtualenv with only ``.[serve]`` at the pinned versions."""
    env_dir = tmp_path_factory.mktemp("prod") / "venv"
    venv.create(env_dir, with_pip=True)
    install = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        + ["-c", str(ROOT / "constraints.txt"), f"{ROOT}[serve]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return env_dir / "bin"


def superkart(production: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    """The production install's own ``superkart`` console script."""
    return subprocess.run([str(production / "superkart"), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_the_install_has_no_training_stack_and_runs_its_own_copy(production, tmp_path):
    found = f"[m for m in {list(TRAINING_STACK)!r} if importlib.util.find_spec(m)]"
    code = f"import importlib.util, json, superkart_lib; print(json.dumps([{found}, superkart_lib.__file__]))"
    result = subprocess.run([str(production / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path)
    present, location = json.loads(result.stdout)
    assert present == []
    assert location.startswith(str(production.parent)), location


def test_onnx_predicts_within_a_cent_of_scikit_learn(production, package, synthetic_frame, tmp_path):
    rows = synthetic_frame.drop(columns=[schema.TARGET]).sample(500, random_state=1)
    development = python_formats.load(package, "model.joblib").predict(rows)
    (tmp_path / "records.json").write_text(json.dumps(rows.to_dict(orient="records")))
    code = (
        "import json, sys; from superkart_lib.production.runtime import OnnxModel;"
        "print(json.dumps(OnnxModel.from_package(sys.argv[1]).predict(json.load(open(sys.argv[2]))).tolist()))"
    )
    result = subprocess.run(
        [str(production / "python"), "-c", code, str(package), "records.json"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert np.max(np.abs(np.asarray(json.loads(result.stdout)) - development)) <= 0.01


def test_verify_checks_every_file_and_says_what_it_cannot_load(production, package, tmp_path):
    result = superkart(production, "verify", str(package), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    for name in FORMATS:
        (line,) = [line for line in lines if line.startswith(f"ok  {name} ")]
        if name == ONNX_FILE:
            assert "not loadable here" not in line
        else:  # scikit-learn objects: hash-checked, but their loaders (and version rules) need the dev install
            assert "not loadable here: needs scikit-learn" in line, line
    assert lines[-1].endswith(
        f"verified: 7 files; {len(PYTHON_OBJECT_FILES)} format(s) hash-checked but not loadable "
        "in this environment (install superkart_lib[dev] to check their library versions too)"
    )


@pytest.mark.parametrize("name", ["model.onnx", "model.cloudpickle", "MODEL_CARD.md"])
def test_verify_refuses_a_tampered_package(production, package, tmp_path, name):
    copy = shutil.copytree(package, tmp_path / "package")
    flip_one_byte(copy / name)
    result = superkart(production, "verify", str(copy), cwd=tmp_path)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"superkart verify: error: {copy / name}: sha256 ") and "does not match the manifest" in line


def _bad_rows(source: Path, target: Path) -> Path:
    lines = source.read_text().splitlines(keepends=True)
    lines[7] = lines[7].replace("Supermarket Type", "Hypermarket Type", 1)
    lines[11] = lines[11].replace(",", ",x", 1)
    target.write_text("".join(lines))
    return target


def test_predict_writes_the_bytes_the_development_install_writes(production, package, tmp_path):
    data = tmp_path / "data.csv"
    assert run_cli("data", "--rows", "20000", "--seed", "5", "--out", str(data)).returncode == 0
    bad = _bad_rows(data, tmp_path / "bad.csv")
    for source, options in ((data, []), (bad, ["--skip-invalid"])):
        outputs = {}
        for where in ("development", "production"):
            out = tmp_path / f"{where}-{source.stem}.csv"
            args = ("predict", "--model", str(package), "--input", str(source), "--output", str(out), "--quiet")
            if where == "development":
                result = run_cli(*args, *options)
            else:
                result = superkart(production, *args, *options, cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            print(f"\n{where}: {result.stdout.strip()}")
            outputs[where] = out
        assert outputs["production"].read_bytes() == outputs["development"].read_bytes()
        if options:
            rejected = [p.with_name(f"{p.stem}.rejected.csv") for p in outputs.values()]
            assert rejected[0].read_bytes() == rejected[1].read_bytes()
            assert len(rejected[0].read_text().splitlines()) == 3  # the header and the two bad rows


DEVELOPMENT_COMMANDS = {
    "train": ["train", "--out", "model"],
    "data": ["data", "--out", "data.csv"],
    "compare": ["compare", "{package}"],
    "run": ["run", "--out", "run"],
    "predict --dask": ["predict", "--model", "{package}", "--input", "in.csv", "--output", "out.csv", "--dask"],
    "retrain": ["retrain", "--registry", "reg", "--data", "in.csv"],
}


@pytest.mark.parametrize("command", list(DEVELOPMENT_COMMANDS))
def test_development_commands_name_the_extra_they_need(production, package, tmp_path, command):
    (tmp_path / "in.csv").write_text(",".join(schema.INPUT_COLUMNS) + "\n")
    args = [a.format(package=package) for a in DEVELOPMENT_COMMANDS[command]]
    result = superkart(production, *args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"superkart {args[0]}: error: `superkart {command}` needs the development install")
    assert "pip install 'superkart_lib[dev]'" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"], "nothing is written"


def test_help_works_without_the_development_install(production, tmp_path):
    commands = ["serve", "predict", "train", "registry", "retrain", "drift"]
    for args in (["--help"], *([command, "--help"] for command in commands)):
        result = superkart(production, *args, cwd=tmp_path)
        assert result.returncode == 0 and "usage: superkart" in result.stdout, result.stderr


def test_serve_answers_the_api_and_the_web_page(production, package, tmp_path):
    import httpx

    from superkart_lib.course.serving import answers_200, free_port, stop_process, wait_until

    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(production / "superkart"), "serve", "--model", str(package), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(server, lambda: answers_200(f"{url}/readyz"), timeout=90, log=log)
        record = {c.name: v for c, v in zip(schema.COLUMNS, ("FD1", 12.0, "reg", 0.05, "Dairy", 150.0), strict=False)}
        record |= {"Store_Id": "OUT003", "Store_Establishment_Year": 1999, "Store_Size": "Medium"}
        record |= {"Store_Location_City_Type": "Tier 1", "Store_Type": "Departmental Store"}
        answer = httpx.post(f"{url}/v1/predict", json=record, timeout=10)
        assert answer.status_code == 200 and answer.json()["prediction"] > 0, answer.text
        page, script = httpx.get(f"{url}/", timeout=10), httpx.get(f"{url}/web/app.js", timeout=10)
        assert page.status_code == 200 and "/web/app.js" in page.text  # the web files are in the wheel
        assert script.status_code == 200 and "/v1/schema" in script.text
    finally:
        stop_process(server, group=True)


def test_the_registry_works_in_the_production_install(production, package, tmp_path):
    """add, promote, list and history, then a server that follows the registry: no training stack needed."""
    reg = str(tmp_path / "reg")
    added = superkart(production, "registry", "add", "--registry", reg, "--model", str(package), cwd=tmp_path)
    assert added.returncode == 0, added.stderr
    version = json.loads((Path(package) / "manifest.json").read_text())["package_version"]
    promoted = superkart(production, "registry", "promote", version, "--registry", reg, "--why", "first", cwd=tmp_path)
    assert promoted.returncode == 0, promoted.stderr
    listing = superkart(production, "registry", "list", "--registry", reg, "--json", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    (entry,) = json.loads(listing.stdout)
    assert entry["version"] == version and entry["current"] is True
    again = superkart(production, "registry", "promote", version, "--registry", reg, "--why", "again", cwd=tmp_path)
    assert again.returncode == 2 and "already current" in again.stderr and "Traceback" not in again.stderr
