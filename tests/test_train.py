"""Training: the zoo, tuning, the package written by `superkart train`, loky vs dask."""

from __future__ import annotations

import hashlib
import json

import joblib
import pytest

from superkart_lib.contract import schema
from superkart_lib.contract.manifest import TRACKED
from superkart_lib.development.train import split, train, tune


def test_train_writes_package(trained):
    out, result = trained
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"model.joblib", "manifest.json"} <= {p.name for p in out.iterdir()}
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]
    assert set(manifest["metrics"]) == {"r2", "rmse", "mae", "mape"}
    assert set(manifest["versions"]) == {"python", *TRACKED}
    assert manifest["versions"]["scikit-learn"] and manifest["versions"]["superkart_lib"]
    assert [c["name"] for c in manifest["schema"]["columns"]] == list(schema.ALL_COLUMNS)
    data = manifest["training_data"]
    assert data["rows"] == 8763 and data["train_rows"] + data["test_rows"] == 8763
    assert len(data["sha256"]) == 64
    assert manifest["model"]["family"] in {row["family"] for row in manifest["zoo"]}
    assert f"model package: {out}" in result.stdout


def test_best_model_quality(trained):
    out, _ = trained
    manifest = json.loads((out / "manifest.json").read_text())
    zoo = {row["family"]: row for row in manifest["zoo"]}
    assert manifest["metrics"]["r2"] >= 0.90
    assert zoo["linear_regression"]["r2"] <= manifest["metrics"]["r2"] - 0.05, "linear should be clearly lower"
    assert set(zoo) == {
        "linear_regression",
        "decision_tree",
        "random_forest",
        "gradient_boosting",
        "hist_gradient_boosting",
        "mlp",
        "xgboost",
    }


def test_saved_model_predicts_from_raw_records(trained, synthetic_frame):
    out, _ = trained
    model = joblib.load(out / "model.joblib")
    raw = synthetic_frame.drop(columns=[schema.TARGET]).head(50)
    with_id = model.predict(raw)
    without_id = model.predict(raw.drop(columns=["Product_Id"]))
    assert with_id.shape == (50,)
    assert (with_id == without_id).all(), "Product_Id is optional and unused"
    cleaned = raw.replace({"Product_Sugar_Content": {"reg": "Regular"}})
    assert (model.predict(cleaned) == with_id).all(), "the pipeline cleans 'reg' itself"


def test_saved_model_is_single_threaded(trained):
    model = joblib.load(trained[0] / "model.joblib")
    params = model.named_steps["model"].get_params()
    assert params.get("n_jobs", 1) in (1, None)


def test_dask_backend_matches_loky(synthetic_frame):
    frame = synthetic_frame.head(2500)
    kwargs = dict(seed=0, n_iter=4, families=["decision_tree", "gradient_boosting"])
    loky = train(frame, backend="loky", **kwargs)
    dask = train(frame, backend="dask", **kwargs)
    assert loky.search is not None and dask.search is not None
    assert loky.family == dask.family
    assert loky.params == dask.params
    assert loky.search.best_params == dask.search.best_params
    assert loky.search.table.equals(dask.search.table)
    assert loky.metrics == dask.metrics


def test_unreachable_scheduler_is_a_clear_error(synthetic_frame):
    from superkart_lib.contract.errors import SuperKartError

    data = split(synthetic_frame.head(300))
    with pytest.raises(SuperKartError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        tune("decision_tree", data, n_iter=2, backend="dask", scheduler="tcp://127.0.0.1:9")
