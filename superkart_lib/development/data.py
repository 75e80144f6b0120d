"""Read, validate and clean SuperKart CSV files as pandas frames.

The rules live in production: :mod:`superkart_lib.production.csv_files` reads the CSV text and
:mod:`superkart_lib.production.table_validation` checks it column by column, as ``superkart
predict`` does; pandas only builds the typed frame. :func:`check_rows` finds the first problem
of every row in one pass, and :func:`validate` reports the first invalid row in one line naming
the file, column, row and allowed values. Rows are numbered from 1 for the first data row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from superkart_lib.contract import limits, schema
from superkart_lib.contract.errors import DataError, NotTextError
from superkart_lib.contract.files import sha256_of
from superkart_lib.contract.schema import REAL_ROWS
from superkart_lib.development.settings import SEED
from superkart_lib.development.synthetic import generate
from superkart_lib.production import csv_files, table_validation


def _frame(typed: dict[str, np.ndarray]) -> pd.DataFrame:
    """Typed columns (rows,) as a frame in schema order with the schema's dtypes."""
    names = [c.name for c in schema.COLUMNS if c.name in typed]
    return pd.DataFrame({name: typed[name] for name in names}).astype({n: schema.BY_NAME[n].dtype for n in names})


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
    problems: dict[int, tuple[str | None, str]]

    def reasons(self) -> dict[int, str]:
        """Position of each invalid row to its first problem as ``column 'C': message``."""
        return table_validation.TableCheck({}, self.keep, self.problems).reasons()


def _check(frame: pd.DataFrame, path: Path, require_target: bool) -> table_validation.TableCheck:
    table_validation.check_header([str(c) for c in frame.columns], path, require_target)
    if len(frame) == 0:
        raise DataError(f"{path}: no data rows after the header")
    present = [c.name for c in schema.COLUMNS if c.name in frame.columns]
    # str() of each value, as frame.astype(str) did: a number or a NaN is checked as its text.
    return table_validation.check_columns({name: list(map(str, frame[name].tolist())) for name in present})


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
        The valid rows typed, a keep mask of shape (rows,) and the first problem of each invalid row.

    Raises
    ------
    DataError
        For a problem of the whole frame: a missing column, or no rows.
    """
    checked = _check(frame, Path(str(source)), require_target)
    return RowCheck(_frame(checked.typed), checked.keep, checked.problems)


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
        then named by its rows in the file (its line taken as row + 1).

    Returns
    -------
    pandas.DataFrame
        Schema columns present in ``frame``, in schema order, with schema dtypes, shape
        (rows, columns present). Extra columns are dropped.

    Raises
    ------
    DataError
        For the first invalid row, naming file, column, row and allowed values.
    """
    path = Path(str(source))
    checked = _check(frame, path, require_target)
    error = checked.first_error(path, row_offset)
    if error:
        raise error
    return _frame(checked.typed)


def read_csv(path: str | Path, require_target: bool = True) -> pd.DataFrame:
    """Read and validate a SuperKart CSV file.

    Returns a frame of shape (rows, schema columns present) with schema dtypes; raises
    :class:`~superkart_lib.contract.errors.DataError` with one clear line on any problem,
    naming the row and the line of the file it starts on.
    """
    path = Path(path)
    parts: list[dict[str, np.ndarray]] = []
    try:
        with csv_files.open_csv(path) as table:
            positions = table_validation.check_header(table.header, path, require_target)
            for part in table.chunks(limits.BATCH_CHUNK_ROWS):
                checked = table_validation.check_rows(part.rows, positions, len(table.header))
                error = checked.first_error(path, part.first_row, part.line_numbers)
                if error:
                    raise error
                parts.append(checked.typed)
    except NotTextError:
        raise DataError(f"{path}: not a CSV file (not UTF-8 text)") from None  # as training has always said
    return _frame({name: np.concatenate([part[name] for part in parts]) for name in parts[0]})


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


def load_training_data(
    path: str | None, rows: int = REAL_ROWS, seed: int = SEED
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A validated frame from ``path``, or the built-in synthetic data; plus the facts the
    manifest records (for synthetic data, the sha256 of its CSV text)."""
    if path:
        frame = read_csv(path)
        return frame, data_facts(path, frame)
    return synthetic_data(rows, seed)


#: The manifest's ``source`` for the built-in synthetic data, as :func:`regenerate` reads it back.
_SYNTHETIC_SOURCE = re.compile(r"synthetic\(rows=(\d+), seed=(-?\d+)\)")


def synthetic_data(rows: int, seed: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The built-in synthetic data and its manifest facts (the sha256 of its CSV text)."""
    frame = generate(rows=rows, seed=seed)
    digest = sha256_of(frame.to_csv(index=False).encode())
    return frame, {"source": f"synthetic(rows={rows}, seed={seed})", "sha256": digest, "rows": len(frame)}


def regenerate(source: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The synthetic data a manifest's ``source`` names, with its facts; None for any other source."""
    match = _SYNTHETIC_SOURCE.fullmatch(source)
    return synthetic_data(int(match[1]), int(match[2])) if match else None


#: The manifest's ``source`` for data read from a file. The path is not recorded: the manifest is
#: published (``GET /v1/model``), and a path tells outsiders about the training machine; the
#: sha256 identifies the data without naming it.
FILE_SOURCE = "file"


def data_facts(path: str | Path, frame: pd.DataFrame) -> dict[str, Any]:
    """What the manifest records about training data: a fingerprint (sha256 and rows), never the path."""
    return {"source": FILE_SOURCE, "sha256": sha256_of(path), "rows": len(frame)}
