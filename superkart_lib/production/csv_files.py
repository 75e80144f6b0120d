"""Read a CSV file as raw text, chunk by chunk, as pandas read it; write CSV text as pandas wrote it.

:func:`open_csv` gives the header and then chunks of data rows, each row a list of its raw
cells (not stripped, not converted). The reading follows ``pandas.read_csv(dtype=str,
keep_default_na=False, encoding="utf-8-sig")``, which the batch scorer used before: a BOM is
dropped, blank lines (empty, or spaces and tabs only) are skipped before and after the header,
an empty header cell is named ``Unnamed: <position>``, and quoting is read the lenient way.
Two things differ on purpose: a row is kept with the number of fields it has (the validator
reports a row whose count differs from the header's), and a file that ends inside a quoted
field is refused with the line where that field starts.

Rows are numbered from 1 for the first data row, blank lines skipped; a row's line is the
physical line where it starts (row + 1 in a file without blank lines or line breaks in cells).
The API's CSV upload reads through the same :class:`CsvFile`, so both number rows alike.

:func:`csv_text` writes rows as ``DataFrame.to_csv(lineterminator="\\n")`` did: pandas goes
through the same ``csv.writer``, and prints a float64 as Python's ``repr``. Two differences,
both for safety: every text cell goes through :func:`.cells.neutralize` (no spreadsheet
formula is echoed), and a cell holding a carriage return is quoted (Python 3.11's writer,
like pandas, left it bare, which splits the row for every reader). Standard library only.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import io
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from superkart_lib.contract.errors import DataError, NotTextError, first_line
from superkart_lib.production.cells import may_start_formula, neutralize

#: Appended to the file's lines: it comes back as a row of its own unless the file ends inside
#: quotes (the lenient reader would then silently close the field; pandas refused such a file).
_END = "\x00superkart: end of file\x00"
_BREAK = re.compile(r"\r\n|\r|\n")


def check_input_file(path: Path) -> None:
    """Raise a one-line DataError unless ``path`` is a non-empty regular file."""
    if not path.exists():
        raise DataError(f"{path}: no such file")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a CSV file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty")


@dataclass(frozen=True)
class RowChunk:
    """Consecutive data rows of a file, as read.

    Attributes
    ----------
    rows : list of list of str
        Raw cells of each row; rows may differ in length.
    first_row : int
        Data rows of the file before this chunk (its first row is ``first_row + 1``).
    first_line : int
        Line (1-based) where the chunk's first row starts.
    lines : list of int or None
        Line where each row starts, when blank lines or line breaks inside quoted cells make
        them irregular; None means row ``i`` starts at ``first_line + i``.
    """

    rows: list[list[str]]
    first_row: int
    first_line: int
    lines: list[int] | None = None

    @property
    def line_numbers(self) -> Sequence[int]:
        """Line where each row starts, shape (rows,)."""
        if self.lines is not None:
            return self.lines
        return range(self.first_line, self.first_line + len(self.rows))


def _blank(record: list[str]) -> bool:
    """Whether pandas skipped this record as a blank line (``""`` is a row of one empty cell)."""
    return not record or (len(record) == 1 and record[0] != "" and not record[0].strip(" \t"))


def _bad_byte(path: Path) -> int:
    """Offset of the first byte of ``path`` that is not UTF-8 (the error path only: it reads again)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with open(path, "rb") as f:
        for block in itertools.chain(iter(lambda: f.read(1 << 20), b""), [b""]):
            pending = len(decoder.getstate()[0])  # bytes of a character cut by the previous block
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as exc:
                return offset - pending + exc.start
            offset += len(block)
    return offset


