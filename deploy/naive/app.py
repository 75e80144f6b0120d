"""The "before": the Flask app students usually write first, kept as the baseline to measure against.

Run it (from the repository root, in the *development* environment)::

    MODEL=/path/to/package .venv/bin/gunicorn -c deploy/naive/gunicorn.conf.py

Everything below is deliberately what a first deployment looks like. Do not "fix" it here:
``benchmarks/serving.py`` measures it next to ``superkart serve``, and ``deploy/naive/README.md``
lists each problem with the place where the project solves it.
"""

import os

import joblib
import pandas as pd
from flask import Flask, jsonify, request

# BEFORE: the pickle is loaded blindly at import. joblib.load runs whatever code the file says,
# nothing checks its sha256 against a manifest, and nothing checks that the scikit-learn,
# pandas and numpy installed here are the versions the model was saved with. A swapped or
# corrupted file is either code execution or a silently wrong model.
# (The fix: superkart_lib.production.runtime.OnnxModel.from_package verifies hashes and versions first.)
model = joblib.load(os.environ["MODEL"] + "/model.joblib")

app = Flask(__name__)


@app.post("/v1/predict")
def predict():
    # BEFORE: no validation. A missing field, a typo'd column or a string where a number belongs
    # surfaces as a 500 with a scikit-learn traceback in the log (or as a silently odd prediction).
    # BEFORE: a one-row DataFrame and the full scikit-learn pipeline per request: milliseconds of
    # pandas and column-transformer overhead for microseconds of actual tree evaluation. It also
    # means the server needs the whole training stack (scikit-learn, pandas, the company's code).
    frame = pd.DataFrame([request.json])
    return jsonify({"prediction": float(model.predict(frame)[0])})
