"""Demo 02: a FunctionTransformer holding a lambda or a function defined in __main__.

pickle and joblib save functions *by reference* (module + name): a lambda has no name to
look up, and a __main__ function does not exist in the process that loads the file.
cloudpickle saves both *by value* (their bytecode), which ties the file to one Python minor.
Run: python serialization_demos/02_lambda_and_main.py
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import cloudpickle
import joblib
import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from superkart_lib.contract import integrity
from superkart_lib.contract import manifest as mf
from superkart_lib.development import python_formats
from superkart_lib.development.models import FAMILIES
from superkart_lib.development.onnx_export import export_bytes
from superkart_lib.development.synthetic import generate
from superkart_lib.development.train import split

COLUMNS = ["Product_MRP", "Product_Weight"]
# A module-level lambda: its name is "<lambda>", which no module attribute carries.
LAMBDA_STEP = FunctionTransformer(lambda X: np.log1p(X))
OTHER_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor - 1}.0"  # the previous minor
# A fresh interpreter: for each file, load it and predict, or report the error in one line.
CHILD = """
import pickle, sys, joblib, numpy as np
folder = sys.argv[1]
for name in sys.argv[2:]:
    try:
        with open(f"{folder}/{name}", "rb") as f:
            model = joblib.load(f) if name.endswith(".joblib") else pickle.load(f)
        np.save(f"{folder}/{name}.npy", model.predict(np.load(f"{folder}/X.npy")))
        print(f"{name}: loaded and predicted")
    except Exception as exc:
        print(f"{name}: {type(exc).__name__}: {exc}")
"""


def log_features(X: np.ndarray) -> np.ndarray:
    """Defined in __main__ when this file is run as a script: pickle records '__main__.log_features'."""
    return np.log1p(X)


def expect(condition: bool, message: str) -> None:
    """Exit non-zero, naming the lesson that did not hold."""
    if not condition:
        sys.exit(f"LESSON FAILED: {message}")


def fitted(step: FunctionTransformer, X: np.ndarray, y: np.ndarray) -> Pipeline:
    return Pipeline([("log", step), ("model", LinearRegression())]).fit(X, y)


def error_of(action, model: Pipeline) -> str | None:
    """The one-line error of ``action(model)``, or None when it succeeds."""
    try:
        action(model)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}".split(" You may")[0]
    return None


def fresh_process(folder: Path, names: list[str]) -> dict[str, str]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(folder), *names], capture_output=True, text=True, check=True)
    return dict(line.split(": ", 1) for line in out.stdout.splitlines())


def python_minor_check(model: Pipeline, folder: Path) -> None:
    """The library records the Python version and refuses cloudpickle files across minors."""
    python_formats.save(model, folder / "model.cloudpickle")
    entry = {"model.cloudpickle": mf.file_entry(folder / "model.cloudpickle")}
    manifest = {"package_version": "demo-02", "versions": mf.installed_versions(), "files": entry}
    python_formats.load(folder, "model.cloudpickle", manifest)
    print(f"   the manifest records python {manifest['versions']['python']}; formats.load accepts the file.")
    manifest["versions"]["python"] = OTHER_PYTHON
    refusal = error_of(lambda _: python_formats.load(folder, "model.cloudpickle", manifest), model)
    print(f"   recorded as python {OTHER_PYTHON} instead -> {str(refusal).replace(str(folder), '<pkg>')}")
    expect(refusal is not None and OTHER_PYTHON in refusal, "cloudpickle across Python minors should be refused")


def main() -> None:
    os.environ.pop(integrity.SIGNING_KEY_ENV, None)  # step 3's hand-made manifest is unsigned
    data = split(generate(1000, seed=0))
    X, y = data.X_train[COLUMNS].to_numpy(), data.y_train.to_numpy()
    models = {"lambda": fitted(LAMBDA_STEP, X, y), "__main__ function": fitted(FunctionTransformer(log_features), X, y)}
    main_model = models["__main__ function"]

    print("1) Dump with pickle and joblib (functions by reference):")
    for label, model in models.items():
        for lib, dump in (("pickle", pickle.dumps), ("joblib", lambda m: joblib.dump(m, io.BytesIO()))):
            error = error_of(dump, model)
            print(f"   {lib:<7} {label:<18} -> {error or 'dumped fine'}")
            expect((error is not None) == (label == "lambda"), f"{lib} dump of the {label}: unexpected outcome")

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        np.save(folder / "X.npy", X)
        (folder / "main.pkl").write_bytes(pickle.dumps(main_model))
        joblib.dump(main_model, folder / "main.joblib")
        for label, model in models.items():
            (folder / f"{label.split()[0]}.cloudpickle").write_bytes(cloudpickle.dumps(model))
        names = ["main.pkl", "main.joblib", "lambda.cloudpickle", "__main__.cloudpickle"]
        print("\n2) Load each file in a FRESH Python process:")
        outcome = fresh_process(folder, names)
        for name in names:
            print(f"   {name:<22} -> {outcome[name]}")
        for name in names[:2]:
            expect("log_features" in outcome[name], f"{name} should fail: no log_features in the new process")
        for name, model in zip(names[2:], models.values(), strict=True):
            same = np.array_equal(np.load(folder / f"{name}.npy"), model.predict(X))
            expect(same, f"{name} should load and predict identically in a fresh process")
        print("   both cloudpickle files predict bit-for-bit as in memory.")

        code = log_features.__code__.co_code
        inside = code in (folder / "__main__.cloudpickle").read_bytes()
        minor = f"{sys.version_info.major}.{sys.version_info.minor}"
        print(
            f"\n3) The cloudpickle file holds log_features' raw CPython {minor} bytecode ({len(code)} bytes): {inside}"
        )
        expect(inside, "cloudpickle should embed the bytecode")
        python_minor_check(main_model, folder)

    print("\n4) Why the project pipeline has no FunctionTransformer:")
    onnx_error = error_of(lambda m: export_bytes(m, check=False), main_model)
    print(f"   ONNX export of the __main__-function pipeline -> {onnx_error}")
    expect(onnx_error is not None and "FunctionTransformer" in onnx_error, "FunctionTransformer should not convert")
    project = FAMILIES["decision_tree"].pipeline(0).fit(data.X_train, data.y_train)
    module = "superkart_lib.development.features"
    by_reference = all(name in pickle.dumps(project) for name in (module.encode(), b"CategoryMapper"))
    print(f"   the project pipeline pickles its own steps by reference to {module}: {by_reference}")
    print(f"   ONNX export of the project pipeline -> {len(export_bytes(project))} bytes, parity-checked")
    expect(by_reference, "the project's steps should be importable classes")
    print(
        "\nLesson: pickle/joblib store functions by name, so a lambda fails at dump and a __main__ function at load;"
        "\ncloudpickle stores bytecode, tying the file to one Python minor. Importable classes"
        " (with ONNX converters) avoid both."
    )


if __name__ == "__main__":
    main()
