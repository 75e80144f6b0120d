"""Export a fitted SuperKart pipeline, raw columns to prediction, as one ONNX model.

Development environment only (scikit-learn, skl2onnx, onnxmltools). The graph takes
one input per schema feature column, shape (n, 1): numbers (integers included) as
float64, categories as strings. Its single output ``prediction`` is float64 (n, 1), in $.

How each family keeps parity with scikit-learn (measured, see tests/test_onnx.py):

- scaler + linear/MLP: float64 end to end, as in scikit-learn.
- scikit-learn trees (DT, RF, GB, HGB): scikit-learn rounds features to float32 but keeps
  thresholds and sums in float64. The graph does the same: the Float32Cast step rounds to
  float32 and carries the values as float64 into float64 tree ensembles, so only the
  ensemble's float32 output rounding remains (<= $0.0005 below $16,384).
- XGBoost: float32 throughout, and ``base_score`` folded into the first tree's leaves so
  onnxruntime adds in XGBoost's order (bit-identical; otherwise up to ~$0.01 apart).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor

from superkart_lib import schema
from superkart_lib.errors import SuperKartError
from superkart_lib.features import CategoryMapper, Float32Cast

#: Opsets of every exported model; pinned so the same model gives the same graph.
TARGET_OPSET: dict[str, int] = {"": 18, "ai.onnx.ml": 3}
OUTPUT_NAME = "prediction"
PRODUCER = "superkart_lib"
DOC_STRING = "SuperKart sales model: raw SuperKart columns in, predicted Product_Store_Sales_Total ($) out."
#: What LabelEncoder emits for a string outside its table: no schema category, so the
#: one-hot encoders after it ignore it, as they ignore the unknown value scikit-learn keeps.
UNKNOWN_CATEGORY = "__superkart_unknown__"
#: Largest |ONNX - scikit-learn| accepted on any row: one cent (DESIGN, two environments).
PARITY_TOLERANCE = 0.01
PROBE_ROWS, PROBE_SEED = 500, 12345
#: Estimators that see float32 features but compare and sum in float64 (scikit-learn trees).
FLOAT64_TREES = (DecisionTreeRegressor, RandomForestRegressor, GradientBoostingRegressor, HistGradientBoostingRegressor)
#: Losses whose prediction is the raw tree sum (no link function to apply after the trees).
IDENTITY_LOSSES = ("squared_error", "absolute_error", "huber", "quantile")


class _FoldBaseScore:
    """Wraps skl2onnx's container so the XGBoost converter's tree node gets base_score folded in."""

    def __init__(self, container) -> None:
        self._container = container

    def __getattr__(self, name: str):
        return getattr(self._container, name)

    def add_node(self, op_type, *args, **attrs):
        if op_type == "TreeEnsembleRegressor":
            _fold_base_score(attrs)
        return self._container.add_node(op_type, *args, **attrs)


def _fold_base_score(attrs: dict) -> None:
    """Add ``base_values`` to the first tree's leaves, in float32, as XGBoost does.

    XGBoost starts each row at base_score and adds trees in float32; onnxruntime adds the
    trees first and base_values last. Folding makes the two sums the same, bit for bit.
    """
    base = attrs.get("base_values")
    if base is None or len(base) != 1 or attrs.get("post_transform", "NONE") != "NONE":
        return
    trees = np.asarray(attrs["target_treeids"])
    weights = np.asarray(attrs["target_weights"], dtype=np.float32)
    first = trees == trees.min()
    weights[first] = weights[first] + np.float32(base[0])
    attrs["target_weights"] = weights.tolist()
    attrs["base_values"] = [0.0]


def _sklearn_trees(estimator) -> tuple[list, float, float]:
    """(trees, weight of each tree, base value) of a fitted scikit-learn tree regressor."""
    name = type(estimator).__name__
    if getattr(estimator, "n_outputs_", 1) != 1:
        raise SuperKartError(f"cannot export {name} with several outputs to ONNX")
    if getattr(estimator, "loss", "squared_error") not in IDENTITY_LOSSES:
        raise SuperKartError(f"cannot export {name} with loss={estimator.loss!r} to ONNX (its link is not written)")
    if isinstance(estimator, HistGradientBoostingRegressor):
        # Private attributes, as skl2onnx's own converter reads them: HGB has no public tree API.
        return [p[0] for p in estimator._predictors], 1.0, float(np.ravel(estimator._baseline_prediction)[0])
    if isinstance(estimator, GradientBoostingRegressor):
        if estimator.init not in (None, "zero"):
            raise SuperKartError(f"cannot export {name} with a custom init estimator to ONNX")
        base = 0.0 if estimator.init == "zero" else float(np.ravel(estimator.init_.constant_)[0])
        return [e[0].tree_ for e in estimator.estimators_], float(estimator.learning_rate), base
    if isinstance(estimator, RandomForestRegressor):
        return [e.tree_ for e in estimator.estimators_], 1.0 / len(estimator.estimators_), 0.0
    return [estimator.tree_], 1.0, 0.0


def _float64_trees_shape(operator) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    # TreeEnsembleRegressor (ai.onnx.ml 3) always emits float32.
    operator.outputs[0].type = FloatTensorType([operator.inputs[0].get_first_dimension(), 1])


def _float64_trees_convert(scope, operator, container) -> None:
    """scikit-learn trees as one TreeEnsembleRegressor with float64 thresholds, leaves and sum.

    Thresholds are written exactly (``*_as_tensor``), not nudged as skl2onnx does for float
    inputs, because the inputs already are the float32 values scikit-learn compares.
    """
    from skl2onnx.common import tree_ensemble as te

    estimator = operator.raw_operator
    trees, weight, base = _sklearn_trees(estimator)
    add = (
        te.add_tree_to_attribute_pairs_hist_gradient_boosting
        if isinstance(estimator, HistGradientBoostingRegressor)
        else te.add_tree_to_attribute_pairs
    )
    attrs = te.get_default_tree_regressor_attribute_pairs()
    for tree_id, tree in enumerate(trees):
        add(attrs, False, tree, tree_id, weight, 0, False, False, dtype=np.float64)
    del attrs["nodes_hitrates"]
    attrs["n_targets"] = 1
    for key in ("nodes_values", "target_weights"):
        attrs[f"{key}_as_tensor"] = numpy_helper.from_array(np.asarray(attrs.pop(key), dtype=np.float64), key)
    attrs["base_values_as_tensor"] = numpy_helper.from_array(np.array([base], dtype=np.float64), "base_values")
    # skl2onnx's HGB helper gives leaves a Python False here, which protobuf refuses as an int.
    missing = "nodes_missing_value_tracks_true"
    attrs[missing] = np.asarray(attrs[missing], dtype=np.int64).tolist()
    container.add_node(
        "TreeEnsembleRegressor",
        operator.inputs[0].full_name,
        operator.outputs[0].full_name,
        op_domain="ai.onnx.ml",
        op_version=3,
        name=scope.get_unique_operator_name("TreeEnsembleRegressor"),
        **attrs,
    )


def _category_mapper_shape(operator) -> None:
    from skl2onnx.common.data_types import StringTensorType

    operator.outputs[0].type = StringTensorType([operator.inputs[0].get_first_dimension(), 1])


def _category_table(mapper: CategoryMapper) -> dict[str, str]:
    # The mapper keeps values outside its mapping; LabelEncoder cannot, so every schema
    # category (of any column: the mapper does not know its column) maps to itself first
    # and the mapping overrides.
    table = {value: value for column in schema.CATEGORICAL_FEATURES for value in schema.BY_NAME[column].categories}
    table.update(mapper.mapping or {})
    return dict(sorted(table.items()))


def _category_mapper_convert(scope, operator, container) -> None:
    table = _category_table(operator.raw_operator)
    container.add_node(
        "LabelEncoder",
        operator.inputs[0].full_name,
        operator.outputs[0].full_name,
        op_domain="ai.onnx.ml",
        op_version=2,
        name=scope.get_unique_operator_name("CategoryMapper"),
        keys_strings=list(table),
        values_strings=list(table.values()),
        default_string=UNKNOWN_CATEGORY,
    )


def _float32_cast_shape(operator) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    operator.outputs[0].type = FloatTensorType(list(operator.inputs[0].type.shape))


def _float32_cast_convert(scope, operator, container) -> None:
    container.add_node(
        "Cast",
        operator.inputs[0].full_name,
        operator.outputs[0].full_name,
        name=scope.get_unique_operator_name("Float32Cast"),
        to=TensorProto.FLOAT,
    )


def _float32_carried_shape(operator) -> None:
    from skl2onnx.common.data_types import DoubleTensorType

    operator.outputs[0].type = DoubleTensorType(list(operator.inputs[0].type.shape))


def _float32_carried_convert(scope, operator, container) -> None:
    """Round to float32, carry as float64: the values scikit-learn's trees compare."""
    rounded = scope.get_unique_variable_name("float32_rounded")
    name = scope.get_unique_operator_name("Float32Cast")
    container.add_node("Cast", operator.inputs[0].full_name, rounded, name=name, to=TensorProto.FLOAT)
    container.add_node("Cast", rounded, operator.outputs[0].full_name, name=f"{name}_f64", to=TensorProto.DOUBLE)


