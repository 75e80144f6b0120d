"""Batch scoring and the API's CSV upload read the same bytes the same way: the same rows refused,
with the same row and line numbers, one number rule, and no spreadsheet formula echoed back."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from superkart_lib.contract import schema
from superkart_lib.contract.errors import DataError, RequestError
from superkart_lib.production import batch, csv_upload, handlers
from tests.conftest import run_cli

HEADER = list(schema.ALL_COLUMNS)  # the target last: a labelled file, accepted by both
MRP = HEADER.index("Product_MRP")
TYPE = HEADER.index("Product_Type")


def _valid_rows(count: int = 8) -> list[list[str]]:
    """Valid rows as text, cycling through the stores (each row agrees with its store)."""
    rows = []
    stores = list(schema.STORES.values())
    for i in range(count):
        store = stores[i % len(stores)]
        row = {
            "Product_Id": f"FD{100 + i}",
            "Product_Weight": "12.5",
            "Product_Sugar_Content": "Low Sugar",
            "Product_Allocated_Area": "0.05",
            "Product_Type": "Dairy",
            "Product_MRP": f"{100 + i}.25",
            "Store_Id": store.store_id,
            schema.TARGET: "2500.5",
        }
        row |= {column: str(getattr(store, attribute)) for column, attribute in schema.STORE_ATTRIBUTES.items()}
        rows.append([row[name] for name in HEADER])
    return rows


def _text(rows: list[list[str]], header: list[str] | None = None, end: str = "\n") -> str:
    """CSV text; Python 3.11's writer quotes a cell with a bare carriage return only when ``end`` has one."""
    out = io.StringIO()
    csv.writer(out, lineterminator=end).writerows([header or HEADER, *rows])
    return out.getvalue()


def _set(rows: list[list[str]], row: int, column: int, value: str) -> list[list[str]]:
    rows = [list(r) for r in rows]
    rows[row - 1][column] = value
    return rows


# --- what each path says about one file ------------------------------------------------------------

WHERE = re.compile(r"(?:column '(?P<column>[^']*)', )?row (?P<row>\d+) \(line (?P<line>\d+)\)")


def _api(data: bytes) -> tuple:
    """("ok",), ("row", row, line, column) of the first problem, or ("file", message)."""
    try:
        csv_upload.parse_csv(data)
    except RequestError as exc:
        first = exc.errors[0]
        if first.row:
            return ("row", first.row, first.line, first.field)
        return ("file", first.message)
    return ("ok",)


def _batch(data: bytes, package: Path, tmp_path: Path) -> tuple:
    """The same for ``predict_file`` (in process, small chunks so rows cross chunk ends)."""
    source = tmp_path / "in.csv"
    source.write_bytes(data)
    try:
        batch.predict_file(package, source, tmp_path / "out.csv", chunk_rows=3, progress=False)
    except DataError as exc:
        message = str(exc).removeprefix(f"{source}: ")
        where = WHERE.match(message)
        if where:
            return ("row", int(where["row"]), int(where["line"]), where["column"])
        return ("file", message)
    return ("ok",)


