"""Parse and validate a CSV uploaded to the API, with the standard library (no pandas in production).

Rows are checked by :func:`.record_validation.check_record`, the same rules as JSON records,
after each cell is read as the JSON value it stands for, so an upload lists every problem of
a row as a JSON body does. The bytes are read by :class:`.csv_files.CsvFile`, as ``superkart
predict`` reads a file, and numbers follow :func:`.cells.parse_number`: both paths refuse the
same rows. Errors name the data row (1-based, blank lines skipped), the line of the file where
it starts and the column.
A target column may be present (a labelled test file scores as-is) and is ignored; any
other column the schema does not know is refused, so a misspelt header is caught.
"""

from __future__ import annotations

import difflib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from superkart_lib.contract import schema
from superkart_lib.contract.errors import DataError, FieldError, RequestError
from superkart_lib.contract.limits import MAX_CSV_ROWS, MAX_ERRORS
from superkart_lib.production.cells import parse_number
from superkart_lib.production.csv_files import CsvFile
from superkart_lib.production.record_validation import ALL_FIELDS, REQUEST_COLUMNS, check_record
from superkart_lib.production.value_text import field_name

#: What the reader's messages call the upload (dropped from them: the API names no file).
_UPLOAD = Path("upload")


@dataclass(frozen=True)
class CsvTable:
    """A validated CSV upload: its header and raw rows (for echoing) and typed records."""

    header: list[str]
    rows: list[list[str]]
    records: list[dict[str, Any]]


def _csv_error(status: int, message: str, field: str | None = None, row: int = 0, line: int = 0) -> RequestError:
    """One CSV problem; ``row`` is the 1-based data row (0: the file or its header), ``line`` the file line."""
    if not row:
        return RequestError(status, [FieldError(message, field)])
    where = f"row {row} (line {line})"
    text = f"{where}, column '{field}': {message}" if field else f"{where}: {message}"
    return RequestError(status, [FieldError(text, field, row - 1, row, line)])


def _csv_header(header: list[str]) -> dict[str, int]:
    names = [h.strip() for h in header]
    positions: dict[str, int] = {}
    for position, name in enumerate(names):
        if name in positions:
            raise _csv_error(422, f"column {field_name(name)} appears twice in the header", name)
        positions[name] = position
    for name in names:
        if name not in ALL_FIELDS and name != schema.TARGET:
            close = difflib.get_close_matches(name, ALL_FIELDS, n=1, cutoff=0.6)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            expected = ", ".join(schema.INPUT_COLUMNS)
            raise _csv_error(422, f"unknown column {field_name(name)}{hint}; expected: {expected}", name or None)
    missing = [c.name for c in REQUEST_COLUMNS if c.required and c.name not in positions]
    if missing:
        required = ", ".join(c.name for c in REQUEST_COLUMNS if c.required)
        raise _csv_error(422, f"missing column '{missing[0]}' (required: {required})", missing[0])
    return positions


def _typed(text: str, column: schema.Column) -> Any:
    """A CSV cell as the JSON value it stands for; bad text stays a string so the check names it."""
    if column.kind not in ("number", "integer"):
        return text
    value = parse_number(text)  # the batch rule: float() would also take "1_000" and any script's digits
    if value is None:
        return text
    return int(value) if column.kind == "integer" and value.is_integer() else value


def _csv_record(cells: list[str], positions: dict[str, int]) -> dict[str, Any]:
    """A row as a record; empty cells are left out, so the record check names them missing."""
    record: dict[str, Any] = {}
    for column in REQUEST_COLUMNS:
        position = positions.get(column.name)
        if position is not None:
            text = cells[position].strip()
            if text:
                record[column.name] = _typed(text, column)
    return record


def _text(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _csv_error(400, f"not a CSV file: not UTF-8 text (byte {exc.start})") from None


def _reader_error(exc: DataError) -> RequestError:
    """A problem of the whole file found by the reader: 400 when it is not CSV, 422 when it has no data."""
    message = str(exc).removeprefix(f"{_UPLOAD}: ")
    return _csv_error(400 if message.startswith("not a ") else 422, message)


def parse_csv(data: bytes, max_rows: int = MAX_CSV_ROWS) -> CsvTable:
    """Parse and validate an uploaded CSV (header row, then one record per row).

    Raises
    ------
    RequestError
        400 when the bytes are not CSV text, 413 beyond ``max_rows`` rows, 422 naming the
        row (1-based), its line and the column for anything the schema refuses.
    """
    _text(data)  # its own message: the byte offset in the upload
    if not data.strip():
        raise _csv_error(422, "the file is empty (expected a header row, then data rows)")
    rows: list[list[str]] = []
    records: list[dict[str, Any]] = []
    errors: list[FieldError] = []
    try:
        table = CsvFile(_UPLOAD, io.BytesIO(data))
        header = table.raw_header
        if not any(h.strip() for h in header):
            raise _csv_error(422, "the file is empty (expected a header row, then data rows)")
        positions = _csv_header(header)
        for part in table.chunks(max_rows + 1):
            for cells, line in zip(part.rows, part.line_numbers, strict=True):
                row = len(rows) + 1
                if row > max_rows:
                    raise _csv_error(413, f"more than {max_rows:,} data rows; score big files with `superkart predict`")
                rows.append(cells)
                if len(cells) != len(header):  # a row problem, as batch sets it aside: the next rows are read
                    error = _csv_error(422, f"{len(cells)} fields, but the header has {len(header)}", None, row, line)
                    errors.append(error.errors[0])
                else:
                    record = _csv_record(cells, positions)
                    problems = check_record(record)
                    errors.extend(_csv_error(422, text, field, row, line).errors[0] for field, text in problems)
                    records.append(record)
                if len(errors) >= MAX_ERRORS:
                    raise RequestError(422, errors[:MAX_ERRORS])
    except RequestError:
        raise
    except DataError as exc:
        raise _reader_error(exc) from None
    if errors:
        raise RequestError(422, errors[:MAX_ERRORS])
    return CsvTable(header=[h.strip() for h in header], rows=rows, records=records)
