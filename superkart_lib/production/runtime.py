"""The production runtime: verified ONNX model, raw records in, sales predictions out.

Imports only numpy, onnxruntime, the standard library and the contract (schema, errors,
manifest, formats), so it runs in the production environment without scikit-learn or pandas.
Inputs are built straight from dicts: one (n, 1) array per model input, float64 for numbers
and str objects for categories.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from superkart_lib.compat.runtime import session_runner
from superkart_lib.contract import manifest as mf
from superkart_lib.contract import schema
from superkart_lib.contract.errors import DataError, SuperKartError, first_line
from superkart_lib.contract.formats import ONNX_FILE, verify

_STRING = "tensor(string)"
_DOUBLE = "tensor(double)"

Records = Mapping[str, Any] | Sequence[Mapping[str, Any]]
#: Values that make a mapping one record, not columns (bytes and str have a length too).
_SCALARS = (str, float, int, bytes)


def _session(onnx_bytes: bytes, origin: str) -> ort.InferenceSession:
    """One single-threaded CPU session: a server scales with processes, not threads per call."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise SuperKartError(f"{origin}: onnxruntime cannot load the model ({first_line(exc)})") from None


class OnnxModel:
    """A SuperKart ONNX model ready to predict, with one onnxruntime session.

    Parameters
    ----------
    onnx_bytes : bytes
        Serialised ONNX model whose inputs are schema feature columns of shape (n, 1).
    version : str
        Package version id, echoed by the API.
    manifest : dict, optional
        The package manifest the model came from.
    origin : str
        Where the bytes came from, for error messages.
    """

    def __init__(self, onnx_bytes: bytes, version: str = "", manifest: dict[str, Any] | None = None, origin: str = ""):
        self.version = version
        self.manifest = manifest or {}
        self._session = _session(onnx_bytes, origin or "ONNX model")
        inputs = self._session.get_inputs()
        expected = {c: _STRING if c in schema.CATEGORICAL_FEATURES else _DOUBLE for c in schema.FEATURE_COLUMNS}
        unknown = [f"{i.name} ({i.type})" for i in inputs if expected.get(i.name) != i.type]
        if unknown:
            raise SuperKartError(f"{origin or 'ONNX model'}: inputs {unknown} do not match the SuperKart schema")
        # (name, is_category) once, so a call only walks a tuple.
        self._inputs: tuple[tuple[str, bool], ...] = tuple((i.name, i.type == _STRING) for i in inputs)
        # One read-only (1, 1) array per schema category, made once: a record's categories then
        # cost a dict lookup instead of a new array each (onnxruntime only reads its inputs).
        self._one_row = tuple(
            (name, _category_arrays(name) if is_category else None) for name, is_category in self._inputs
        )
        self._outputs = [self._session.get_outputs()[0].name]
        self._run = session_runner(self._session)

    @classmethod
    def from_package(cls, package_dir: str | Path) -> OnnxModel:
        """Load ``model.onnx`` from a package directory after checking it against ``manifest.json``.

        Raises
        ------
        SuperKartError
            When the manifest is missing or of the wrong shape (the one check `superkart verify`
            applies too), or ``model.onnx`` is missing or does not match its recorded sha256 and
            size (the message names the file).
        """
        # The link is resolved once: manifest and model come from the same version directory.
        root, manifest = mf.open_package(package_dir)
        path = mf.package_file(root, ONNX_FILE)
        data = verify(root, ONNX_FILE, manifest)
        return cls(data, version=manifest["package_version"], manifest=manifest, origin=str(path))

    @classmethod
    def from_bytes(cls, onnx_bytes: bytes, version: str = "") -> OnnxModel:
        """Load unverified bytes (tests, benchmarks); production loads use :meth:`from_package`."""
        return cls(onnx_bytes, version=version)

    @property
    def input_names(self) -> tuple[str, ...]:
        """The schema columns the model reads, in the model's input order."""
        return tuple(name for name, _ in self._inputs)

    def predict(self, records: Records) -> np.ndarray:
        """Predict sales for raw records.

        Parameters
        ----------
        records : dict, list of dict, or dict of columns
            One record (column -> value), a list of records, or column -> sequence of
            values. Keys use the dataset's column names; extra keys such as
            ``Product_Id`` and the target are ignored.

        Returns
        -------
        numpy.ndarray of float64, shape (n,)
            Predicted Product_Store_Sales_Total in dollars, one per record.

        Raises
        ------
        DataError
            Naming the field (and record index) that is missing or not convertible.
        """
        if isinstance(records, Mapping):
            feeds = self._from_columns(records) if self._holds_columns(records) else self._from_record(records)
        elif isinstance(records, Sequence) and not isinstance(records, str | bytes):
            if not records:
                return np.empty(0, dtype=np.float64)
            feeds = self._from_rows(records)
        else:
            raise DataError(f"expected a record, a list of records or a dict of columns, got {type(records).__name__}")
        try:
            return self._run(self._outputs, feeds, None)[0].reshape(-1)
        except Exception as exc:  # onnxruntime has its own exception types
            raise SuperKartError(f"onnxruntime failed to predict: {first_line(exc)}") from None

    def _holds_columns(self, mapping: Mapping[str, Any]) -> bool:
        """Whether ``mapping`` is column -> values rather than one record, judged by its first input."""
        for name, _ in self._inputs:
            if name in mapping:
                value = mapping[name]
                # Plain scalars first: the single-record hot path should not pay for hasattr.
                return not isinstance(value, _SCALARS) and hasattr(value, "__len__")
        return False

    def _from_record(self, record: Mapping[str, Any]) -> dict[str, np.ndarray]:
        # The hot path of single-row serving: one (1, 1) array per input, nothing else.
        feeds = {}
        try:
            for name, categories in self._one_row:
                value = record[name]
                if categories is None:
                    feeds[name] = np.array(float(value)).reshape(1, 1)
                    continue
                array = categories.get(value)
                if array is None:  # a string outside the schema still predicts, as in a batch
                    if not isinstance(value, str):
                        raise TypeError(name)
                    array = np.array([[value]], dtype=object)
                feeds[name] = array
        except (KeyError, TypeError, ValueError):
            raise self._diagnose([record]) from None
        return feeds

    def _from_rows(self, rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        feeds = {}
        try:
            for name, is_category in self._inputs:
                feeds[name] = _column([row[name] for row in rows], is_category)
        except (KeyError, TypeError, ValueError):
            raise self._diagnose(rows) from None
        return feeds

    def _from_columns(self, columns: Mapping[str, Any]) -> dict[str, np.ndarray]:
        feeds = {}
        for name, is_category in self._inputs:
            if name not in columns:
                raise DataError(f"missing column '{name}'")
            try:
                values = list(columns[name])
                feeds[name] = _column(values, is_category)
            except (TypeError, ValueError):
                problems = (_problem(name, is_category, v) for v in values)
                index, problem = next(((i, p) for i, p in enumerate(problems) if p), (None, "not a list of values"))
                where = f"record {index}" if index is not None else f"column '{name}'"
                raise DataError(f"{where}: {problem}") from None
        lengths = {len(values) for values in feeds.values()}
        if len(lengths) > 1:
            raise DataError(f"columns have different lengths: {sorted(lengths)}")
        return feeds

    def _diagnose(self, rows: Sequence[Any]) -> DataError:
        """The first problem in ``rows``, named by field and record index (slow path, errors only)."""
        for index, row in enumerate(rows):
            if not isinstance(row, Mapping):
                return DataError(f"record {index}: expected an object of fields, got {type(row).__name__}")
            for name, is_category in self._inputs:
                problem = f"missing field '{name}'" if name not in row else _problem(name, is_category, row[name])
                if problem:
                    return DataError(f"record {index}: {problem}")
        return DataError("records could not be converted to model inputs")


def _category_arrays(name: str) -> dict[str, np.ndarray]:
    """Schema category of column ``name`` -> read-only (1, 1) object array holding it."""
    arrays = {}
    for value in schema.BY_NAME[name].categories:
        array = np.array([[value]], dtype=object)
        array.flags.writeable = False
        arrays[value] = array
    return arrays


def _column(values: list[Any], is_category: bool) -> np.ndarray:
    """One model input, shape (n, 1): str objects for a category, float64 for a number.

    Raises TypeError or ValueError on a value that does not fit (None included).
    """
    if is_category:
        if not all(isinstance(v, str) for v in values):
            raise TypeError("not a string")
        column = np.empty((len(values), 1), dtype=object)
        column[:, 0] = values
        return column
    # float() per value rejects None and sequences, which numpy would turn into NaN or new axes.
    return np.array([float(v) for v in values], dtype=np.float64).reshape(-1, 1)


def _problem(name: str, is_category: bool, value: Any) -> str | None:
    """Why ``value`` cannot feed input ``name``, or None when it can."""
    if is_category:
        return None if isinstance(value, str) else f"field '{name}' must be a string, got {value!r}"
    try:
        float(value)
    except (TypeError, ValueError):
        return f"field '{name}' must be a number, got {value!r}"
    return None
