"""The model zoo: each family's estimator, preprocessing needs and search space.

Every estimator is single-threaded (``n_jobs=1``): parallelism belongs to the
search, and a saved model that grabs every core slows serving: one row took ~47 ms instead
of ~12 ms with ``n_jobs=-1``, and several server workers each grabbed every core.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeRegressor

from superkart_lib.development.features import make_pipeline


def _xgboost(seed: int) -> BaseEstimator:
    from xgboost import XGBRegressor

    return XGBRegressor(
        n_estimators=300, learning_rate=0.05, max_depth=4, n_jobs=1, random_state=seed, tree_method="hist"
    )


@dataclass(frozen=True)
class Family:
    """One model family of the zoo.

    Parameters
    ----------
    name : str
        Identifier used on the command line, in tables and the manifest.
    make : callable
        ``make(seed) -> estimator`` with default hyperparameters.
    space : dict
        Search space for the estimator's hyperparameters (lists of candidates).
    scale : bool
        Standardise numeric inputs first.
    cast : bool
        Cast features to float32 before the estimator (tree models).
    """

    name: str
    make: Callable[[int], BaseEstimator]
    space: dict[str, list[Any]] = field(default_factory=dict)
    scale: bool = False
    cast: bool = True

    def pipeline(self, seed: int) -> Pipeline:
        """Raw records -> prediction, with default hyperparameters."""
        return make_pipeline(self.make(seed), scale=self.scale, cast=self.cast)

    def search_space(self) -> dict[str, list[Any]]:
        """The space with pipeline prefixes, for scikit-learn's searches."""
        return {f"model__{k}": v for k, v in self.space.items()}


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("linear_regression", lambda seed: LinearRegression(), scale=True, cast=False),
        Family(
            "decision_tree",
            lambda seed: DecisionTreeRegressor(max_depth=8, min_samples_leaf=5, random_state=seed),
            {"max_depth": [4, 6, 8, 10, 12, None], "min_samples_leaf": [1, 2, 5, 10, 20, 40]},
        ),
        Family(
            "random_forest",
            lambda seed: RandomForestRegressor(n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=seed),
            {
                "n_estimators": [100, 200],
                "max_depth": [8, 12, 16, None],
                "min_samples_leaf": [1, 2, 4, 8],
                "max_features": [1.0, 0.6, 0.4],
            },
        ),
        Family(
            "gradient_boosting",
            lambda seed: GradientBoostingRegressor(random_state=seed),
            {
                "n_estimators": [100, 200, 300],
                "learning_rate": [0.03, 0.05, 0.1, 0.2],
                "max_depth": [2, 3, 4, 5],
                "subsample": [0.8, 1.0],
                "min_samples_leaf": [1, 5, 20],
            },
        ),
        Family(
            "hist_gradient_boosting",
            lambda seed: HistGradientBoostingRegressor(random_state=seed),
            {
                "max_iter": [100, 200, 400],
                "learning_rate": [0.03, 0.05, 0.1],
                "max_leaf_nodes": [7, 15, 31],
                "min_samples_leaf": [10, 20, 40],
                "l2_regularization": [0.0, 0.1, 1.0],
            },
        ),
        Family(
            "mlp",
            lambda seed: MLPRegressor(
                hidden_layer_sizes=(64, 32),
                learning_rate_init=0.01,
                max_iter=300,
                early_stopping=True,
                random_state=seed,
            ),
            {"hidden_layer_sizes": [(32,), (64, 32), (128, 64)], "alpha": [1e-4, 1e-3, 1e-2]},
            scale=True,
            cast=False,
        ),
        Family(
            "xgboost",
            _xgboost,
            {
                "n_estimators": [200, 300, 500],
                "learning_rate": [0.03, 0.05, 0.1],
                "max_depth": [3, 4, 5, 6],
                "subsample": [0.8, 1.0],
                "colsample_bytree": [0.7, 1.0],
                "min_child_weight": [1, 5, 10],
            },
        ),
    )
}


def get_family(name: str) -> Family:
    """Look a family up by name; unknown names list the known ones."""
    from superkart_lib.contract.errors import SuperKartError

    try:
        return FAMILIES[name]
    except KeyError:
        raise SuperKartError(f"unknown model family {name!r} (known: {', '.join(FAMILIES)})") from None
