"""skops files: the allow-list of types this project's models contain, and an audit
that reads a file's types without constructing anything."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from superkart_lib.contract.errors import UntrustedTypeError

#: skops writes a 3 MB indented JSON schema for 100 trees; deflate shrinks the file ~8x and loads as fast.
SKOPS_COMPRESSION = zipfile.ZIP_DEFLATED


#: Every type a skops file of this project may contain, by fully qualified name,
#: collected from each model family's fitted pipeline. Review before adding.
SKOPS_TRUSTED: frozenset[str] = frozenset(
    {
        "builtins.bytearray",  # XGBoost's raw booster
        "builtins.dict",
        "builtins.list",
        "builtins.slice",
        "builtins.str",
        "builtins.tuple",
        "numpy.float64",
        "numpy.ndarray",
        "numpy.random._generator.Generator",
        "numpy.random.mtrand.RandomState",
        "numpy.uint64",
        "sklearn._loss._loss.CyHalfSquaredError",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.Interval",
        "sklearn._loss.loss.HalfSquaredError",
        "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.dummy.DummyRegressor",
        "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.ensemble._gb.GradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        # Tree node arrays are trusted, not bounds-checked by skops: the sha256 check is what vouches for them.
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.linear_model._base.LinearRegression",
        "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.pipeline.Pipeline",
        "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        "sklearn.preprocessing._function_transformer.FunctionTransformer",  # ColumnTransformer's "passthrough"
        "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._tree.Tree",
        "superkart_lib.development.features.CategoryMapper",
        "superkart_lib.development.features.Float32Cast",
        "xgboost.core.Booster",
        "xgboost.sklearn.XGBRegressor",
    }
)


def skops_types(data: bytes) -> set[str]:
    """Every type a skops file names (read from its JSON schema; nothing is constructed)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        schema = json.loads(archive.read("schema.json"))
    found, stack = set(), [schema]
    while stack:  # iterative: a deeply nested schema must not exhaust the recursion limit
        node = stack.pop()
        if isinstance(node, dict):
            if "__class__" in node:
                found.add(f"{node.get('__module__')}.{node['__class__']}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def dumps(model: Any) -> bytes:
    """The skops bytes of ``model``; refused when it holds a type outside :data:`SKOPS_TRUSTED`."""
    import skops.io as sio

    data = sio.dumps(model, compression=SKOPS_COMPRESSION)
    outside = sorted(skops_types(data) - SKOPS_TRUSTED)
    if outside:  # refuse now rather than write a package that will not load
        raise UntrustedTypeError(f"model has type(s) outside SKOPS_TRUSTED: {', '.join(outside)}")
    return data


def loads(data: bytes) -> Any:
    """The model in skops ``data``, constructing only allow-listed types."""
    import skops.io as sio

    # skops trusts every scikit-learn estimator and numpy function by default; the allow-list
    # is narrower. The plain JSON scan goes first, so skops builds no node tree for a refused file.
    outside = sorted(skops_types(data) - SKOPS_TRUSTED) or sorted(
        set(sio.get_untrusted_types(data=data)) - SKOPS_TRUSTED
    )
    if outside:
        raise UntrustedTypeError(f"refusing type(s) outside the skops allow-list: {', '.join(outside)}")
    return sio.loads(data, trusted=sorted(SKOPS_TRUSTED))