def _tricky_cases() -> dict[str, tuple[bytes, tuple]]:
    """Case id -> (file bytes, what both paths must say)."""
    good = _valid_rows()
    text = _text(good)
    lines = text.splitlines()
    cases: dict[str, tuple[str, tuple]] = {"clean": (text, ("ok",))}
    lines_with = lines.copy()
    lines_with[3] += ",extra,more"
    cases["too many fields"] = ("\n".join(lines_with) + "\n", ("row", 3, 4, None))
    lines_with = lines.copy()
    lines_with[5] = lines_with[5].rsplit(",", 2)[0]
    cases["too few fields"] = ("\n".join(lines_with) + "\n", ("row", 5, 6, None))
    cases["one quoted empty field"] = (text.replace(lines[2] + "\n", lines[2] + '\n""\n'), ("row", 3, 4, None))
    cases["a no-break space alone"] = (text.replace(lines[2] + "\n", lines[2] + "\n\u00a0\n"), ("row", 3, 4, None))
    cases["blank lines"] = (text.replace(lines[2] + "\n", lines[2] + "\n\n  \n\t\n"), ("ok",))
    duplicate = HEADER.copy()
    duplicate[0] = "Product_MRP"
    message = "column 'Product_MRP' appears twice in the header"
    cases["duplicate header column"] = (_text(good, duplicate), ("file", message))
    spaced = HEADER.copy()
    spaced[0] = " Product_MRP "
    cases["duplicate header column, spaced"] = (_text(good, spaced), ("file", message))
    spaced = [f" {name} " for name in HEADER]
    cases["spaced header names"] = (_text(good, spaced), ("ok",))
    # Any script's digits are digits to Python's float(); only ASCII ones are numbers here.
    for script, digits in {
        "arabic-indic": "١٢.٦٦",
        "extended arabic-indic": "۱۲.۶۶",
        "devanagari": "१२.६६",
        "bengali": "১২.৬৬",
        "thai": "๑๒.๖๖",
        "fullwidth": "１２.６６",
        "mathematical bold": "𝟏𝟐.𝟔𝟔",
        "ascii then arabic": "1٢.66",
    }.items():
        cases[f"digits: {script}"] = (_text(_set(good, 4, MRP, digits)), ("row", 4, 5, "Product_MRP"))
    for spelling in ["1_000", "nan", "NaN", "-nan", "inf", "-inf", "Infinity", "infinity", "12,5", "0x10", "1d5"]:
        cases[f"number: {spelling}"] = (_text(_set(good, 4, MRP, spelling)), ("row", 4, 5, "Product_MRP"))
    for spelling in [" 12.5 ", "12.5\t", "+12.5", "1.25e2", "1E+02", ".5", "5.", "0012", "12\u00a0", "\u200912"]:
        cases[f"number: {spelling!r}"] = (_text(_set(good, 4, MRP, spelling)), ("ok",))
    # A quoted field with line breaks: rows after it start further down, and a bad row is named by its first line.
    broken = _set(good, 1, HEADER.index(schema.TARGET), "1\n2\r\n3")
    cases["quoted newlines, then a bad value"] = (_text(_set(broken, 5, MRP, "abc")), ("row", 5, 8, "Product_MRP"))
    cases["quoted newlines, then too many fields"] = (
        _text([*broken[:5], [*broken[5], "x"], *broken[6:]]),
        ("row", 6, 9, None),
    )
    cases["quoted newlines in the bad value"] = (_text(_set(broken, 2, TYPE, "Dai\nry")), ("row", 2, 5, "Product_Type"))
    cases["quoted newlines and blank lines"] = (
        _text(_set(broken, 7, MRP, "١٢")).replace("\n" + ",".join(broken[3]), "\n\n\n" + ",".join(broken[3])),
        ("row", 7, 12, "Product_MRP"),
    )
    # Quoting read the lenient way (as pandas did): a quote inside a field is text.
    cases["stray quote in a cell"] = (text.replace(",Dairy,", ',"Dai"ry,', 1), ("ok",))
    return {name: (body.encode(), expected) for name, (body, expected) in cases.items()}


TRICKY = _tricky_cases()


@pytest.mark.parametrize("name", list(TRICKY))
def test_batch_and_api_refuse_the_same_row_at_the_same_line(name, small_package, tmp_path):
    data, expected = TRICKY[name]
    assert _api(data) == expected, "api"
    assert _batch(data, small_package, tmp_path) == expected, "batch"


def test_unterminated_quote_is_refused_by_both_at_the_line_it_opens(small_package, tmp_path):
    data = _text(_valid_rows()).encode() + b'FD1,"12.5\n'
    expected = "not a valid CSV file (end of file inside a quoted field from line 10)"
    assert _api(data) == ("file", expected)
    assert _batch(data, small_package, tmp_path) == ("file", expected)


