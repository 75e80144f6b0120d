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


def permutation_importance_table(model, X, y, seed: int = 0, repeats: int = 5):
    """Permutation importance of each raw input column on (X, y).

    Returns
    -------
    pandas.DataFrame
        Index: column names; columns ``mean`` and ``sd`` of the drop in R2, largest first.
    """
    import pandas as pd
    from sklearn.inspection import permutation_importance

    result = permutation_importance(model, X, y, n_repeats=repeats, random_state=seed, n_jobs=1, scoring="r2")
    table = pd.DataFrame({"mean": result.importances_mean, "sd": result.importances_std}, index=X.columns)
    return table.sort_values("mean", ascending=False).round(4)
