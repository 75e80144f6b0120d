"""Demo 04: a package recorded under another scikit-learn version.

Rewrites only the manifest's recorded scikit-learn version, then tries every loader:
the Python-object formats refuse (naming both versions), ONNX still loads and predicts.
Run: python serialization_demos/04_version_skew.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import sklearn

from superkart_lib.contract import errors, formats, integrity, schema
from superkart_lib.contract import manifest as mf
from superkart_lib.development import python_formats
from superkart_lib.development.data import load_training_data
from superkart_lib.development.package import write_package
from superkart_lib.development.train import compare_zoo, split, train
from superkart_lib.production.runtime import OnnxModel

OLD_SKLEARN = "1.0.0"
ONNX_TOLERANCE = 0.01


def expect(condition: bool, message: str) -> None:
    """Exit non-zero, naming the lesson that did not hold."""
    if not condition:
        sys.exit(f"LESSON FAILED: {message}")


def main() -> None:
    os.environ.pop(integrity.SIGNING_KEY_ENV, None)  # an unsigned package: only the version is in question
    frame, facts = load_training_data(None, rows=2000, seed=0)
    data = split(frame)
    zoo = compare_zoo(data, families=["gradient_boosting"], n_jobs=1)
    result = train(frame, n_iter=0, zoo=zoo)

    with tempfile.TemporaryDirectory() as tmp:
        package = write_package(result, Path(tmp) / "model", facts)
        manifest = mf.read(package)
        print(
            f"Package written with scikit-learn {manifest['versions']['scikit-learn']} (running {sklearn.__version__})."
        )
        manifest["versions"]["scikit-learn"] = OLD_SKLEARN  # nothing else changes: every sha256 still matches
        (package / mf.MANIFEST).write_text(mf.dumps(manifest), encoding="utf-8")
        print(f"Manifest now records scikit-learn {OLD_SKLEARN}; the model files are untouched.\n")

        for name in python_formats.PYTHON_FORMATS:
            try:
                python_formats.load(package, name)
            except errors.VersionMismatchError as exc:
                message = str(exc).replace(tmp, "<tmp>")
            else:
                sys.exit(f"LESSON FAILED: {name} loaded despite scikit-learn {OLD_SKLEARN} in the manifest")
            print(f"{formats.get_format(name).name:<12} refused: {message}")
            both = OLD_SKLEARN in message and sklearn.__version__ in message and name in message
            expect(both, f"the {name} refusal should name the file and both versions")

        onnx_model = OnnxModel.from_package(package)
        columns = {c: data.X_test[c].to_numpy() for c in schema.FEATURE_COLUMNS}
        worst = float(np.max(np.abs(onnx_model.predict(columns) - result.model.predict(data.X_test))))
        graph = onnx.load_model_from_string((package / "model.onnx").read_bytes())
        opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in graph.opset_import)
        print(f"\nonnx         loads: a graph of standard operators (opsets {opsets}), no Python objects;")
        print(f"             it predicts the {len(data.X_test)} test rows within ${worst:.6f} of the in-memory model.")
        expect(worst <= ONNX_TOLERANCE, f"ONNX should still predict within ${ONNX_TOLERANCE}")

    print(
        "\nWhy: pickle, joblib, cloudpickle and skops rebuild scikit-learn's private estimator state, which only the"
        "\nrelease that wrote it is guaranteed to read; an ONNX graph is read by any onnxruntime supporting its opset."
        "\nWhat to do: install the pinned versions (constraints.txt / environment.yml), or rebuild the package"
        "\n(superkart train) under the versions you run. Lesson: a pickled model is tied to its library versions;"
        " ONNX is not."
    )


if __name__ == "__main__":
    main()
