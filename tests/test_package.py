"""The model package: complete, verified, tamper-evident and written atomically.

Loading it in the real production install is tested in tests/test_production_install.py."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from superkart_lib.contract import formats
from superkart_lib.contract.errors import SuperKartError
from superkart_lib.development import python_formats
from superkart_lib.development.package import write_package
from superkart_lib.production.runtime import OnnxModel
from superkart_lib.production.verify import EXPECTED_FILES, OPTIONAL_FILES, verify_package
from tests.conftest import flip_one_byte, make_package, run_cli

MODEL_FILES = tuple(formats.FORMATS)


def test_train_leaves_the_complete_package(trained):
    out, _ = trained
    assert sorted(p.name for p in out.iterdir()) == sorted([*EXPECTED_FILES, *OPTIONAL_FILES, "manifest.json"])
    result = run_cli("verify", str(out))
    assert result.returncode == 0, result.stderr
    assert (
        result.stdout.strip().splitlines()[-1].endswith(f"verified: {len(EXPECTED_FILES) + len(OPTIONAL_FILES)} files")
    )
    card = (out / "MODEL_CARD.md").read_text()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["package_version"] in card and manifest["model"]["family"] in card


@pytest.fixture
def package_copy(trained, tmp_path):
    import shutil

    copy = tmp_path / "package"
    shutil.copytree(trained[0], copy)
    return copy


@pytest.mark.parametrize("name", [*MODEL_FILES, "MODEL_CARD.md"])
def test_one_flipped_byte_fails_verify_and_the_loader(package_copy, name):
    flip_one_byte(package_copy / name)
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
            python_formats.load(package_copy, name)


def test_unexpected_and_missing_files_are_refused(package_copy):
    (package_copy / "extra.pkl").write_bytes(b"not listed")
    with pytest.raises(SuperKartError, match="extra.pkl: not part of the package"):
        verify_package(package_copy)
    (package_copy / "extra.pkl").unlink()
    (package_copy / "model.skops").unlink()
    with pytest.raises(SuperKartError, match="model.skops: listed in the manifest but missing"):
        verify_package(package_copy)


def test_signed_package(tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERKART_SIGNING_KEY", "course-secret")
    out = make_package(tmp_path / "signed", rows=800)
    assert verify_package(out)[-1].endswith("verified: signed, 7 files")
    monkeypatch.setenv("SUPERKART_SIGNING_KEY", "another-secret")
    with pytest.raises(SuperKartError, match="signature does not match"):
        verify_package(out)
    with pytest.raises(SuperKartError, match="signature does not match"):
        OnnxModel.from_package(out)


SAVER = """
import sys
from superkart_lib.development.package import write_package
from superkart_lib.development.synthetic import generate
from superkart_lib.development.train import train

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


def test_the_published_manifest_names_no_training_file(tmp_path):
    """The manifest is public (GET /v1/model): it fingerprints the training data, it does not locate it."""
    import asyncio

    import httpx

    from superkart_lib.development.data import load_training_data
    from superkart_lib.development.synthetic import generate
    from superkart_lib.development.train import train
    from superkart_lib.production.app import create_app

    csv_path = tmp_path / "secret-training-data" / "superkart_sales.csv"
    csv_path.parent.mkdir()
    generate(rows=800, seed=3).to_csv(csv_path, index=False)
    frame, facts = load_training_data(str(csv_path))
    result = train(frame, seed=0, n_iter=0, families=["decision_tree"], n_jobs=1)
    out = write_package(result, tmp_path / "model", facts)
    app = create_app(out)
    app.state.model.load()  # httpx's ASGI transport runs no lifespan

    async def get_model() -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return (await client.get("/v1/model")).text

    published = asyncio.run(get_model())
    card = (out / "MODEL_CARD.md").read_text()
    for text in (published, (out / "manifest.json").read_text(), card):
        assert str(tmp_path) not in text and "secret-training-data" not in text and "superkart_sales" not in text
    data = json.loads(published)["training_data"]
    assert data["source"] == "file" and data["rows"] == 800
    assert data["sha256"] == hashlib.sha256(csv_path.read_bytes()).hexdigest()
    assert f"800 rows from a CSV file (sha256 `{data['sha256']}`)" in card
