"""Read, validate and clean SuperKart CSV files.

Validation is derived from :mod:`superkart_lib.schema` and stops at the first problem
with one line naming the file, column, row and allowed values. Rows are numbered from 1
for the first data row (line 2 of the file, after the header).
"""

from __future__ import annotations

import csv
import difflib
import hashlib
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


def _parse_column(raw: pd.Series, column: schema.Column, path: Path, row_offset: int = 0) -> pd.Series:
    text = raw.str.strip()
    empty = text == ""
    if empty.any():
        index = int(np.flatnonzero(empty.to_numpy())[0])
        what = "the target" if column.name == schema.TARGET else "a required value"
        raise _problem(path, column.name, index, f"missing value ({what} must be present)", row_offset)
    if column.kind == "category":
        bad = ~text.isin(column.categories)
        if bad.any():
            index = int(np.flatnonzero(bad.to_numpy())[0])
            allowed = ", ".join(repr(c) for c in column.categories)
            raise _problem(
                path, column.name, index, f"{text.iloc[index]!r} is not allowed (allowed: {allowed})", row_offset
            )
        return text.astype("str")
    if column.kind == "id":
        bad = ~text.str.fullmatch(schema.PRODUCT_ID_PATTERN[1:-1])
        if bad.any():
            index = int(np.flatnonzero(bad.to_numpy())[0])
            raise _problem(
                path,
                column.name,
                index,
                f"{text.iloc[index]!r} is not a product id (FD, NC or DR then digits)",
                row_offset,
            )
        return text.astype("str")
    values = pd.to_numeric(text, errors="coerce")
    bad = values.isna().to_numpy()
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise _problem(path, column.name, index, f"{text.iloc[index]!r} is not a number", row_offset)
    numbers = values.to_numpy(dtype="float64")
    outside = column.out_of_bounds(numbers)
    if outside.any():
        index = int(np.flatnonzero(outside)[0])
        raise _problem(
            path,
            column.name,
            index,
            f"{text.iloc[index]} is out of range (allowed: {column.bounds_text()})",
            row_offset,
        )
    if column.kind == "integer":
        fractional = numbers != np.round(numbers)
        if fractional.any():
            index = int(np.flatnonzero(fractional)[0])
            raise _problem(path, column.name, index, f"{text.iloc[index]} is not a whole number", row_offset)
        return pd.Series(numbers.astype("int64"), index=raw.index, name=raw.name)
    return pd.Series(numbers, index=raw.index, name=raw.name)


def _check_stores(frame: pd.DataFrame, path: Path, row_offset: int = 0) -> None:
    table = pd.DataFrame([vars(s) for s in schema.STORES.values()]).set_index("store_id")
    for column, attribute in schema.STORE_ATTRIBUTES.items():
        expected = frame["Store_Id"].map(table[attribute])
        bad = (frame[column] != expected).to_numpy()
        if bad.any():
            index = int(np.flatnonzero(bad)[0])
            store = frame["Store_Id"].iloc[index]
            raise _problem(
                path,
                column,
                index,
                f"{frame[column].iloc[index]!r} contradicts store {store}, whose {column} is {expected.iloc[index]!r}",
                row_offset,
            )


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
        At the first problem, naming file, column, row and allowed values.
    """
    path = Path(str(source))
    frame = frame.astype(str)
    _check_columns(frame, path, require_target)
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows after the header")
    typed = {
        c.name: _parse_column(frame[c.name], c, path, row_offset) for c in schema.COLUMNS if c.name in frame.columns
    }
    result = pd.DataFrame(typed)[[c for c in schema.ALL_COLUMNS if c in typed]]
    _check_stores(result, path, row_offset)
    return result.reset_index(drop=True)


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
