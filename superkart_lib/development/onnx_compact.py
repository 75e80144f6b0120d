"""Compact tree graphs: splits on one-hot columns become splits on category codes.

A tree split on a one-hot column such as ``Store_Id_OUT002 < 0.5`` asks "is Store_Id not
OUT002?". An ONNX tree ensemble can ask that directly (``BRANCH_NEQ`` on the code of
Store_Id), so a tree model's graph can map each categorical input to one number with a
LabelEncoder instead of one-hot encoding it (OneHotEncoder, Gather, Reshape, Cast and
Concat per column). The trees then take 4 numbers and 7 codes instead of 40 columns.

It is the same model (tests/test_onnx.py checks parity on every test row), in half the
nodes. For one row, onnxruntime spends more time per node than inside the trees, so this
is what keeps single-row latency well under 0.1 ms.

Applied only to the layout this project builds (passthrough numbers, one-hot encoders,
optionally after CategoryMappers, a Float32Cast, then a tree ensemble whose converter we
own); anything else keeps skl2onnx's graph unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder
from xgboost import XGBRegressor

from superkart_lib.compat.training import onehot_has_infrequent_categories
from superkart_lib.contract import schema
from superkart_lib.development.features import CategoryMapper, Float32Cast
from superkart_lib.development.onnx_trees import FLOAT64_TREES

#: Code of a category the encoder never saw: no ``BRANCH_EQ`` matches it, every
#: ``BRANCH_NEQ`` does, exactly as its all-zero one-hot row behaves.
UNKNOWN_CODE = -1.0
#: Threshold of a split that goes the same way for every category (never seen in fitted
#: trees, kept for completeness): compared against codes >= -1 it is always true or false.
ALWAYS = float(np.finfo(np.float32).max)
_COMPARE = {
    b"BRANCH_LT": np.less,
    b"BRANCH_LEQ": np.less_equal,
    b"BRANCH_GT": np.greater,
    b"BRANCH_GTE": np.greater_equal,
}


@dataclass(frozen=True)
class Code:
    """One categorical input mapped to the index of its (mapped) value in a one-hot encoder."""

    name: str
    column: str
    table: dict[str, float]


@dataclass(frozen=True)
class Layout:
    """Where each feature the trees were fitted on comes from.

    ``slots[j]`` is ``(i, None)`` for the i-th number, or ``(len(numbers) + c, k)`` for
    one-hot column k of ``codes[c]``: the compact graph's feature index and category.
    """

    numbers: tuple[str, ...]
    codes: tuple[Code, ...]
    slots: tuple[tuple[int, int | None], ...]


def _mapping(steps: list) -> dict[str, str] | None:
    """The composed table of a chain of CategoryMappers, or None when a step is something else."""
    table: dict[str, str] = {}
    for step in steps:
        if not isinstance(step, CategoryMapper):
            return None
        mapping = step.mapping or {}
        table = {raw: mapping.get(value, value) for raw, value in table.items()}
        table |= {raw: value for raw, value in mapping.items() if raw not in table}
    return table


def _encoder(transformer) -> tuple[OneHotEncoder, dict[str, str]] | None:
    """(one-hot encoder, raw -> mapped table) of a branch that only maps and one-hot encodes."""
    steps = [s for _, s in transformer.steps] if isinstance(transformer, Pipeline) else [transformer]
    encoder, mapping = steps[-1], _mapping(steps[:-1])
    if not isinstance(encoder, OneHotEncoder) or mapping is None:
        return None
    # A dropped or infrequent category has no column of its own: codes cannot express it.
    if encoder.drop_idx_ is not None or onehot_has_infrequent_categories(encoder):
        return None
    return encoder, mapping


def layout(model: Pipeline) -> Layout | None:
    """The feature layout of a fitted ColumnTransformer -> Float32Cast -> trees pipeline, or None."""
    if not isinstance(model, Pipeline) or len(model.steps) != 3:
        return None
    features, cast, estimator = (step for _, step in model.steps)
    if not (isinstance(features, ColumnTransformer) and isinstance(cast, Float32Cast)):
        return None
    if not isinstance(estimator, (*FLOAT64_TREES, XGBRegressor)):
        return None
    numbers: list[str] = []
    codes: list[Code] = []
    onehot: list[tuple[int, int]] = []  # per one-hot feature: (code index, category)
    order: list[tuple[str, int]] = []  # the fitted feature order: ("number" | "onehot", index)
    for branch, transformer, columns in features.transformers_:
        if transformer == "drop":
            continue
        if isinstance(transformer, FunctionTransformer) and transformer.func is None:  # passthrough
            if not all(c in schema.NUMERIC_FEATURES for c in columns):
                return None
            order += [("number", len(numbers) + i) for i in range(len(columns))]
            numbers += columns
            continue
        found = _encoder(transformer)
        if found is None or not all(c in schema.CATEGORICAL_FEATURES for c in columns):
            return None
        encoder, mapping = found
        for column, categories in zip(columns, encoder.categories_, strict=True):
            index = {value: float(k) for k, value in enumerate(categories)}
            raw = {*schema.BY_NAME[column].categories, *mapping, *categories}
            table = {v: index.get(mapping.get(v, v), UNKNOWN_CODE) for v in sorted(raw)}
            order += [("onehot", len(onehot) + k) for k in range(len(categories))]
            onehot += [(len(codes), k) for k in range(len(categories))]
            codes.append(Code(f"{branch}_{column}_code", column, table))
    if not numbers or not codes or len(order) != getattr(estimator, "n_features_in_", -1):
        return None
    slots = tuple((i, None) if kind == "number" else (len(numbers) + onehot[i][0], onehot[i][1]) for kind, i in order)
    return Layout(tuple(numbers), tuple(codes), slots)


def category_split(mode: bytes, threshold: float, category: int) -> tuple[bytes, float]:
    """The split on a category code that sends rows where a one-hot split on ``category`` does.

    The one-hot column is 1 for ``category`` and 0 otherwise, so the split only decides
    between "is this category" and "is not".
    """
    when_zero, when_one = (bool(_COMPARE[mode](x, threshold)) for x in (0.0, 1.0))
    if when_one and not when_zero:
        return b"BRANCH_EQ", float(category)
    if when_zero and not when_one:
        return b"BRANCH_NEQ", float(category)
    return b"BRANCH_LEQ", ALWAYS if when_zero else -ALWAYS


def _tree_attributes(tree: onnx.NodeProto, slots: tuple[tuple[int, int | None], ...]) -> dict | None:
    """The tree node's attributes with every split moved to the compact feature layout."""
    attrs = {a.name: helper.get_attribute_value(a) for a in tree.attribute}
    as_tensor = "nodes_values_as_tensor" in attrs
    # A copy either way: the thresholds of category splits are rewritten in place below.
    values = np.array(numpy_helper.to_array(attrs["nodes_values_as_tensor"]) if as_tensor else attrs["nodes_values"])
    features, modes = list(attrs["nodes_featureids"]), list(attrs["nodes_modes"])
    for i, (feature, mode) in enumerate(zip(features, modes, strict=True)):
        if mode == b"LEAF":
            continue
        if mode not in _COMPARE or feature >= len(slots):
            return None
        features[i], category = slots[feature]
        if category is not None:
            modes[i], values[i] = category_split(mode, float(values[i]), category)
    attrs["nodes_featureids"], attrs["nodes_modes"] = features, modes
    if as_tensor:
        attrs["nodes_values_as_tensor"] = numpy_helper.from_array(values, "nodes_values")
    else:
        attrs["nodes_values"] = values.tolist()
    return attrs