def _xgboost_convert(scope, operator, container) -> None:
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

    convert_xgboost(scope, operator, _FoldBaseScore(container))


def register_converters() -> None:
    """Teach skl2onnx the two custom transformers and XGBRegressor (idempotent: it overwrites)."""
    from onnxmltools.convert.common.shape_calculator import calculate_linear_regressor_output_shapes
    from skl2onnx import update_registered_converter
    from xgboost import XGBRegressor

    update_registered_converter(
        CategoryMapper, "SuperKartCategoryMapper", _category_mapper_shape, _category_mapper_convert
    )
    update_registered_converter(Float32Cast, "SuperKartFloat32Cast", _float32_cast_shape, _float32_cast_convert)
    update_registered_converter(
        XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, _xgboost_convert
    )


def initial_types() -> list[tuple[str, object]]:
    """One (name, type) per schema feature column: numbers float64 (n, 1), categories str (n, 1)."""
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    return [
        (name, StringTensorType([None, 1]) if name in schema.CATEGORICAL_FEATURES else DoubleTensorType([None, 1]))
        for name in schema.FEATURE_COLUMNS
    ]


def _refusal(model: Pipeline) -> str | None:
    """Why ``model`` cannot be exported faithfully, or None when it can be tried."""
    if not isinstance(model, Pipeline):
        return f"ONNX export needs a fitted scikit-learn Pipeline, got {type(model).__name__}"
    estimator = model.steps[-1][1]
    # skl2onnx writes HGB's numeric thresholds only; categorical splits (bitsets) would be lost.
    if isinstance(estimator, HistGradientBoostingRegressor) and np.any(getattr(estimator, "is_categorical_", None)):
        return "cannot export HistGradientBoostingRegressor with native categorical features to ONNX"
    return None


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:limit]}"