def _rows_refused_by_api(data: bytes) -> dict[int, int]:
    """Every refused row of an upload -> its line (the API lists each row's problems)."""
    with pytest.raises(RequestError) as caught:
        csv_upload.parse_csv(data)
    return {e.row: e.line for e in caught.value.errors if e.row}


def test_skip_invalid_rejects_exactly_the_rows_the_api_refuses(small_package, tmp_path):
    """All the tricky rows in one file: `predict --skip-invalid` sets aside the rows the API names, and
    without it stops at the first one with one line naming its row and line (exit 2)."""
    rows = _valid_rows(40)
    rows[1][HEADER.index(schema.TARGET)] = "spans\ntwo lines"
    bad = {3: "١٢.٦٦", 6: "１２", 9: "nan", 12: "inf", 15: "1_000", 18: "-Infinity", 21: "𝟏𝟐"}
    for row, value in bad.items():
        rows[row - 1][MRP] = value
    rows[24] = [*rows[24], "too", "many"]
    rows[27] = rows[27][:5]
    rows[30][TYPE] = "Dai\nry"
    data = _text(rows).encode()
    refused = _rows_refused_by_api(data)
    assert sorted(refused) == sorted([*bad, 25, 28, 31])
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_bytes(data)
    args = ["--model", str(small_package), "--input", str(source), "--output", str(out), "--quiet"]
    skipped = run_cli("predict", *args)
    assert skipped.returncode == 2
    first = min(refused)
    assert skipped.stderr.strip().splitlines() == [
        f"superkart predict: error: {source}: column 'Product_MRP', row {first} (line {refused[first]}): "
        "'١٢.٦٦' is not a number"
    ]
    result = run_cli("predict", *args, "--skip-invalid", "--chunk-rows", "7")
    assert result.returncode == 0, result.stderr
    rejected = list(csv.DictReader(io.StringIO((tmp_path / "out.rejected.csv").read_text())))
    assert [int(r["row"]) for r in rejected] == sorted(refused)
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 40 - len(refused)


def test_one_number_rule():
    """A number is ASCII: sign, digits, point, exponent; surrounding whitespace is ignored, nothing else."""
    from superkart_lib.production import cells

    numbers = ["12.5", " 12.5 ", "+1", "-1", "1e3", "1E-3", ".5", "5.", "0012", "12\u00a0", "nan", "-inf", "Infinity"]
    not_numbers = ["١٢", "１２", "𝟏", "1_000", "12,5", "0x10", "1d5", "", " ", "e5", "--1", "½", "²", "1 000"]
    for text in numbers:
        assert cells.parse_number(text) is not None, text
    for text in not_numbers:
        assert cells.parse_number(text) is None, text
    assert cells.parse_number(" 1.5e2 ") == 150.0


# --- formula injection: nothing echoed starts a spreadsheet formula ---------------------------------

FORMULAS = ['=HYPERLINK("http://x","y")', "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\t=1+1", "\r=1+1", "=1,2"]
PLAIN = ["-3.5", "+2", "1e-5", "12", "a=b", " =1", "note"]
DANGER = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def test_neutralize_is_the_owasp_rule():
    from superkart_lib.production import cells

    for text in FORMULAS:
        assert cells.neutralize(text) == "'" + text
    for text in [*PLAIN, "", "'=1"]:
        assert cells.neutralize(text) == text
    assert cells.neutralize("-") == "'-" and cells.neutralize("-nan") == "'-nan"


def _unsafe(table: list[list[str]], skip: set[int]) -> list[str]:
    """Cells that a spreadsheet would run as a formula (columns ``skip`` not echoed)."""
    return [
        cell
        for row in table
        for i, cell in enumerate(row)
        if i not in skip and cell.startswith(DANGER) and not PLAIN_NUMBER.fullmatch(cell)
    ]