class CsvFile:
    """An open CSV file: ``header`` (column names as pandas named them), then :meth:`chunks`.

    Made by :func:`open_csv`, or over bytes in memory (``path`` then only names them in messages);
    ``position`` is how many bytes were read so far (for progress), ``raw_header`` the header as written.
    """

    def __init__(self, path: Path, binary: IO[bytes]) -> None:
        self.path = path
        self._binary = binary
        # Kept here: a text layer nothing refers to closes the file under it.
        self._text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
        self._reader = csv.reader(itertools.chain(self._text, (_END + "\n",)))
        self._ended = False
        self.raw_header = self._read_header()
        self.header = [name if name != "" else f"Unnamed: {i}" for i, name in enumerate(self.raw_header)]

    @property
    def position(self) -> int:
        """Bytes of the file read so far (the text layer reads ahead a few KiB)."""
        return self._binary.tell()

    def _records(self, count: int) -> tuple[list[list[str]], int]:
        """Up to ``count`` records (blank ones included) and the lines read before them."""
        start = self._reader.line_num
        if self._ended:
            return [], start
        try:
            records = list(itertools.islice(self._reader, count))
        except UnicodeDecodeError:
            offset = _bad_byte(self.path)
            raise NotTextError(f"{self.path}: not a CSV file (not UTF-8 text at byte {offset})", offset) from None
        except csv.Error as exc:
            line = self._reader.line_num
            raise DataError(f"{self.path}: not a valid CSV file ({first_line(exc)}, line {line})") from None
        if records and records[-1] == [_END]:
            records.pop()
            self._ended = True
        elif records and records[-1] and _END in records[-1][-1]:
            line = _starts(records, start)[-1]
            raise DataError(f"{self.path}: not a valid CSV file (end of file inside a quoted field from line {line})")
        return records, start

    def _read_header(self) -> list[str]:
        while True:
            records, _ = self._records(1)
            if not records:
                raise DataError(f"{self.path}: the file is empty")
            if not _blank(records[0]):
                return records[0]

    def chunks(self, chunk_rows: int) -> Iterator[RowChunk]:
        """Data rows in chunks of at most ``chunk_rows`` rows (blank lines skipped), to the end.

        Raises
        ------
        DataError
            When the file has no data row, is not UTF-8 text or is not valid CSV (one line).
        """
        before = 0
        while True:
            records, start = self._records(chunk_rows)
            if not records:
                break
            # Regular: one line per record (the end marker, when read now, took one more).
            lines = None if self._reader.line_num - start == len(records) + self._ended else _starts(records, start)
            if min(map(len, records)) <= 1:  # a blank record has at most one cell
                kept = [i for i, record in enumerate(records) if not _blank(record)]
                if len(kept) < len(records):
                    every = lines or range(start + 1, start + 1 + len(records))
                    lines = [every[i] for i in kept]
                    records = [records[i] for i in kept]
                    if not records:
                        continue
            yield RowChunk(records, before, lines[0] if lines else start + 1, lines)
            before += len(records)
        if not before:
            raise DataError(f"{self.path}: no data rows after the header")


def _starts(records: list[list[str]], start: int) -> list[int]:
    """Line where each record starts after ``start`` lines, counting line breaks in quoted cells."""
    lines = []
    line = start + 1
    for record in records:
        lines.append(line)
        line += 1 + sum(len(_BREAK.findall(cell)) for cell in record if "\n" in cell or "\r" in cell)
    return lines


@contextlib.contextmanager
def open_csv(path: str | Path) -> Iterator[CsvFile]:
    """Open a CSV file of UTF-8 text (a BOM is dropped) and read its header.

    Raises
    ------
    DataError
        One line naming the file: no such file, a directory, empty, not UTF-8, not valid CSV.
    """
    path = Path(path)
    check_input_file(path)
    with open(path, "rb") as binary:
        yield CsvFile(path, binary)


def csv_text(rows: Iterable[Sequence[Any]]) -> str:
    """Rows as CSV lines (minimal quoting, ``\\n`` line ends), text cells neutralized (:mod:`.cells`).

    Numbers (not str) are written as they are: a prediction is never neutralized.
    """
    safe = [[neutralize(cell) if isinstance(cell, str) else cell for cell in row] for row in rows]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(safe)
    text = buffer.getvalue()
    if "\r" not in text:
        return text
    # The writer quotes a cell holding a character of the line terminator: with "\r\n", a bare "\r" too.
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    lines = []
    for row in safe:
        writer.writerow(row)
        lines.append(buffer.getvalue()[:-2] + "\n")
        buffer.seek(0)
        buffer.truncate()
    return "".join(lines)


def csv_text_plus(rows: list[list[str]], values: list[Any], width: int) -> str:
    """Rows of ``width`` cells, each with one more cell from ``values``, as :func:`csv_text` writes them.

    The writer quotes only a cell holding a comma, a quote or a line break. When the joined text
    has no quote or carriage return and exactly the grid's commas and newlines, no cell holds one
    (``values`` are numbers), and plain joining, three times faster, gives the same text, unless
    a cell of ``rows`` may start a formula and needs neutralizing.
    """
    lines = list(map(",".join, rows))
    text = "".join(map("{},{}\n".format, lines, values))
    plain = '"' not in text and "\r" not in text and text.count("\n") == len(rows)
    grid = plain and text.count(",") == width * len(rows)
    if grid and not may_start_formula("\n".join(lines)):  # the rows' cells: a negative value is no formula
        return text
    return csv_text(map(list.__add__, rows, ([value] for value in values)))
