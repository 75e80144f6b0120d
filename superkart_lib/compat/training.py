"""Private APIs the ONNX export uses: scikit-learn, skl2onnx and onnxmltools internals.

Development environment only. Outside the checked versions each function stops with a one-line
:class:`~superkart_lib.contract.errors.UncheckedVersionError` naming the installed version: an
export that silently read a renamed attribute would write a wrong model.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from superkart_lib.compat import checked, unchecked_message
from superkart_lib.contract.errors import UncheckedVersionError


def _require(distribution: str, what: str) -> None:
    if not checked(distribution):
        raise UncheckedVersionError(unchecked_message(distribution, what))


def hist_gradient_boosting_trees(estimator: Any) -> tuple[list[Any], float]:
    """(one predictor per boosting iteration, baseline prediction) of a fitted HistGradientBoostingRegressor.

    scikit-learn has no public tree API for histogram boosting; skl2onnx's own converter reads
    the same two attributes.
    """
    _require("scikit-learn", "exporting HistGradientBoostingRegressor to ONNX")
    import numpy as np

    return [p[0] for p in estimator._predictors], float(np.ravel(estimator._baseline_prediction)[0])


def onehot_has_infrequent_categories(encoder: Any) -> bool:
    """Whether a fitted OneHotEncoder groups infrequent categories (private ``_infrequent_enabled``)."""
    _require("scikit-learn", "compacting a tree model's ONNX graph")
    return bool(getattr(encoder, "_infrequent_enabled", False))


def skl2onnx_tree_helpers() -> SimpleNamespace:
    """skl2onnx's internal helpers that write scikit-learn trees as TreeEnsemble attributes.

    Returns
    -------
    SimpleNamespace
        ``defaults()`` (empty attribute lists), ``add_tree(...)`` and ``add_hgb_tree(...)``.
    """
    _require("skl2onnx", "exporting scikit-learn trees to ONNX in float64")
    from skl2onnx.common import tree_ensemble

    return SimpleNamespace(
        defaults=tree_ensemble.get_default_tree_regressor_attribute_pairs,
        add_tree=tree_ensemble.add_tree_to_attribute_pairs,
        add_hgb_tree=tree_ensemble.add_tree_to_attribute_pairs_hist_gradient_boosting,
    )


def xgboost_converter() -> tuple[Callable[..., None], Callable[..., None]]:
    """(shape calculator, converter) of onnxmltools for XGBRegressor, for skl2onnx's registry."""
    _require("onnxmltools", "exporting XGBoost to ONNX")
    from onnxmltools.convert.common.shape_calculator import calculate_linear_regressor_output_shapes
    from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

    return calculate_linear_regressor_output_shapes, convert_xgboost
