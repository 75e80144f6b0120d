"""Export a fitted SuperKart pipeline, raw columns to prediction, as one ONNX model.

Development environment only (scikit-learn, skl2onnx, onnxmltools). The graph takes
one input per schema feature column, shape (n, 1): numbers (integers included) as
float64, categories as strings. Its single output ``prediction`` is float64 (n, 1), in $.

How each family keeps parity with scikit-learn (measured in ``tests/test_onnx.py``):

- scaler + linear/MLP: float64 end to end, as in scikit-learn.
- scikit-learn trees (DT, RF, GB, HGB): scikit-learn rounds features to float32 but keeps
  thresholds and sums in float64. The graph does the same: the Float32Cast step rounds to
  float32 and carries the values as float64 into float64 tree ensembles, so only the
  ensemble's float32 output rounding remains (<= $0.0005 below $16,384).
- XGBoost: float32 throughout, and ``base_score`` folded into the first tree's leaves so
  onnxruntime adds in XGBoost's order (bit-identical; otherwise up to ~$0.01 apart).

The tree converters are in :mod:`superkart_lib.development.onnx_trees`; tree graphs are then compacted
(one code per category instead of one-hot columns) by :mod:`superkart_lib.development.onnx_compact`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from superkart_lib.compat.training import xgboost_converter
from superkart_lib.contract import schema
from superkart_lib.contract.errors import SuperKartError, first_line
from superkart_lib.development import onnx_compact, onnx_trees
from superkart_lib.development.features import CategoryMapper, Float32Cast

#: Opsets of every exported model; pinned so the same model gives the same graph.
TARGET_OPSET: dict[str, int] = {"": 18, "ai.onnx.ml": 3}
OUTPUT_NAME = "prediction"
PRODUCER = "superkart_lib"
DOC_STRING = "SuperKart sales model: raw SuperKart columns in, predicted Product_Store_Sales_Total ($) out."
#: What LabelEncoder emits for a string outside its table: no schema category, so the
#: one-hot encoders after it ignore it, as they ignore the unknown value scikit-learn keeps.
UNKNOWN_CATEGORY = "__superkart_unknown__"
#: Largest |ONNX - scikit-learn| accepted on any row: one cent (the production environment's promise).
PARITY_TOLERANCE = 0.01
PROBE_ROWS, PROBE_SEED = 500, 12345


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


def register_converters() -> None:
    """Teach skl2onnx the two custom transformers and XGBRegressor.

    Called by every export rather than at import, so importing this module changes no
    global registry; registering again overwrites with the same functions.
    """
    from skl2onnx import update_registered_converter
    from xgboost import XGBRegressor

    linear_regressor_shape, _ = xgboost_converter()
    update_registered_converter(
        CategoryMapper, "SuperKartCategoryMapper", _category_mapper_shape, _category_mapper_convert
    )
    update_registered_converter(Float32Cast, "SuperKartFloat32Cast", _float32_cast_shape, _float32_cast_convert)
    update_registered_converter(XGBRegressor, "XGBoostXGBRegressor", linear_regressor_shape, onnx_trees.xgboost_convert)


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
    if isinstance(estimator, onnx_trees.FLOAT64_TREES):
        # Only this conversion: a Float32Cast elsewhere keeps its plain float32 meaning.
        converters[Float32Cast], shapes[Float32Cast] = _float32_carried_convert, _float32_carried_shape
        converters[type(estimator)], shapes[type(estimator)] = (
            onnx_trees.float64_trees_convert,
            onnx_trees.float64_trees_shape,
        )
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
        name, reason = type(estimator).__name__, first_line(exc, with_type=True)
        raise SuperKartError(f"cannot export {name} to ONNX: skl2onnx failed with {reason}") from None
    return _finish(onnx_compact.compact(model, proto) or proto)


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
    from superkart_lib.production.runtime import OnnxModel

    if probe is None:
        from superkart_lib.development.synthetic import generate

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
