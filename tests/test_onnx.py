"""ONNX export of the whole pipeline and the production runtime.

Parity is the production environment's promise: on every row of the test split, the ONNX
artifact run by the production runtime (from records, not a DataFrame) is within one cent of
scikit-learn.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits
from xgboost import XGBRegressor

from superkart_lib.contract import manifest as mf
from superkart_lib.contract import schema
from superkart_lib.contract.errors import DataError, SuperKartError
from superkart_lib.contract.versions import VersionSkewWarning
from superkart_lib.development import onnx_compact, onnx_export, onnx_trees, train
from superkart_lib.development.features import make_pipeline
from superkart_lib.development.models import FAMILIES
from superkart_lib.production.runtime import OnnxModel
from tests.conftest import run_without_training_stack

CENT = 0.01
#: Fewer trees where the converter's per-node Python loop dominates the test's time;
#: every tree is converted alike, so parity on 20 trees still tests the converter.
FAST = {"random_forest": {"model__n_estimators": 20}}


@pytest.fixture(scope="module")
def data(synthetic_frame) -> train.Split:
    return train.split(synthetic_frame)


@pytest.fixture(scope="module")
def test_records(data) -> list[dict]:
    return data.X_test.to_dict(orient="records")


def _fit(name: str, data: train.Split):
    pipe = FAMILIES[name].pipeline(seed=0).set_params(**FAST.get(name, {}))
    with threadpool_limits(1):  # HGB's OpenMP threads oversubscribe small CI machines
        pipe.fit(data.X_train, data.y_train)
    return pipe


def _tighter_bound(estimator) -> float:
    """What each conversion strategy guarantees (see onnx_export's module docstring)."""
    if isinstance(estimator, XGBRegressor):
        return 0.0  # base_score folded in: onnxruntime adds in XGBoost's float32 order
    if isinstance(estimator, onnx_trees.FLOAT64_TREES):
        return 0.0005  # only the ensemble's float32 output rounding, for sales < $16,384
    return 1e-6  # float64 end to end


@pytest.mark.parametrize("name", list(FAMILIES))
def test_onnx_matches_sklearn_to_the_cent_on_every_test_row(name, data, test_records):
    pipe = _fit(name, data)
    onnx_bytes = onnx_export.export_bytes(pipe)
    model = OnnxModel.from_bytes(onnx_bytes)
    got = model.predict(test_records)
    expected = pipe.predict(data.X_test)
    assert got.dtype == np.float64 and got.shape == expected.shape == (len(data.X_test),)
    worst = float(np.max(np.abs(got - expected)))
    assert worst <= CENT, f"{name}: max |onnx - sklearn| = ${worst:.6f} over {len(got)} rows"
    bound = _tighter_bound(pipe.steps[-1][1])
    assert worst <= bound, f"{name}: ${worst:.6f} exceeds the ${bound} this conversion guarantees"
    # Every tree family gets the compact graph (category codes, no one-hot); the others keep one-hot.
    ops = {node.op_type for node in onnx.load_from_string(onnx_bytes).graph.node}
    is_tree = isinstance(pipe.steps[-1][1], (*onnx_trees.FLOAT64_TREES, XGBRegressor))
    assert ("OneHotEncoder" not in ops) == is_tree, f"{name}: {sorted(ops)}"


@pytest.mark.parametrize("mode", [b"BRANCH_LT", b"BRANCH_LEQ", b"BRANCH_GT", b"BRANCH_GTE"])
@pytest.mark.parametrize("threshold", [-0.5, 0.0, 0.25, 0.5, 1.0, 1.5])
def test_category_split_sends_every_code_where_the_one_hot_split_does(mode, threshold):
    compare = {
        b"BRANCH_LT": np.less,
        b"BRANCH_LEQ": np.less_equal,
        b"BRANCH_GT": np.greater,
        b"BRANCH_GTE": np.greater_equal,
    }
    code_test = {b"BRANCH_EQ": np.equal, b"BRANCH_NEQ": np.not_equal, b"BRANCH_LEQ": np.less_equal}
    category = 2
    codes = np.array([onnx_compact.UNKNOWN_CODE, 0, 1, 2, 3])
    new_mode, value = onnx_compact.category_split(mode, threshold, category)
    expected = compare[mode]((codes == category).astype(float), threshold)
    assert np.array_equal(code_test[new_mode](codes, value), expected), (new_mode, value)


def test_tree_after_a_scaler_keeps_the_one_hot_graph_and_parity(data, test_records):
    pipe = make_pipeline(FAMILIES["decision_tree"].make(0).set_params(max_depth=6), scale=True, cast=True)
    pipe.fit(data.X_train, data.y_train)
    assert onnx_compact.layout(pipe) is None  # scaled numbers are not what the compact graph feeds
    onnx_bytes = onnx_export.export_bytes(pipe)
    assert "OneHotEncoder" in {node.op_type for node in onnx.load_from_string(onnx_bytes).graph.node}
    got = OnnxModel.from_bytes(onnx_bytes).predict(test_records)
    assert float(np.max(np.abs(got - pipe.predict(data.X_test)))) <= CENT


def test_compact_graph_predicts_bit_for_bit_as_the_one_hot_graph(data, test_records, monkeypatch):
    pipe = _fit("xgboost", data)
    compact = OnnxModel.from_bytes(onnx_export.export_bytes(pipe))
    assert len(onnx_export.to_onnx_proto(pipe).graph.node) <= 12
    monkeypatch.setattr(onnx_compact, "compact", lambda model, proto: None)  # skl2onnx's one-hot graph
    plain_bytes = onnx_export.export_bytes(pipe)
    assert "OneHotEncoder" in {node.op_type for node in onnx.load_from_string(plain_bytes).graph.node}
    plain = OnnxModel.from_bytes(plain_bytes)
    unknown = [{**r, "Store_Type": "Hypermarket", "Product_Sugar_Content": "?"} for r in test_records[:50]]
    for rows in (test_records, unknown):
        assert np.array_equal(compact.predict(rows), plain.predict(rows))
        # One record at a time takes the cached-category path, unknown strings included.
        assert np.array_equal([compact.predict(r)[0] for r in rows[:20]], plain.predict(rows[:20]))


@pytest.fixture(scope="module")
def small(data):
    """A fitted pipeline and its ONNX bytes, for the runtime tests."""
    pipe = _fit("gradient_boosting", data)
    return pipe, onnx_export.export_bytes(pipe)


def test_signature_is_derived_from_the_schema(small):
    proto = onnx.load_from_string(small[1])
    inputs = {i.name: i.type.tensor_type for i in proto.graph.input}
    assert tuple(inputs) == schema.FEATURE_COLUMNS
    for name, tensor in inputs.items():
        kind = onnx.TensorProto.STRING if name in schema.CATEGORICAL_FEATURES else onnx.TensorProto.DOUBLE
        assert tensor.elem_type == kind, name
        assert [d.dim_value for d in tensor.shape.dim][1:] == [1]
    assert [(o.name, o.type.tensor_type.elem_type) for o in proto.graph.output] == [
        ("prediction", onnx.TensorProto.DOUBLE)
    ]
    assert {o.domain: o.version for o in proto.opset_import} == onnx_export.TARGET_OPSET
    assert proto.producer_name == onnx_export.PRODUCER


def test_export_is_deterministic_and_registration_idempotent(small):
    onnx_export.register_converters()
    onnx_export.register_converters()
    assert onnx_export.export_bytes(small[0], check=False) == small[1]


def test_input_forms_agree_and_extra_keys_are_ignored(small, test_records):
    model = OnnxModel.from_bytes(small[1])
    records = test_records[:5]
    columns = {name: [r[name] for r in records] for name in schema.INPUT_COLUMNS}
    one_by_one = np.array([model.predict(r)[0] for r in records])
    as_list = model.predict(records)
    assert np.array_equal(one_by_one, as_list)
    assert np.array_equal(model.predict(columns), as_list)
    assert np.array_equal(model.predict({k: np.asarray(v) for k, v in columns.items()}), as_list)
    changed = [{**r, "Product_Id": "NC1", schema.TARGET: 1.0} for r in records]
    assert np.array_equal(model.predict(changed), as_list)
    assert np.array_equal(model.predict([{k: v for k, v in r.items() if k != "Product_Id"} for r in records]), as_list)
    assert model.predict([]).shape == (0,)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda r: r.pop("Product_MRP"), "record 1: missing field 'Product_MRP'"),
        (lambda r: r.update(Product_Weight=None), "record 1: field 'Product_Weight' must be a number"),
        (lambda r: r.update(Product_Weight="heavy"), "record 1: field 'Product_Weight' must be a number"),
        (lambda r: r.update(Store_Size=3), "record 1: field 'Store_Size' must be a string"),
    ],
)
def test_bad_records_raise_data_error_naming_field_and_record(small, test_records, edit, message):
    model = OnnxModel.from_bytes(small[1])
    records = [dict(r) for r in test_records[:3]]
    edit(records[1])
    with pytest.raises(DataError, match=message):
        model.predict(records)
    with pytest.raises(DataError, match=message.replace("record 1", "record 0")):
        model.predict(records[1])
    columns = {name: [r.get(name) for r in records] for name in schema.FEATURE_COLUMNS if name in records[1]}
    with pytest.raises(DataError, match="missing column 'Product_MRP'" if "missing" in message else message):
        model.predict(columns)


