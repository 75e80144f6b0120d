"""pickle, joblib, cloudpickle and skops through superkart_lib.contract.formats: round trips and verified loading."""

from __future__ import annotations

import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sklearn
import sklearn.base
import skops.io as sio
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler

from superkart_lib.contract import errors, formats, integrity
from superkart_lib.contract import manifest as mf
from superkart_lib.development import python_formats, skops_audit
from superkart_lib.development.features import make_preprocessor
from superkart_lib.development.models import FAMILIES
from superkart_lib.development.synthetic import generate
from superkart_lib.development.train import split

ROOT = Path(__file__).resolve().parents[1]
NAMES = python_formats.PYTHON_FORMATS
PICKLED = ("model.pkl", "model.joblib", "model.cloudpickle")
SMALL = {"gradient_boosting": {"model__n_estimators": 30}, "random_forest": {"model__n_estimators": 20}}


class Canary:
    """Unpickling this creates a file: the harmless stand-in for an attacker's code."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(autouse=True)
def no_signing_key(monkeypatch):
    monkeypatch.delenv(integrity.SIGNING_KEY_ENV, raising=False)


@pytest.fixture(scope="module")
def data():
    return split(generate(1500, 0))


@pytest.fixture(scope="module")
def models(data):
    fitted = {}
    for family, params in SMALL.items():
        fitted[family] = FAMILIES[family].pipeline(0).set_params(**params).fit(data.X_train, data.y_train)
    return fitted


def write_manifest(directory: Path, manifest: dict) -> None:
    (directory / mf.MANIFEST).write_text(mf.dumps(manifest), encoding="utf-8")


def build_package(directory: Path, model, family: str) -> Path:
    directory.mkdir(parents=True)
    for name in NAMES:
        python_formats.save(model, directory / name)
    manifest = {
        "package_version": f"test-{family}",
        "model": {"family": family, "estimator": type(model.named_steps["model"]).__name__},
        "versions": mf.installed_versions(),
        "files": {name: mf.file_entry(directory / name) for name in NAMES},
    }
    write_manifest(directory, manifest)
    return directory


@pytest.fixture(scope="module")
def packages(models, tmp_path_factory):
    root = tmp_path_factory.mktemp("packages")
    return {family: build_package(root / family, model, family) for family, model in models.items()}


@pytest.fixture
def package(packages, tmp_path) -> Path:
    """A private copy of the gradient boosting package, free to tamper with."""
    return Path(shutil.copytree(packages["gradient_boosting"], tmp_path / "package"))


def replace_file(package: Path, name: str, content: bytes, rehash: bool) -> None:
    """Overwrite a package file; with ``rehash`` the manifest vouches for the new content."""
    (package / name).write_bytes(content)
    if rehash:
        manifest = mf.read(package)
        manifest["files"][name] = mf.file_entry(package / name)
        write_manifest(package, manifest)


def set_version(package: Path, library: str, version: str | None, **extra) -> None:
    manifest = mf.read(package)
    manifest["versions"][library] = version
    manifest.update(extra)
    write_manifest(package, manifest)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("family", list(SMALL))
def test_round_trip_predicts_bit_for_bit(packages, models, data, family, name):
    loaded = python_formats.load(packages[family], name)
    assert type(loaded) is type(models[family])
    assert np.array_equal(loaded.predict(data.X_test), models[family].predict(data.X_test))


def test_round_trip_in_a_second_process(packages, models, data, tmp_path):
    script = (
        "import sys, numpy as np\n"
        "from superkart_lib.development import python_formats\n"
        "from superkart_lib.development.synthetic import generate\n"
        "from superkart_lib.development.train import split\n"
        "X = split(generate(1500, 0)).X_test\n"
        "np.savez(sys.argv[1], **{f'{i}_{j}': python_formats.load(p, n).predict(X)\n"
        "    for i, p in enumerate(sys.argv[2:]) for j, n in enumerate(python_formats.PYTHON_FORMATS)})\n"
    )
    out = tmp_path / "predictions.npz"
    env = {k: v for k, v in os.environ.items() if k != integrity.SIGNING_KEY_ENV}
    dirs = [str(packages[family]) for family in SMALL]
    done = subprocess.run(
        [sys.executable, "-c", script, str(out), *dirs], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    with np.load(out) as seen:
        for i, family in enumerate(SMALL):
            expected = models[family].predict(data.X_test)
            for j, name in enumerate(NAMES):
                assert np.array_equal(seen[f"{i}_{j}"], expected), (family, name)


@pytest.mark.parametrize("name", NAMES)
def test_one_flipped_byte_is_refused_naming_the_file(package, name):
    content = bytearray((package / name).read_bytes())
    content[len(content) // 2] ^= 0x01
    replace_file(package, name, bytes(content), rehash=False)
    with pytest.raises(errors.IntegrityError, match=re.escape(name)):
        python_formats.load(package, name)


def test_canary_payload_really_runs_when_unpickled(tmp_path):
    # Guards the tests below: a payload that did nothing would prove nothing.
    pickle.loads(pickle.dumps(Canary(tmp_path / "probe"))).close()
    assert (tmp_path / "probe").exists()


@pytest.mark.parametrize("name", PICKLED)
def test_malicious_payload_with_unlisted_hash_is_never_unpickled(package, tmp_path, name):
    canary = tmp_path / "canary"
    replace_file(package, name, pickle.dumps(Canary(canary), protocol=5), rehash=False)
    with pytest.raises(errors.IntegrityError, match=re.escape(name)):
        python_formats.load(package, name)
    assert not canary.exists()


@pytest.mark.parametrize("name", NAMES)
def test_only_the_verified_bytes_are_deserialised(package, data, models, tmp_path, monkeypatch, name):
    canary = tmp_path / "canary"
    verify_file = integrity.verify_file

    def verify_then_swap(package_dir, file_name, manifest):
        verified = verify_file(package_dir, file_name, manifest)
        (Path(package_dir) / file_name).write_bytes(pickle.dumps(Canary(canary)))  # swapped after the check
        return verified

    monkeypatch.setattr(integrity, "verify_file", verify_then_swap)
    loaded = python_formats.load(package, name)
    assert not canary.exists()
    assert np.array_equal(loaded.predict(data.X_test), models["gradient_boosting"].predict(data.X_test))


@pytest.mark.parametrize("name", NAMES)
def test_other_recorded_sklearn_version_is_refused(package, name):
    set_version(package, "scikit-learn", "1.0.0")
    with pytest.raises(errors.VersionMismatchError) as caught:
        python_formats.load(package, name)
    message = str(caught.value)
    assert "1.0.0" in message and sklearn.__version__ in message and name in message


@pytest.mark.parametrize("name", NAMES)
def test_inconsistent_version_warning_is_promoted_to_an_error(package, data, monkeypatch, name):
    # The manifest tells the truth about the running versions, but the estimators say otherwise.
    model = FAMILIES["linear_regression"].pipeline(0).fit(data.X_train, data.y_train)
    with monkeypatch.context() as patch:
        patch.setattr(sklearn.base, "__version__", "1.0.0")
        python_formats.save(model, package / name)
    replace_file(package, name, (package / name).read_bytes(), rehash=True)
    with pytest.raises(errors.VersionMismatchError) as caught:
        python_formats.load(package, name)
    message = str(caught.value)
    assert "1.0.0" in message and sklearn.__version__ in message and name in message


@pytest.mark.parametrize("name", NAMES)
def test_unrecorded_sklearn_version_is_refused(package, name):
    set_version(package, "scikit-learn", None)
    with pytest.raises(errors.VersionMismatchError, match="records no scikit-learn version"):
        python_formats.load(package, name)


@pytest.mark.parametrize("name", NAMES)
def test_numpy_major_skew_is_an_error_and_patch_skew_a_warning(package, name):
    running = np.__version__
    set_version(package, "numpy", "1.26.4")
    with pytest.raises(errors.VersionMismatchError, match=re.escape(f"numpy 1.26.4 but running numpy {running}")):
        python_formats.load(package, name)
    major, minor = running.split(".")[:2]
    skewed = f"{major}.{minor}.999"
    set_version(package, "numpy", skewed)
    with pytest.warns(errors.VersionSkewWarning, match=re.escape(f"numpy {skewed} but running numpy {running}")):
        assert python_formats.load(package, name) is not None


@pytest.mark.parametrize("name", NAMES)
def test_python_minor_skew_is_an_error_only_for_cloudpickle(package, name):
    major, minor = sys.version_info[:2]
    other = f"{major}.{minor + 1}.0"
    set_version(package, "python", other)
    if name == "model.cloudpickle":
        with pytest.raises(errors.VersionMismatchError, match=re.escape(other)):
            python_formats.load(package, name)
    else:
        with pytest.warns(errors.VersionSkewWarning, match=re.escape(f"python {other} but running")):
            python_formats.load(package, name)


@pytest.mark.parametrize(("name", "library"), [(n, n.split(".")[1]) for n in NAMES if n != "model.pkl"])
def test_own_library_skew_warns(package, name, library):
    set_version(package, library, "0.0.1")
    with pytest.warns(errors.VersionSkewWarning, match=f"{library} 0.0.1 but running {library} "):
        python_formats.load(package, name)


def test_xgboost_skew_matters_only_for_xgboost_models(package):
    set_version(package, "xgboost-cpu", "1.0.0")
    assert python_formats.load(package, "model.pkl") is not None  # a gradient boosting model holds no booster
    set_version(package, "xgboost-cpu", "1.0.0", model={"family": "xgboost", "estimator": "XGBRegressor"})
    with pytest.raises(errors.VersionMismatchError, match="xgboost-cpu 1.0.0 but running"):
        python_formats.load(package, "model.pkl")


@pytest.mark.parametrize(
    ("extra", "type_name"),
    [
        (MinMaxScaler(), "sklearn.preprocessing._data.MinMaxScaler"),  # trusted by skops' defaults, not by us
        (FunctionTransformer(np.log1p), "numpy.log1p"),
    ],
)
def test_skops_refuses_types_outside_the_allow_list(package, data, extra, type_name):
    model = Pipeline([("features", make_preprocessor(scale=False)), ("extra", extra), ("model", LinearRegression())])
    model.fit(data.X_train, data.y_train)
    with pytest.raises(errors.UntrustedTypeError, match=re.escape(type_name)):
        python_formats.save(model, package / "model.skops")  # refused at save, too
    replace_file(package, "model.skops", sio.dumps(model), rehash=True)
    with pytest.raises(errors.UntrustedTypeError) as caught:
        python_formats.load(package, "model.skops")
    assert type_name in str(caught.value) and "model.skops" in str(caught.value)


def test_skops_gets_an_explicit_allow_list(package, monkeypatch):
    seen = {}
    loads = sio.loads

    def spy(data, trusted=None):
        seen["trusted"] = trusted
        return loads(data, trusted=trusted)

    monkeypatch.setattr(sio, "loads", spy)
    python_formats.load(package, "model.skops")
    assert isinstance(seen["trusted"], list) and set(seen["trusted"]) == skops_audit.SKOPS_TRUSTED


def sign(package: Path, key: str) -> dict:
    manifest = mf.read(package)
    manifest[integrity.SIGNATURE_FIELD] = integrity.sign_manifest(manifest, key)
    write_manifest(package, manifest)
    return manifest


@pytest.mark.parametrize("name", NAMES)
def test_signed_manifest_loads_with_the_key(package, monkeypatch, name):
    monkeypatch.setenv(integrity.SIGNING_KEY_ENV, "s3cret")
    signed = integrity.sign_if_configured(mf.read(package))
    write_manifest(package, signed)
    assert signed[integrity.SIGNATURE_FIELD].startswith("hmac-sha256:")
    assert python_formats.load(package, name) is not None


def test_tampered_manifest_is_refused(package, monkeypatch):
    monkeypatch.setenv(integrity.SIGNING_KEY_ENV, "s3cret")
    manifest = sign(package, "s3cret")
    manifest["package_version"] = "forged"
    write_manifest(package, manifest)
    with pytest.raises(errors.IntegrityError, match="manifest.json: signature does not match"):
        python_formats.load(package, "model.pkl")


def test_rewritten_model_and_hash_are_refused_when_signed(package, tmp_path, monkeypatch):
    monkeypatch.setenv(integrity.SIGNING_KEY_ENV, "s3cret")
    sign(package, "s3cret")
    canary = tmp_path / "canary"
    replace_file(package, "model.pkl", pickle.dumps(Canary(canary)), rehash=True)  # keeps the old signature
    with pytest.raises(errors.IntegrityError, match="signature does not match"):
        python_formats.load(package, "model.pkl")
    assert not canary.exists()


def test_missing_or_foreign_signature_is_refused(package, monkeypatch):
    monkeypatch.setenv(integrity.SIGNING_KEY_ENV, "s3cret")
    with pytest.raises(errors.IntegrityError, match="not signed"):
        python_formats.load(package, "model.pkl")
    sign(package, "another key")
    with pytest.raises(errors.IntegrityError, match="signature does not match"):
        python_formats.load(package, "model.pkl")


def test_empty_key_is_refused(package, monkeypatch):
    monkeypatch.setenv(integrity.SIGNING_KEY_ENV, "")
    with pytest.raises(errors.IntegrityError, match="set but empty"):
        python_formats.load(package, "model.pkl")


def test_without_a_key_signed_and_unsigned_packages_load(package):
    assert python_formats.load(package, "model.pkl") is not None
    sign(package, "s3cret")
    assert python_formats.load(package, "model.pkl") is not None


def test_signature_is_over_canonical_json():
    built = {"b": (1, 2), "a": np.float64(0.5), "signature": "ignored"}
    assert integrity.sign_manifest(built, "k") == integrity.sign_manifest({"a": 0.5, "b": [1, 2]}, b"k")
    assert integrity.sign_manifest(built, "k") != integrity.sign_manifest({"a": 0.5, "b": [1, 3]}, "k")


def test_registry_records_what_loading_needs_and_risks(package, models):
    assert set(formats.FORMATS) == {*NAMES, "model.onnx"}
    assert [n for n, f in formats.FORMATS.items() if f.executes_code] == list(PICKLED)
    assert "onnxruntime" in formats.FORMATS["model.onnx"].requires
    with pytest.raises(errors.FormatError, match="not Python objects"):
        python_formats.save(models["gradient_boosting"], package / "model.onnx")
    with pytest.raises(errors.FormatError, match="not a model file name"):
        python_formats.load(package, "model.bin")
    assert set(python_formats.writers()) == set(NAMES)