def _finish(proto: onnx.ModelProto) -> onnx.ModelProto:
    """Name the single output ``prediction`` as float64 (n, 1) and fix the metadata."""
    graph = proto.graph
    if len(graph.output) != 1:
        raise SuperKartError(f"ONNX export produced {len(graph.output)} outputs, expected one")
    # Tree ensembles emit float32, linear models and MLPs float64; one dtype for every
    # family lets the runtime return float64 without converting per call.
    graph.node.append(
        helper.make_node("Cast", [graph.output[0].name], [OUTPUT_NAME], name="to_prediction", to=TensorProto.DOUBLE)
    )
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.DOUBLE, [None, 1]))
    graph.name, graph.doc_string = "superkart", ""
    proto.producer_name, proto.producer_version = PRODUCER, ""
    proto.domain, proto.model_version, proto.doc_string = "superkart", 1, DOC_STRING
    onnx.checker.check_model(proto)
    return proto


def to_onnx_proto(model: Pipeline) -> onnx.ModelProto:
    """Convert a fitted pipeline (raw columns -> sales) to an ONNX ModelProto, unchecked.

    Raises
    ------
    SuperKartError
        When the pipeline's estimator cannot be exported, naming it and why.
    """
    from skl2onnx import convert_sklearn

    refusal = _refusal(model)
    if refusal:
        raise SuperKartError(refusal)
    register_converters()
    estimator = model.steps[-1][1]
    converters: dict[type, object] = {}
    shapes: dict[type, object] = {}
    if isinstance(estimator, FLOAT64_TREES):
        # Only this conversion: a Float32Cast elsewhere keeps its plain float32 meaning.
        converters[Float32Cast], shapes[Float32Cast] = _float32_carried_convert, _float32_carried_shape
        converters[type(estimator)], shapes[type(estimator)] = _float64_trees_convert, _float64_trees_shape
    try:
        proto = convert_sklearn(
            model,
            name="superkart",
            initial_types=initial_types(),
            target_opset=dict(TARGET_OPSET),
            custom_conversion_functions=converters,
            custom_shape_calculators=shapes,
        )
    except SuperKartError:
        raise
    except Exception as exc:  # skl2onnx raises bare RuntimeError/TypeError/... for what it cannot convert
        name = type(estimator).__name__
        raise SuperKartError(f"cannot export {name} to ONNX: skl2onnx failed with {_first_line(exc)}") from None
    return _finish(proto)


