"""The model package: complete, verified, tamper-evident, written atomically, and loadable
in the small production environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import venv

import numpy as np
import pytest

from superkart_lib import formats, schema
from superkart_lib.errors import SuperKartError
from superkart_lib.runtime import OnnxModel
from superkart_lib.verify import EXPECTED_FILES, verify_package
from tests.conftest import ROOT, run_cli

MODEL_FILES = tuple(formats.FORMATS)


def test_train_leaves_the_complete_package(trained):
    out, _ = trained
    assert sorted(p.name for p in out.iterdir()) == sorted([*EXPECTED_FILES, "manifest.json"])
    result = run_cli("verify", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1].endswith(f"verified: {len(EXPECTED_FILES)} files")
    card = (out / "MODEL_CARD.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["package_version"] in card and manifest["model"]["family"] in card


@pytest.fixture
def package_copy(trained, tmp_path):
    import shutil

    copy = tmp_path / "package"
    shutil.copytree(trained[0], copy)
    return copy


def _flip_one_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", [*MODEL_FILES, "MODEL_CARD.md"])
def test_one_flipped_byte_fails_verify_and_the_loader(package_copy, name):
    _flip_one_byte(package_copy / name)
    result = run_cli("verify", str(package_copy))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"superkart verify: error: {package_copy / name}: sha256 ")
    assert "does not match the manifest" in result.stderr
    if name == "model.onnx":
        with pytest.raises(SuperKartError, match=f"{package_copy / name}.*does not match"):
            OnnxModel.from_package(package_copy)
    elif name in MODEL_FILES:
        with pytest.raises(SuperKartError, match=f"{package_copy / name}.*does not match"):
            formats.load(package_copy, name)


def test_unexpected_and_missing_files_are_refused(package_copy):
    (package_copy / "extra.pkl").write_bytes(b"not listed")
    with pytest.raises(SuperKartError, match="extra.pkl: not part of the package"):
        verify_package(package_copy)
    (package_copy / "extra.pkl").unlink()
    (package_copy / "model.skops").unlink()
    with pytest.raises(SuperKartError, match="model.skops: listed in the manifest but missing"):
        verify_package(package_copy)


def test_signed_package(tmp_path, monkeypatch, synthetic_frame):
    from superkart_lib.package import write_package
    from superkart_lib.train import train

    monkeypatch.setenv("SUPERKART_SIGNING_KEY", "course-secret")
    result = train(synthetic_frame.head(800), n_iter=0, families=["decision_tree"])
    out = write_package(result, tmp_path / "signed", {"source": "test", "sha256": "0" * 64, "rows": 800})
    assert verify_package(out)[-1].endswith("verified: signed, 6 files")
    monkeypatch.setenv("SUPERKART_SIGNING_KEY", "another-secret")
    with pytest.raises(SuperKartError, match="signature does not match"):
        verify_package(out)
    with pytest.raises(SuperKartError, match="signature does not match"):
        OnnxModel.from_package(out)


SAVER = """
import sys
from superkart_lib.package import write_package
from superkart_lib.synthetic import generate
from superkart_lib.train import train

result = train(generate(3000, 0), n_iter=0, families=["random_forest"])
print("saving", flush=True)
write_package(result, sys.argv[1], {"source": "test", "sha256": "0" * 64, "rows": 3000})
print("saved", flush=True)
"""


def test_killed_save_leaves_previous_package_intact(trained, tmp_path):
    import shutil

    out = tmp_path / "model"
    shutil.copytree(trained[0], out)
    before = json.loads((out / "manifest.json").read_text())["package_version"]
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert saver.stdout.readline().strip() == "saving"
        deadline = time.monotonic() + 60
        # Kill once the new package is half-written: some model files exist in staging, the manifest does not.
        while time.monotonic() < deadline:
            staging = [d for d in tmp_path.glob(".model.*") if d.is_dir()]
            if staging and (staging[0] / "model.pkl").exists():
                break
            time.sleep(0.01)
        else:
            pytest.fail("the save never started writing")
        os.kill(saver.pid, signal.SIGKILL)
        saver.wait(timeout=30)
    finally:
        if saver.poll() is None:
            saver.kill()
    assert saver.returncode == -signal.SIGKILL
    assert not (staging[0] / "manifest.json").exists(), "killed mid-save, before the manifest"
    assert json.loads((out / "manifest.json").read_text())["package_version"] == before
    verify_package(out)


@pytest.fixture(scope="session")
def production_python(tmp_path_factory):
    """A clean virtualenv with only `pip install .[serve]` and the pinned versions."""
    env_dir = tmp_path_factory.mktemp("prod") / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-c",
            str(ROOT / "constraints.txt"),
            f"{ROOT}[serve]",
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    return python


PREDICT = """
import importlib.util, json, sys
absent = [m for m in ("sklearn", "pandas", "scipy", "skl2onnx") if importlib.util.find_spec(m) is not None]
assert not absent, f"production environment has {absent}"
from superkart_lib.runtime import OnnxModel
model = OnnxModel.from_package(sys.argv[1])
records = json.load(open(sys.argv[2]))
print(json.dumps({"version": model.version, "predictions": model.predict(records).tolist(),
                  "modules": sorted(m for m in sys.modules if m.split(".")[0] in ("sklearn", "pandas"))}))
"""


def test_production_environment_predicts_within_a_cent(production_python, trained, synthetic_frame, tmp_path):
    import joblib

    out, _ = trained
    rows = synthetic_frame.drop(columns=[schema.TARGET]).sample(500, random_state=1)
    development = joblib.load(out / "model.joblib").predict(rows)
    records = tmp_path / "records.json"
    records.write_text(json.dumps(rows.to_dict(orient="records")))
    result = subprocess.run(
        [str(production_python), "-c", PREDICT, str(out), str(records)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout)
    assert answer["modules"] == []
    assert (
        str(production_python.parent.parent)
        in subprocess.run(
            [str(production_python), "-c", "import superkart_lib, sys; print(superkart_lib.__file__)"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
        ).stdout
    ), "the production environment's own installed copy is what ran"
    assert np.max(np.abs(np.asarray(answer["predictions"]) - development)) <= 0.01
