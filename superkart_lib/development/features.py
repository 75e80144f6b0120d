"""Cleaning and feature engineering, inside the model pipeline.

The saved model takes raw records (the dataset's columns minus the target), so the
package needs nothing else to predict. Every step is convertible to ONNX: the two
custom steps here get skl2onnx converters in :mod:`superkart_lib.development.onnx_export`.

Numbers stay float64 through scaling; tree models get an explicit float32 cast
right before the trees, so the ONNX graph (float64 in, cast, trees) matches
scikit-learn to the cent.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from superkart_lib.contract import schema


class CategoryMapper(TransformerMixin, BaseEstimator):
    """Map the strings of one categorical column through a fixed table.

    Used to clean dirty spellings (``reg`` -> ``Regular``) and to derive a coarser
    category (Product_Type -> product group). Values not in ``mapping`` are kept.

    Parameters
    ----------
    mapping : dict of str to str
        Raw value -> output value.
    """

    def __init__(self, mapping: dict[str, str] | None = None):
        self.mapping = mapping

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        """X: (n, 1) strings -> (n, 1) object array of mapped strings."""
        values = np.asarray(X, dtype=object)
        if values.ndim != 2 or values.shape[1] != 1:
            raise ValueError(f"CategoryMapper takes one column, got shape {values.shape}")
        mapping = self.mapping or {}
        return np.array([[mapping.get(v, v)] for v in values[:, 0]], dtype=object)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features if input_features is not None else ["x0"], dtype=object)


class Float32Cast(TransformerMixin, BaseEstimator):
    """Cast features to float32, as tree models do internally, but as an explicit step.

    Making the cast a pipeline step lets the ONNX export place it at the same point,
    so the trees see the same float32 values in scikit-learn and in onnxruntime.
    """

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        """X: (n, k) numbers -> (n, k) float32."""
        return np.asarray(X, dtype=np.float32)

    def get_feature_names_out(self, input_features=None):
        return np.asarray(input_features, dtype=object) if input_features is not None else None


def _onehot() -> OneHotEncoder:
    # Unknown categories are rejected by validation before the model; "ignore" keeps
    # the pipeline total, and dense output keeps the ONNX graph simple.
    return OneHotEncoder(handle_unknown="ignore", sparse_output=False)


def make_preprocessor(scale: bool) -> ColumnTransformer:
    """Raw records -> numeric feature matrix.

    Parameters
    ----------
    scale : bool
        Standardise numeric columns (linear models and MLPs need it; trees do not).

    Returns
    -------
    ColumnTransformer
        Takes a frame with :data:`schema.FEATURE_COLUMNS` (extra columns such as
        Product_Id are dropped) and returns (n, n_features) float64.
    """
    categorical = [c for c in schema.CATEGORICAL_FEATURES if c != "Product_Sugar_Content"]
    numeric = list(schema.NUMERIC_FEATURES)
    return ColumnTransformer(
        [
            ("numeric", StandardScaler() if scale else "passthrough", numeric),
            (
                "sugar",
                Pipeline([("clean", CategoryMapper(dict(schema.SUGAR_ALIASES))), ("onehot", _onehot())]),
                ["Product_Sugar_Content"],
            ),
            (
                "group",
                Pipeline([("derive", CategoryMapper(schema.PRODUCT_GROUP_OF)), ("onehot", _onehot())]),
                ["Product_Type"],
            ),
            ("categories", _onehot(), categorical),
        ],
        remainder="drop",
        verbose_feature_names_out=False,
    )


def make_pipeline(estimator: BaseEstimator, scale: bool, cast: bool) -> Pipeline:
    """The full model: raw records -> preprocessing -> [float32 cast] -> estimator."""
    steps = [("features", make_preprocessor(scale))]
    if cast:
        steps.append(("float32", Float32Cast()))
    steps.append(("model", estimator))
    return Pipeline(steps)