def _package(directory, onnx_bytes: bytes, versions: dict | None = None):
    directory.mkdir()
    (directory / "model.onnx").write_bytes(onnx_bytes)
    manifest = {
        "package_version": "test-1",
        "files": {"model.onnx": mf.file_entry(directory / "model.onnx")},
        "versions": versions or {},
    }
    (directory / mf.MANIFEST).write_text(json.dumps(manifest), encoding="utf-8")
    return directory


def test_from_package_verifies_model_onnx(small, test_records, tmp_path):
    package = _package(tmp_path / "pkg", small[1])
    model = OnnxModel.from_package(package)
    assert model.version == "test-1" and model.manifest["package_version"] == "test-1"
    assert np.array_equal(model.predict(test_records[:3]), OnnxModel.from_bytes(small[1]).predict(test_records[:3]))

    altered = bytearray(small[1])
    altered[len(altered) // 2] ^= 0x01
    (package / "model.onnx").write_bytes(bytes(altered))
    with pytest.raises(SuperKartError, match=r"model\.onnx.*does not match"):
        OnnxModel.from_package(package)


def test_runtime_version_skew_is_a_warning_naming_both(small, tmp_path):
    package = _package(tmp_path / "pkg", small[1], versions={"onnxruntime": "0.0.1"})
    with pytest.warns(VersionSkewWarning, match=r"saved with onnxruntime 0\.0\.1 but running onnxruntime \d"):
        OnnxModel.from_package(package)


def test_runtime_imports_and_predicts_without_the_training_stack(small, test_records, tmp_path):
    (tmp_path / "model.onnx").write_bytes(small[1])
    record = test_records[0]
    script = f"""
import json
from superkart_lib.production.runtime import OnnxModel
model = OnnxModel.from_bytes(open({str(tmp_path / "model.onnx")!r}, "rb").read())
print(json.dumps(float(model.predict(json.loads({json.dumps(record)!r}))[0])))
"""
    result = run_without_training_stack(script)
    assert result.returncode == 0, result.stderr
    expected = small[0].predict(pd.DataFrame([record]))[0]
    assert abs(json.loads(result.stdout) - expected) <= CENT