def compact(model: Pipeline, proto: onnx.ModelProto) -> onnx.ModelProto | None:
    """The compact graph of an exported tree pipeline, or None when it does not apply.

    Parameters
    ----------
    model : Pipeline
        The fitted pipeline ``proto`` was converted from.
    proto : onnx.ModelProto
        skl2onnx's graph: schema columns in, the tree ensemble's (n, 1) output out.
    """
    found = layout(model)
    trees = [n for n in proto.graph.node if n.op_type == "TreeEnsembleRegressor"]
    if found is None or len(trees) != 1 or [o.name for o in proto.graph.output] != list(trees[0].output):
        return None
    attrs = _tree_attributes(trees[0], found.slots)
    if attrs is None:
        return None
    nodes = [
        helper.make_node("Concat", list(found.numbers), ["numbers"], name="numbers", axis=1),
        # The pipeline's Float32Cast: the values both libraries' trees compare.
        helper.make_node("Cast", ["numbers"], ["numbers_float32"], name="Float32Cast", to=TensorProto.FLOAT),
    ]
    for code in found.codes:
        nodes.append(
            helper.make_node(
                "LabelEncoder",
                [code.column],
                [code.name],
                name=code.name,
                domain="ai.onnx.ml",
                keys_strings=list(code.table),
                values_floats=list(code.table.values()),
                default_float=UNKNOWN_CODE,
            )
        )
    nodes.append(helper.make_node("Concat", ["numbers_float32", *(c.name for c in found.codes)], ["features"], axis=1))
    tree_input = "features"
    if isinstance(model.steps[-1][1], FLOAT64_TREES):  # float64 thresholds and sums, as scikit-learn
        nodes.append(helper.make_node("Cast", ["features"], ["features_float64"], to=TensorProto.DOUBLE))
        tree_input = "features_float64"
    tree = trees[0]
    nodes.append(
        helper.make_node(tree.op_type, [tree_input], list(tree.output), tree.name, domain=tree.domain, **attrs)
    )
    graph = helper.make_graph(nodes, proto.graph.name, list(proto.graph.input), list(proto.graph.output))
    return helper.make_model(graph, opset_imports=list(proto.opset_import), ir_version=proto.ir_version)
