"""Regression metrics on a held-out split."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_absolute_percentage_error, r2_score, root_mean_squared_error

#: Metric names in the order tables show them.
METRICS = ("r2", "rmse", "mae", "mape")


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """r2, rmse ($), mae ($) and mape (a fraction: 0.038 is 3.8%) of predictions.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Observed and predicted sales, in dollars.
    """
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    return {
        "r2": float(r2_score(y_true, y_pred)),
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "mape": float(mean_absolute_percentage_error(y_true, y_pred)),
    }
