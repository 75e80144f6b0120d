"""Tree-ensemble converters for the ONNX export: scikit-learn trees in float64, XGBoost in float32.

Development environment only. skl2onnx's own converters get two things wrong for this
project's parity bound (see :mod:`superkart_lib.development.onnx_export`): scikit-learn trees are
written with float32 thresholds nudged for float inputs, and XGBoost's ``base_score`` is
added after the trees instead of before. These converters write what the libraries compute.
"""

from __future__ import annotations

import numpy as np
from onnx import numpy_helper
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.tree import DecisionTreeRegressor

from superkart_lib.compat.training import hist_gradient_boosting_trees, skl2onnx_tree_helpers, xgboost_converter
from superkart_lib.contract.errors import SuperKartError

#: Estimators that see float32 features but compare and sum in float64 (scikit-learn trees).
FLOAT64_TREES = (DecisionTreeRegressor, RandomForestRegressor, GradientBoostingRegressor, HistGradientBoostingRegressor)
#: Losses whose prediction is the raw tree sum (no link function to apply after the trees).
IDENTITY_LOSSES = ("squared_error", "absolute_error", "huber", "quantile")


class FoldBaseScore:
    """Wraps skl2onnx's container so the XGBoost converter's tree node gets base_score folded in."""

    def __init__(self, container) -> None:
        self._container = container

    def __getattr__(self, name: str):
        return getattr(self._container, name)

    def add_node(self, op_type, *args, **attrs):
        if op_type == "TreeEnsembleRegressor":
            fold_base_score(attrs)
        return self._container.add_node(op_type, *args, **attrs)


def fold_base_score(attrs: dict) -> None:
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


def sklearn_trees(estimator) -> tuple[list, float, float]:
    """(trees, weight of each tree, base value) of a fitted scikit-learn tree regressor."""
    name = type(estimator).__name__
    if getattr(estimator, "n_outputs_", 1) != 1:
        raise SuperKartError(f"cannot export {name} with several outputs to ONNX")
    if getattr(estimator, "loss", "squared_error") not in IDENTITY_LOSSES:
        raise SuperKartError(f"cannot export {name} with loss={estimator.loss!r} to ONNX (its link is not written)")
    if isinstance(estimator, HistGradientBoostingRegressor):
        trees, baseline = hist_gradient_boosting_trees(estimator)
        return trees, 1.0, baseline
    if isinstance(estimator, GradientBoostingRegressor):
        if estimator.init not in (None, "zero"):
            raise SuperKartError(f"cannot export {name} with a custom init estimator to ONNX")
        base = 0.0 if estimator.init == "zero" else float(np.ravel(estimator.init_.constant_)[0])
        return [e[0].tree_ for e in estimator.estimators_], float(estimator.learning_rate), base
    if isinstance(estimator, RandomForestRegressor):
        return [e.tree_ for e in estimator.estimators_], 1.0 / len(estimator.estimators_), 0.0
    return [estimator.tree_], 1.0, 0.0


def float64_trees_shape(operator) -> None:
    from skl2onnx.common.data_types import FloatTensorType

    # TreeEnsembleRegressor (ai.onnx.ml 3) always emits float32.
    operator.outputs[0].type = FloatTensorType([operator.inputs[0].get_first_dimension(), 1])


def float64_trees_convert(scope, operator, container) -> None:
    """scikit-learn trees as one TreeEnsembleRegressor with float64 thresholds, leaves and sum.

    Thresholds are written exactly (``*_as_tensor``), not nudged as skl2onnx does for float
    inputs, because the inputs already are the float32 values scikit-learn compares.
    """
    helpers = skl2onnx_tree_helpers()
    estimator = operator.raw_operator
    trees, weight, base = sklearn_trees(estimator)
    add = helpers.add_hgb_tree if isinstance(estimator, HistGradientBoostingRegressor) else helpers.add_tree
    attrs = helpers.defaults()
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


def xgboost_convert(scope, operator, container) -> None:
    """onnxmltools' XGBoost converter, with base_score folded into the first tree (:func:`fold_base_score`)."""
    _, convert_xgboost = xgboost_converter()
    convert_xgboost(scope, operator, FoldBaseScore(container))