def test_batch_outputs_echo_no_formula(small_package, tmp_path):
    rows = _valid_rows(len(FORMULAS) + len(PLAIN))
    header = ["=note", *HEADER]
    target = HEADER.index(schema.TARGET)
    for i, text in enumerate([*FORMULAS, *PLAIN]):
        rows[i] = [text, *rows[i]]
        rows[i][1 + target] = FORMULAS[i % len(FORMULAS)]  # the target is echoed, not checked
    rows[0][1] = FORMULAS[0]  # not a product id: set aside, and echoed in the rejected file
    rows[1][1 + TYPE] = "\tDairy"  # valid (values are stripped) but echoed as sent
    source = tmp_path / "in.csv"
    source.write_bytes(_text(rows, header, "\r\n").encode())
    report = batch.predict_file(small_package, source, tmp_path / "out.csv", skip_invalid=True, progress=False)
    assert (report.rows_read, report.rows_skipped) == (len(rows), 1)
    out = list(csv.reader(io.StringIO(report.output.read_bytes().decode(), newline="")))
    rejected = list(csv.reader(io.StringIO(report.rejected.read_bytes().decode(), newline="")))
    assert out[0] == ["'=note", *HEADER, "prediction"] and rejected[0] == ["row", "reason", "'=note", *HEADER]
    assert _unsafe(out, {len(out[0]) - 1}) == [] and _unsafe(rejected, {0}) == []
    assert rejected[1][3] == "'" + FORMULAS[0] and rejected[1][2] == "'" + FORMULAS[0]
    echoed = [row[0] for row in out[1:]]
    assert echoed == ["'" + text for text in FORMULAS[1:]] + PLAIN  # numbers stay numbers
    assert out[1][1 + TYPE] == "'\tDairy"
    assert all(float(row[-1]) > 0 for row in out[1:])  # predictions untouched


def test_api_csv_answer_echoes_no_formula(small_package):
    rows = _valid_rows(len(FORMULAS))
    target = HEADER.index(schema.TARGET)
    for i, text in enumerate(FORMULAS):
        rows[i][target] = text
    rows[0][TYPE] = "\tDairy"
    table = csv_upload.parse_csv(_text(rows, end="\r\n").encode())
    predictions = [-3.5, 2.0, 1e-5, -1e-5, 12.0, 0.0, -0.0]
    answer = handlers.csv_answer(table, predictions, "v1")
    out = list(csv.reader(io.StringIO(bytes(answer.body).decode(), newline="")))
    assert out[0] == [*HEADER, "prediction"]
    assert [len(row) for row in out] == [len(HEADER) + 1] * (len(rows) + 1)  # a bare "\r" splits no row
    assert [row[target] for row in out[1:]] == ["'" + text for text in FORMULAS]
    assert out[1][TYPE] == "'\tDairy"
    assert [float(row[-1]) for row in out[1:]] == predictions  # a negative prediction stays a number
    assert _unsafe(out, {len(out[0]) - 1}) == []


@pytest.mark.parametrize(
    "header_cell", ['"Product_\nWeight"', "X" * 100_000, '"tab\there"'], ids=["newline", "long", "tab"]
)
def test_an_odd_header_name_is_named_on_one_bounded_line(header_cell, small_package, tmp_path):
    """Header cells are client text: quoted into a message, they are escaped and cut, in both paths."""
    rows = _valid_rows(2)
    data = (_text(rows).replace("Product_MRP", header_cell, 1)).encode()
    data_twice = _text(rows).replace("Product_Id", f"{header_cell},{header_cell}", 1).encode()
    for case in (data, data_twice):
        for path, answer in (("api", _api(case)), ("batch", _batch(case, small_package, tmp_path))):
            message = answer[-1]
            assert answer[0] == "file" and "\n" not in message and len(message) < 1_000, (path, message[:300])
