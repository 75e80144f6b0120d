"""Validate a table of CSV text column by column against the schema (numpy and the standard library).

Every rule comes from :mod:`superkart_lib.contract.schema`. A row's problem is the first one
found in this order: the columns in schema order (for each, a missing value, then a value
outside the categories, not a product id, not a number, out of range, not a whole number),
then the store attributes in ``schema.STORE_ATTRIBUTES`` order, for rows whose every column
parsed. Values are stripped of surrounding whitespace before they are checked, and numbers
follow the one rule of :func:`.cells.parse_number` that the API's CSV upload follows too (as
``pandas.to_numeric`` parsed them: ASCII only, no ``_`` separators), so ``nan`` is not a
number and ``inf`` is out of range.

Each check runs on a whole column: a clean column costs a set test, one regular expression
or one float conversion; only a column with a problem is looked at value by value.
Files scored in bulk and training files are checked here; API requests record by record in
:mod:`.record_validation`, with the same rules.
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from superkart_lib.contract import schema
from superkart_lib.contract.errors import DataError
from superkart_lib.production.cells import parse_number
from superkart_lib.production.value_text import field_name

_ID = re.compile(schema.PRODUCT_ID_PATTERN.removeprefix("^").removesuffix("$"))
#: A whole id column joined with newlines (a newline inside a cell is caught by counting them).
_IDS = re.compile(rf"(?:{_ID.pattern})(?:\n(?:{_ID.pattern}))*")
_ALLOWED = {c.name: frozenset(c.categories) for c in schema.COLUMNS if c.kind == "category"}
#: The store table by column: Store_Id -> row, and each attribute column's value per row.
_STORE_CODES = {store_id: code for code, store_id in enumerate(schema.STORES)}
_STORE_TABLE = {
    column: np.array(
        [getattr(store, attribute) for store in schema.STORES.values()],
        dtype=np.int64 if schema.BY_NAME[column].kind == "integer" else object,
    )
    for column, attribute in schema.STORE_ATTRIBUTES.items()
}
_DTYPES = {"number": np.float64, "integer": np.int64, "category": object, "id": object}

Problem = tuple[str | None, str]


@dataclass(frozen=True)
class TableCheck:
    """Every row of a table checked against the schema: see :func:`check_columns`.

    Attributes
    ----------
    typed : dict of str to numpy.ndarray
        The valid rows, in order, one array of shape (valid rows,) per schema column checked:
        float64 numbers, int64 whole numbers, str objects (stripped) for categories and ids.
    keep : numpy.ndarray
        Boolean mask of shape (rows,): True for a valid row.
    problems : dict of int to (str or None, str)
        Position (0-based) of each invalid row to (column, message) of its first problem;
        the column is None for a problem of the whole row (its number of fields).
    """

    typed: dict[str, np.ndarray]
    keep: np.ndarray
    problems: dict[int, Problem]

    def reasons(self) -> dict[int, str]:
        """Position of each invalid row to its first problem as ``column 'C': message``."""
        return {row: _reason(column, message) for row, (column, message) in self.problems.items()}

    def first_error(
        self, source: str | Path, first_row: int = 0, lines: Sequence[int] | None = None
    ) -> DataError | None:
        """The first invalid row as a one-line DataError, or None when every row is valid.

        Parameters
        ----------
        source : str or Path
            Named in the message.
        first_row : int
            Data rows of the file before this table's first row.
        lines : sequence of int, optional
            Line of the file where each row starts, shape (rows,); by default row + 1 (the header's line first).
        """
        if not self.problems:
            return None
        index = min(self.problems)
        column, message = self.problems[index]
        row = first_row + index + 1
        line = lines[index] if lines is not None else row + 1
        where = f"column '{column}', row {row} (line {line})" if column else f"row {row} (line {line})"
        return DataError(f"{source}: {where}: {message}")


def _reason(column: str | None, message: str) -> str:
    return f"column '{column}': {message}" if column else message


def check_header(header: Sequence[str], source: str | Path, require_target: bool = True) -> dict[str, int]:
    """Check a header's column names; return the position of each schema column in it.

    Raises
    ------
    DataError
        When no schema column is there, a name appears twice, or a required column is
        missing (with the closest unknown name as a hint).
    """
    present = [str(name) for name in header]
    if not set(present) & set(schema.ALL_COLUMNS):
        raise DataError(
            f"{source}: not a SuperKart CSV: none of the expected columns in header "
            f"[{', '.join(field_name(name) for name in present[:5])}]"
            f"{'...' if len(present) > 5 else ''} (expected {', '.join(schema.ALL_COLUMNS)})"
        )
    seen: set[str] = set()
    for name in present:
        if name in seen:
            raise DataError(f"{source}: column {field_name(name)} appears twice in the header")
        seen.add(name)
    needed = [c.name for c in schema.COLUMNS if c.required and (c.name != schema.TARGET or require_target)]
    missing = [name for name in needed if name not in seen]
    if missing:
        unknown = [name for name in present if name not in schema.BY_NAME]
        close = difflib.get_close_matches(missing[0], unknown, n=1, cutoff=0.6)
        hint = f" (found {field_name(close[0])}: misspelled?)" if close else ""
        raise DataError(f"{source}: missing column '{missing[0]}'{hint}")
    return {name: position for position, name in enumerate(present) if name in schema.BY_NAME}


class _Problems:
    """Each row's first problem, in the order the checks run."""

    def __init__(self, rows: int) -> None:
        self.fine = np.ones(rows, dtype=bool)
        self.found: dict[int, Problem] = {}

    def add(self, column: str, bad: np.ndarray, describe: Callable[[int], str]) -> None:
        """Give each ``bad`` row (mask of shape (rows,)) without a problem yet ``describe(position)``."""
        rows = np.flatnonzero(bad & self.fine)
        self.fine[rows] = False
        for i in rows.tolist():
            self.found[i] = (column, describe(i))


def _missing(column: schema.Column, text: np.ndarray, found: _Problems) -> None:
    what = "the target" if column.name == schema.TARGET else "a required value"
    found.add(column.name, text == "", lambda i: f"missing value ({what} must be present)")


def _strings(column: schema.Column, raw: Sequence[str], found: _Problems) -> np.ndarray:
    """A category or id column as stripped str objects, shape (rows,)."""
    if column.kind == "category":
        if _ALLOWED[column.name].issuperset(raw):  # allowed values have no surrounding whitespace
            return np.array(raw, dtype=object)
    else:
        joined = "\n".join(raw)
        if _IDS.fullmatch(joined) and joined.count("\n") == len(raw) - 1:
            return np.array(raw, dtype=object)
    text = np.array([value.strip() for value in raw], dtype=object)
    _missing(column, text, found)
    if column.kind == "category":
        allowed = _ALLOWED[column.name]
        bad = np.fromiter((value not in allowed for value in text), dtype=bool, count=len(text))
        listed = ", ".join(repr(c) for c in column.categories)
        found.add(column.name, bad, lambda i: f"{text[i]!r} is not allowed (allowed: {listed})")
    else:
        bad = np.fromiter((_ID.fullmatch(value) is None for value in text), dtype=bool, count=len(text))
        found.add(column.name, bad, lambda i: f"{text[i]!r} is not a product id (FD, NC or DR then digits)")
    return text


def _float(text: str) -> float:
    """One stripped value as a number (:func:`.cells.parse_number`): NaN when it is not a number."""
    number = parse_number(text)
    return math.nan if number is None else number


def _numbers(column: schema.Column, raw: Sequence[str], found: _Problems) -> np.ndarray:
    """A number column as float64 (int64 for whole numbers), shape (rows,); placeholders where invalid."""
    numbers = None
    joined = "".join(raw)
    if "_" not in joined and joined.isascii():  # then float() and parse_number agree on every value
        with contextlib.suppress(ValueError):  # float() of each value, in C; it ignores surrounding whitespace too
            numbers = np.array(raw, dtype=np.float64)
    if numbers is None:
        text = np.array([value.strip() for value in raw], dtype=object)
        _missing(column, text, found)
        numbers = np.fromiter(map(_float, text), dtype=np.float64, count=len(text))
    found.add(column.name, np.isnan(numbers), lambda i: f"{raw[i].strip()!r} is not a number")
    outside = column.out_of_bounds(numbers)
    bounds = column.bounds_text()
    found.add(column.name, outside, lambda i: f"{raw[i].strip()} is out of range (allowed: {bounds})")
    if column.kind != "integer":
        return numbers
    fractional = numbers != np.round(numbers)
    found.add(column.name, fractional, lambda i: f"{raw[i].strip()} is not a whole number")
    return np.where(outside | fractional, 0, numbers).astype(np.int64)


def _check_stores(typed: dict[str, np.ndarray], found: _Problems) -> None:
    """Store attributes that contradict the row's store, for rows whose every column parsed."""
    if "Store_Id" not in typed or not set(schema.STORE_ATTRIBUTES) <= typed.keys():
        return  # a table without its store columns has nothing to contradict
    ids = typed["Store_Id"]
    # Row -> its store's row of the table; an unknown store (a row already invalid) takes the first.
    codes = np.fromiter(map(_STORE_CODES.get, ids.tolist(), itertools.repeat(0)), dtype=np.intp, count=len(ids))
    for column, table in _STORE_TABLE.items():
        values, expected = typed[column], table[codes]

        def describe(i: int, values: np.ndarray = values, expected: np.ndarray = expected, column: str = column) -> str:
            value, should = _plain(values[i]), _plain(expected[i])
            return f"{value!r} contradicts store {ids[i]}, whose {column} is {should!r}"

        found.add(column, values != expected, describe)


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so a message reads 1990, not np.int64(1990)."""
    return value.item() if isinstance(value, np.generic) else value


def check_columns(columns: Mapping[str, Sequence[str]]) -> TableCheck:
    """Check columns of raw CSV text against the schema, every row in one pass.

    Parameters
    ----------
    columns : mapping of str to sequence of str
        Schema column name to its raw cells, all of the same length (rows,); other names are
        ignored. Whole-table problems (missing columns) are :func:`check_header`'s.

    Returns
    -------
    TableCheck
        The valid rows typed, the keep mask and the first problem of each invalid row.
    """
    rows = len(next(iter(columns.values()), ()))
    found = _Problems(rows)
    typed: dict[str, np.ndarray] = {}
    for column in schema.COLUMNS:
        raw = columns.get(column.name)
        if raw is not None:
            parse = _numbers if column.kind in ("number", "integer") else _strings
            typed[column.name] = parse(column, raw, found) if rows else np.empty(0, dtype=_DTYPES[column.kind])
    _check_stores(typed, found)
    keep = found.fine
    if not keep.all():
        typed = {name: values[keep] for name, values in typed.items()}
    return TableCheck(typed, keep, dict(sorted(found.found.items())))


def check_rows(rows: Sequence[Sequence[str]], positions: Mapping[str, int], width: int) -> TableCheck:
    """Check rows of raw CSV cells; a row whose number of fields is not ``width`` is invalid.

    Parameters
    ----------
    rows : sequence of sequence of str
        Raw cells, one sequence per row (rows,).
    positions : mapping of str to int
        Position in a row of each schema column to check.
    width : int
        Fields in the header.
    """
    lengths = list(map(len, rows))
    regular = not lengths or min(lengths) == max(lengths) == width
    good = range(len(rows)) if regular else [i for i, n in enumerate(lengths) if n == width]
    table = list(zip(*(rows if regular else [rows[i] for i in good]), strict=True))
    check = check_columns({name: table[p] if table else () for name, p in positions.items()})
    if regular:
        return check
    keep = np.zeros(len(rows), dtype=bool)
    keep[list(good)] = check.keep
    problems: dict[int, Problem] = {good[i]: problem for i, problem in check.problems.items()}
    for i, n in enumerate(lengths):
        if n != width:
            problems[i] = (None, f"{n} field{'s' if n != 1 else ''}, but the header has {width}")
    return TableCheck(check.typed, keep, dict(sorted(problems.items())))
