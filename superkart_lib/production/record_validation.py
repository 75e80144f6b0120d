"""Validate prediction requests record by record: JSON bodies here, CSV uploads in :mod:`.csv_upload`.

Every rule comes from :mod:`superkart_lib.contract.schema`; nothing here restates a column or a
category. Standard library only (plus the contract), so the serving process stays small. Files
scored in bulk are validated column by column instead (:mod:`.table_validation`).

Decisions (the API documents the same):

- Exactly the model's input columns: a missing field or an unknown one is an error.
  ``Product_Id`` is optional and, when sent, must match ``schema.PRODUCT_ID_PATTERN``.
- The target column is refused in JSON records (it is what the model predicts). A CSV
  upload may carry it (a labelled test file scores as-is); it is ignored.
- No coercion in JSON: a bool or a string is not a number, a number is not a category;
  NaN and infinity are refused. An integer column takes 2009 or 2009.0, not 2009.5.
- Store attributes that contradict ``schema.STORES`` are refused, as the table validator
  refuses them in CSV files: the model never saw such a row.
- Dirty spellings listed in the schema's categories (``reg``) are accepted, as in training.

Errors name the record (0-based index) or CSV row (1-based, with its line), the field, and
the allowed values; every faulty field of a record is reported, up to ``limits.MAX_ERRORS``.
A refused value is quoted by :func:`.value_text.describe`: one short line, whatever the value.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import sys
from collections.abc import Callable
from typing import Any

from superkart_lib.contract import schema
from superkart_lib.contract.errors import FieldError, RequestError, first_line
from superkart_lib.contract.limits import MAX_ERRORS, MAX_RECORDS
from superkart_lib.production.value_text import describe, field_name

_MISSING = object()
_ID_RE = re.compile(schema.PRODUCT_ID_PATTERN)
#: Columns a request carries (the target is left out), the required ones and all of them.
REQUEST_COLUMNS: tuple[schema.Column, ...] = tuple(schema.BY_NAME[c] for c in schema.INPUT_COLUMNS)
ALL_FIELDS = frozenset(c.name for c in REQUEST_COLUMNS)


# --- per-column checks: value -> problem text or None --------------------------------


def _number_check(column: schema.Column) -> Callable[[Any], str | None]:
    """Type and range test for one number; a twin of ``Column.out_of_bounds`` (numpy costs ~5 us a call).

    A missing bound becomes the largest float, so a single chained comparison also refuses
    NaN and infinity, as ``out_of_bounds`` does.
    """
    lo = -sys.float_info.max if column.minimum is None else column.minimum
    hi = sys.float_info.max if column.maximum is None else column.maximum
    strict = column.exclusive_minimum
    integral = column.kind == "integer"

    def explain(value: Any) -> str:
        if type(value) not in (int, float):
            return f"must be {'a whole number' if integral else 'a number'}, got {describe(value)}"
        if not -math.inf < value < math.inf:
            return f"must be a finite number, got {describe(value)}"
        if (lo < value if strict else lo <= value) and value <= hi:
            return f"must be a whole number, got {describe(value)}"
        return f"{describe(value)} is out of range (allowed: {column.bounds_text()})"

    if integral:

        def check(value: Any) -> str | None:
            kind = type(value)
            if (kind is int or (kind is float and value.is_integer())) and lo <= value <= hi:
                return None
            return explain(value)

    elif strict:

        def check(value: Any) -> str | None:
            kind = type(value)
            if (kind is float or kind is int) and lo < value <= hi:
                return None
            return explain(value)

    else:

        def check(value: Any) -> str | None:
            kind = type(value)
            if (kind is float or kind is int) and lo <= value <= hi:
                return None
            return explain(value)

    return check


def _category_check(column: schema.Column) -> Callable[[Any], str | None]:
    allowed = frozenset(column.categories)
    listing = ", ".join(repr(c) for c in column.categories)

    def check(value: Any) -> str | None:
        if type(value) is str and value in allowed:
            return None
        if isinstance(value, str):
            return f"{describe(value)} is not allowed (allowed: {listing})"
        return f"must be one of {listing} (a string), got {describe(value)}"

    return check


def _id_check(value: Any) -> str | None:
    if type(value) is str and _ID_RE.fullmatch(value):
        return None
    return f"must be a product id (FD, NC or DR then digits, e.g. 'FD1234'), got {describe(value)}"


def _checker(column: schema.Column) -> Callable[[Any], str | None]:
    if column.kind in ("number", "integer"):
        return _number_check(column)
    if column.kind == "category":
        return _category_check(column)
    return _id_check


_CHECKS: tuple[tuple[str, bool, Callable[[Any], str | None]], ...] = tuple(
    (c.name, c.required, _checker(c)) for c in REQUEST_COLUMNS
)
#: Store_Id -> ((column, expected value), ...) from the store table.
_STORE_FACTS: dict[str, tuple[tuple[str, Any], ...]] = {
    sid: tuple((col, getattr(store, attr)) for col, attr in schema.STORE_ATTRIBUTES.items())
    for sid, store in schema.STORES.items()
}


def _unknown_fields(record: dict) -> list[tuple[str | None, str]]:
    """Fields the schema does not accept (slow path: only when some are there)."""
    problems: list[tuple[str | None, str]] = []
    for name in record:
        if name in ALL_FIELDS:
            continue
        if len(problems) == MAX_ERRORS:  # a body of 100,000 junk keys must not cost 100,000 difflib calls
            break
        if name == schema.TARGET:
            problems.append((name, "is the target the model predicts; do not send it"))
            continue
        close = difflib.get_close_matches(name, ALL_FIELDS, n=1, cutoff=0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        problems.append((name, f"unknown field{hint}; allowed fields: {', '.join(schema.INPUT_COLUMNS)}"))
    return problems


def check_record(record: Any) -> list[tuple[str | None, str]]:
    """Problems of one raw record as (field, problem) pairs; empty when the record is valid.

    The hot path is one dict lookup and one type-and-range test per field (~5-10 us a record).
    """
    if type(record) is not dict:
        return [(None, f"must be an object of fields, got {describe(record)}")]
    problems: list[tuple[str | None, str]] = []
    found = 0
    for name, required, check in _CHECKS:
        value = record.get(name, _MISSING)
        if value is _MISSING:
            if required:
                problems.append((name, "missing (a required field)"))
            continue
        found += 1
        problem = check(value)
        if problem is not None:
            problems.append((name, problem))
    if found != len(record):
        problems.extend(_unknown_fields(record))
    store_id = record.get("Store_Id")
    facts = _STORE_FACTS.get(store_id) if type(store_id) is str else None  # {} or [] are unhashable
    if facts is not None:
        for column, expected in facts:
            value = record.get(column, expected)
            if value != expected and not any(field == column for field, _ in problems):
                whose = f"store {store_id}, whose {column} is {describe(expected)}"
                problems.append((column, f"{describe(value)} contradicts {whose}"))
    return problems


def example_record() -> dict[str, Any]:
    """A valid record built from the schema: the first store, first categories, mid-range numbers."""
    store = next(iter(schema.STORES.values()))
    fixed = {col: getattr(store, attr) for col, attr in schema.STORE_ATTRIBUTES.items()}
    fixed["Store_Id"] = store.store_id
    record: dict[str, Any] = {}
    for column in REQUEST_COLUMNS:
        if column.name in fixed:
            record[column.name] = fixed[column.name]
        elif column.kind == "category":
            record[column.name] = column.categories[0]
        elif column.kind in ("number", "integer"):
            middle = ((column.minimum or 0) + (column.maximum or 0)) / 2
            record[column.name] = round(middle) if column.kind == "integer" else middle
    return record


def _record_errors(index: int, problems: list[tuple[str | None, str]]) -> list[FieldError]:
    return [
        FieldError(
            f"record {index}, field {field_name(field)}: {text}" if field is not None else f"record {index}: {text}",
            field,
            index,
        )
        for field, text in problems
    ]


def validate_records(records: list[Any]) -> None:
    """Check every record; raise :class:`RequestError` (422) listing the problems found."""
    errors: list[FieldError] = []
    for index, record in enumerate(records):
        problems = check_record(record)
        if problems:
            errors.extend(_record_errors(index, problems))
            if len(errors) >= MAX_ERRORS:
                break
    if errors:
        raise RequestError(422, errors[:MAX_ERRORS])


def _top(status: int, message: str, field: str | None = None) -> RequestError:
    return RequestError(status, [FieldError(message, field)])


def parse_json_request(body: bytes) -> tuple[list[dict[str, Any]], bool]:
    """Parse and validate a ``POST /v1/predict`` body.

    Parameters
    ----------
    body : bytes
        One record object, or ``{"records": [record, ...]}``.

    Returns
    -------
    records : list of dict
        The validated records, in request order.
    is_batch : bool
        Whether the body used the ``records`` form.

    Raises
    ------
    RequestError
        400 for malformed JSON, 422 for anything the schema refuses (more than ``MAX_RECORDS`` records too).
    """
    try:
        data = json.loads(body)
    except RecursionError:
        raise _top(400, "malformed JSON: nested too deeply") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _top(400, f"malformed JSON: {first_line(exc)}") from None
    except ValueError:  # int() past sys.get_int_max_str_digits(); its own text tells the client to call that
        raise _top(400, f"malformed JSON: a number has more than {sys.get_int_max_str_digits():,} digits") from None
    if type(data) is not dict:
        raise _top(422, f'the body must be a record object or {{"records": [...]}}, got {describe(data)}')
    if "records" not in data:
        validate_records([data])
        return [data], False
    extra = next((k for k in data if k != "records"), None)
    if extra is not None:
        raise _top(422, f"field {field_name(extra)}: unknown field next to 'records' (send records only)", extra)
    records = data["records"]
    if type(records) is not list:
        raise _top(422, f"field 'records': must be a list of record objects, got {describe(records)}", "records")
    if not records:
        raise _top(422, f"field 'records': the list is empty (send 1 to {MAX_RECORDS:,} records)", "records")
    if len(records) > MAX_RECORDS:
        raise _top(422, f"field 'records': {len(records):,} records, more than the limit of {MAX_RECORDS:,}", "records")
    validate_records(records)
    return records, True
