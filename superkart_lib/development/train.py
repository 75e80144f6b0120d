"""Split, compare the model zoo, tune the best family, and return the final model."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import joblib
import pandas as pd
from sklearn.model_selection import KFold, RandomizedSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from superkart_lib.contract.errors import SuperKartError
from superkart_lib.development.cluster import dask_client
from superkart_lib.development.data import split_xy
from superkart_lib.development.evaluate import regression_metrics
from superkart_lib.development.models import FAMILIES, Family, get_family
from superkart_lib.development.settings import BACKENDS, CV_FOLDS, N_ITER, SEED, TEST_SIZE


@dataclass
class Split:
    """Raw inputs (n, 11) and sales targets (n,) for training and the held-out test."""

    X_train: pd.DataFrame
    X_test: pd.DataFrame
    y_train: pd.Series
    y_test: pd.Series

    def sizes(self) -> pd.DataFrame:
        """Rows and mean sales ($) of each part."""
        return pd.DataFrame(
            {
                "rows": [len(self.y_train), len(self.y_test)],
                "mean sales ($)": [round(self.y_train.mean(), 1), round(self.y_test.mean(), 1)],
            },
            index=["train", "test"],
        )


def split(frame: pd.DataFrame, seed: int = SEED, test_size: float = TEST_SIZE) -> Split:
    """Seeded train/test split of a validated frame (80/20 by default)."""
    X, y = split_xy(frame)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=test_size, random_state=seed)
    return Split(X_train, X_test, y_train, y_test)


def _folds(seed: int) -> KFold:
    return KFold(n_splits=CV_FOLDS, shuffle=True, random_state=seed)


def compare_zoo(data: Split, seed: int = SEED, families: Sequence[str] | None = None, n_jobs: int = -1) -> pd.DataFrame:
    """Cross-validate each family on the training split, then fit and score it on the test split.

    Returns
    -------
    pandas.DataFrame
        One row per family, best cross-validated R2 first, with columns ``family``,
        ``cv_r2``, ``r2``, ``rmse``, ``mae``, ``mape`` (test split) and ``fit_seconds``.
    """
    rows = []
    for name in families or FAMILIES:
        family = get_family(name)
        pipe = family.pipeline(seed)
        cv = cross_val_score(pipe, data.X_train, data.y_train, cv=_folds(seed), scoring="r2", n_jobs=n_jobs)
        started = time.perf_counter()
        with threadpool_limits(1):
            pipe.fit(data.X_train, data.y_train)
        fit_seconds = time.perf_counter() - started
        metrics = regression_metrics(data.y_test, pipe.predict(data.X_test))
        rows.append({"family": name, "cv_r2": float(cv.mean()), **metrics, "fit_seconds": fit_seconds})
    table = pd.DataFrame(rows).sort_values("cv_r2", ascending=False, kind="stable")
    return table.reset_index(drop=True)


@contextlib.contextmanager
def parallel_backend(backend: str = "loky", scheduler: str | None = None) -> Iterator[None]:
    """Run joblib work (the search's fits) on loky processes or on a Dask cluster.

    ``dask`` starts an embedded LocalCluster (2 single-threaded worker processes)
    unless ``scheduler`` gives the address of a running one.
    """
    if backend not in BACKENDS:
        raise SuperKartError(f"unknown backend {backend!r} (allowed: {', '.join(BACKENDS)})")
    if backend == "loky":
        if scheduler:
            raise SuperKartError("--scheduler needs --backend dask")
        with joblib.parallel_config(backend="loky"):
            yield
        return
    # The backend finds the active client itself.
    with dask_client(scheduler), joblib.parallel_config(backend="dask"):
        yield


@dataclass
class Search:
    """Outcome of a cross-validated hyperparameter search for one family."""

    family: str
    best_params: dict[str, Any]
    best_cv_r2: float
    table: pd.DataFrame
    model: Pipeline


def tune(
    family: Family | str,
    data: Split,
    seed: int = SEED,
    n_iter: int = N_ITER,
    backend: str = "loky",
    scheduler: str | None = None,
) -> Search:
    """Randomised search with 3-fold cross-validation over the family's space.

    The candidates and folds depend only on ``seed``, and every fit is
    single-threaded, so loky and dask give the same result.
    """
    family = get_family(family) if isinstance(family, str) else family
    if not family.space:
        raise SuperKartError(f"{family.name} has no hyperparameters to tune")
    search = RandomizedSearchCV(
        family.pipeline(seed),
        family.search_space(),
        n_iter=n_iter,
        cv=_folds(seed),
        scoring="r2",
        random_state=seed,
        n_jobs=-1,
        refit=False,
    )
    with parallel_backend(backend, scheduler):
        search.fit(data.X_train, data.y_train)
    results = pd.DataFrame(search.cv_results_)
    table = pd.DataFrame(
        {
            **{k.removeprefix("model__"): results[f"param_{k}"] for k in family.search_space()},
            "cv_r2": results["mean_test_score"],
            "cv_r2_std": results["std_test_score"],
            "rank": results["rank_test_score"],
        }
    ).sort_values(["rank", "cv_r2"], ascending=[True, False], kind="stable")
    best = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    model = family.pipeline(seed)
    model.set_params(**search.best_params_)
    with threadpool_limits(1):
        model.fit(data.X_train, data.y_train)
    return Search(family.name, best, float(search.best_score_), table.reset_index(drop=True), model)


@dataclass
class TrainResult:
    """Everything ``superkart train`` learns: the final model and how it was chosen."""

    model: Pipeline
    family: str
    params: dict[str, Any]
    metrics: dict[str, float]
    zoo: pd.DataFrame
    search: Search | None
    seed: int
    n_iter: int
    backend: str
    train_rows: int
    test_rows: int
    notes: list[str] = field(default_factory=list)

    @property
    def tuned(self) -> bool:
        """True when the tuned hyperparameters beat the family's defaults in CV."""
        return self.search is not None and self.search.model is self.model

    def tuning_table(self) -> pd.DataFrame:
        """Test-split metrics of the family's defaults next to the final model's."""
        before = self.zoo.set_index("family").loc[self.family]
        rows = {
            "defaults": {"cv_r2": before["cv_r2"], **{m: before[m] for m in self.metrics}},
            "final": {
                "cv_r2": self.search.best_cv_r2 if self.search is not None and self.tuned else before["cv_r2"],
                **self.metrics,
            },
        }
        return pd.DataFrame(rows).T


def train(
    frame: pd.DataFrame,
    seed: int = SEED,
    n_iter: int = N_ITER,
    backend: str = "loky",
    scheduler: str | None = None,
    families: Sequence[str] | None = None,
    zoo: pd.DataFrame | None = None,
    n_jobs: int = -1,
) -> TrainResult:
    """Compare the zoo, tune the family with the best cross-validated R2, keep the better
    of its default and tuned versions (by CV R2), and score that on the test split.

    ``zoo`` reuses a table from :func:`compare_zoo` (same frame and seed) instead of
    recomputing it; ``n_jobs`` is the zoo's cross-validation parallelism (1 avoids
    starting worker processes for small jobs).
    """
    data = split(frame, seed=seed)
    if zoo is None:
        zoo = compare_zoo(data, seed=seed, families=families, n_jobs=n_jobs)
    best = zoo.iloc[0]
    family = get_family(str(best["family"]))
    model = family.pipeline(seed)
    with threadpool_limits(1):
        model.fit(data.X_train, data.y_train)
    search = None
    notes = []
    if family.space and n_iter > 0:
        search = tune(family, data, seed=seed, n_iter=n_iter, backend=backend, scheduler=scheduler)
        if search.best_cv_r2 > float(best["cv_r2"]):
            model = search.model
        else:
            notes.append("tuning did not beat the default hyperparameters; kept the defaults")
    params = {k: v for k, v in model.named_steps["model"].get_params().items() if k in (family.space or {})}
    metrics = regression_metrics(data.y_test, model.predict(data.X_test))
    return TrainResult(
        model=model,
        family=family.name,
        params=params,
        metrics=metrics,
        zoo=zoo,
        search=search,
        seed=seed,
        n_iter=n_iter,
        backend=backend,
        train_rows=len(data.X_train),
        test_rows=len(data.X_test),
        notes=notes,
    )
