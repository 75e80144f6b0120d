"""Read, validate and clean SuperKart CSV files.

Validation is derived from :mod:`superkart_lib.schema`: :func:`check_rows` finds the first
problem of every row in one pass, and :func:`validate` reports the first invalid row in one
line naming the file, column, row and allowed values. Rows are numbered from 1 for the
first data row (line 2 of the file, after the header).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from superkart_lib import schema
from superkart_lib.errors import DataError


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_input_file(path: Path) -> None:
    """Raise a one-line DataError unless ``path`` is a non-empty regular file."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a CSV file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")


def _raw_frame(path: Path) -> pd.DataFrame:
    check_input_file(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            f.read(1 << 16)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a CSV file (not UTF-8 text)") from None
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a valid CSV file ({first})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    return frame


def _check_columns(frame: pd.DataFrame, path: Path, require_target: bool) -> None:
    present = [str(c) for c in frame.columns]
    if not set(present) & set(schema.ALL_COLUMNS):
        raise DataError(
            f"{path}: not a SuperKart CSV: none of the expected columns in header {present[:5]}"
            f"{'...' if len(present) > 5 else ''} (expected {', '.join(schema.ALL_COLUMNS)})"
        )
    needed = [c.name for c in schema.COLUMNS if c.required and (c.name != schema.TARGET or require_target)]
    missing = [c for c in needed if c not in present]
    if missing:
        name = missing[0]
        unknown = [c for c in present if c not in schema.ALL_COLUMNS]
        close = difflib.get_close_matches(name, unknown, n=1, cutoff=0.6)
        hint = f" (found '{close[0]}': misspelled?)" if close else ""
        raise DataError(f"{path}: missing column '{name}'{hint}")


def _problem(path: Path, column: str, index: int, message: str, row_offset: int = 0) -> DataError:
    row = row_offset + index + 1  # 1-based data row of the file; its line follows the header
    return DataError(f"{path}: column '{column}', row {row} (line {row + 1}): {message}")


class _FirstProblems:
    """Each row's first problem, in the order the checks run: its column and message."""

    def __init__(self, rows: int) -> None:
        self.fine = np.ones(rows, dtype=bool)
        self.columns = np.full(rows, "", dtype=object)
        self.messages = np.full(rows, "", dtype=object)

    def add(self, column: str, bad: np.ndarray, describe: Callable[[int], str]) -> None:
        """Give each ``bad`` row that has no problem yet the problem ``describe(row position)``."""
        rows = np.flatnonzero(bad & self.fine)
        if len(rows):
            self.fine[rows] = False
            self.columns[rows] = column
            self.messages[rows] = [describe(int(i)) for i in rows]


def _parse_column(raw: pd.Series, column: schema.Column, found: _FirstProblems) -> pd.Series:
    """Typed values of one column of raw strings; its problems go to ``found``.

    Values of rows with a problem are placeholders (NaN, or 0 in an integer column).
    """
    text = raw.str.strip()
    strings = text.to_numpy(dtype=object)
    what = "the target" if column.name == schema.TARGET else "a required value"
    found.add(column.name, (text == "").to_numpy(), lambda i: f"missing value ({what} must be present)")
    if column.kind in ("category", "id"):
        if column.kind == "category":
            allowed = ", ".join(repr(c) for c in column.categories)
            bad, problem = ~text.isin(column.categories).to_numpy(), f"is not allowed (allowed: {allowed})"
        else:
            bad = ~text.str.fullmatch(schema.PRODUCT_ID_PATTERN[1:-1]).to_numpy(dtype=bool)
            problem = "is not a product id (FD, NC or DR then digits)"
        found.add(column.name, bad, lambda i: f"{strings[i]!r} {problem}")
        return text.astype("str")
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64")
    unparsed, outside = np.isnan(numbers), column.out_of_bounds(numbers)
    found.add(column.name, unparsed, lambda i: f"{strings[i]!r} is not a number")
    bounds = column.bounds_text()
    found.add(column.name, outside, lambda i: f"{strings[i]} is out of range (allowed: {bounds})")
    if column.kind == "integer":
        fractional = numbers != np.round(numbers)
        found.add(column.name, fractional, lambda i: f"{strings[i]} is not a whole number")
        whole = ~(unparsed | outside | fractional)
        return pd.Series(np.where(whole, numbers, 0).astype("int64"), index=raw.index, name=raw.name)
    return pd.Series(numbers, index=raw.index, name=raw.name)


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so a message reads 1990, not np.int64(1990)."""
    return value.item() if isinstance(value, np.generic) else value


def _check_stores(frame: pd.DataFrame, found: _FirstProblems) -> None:
    """Store attributes that contradict the row's store, for rows whose every column parsed."""
    table = pd.DataFrame([vars(s) for s in schema.STORES.values()]).set_index("store_id")
    rows = np.flatnonzero(found.fine)
    parsed = frame.iloc[rows]  # known stores only, so the expected values keep the table's dtypes
    for column, attribute in schema.STORE_ATTRIBUTES.items():
        expected = parsed["Store_Id"].map(table[attribute])  # labelled by row position, as ``frame`` is
        bad = np.zeros(len(frame), dtype=bool)
        bad[rows] = (parsed[column] != expected).to_numpy()

        def describe(i: int, column: str = column, expected: pd.Series = expected) -> str:
            value, store = frame[column].iloc[i], frame["Store_Id"].iloc[i]
            return f"{_plain(value)!r} contradicts store {store}, whose {column} is {_plain(expected.loc[i])!r}"

        found.add(column, bad, describe)


@dataclass(frozen=True)
class RowCheck:
    """Every row of a frame checked against the schema: see :func:`check_rows`.

    Attributes
    ----------
    typed : pandas.DataFrame
        The valid rows, in order, with schema dtypes (as :func:`validate` returns them).
    keep : numpy.ndarray
        Boolean mask of shape (rows,): True for a valid row.
    problems : dict of int to (str, str)
        Position (0-based) of each invalid row to (column, message) of its first problem.
    """

    typed: pd.DataFrame
    keep: np.ndarray
    problems: dict[int, tuple[str, str]]

    def reasons(self) -> dict[int, str]:
        """Position of each invalid row to its first problem as ``column 'C': message``."""
        return {row: f"column '{column}': {message}" for row, (column, message) in self.problems.items()}


def check_rows(frame: pd.DataFrame, source: str | Path = "<data>", require_target: bool = True) -> RowCheck:
    """Check every row of a frame of raw strings against the schema, in one pass.

    A row's problem is the first one :func:`validate` would find in that row alone: columns
    in schema order (missing value, then allowed values or number, bounds, whole number),
    then the store attributes.

    Parameters
    ----------
    frame, source, require_target
        As for :func:`validate`; a target column that is not required is still checked when present.

    Returns
    -------
    RowCheck
        The valid rows typed, a keep mask and the first problem of each invalid row.

    Raises
    ------
    DataError
        For a problem of the whole frame: a missing column, or no rows.
    """
    path = Path(str(source))
    frame = frame.astype(str).reset_index(drop=True)
    _check_columns(frame, path, require_target)
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows after the header")
    found = _FirstProblems(len(frame))
    typed = pd.DataFrame(
        {c.name: _parse_column(frame[c.name], c, found) for c in schema.COLUMNS if c.name in frame.columns}
    )
    _check_stores(typed, found)
    keep = found.fine
    problems = {int(i): (found.columns[i], found.messages[i]) for i in np.flatnonzero(~keep)}
    return RowCheck(typed[keep].reset_index(drop=True), keep, problems)


def validate(
    frame: pd.DataFrame, source: str | Path = "<data>", require_target: bool = True, row_offset: int = 0
) -> pd.DataFrame:
    """Check a frame of raw strings against the schema and return it typed.

    Parameters
    ----------
    frame : pandas.DataFrame
        Raw values (strings, as read with ``dtype=str``), one row per product-store pair.
    source : str or Path
        Named in error messages.
    require_target : bool
        Training data needs the target; data to score does not (it is kept if present).
    row_offset : int
        Data rows of the file before ``frame``'s first row: a chunk of a large file is
        then named by its rows in the file.

    Returns
    -------
    pandas.DataFrame
        Schema columns present in ``frame``, in schema order, with schema dtypes.
        Extra columns are dropped.

    Raises
    ------
    DataError
        For the first invalid row, naming file, column, row and allowed values.
    """
    checked = check_rows(frame, source, require_target)
    if checked.problems:
        index = min(checked.problems)
        column, message = checked.problems[index]
        raise _problem(Path(str(source)), column, index, message, row_offset)
    return checked.typed


def read_csv(path: str | Path, require_target: bool = True) -> pd.DataFrame:
    """Read and validate a SuperKart CSV file.

    Returns a frame of shape (rows, columns present) with schema dtypes; raises
    :class:`~superkart_lib.errors.DataError` with one clear line on any problem.
    """
    path = Path(path)
    return validate(_raw_frame(path), path, require_target=require_target)


def clean(frame: pd.DataFrame) -> pd.DataFrame:
    """Replace dirty category spellings (``reg`` -> ``Regular``); returns a copy.

    The model pipeline does the same cleaning itself; this is for exploration.
    """
    out = frame.copy()
    out["Product_Sugar_Content"] = out["Product_Sugar_Content"].replace(schema.SUGAR_ALIASES)
    return out


def split_xy(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """Split a validated frame into raw inputs X (n, 11) and the target y (n,), in $."""
    return frame.drop(columns=[schema.TARGET]), frame[schema.TARGET]