def check_parity(model: Pipeline, onnx_bytes: bytes, probe=None, tolerance: float = PARITY_TOLERANCE) -> float:
    """Max |ONNX - scikit-learn| in dollars over ``probe`` rows; raise when above ``tolerance``.

    Parameters
    ----------
    probe : pandas.DataFrame, optional
        Raw records (n rows, the schema's columns); default :data:`PROBE_ROWS` synthetic rows.

    Raises
    ------
    SuperKartError
        When any row differs by more than ``tolerance`` dollars: the export is wrong.
    """
    from superkart_lib.runtime import OnnxModel

    if probe is None:
        from superkart_lib.synthetic import generate

        probe = generate(PROBE_ROWS, seed=PROBE_SEED)
    # The columns the pipeline was fitted on (Product_Id included when it was there).
    fitted = getattr(model, "feature_names_in_", schema.FEATURE_COLUMNS)
    expected = np.asarray(model.predict(probe[list(fitted)]), dtype=np.float64)
    got = OnnxModel.from_bytes(onnx_bytes).predict({name: probe[name].to_numpy() for name in schema.FEATURE_COLUMNS})
    worst = float(np.max(np.abs(got - expected))) if len(expected) else 0.0
    if not worst <= tolerance:  # also catches NaN
        raise SuperKartError(
            f"ONNX export of {type(model.steps[-1][1]).__name__} is wrong: it differs from scikit-learn by up to "
            f"${worst:.4f} (allowed ${tolerance}) on {len(expected)} probe rows; refusing to write it"
        )
    return worst


def export_bytes(model: Pipeline, check: bool = True) -> bytes:
    """Serialised ONNX model of a fitted pipeline; the same model gives the same bytes.

    With ``check`` (the default) the bytes go through the production runtime on probe
    rows and are refused unless they match scikit-learn to the cent.
    """
    data = to_onnx_proto(model).SerializeToString(deterministic=True)
    if check:
        check_parity(model, data)
    return data


def export_onnx(model: Pipeline, path: str | Path, check: bool = True) -> None:
    """Write the ONNX model of a fitted pipeline to ``path`` (``model.onnx`` in a package)."""
    Path(path).write_bytes(export_bytes(model, check=check))


register_converters()
