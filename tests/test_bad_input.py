"""Every bad-input case exits non-zero with one line naming file, column, row and allowed values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from superkart_lib import cli
from superkart_lib.contract import schema
from superkart_lib.contract.errors import DataError
from superkart_lib.development import data
from tests.conftest import run_cli


def _good(tmp_path: Path) -> pd.DataFrame:
    from superkart_lib.development.synthetic import generate

    return generate(rows=40, seed=7).astype(str)


def _csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def _set(column: str, row: int, value: str):
    """Edit data row ``row`` (1-based, as messages count) of ``column``."""

    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[row - 1, column] = value
        return frame

    return edit


def _store_row(row: int, **values: str):
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        for column, value in values.items():
            frame.loc[row - 1, column] = value
        return frame

    return edit


# (case id, how to make the file from good data, fragments the one-line message must contain)
CASES = [
    ("missing-column", lambda f: f.drop(columns=["Product_MRP"]), ["missing column 'Product_MRP'"]),
    (
        "misspelled-column",
        lambda f: f.rename(columns={"Product_MRP": "Product_MPR"}),
        ["missing column 'Product_MRP'", "found 'Product_MPR': misspelled?"],
    ),
    ("non-numeric", _set("Product_Weight", 3, "heavy"), ["column 'Product_Weight', row 3", "'heavy' is not a number"]),
    (
        "negative-weight",
        _set("Product_Weight", 5, "-1.5"),
        ["column 'Product_Weight', row 5", "-1.5 is out of range", "allowed: > 0 and <= 100"],
    ),
    ("negative-mrp", _set("Product_MRP", 2, "-10"), ["column 'Product_MRP', row 2", "-10 is out of range", "> 0"]),
    ("zero-area", _set("Product_Allocated_Area", 4, "0"), ["column 'Product_Allocated_Area', row 4", "> 0 and <= 1"]),
    ("area-above-one", _set("Product_Allocated_Area", 6, "1.5"), ["'Product_Allocated_Area', row 6", "1.5 is out"]),
    ("nan-weight", _set("Product_Weight", 7, "nan"), ["column 'Product_Weight', row 7", "'nan' is not a number"]),
    ("infinite-mrp", _set("Product_MRP", 7, "inf"), ["column 'Product_MRP', row 7", "inf is out of range"]),
    (
        "unknown-category",
        _set("Store_Size", 8, "Huge"),
        ["column 'Store_Size', row 8", "'Huge' is not allowed", "allowed: 'Small', 'Medium', 'High'"],
    ),
    (
        "unknown-product-type",
        _set("Product_Type", 9, "Toys"),
        ["column 'Product_Type', row 9", "'Toys' is not allowed", "'Baking Goods'"],
    ),
    (
        "unknown-store",
        _set("Store_Id", 10, "OUT009"),
        ["column 'Store_Id', row 10", "'OUT009' is not allowed", "'OUT001', 'OUT002', 'OUT003', 'OUT004'"],
    ),
    (
        "store-contradiction",
        _store_row(
            11,
            Store_Id="OUT002",
            Store_Establishment_Year="1998",
            Store_Size="High",
            Store_Location_City_Type="Tier 3",
            Store_Type="Food Mart",
        ),
        ["column 'Store_Size', row 11", "'High' contradicts store OUT002", "whose Store_Size is 'Small'"],
    ),
    (
        "fractional-year",
        _set("Store_Establishment_Year", 12, "1987.5"),
        ["column 'Store_Establishment_Year', row 12", "1987.5 is not a whole number"],
    ),
    (
        "target-null",
        _set(schema.TARGET, 5, ""),
        [f"column '{schema.TARGET}', row 5 (line 6)", "missing value", "target"],
    ),
    ("feature-null", _set("Product_Type", 13, ""), ["column 'Product_Type', row 13", "missing value"]),
    ("bad-product-id", _set("Product_Id", 14, "XX12"), ["column 'Product_Id', row 14", "'XX12' is not a product id"]),
    # pandas.to_numeric refused digit separators and non-ASCII digits, which Python's float() takes.
    (
        "underscore-number",
        _set("Product_MRP", 15, "1_000"),
        ["column 'Product_MRP', row 15", "'1_000' is not a number"],
    ),
    ("arabic-digits", _set("Product_Weight", 16, "١٢"), ["column 'Product_Weight', row 16", "'١٢' is not a number"]),
    (
        "duplicate-column",
        lambda f: f.rename(columns={"Product_Id": "Product_MRP"}),
        ["column 'Product_MRP' appears twice in the header"],
    ),
]


@pytest.mark.parametrize("make,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_csv_is_one_clear_line(tmp_path, capsys, make, fragments):
    path = _csv(make(_good(tmp_path)), tmp_path / "bad.csv")
    out = tmp_path / "model"
    code = cli.main(["train", "--data", str(path), "--out", str(out), "--n-iter", "0"])
    err = capsys.readouterr().err
    assert code == cli.USER_ERROR
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"superkart train: error: {path}: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert not out.exists(), "nothing is written for bad input"


HEADER = ",".join(schema.ALL_COLUMNS).encode() + b"\n"
FILE_CASES = [
    ("missing-file", None, "no such file"),
    ("empty-file", b"", "the file is empty"),
    ("header-only", ",".join(schema.ALL_COLUMNS).encode() + b"\n", "no data rows after the header"),
    ("binary", bytes(range(256)) * 4, "not a CSV file (not UTF-8 text)"),
    ("json", b'{"Product_Weight": 12.5, "Product_MRP": 100}\n', "not a SuperKart CSV"),
    ("ragged", b"a,b\n1,2,3,4\n\x00", "not a"),
    (
        "unterminated-quote",
        HEADER + b'FD1,"12\n',
        "not a valid CSV file (end of file inside a quoted field from line 2)",
    ),
    ("long-row", HEADER + b"FD1," * 12 + b"x\n", "row 1 (line 2): 13 fields, but the header has 12"),
    ("short-row", HEADER + b"\n\nFD1,12\n", "row 1 (line 4): 2 fields, but the header has 12"),
]


@pytest.mark.parametrize("content,fragment", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_bad_file_is_one_clear_line(tmp_path, capsys, content, fragment):
    path = tmp_path / "input.csv"
    if content is not None:
        path.write_bytes(content)
    code = cli.main(["train", "--data", str(path), "--out", str(tmp_path / "model")])
    err = capsys.readouterr().err.strip()
    assert code == cli.USER_ERROR
    assert len(err.splitlines()) == 1, err
    assert str(path) in err and fragment in err


def test_real_process_exit_code_and_no_traceback(tmp_path):
    frame = _set("Product_Weight", 2, "-3")(_good(tmp_path))
    path = _csv(frame, tmp_path / "bad.csv")
    result = run_cli("train", "--data", str(path), "--out", str(tmp_path / "model"))
    assert result.returncode == cli.USER_ERROR
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        f"superkart train: error: {path}: column 'Product_Weight', row 2 (line 3): "
        "-3 is out of range (allowed: > 0 and <= 100)"
    )
    assert not (tmp_path / "model").exists()


def test_bad_options_exit_non_zero(tmp_path):
    result = run_cli("data", "--rows", "0", "--out", str(tmp_path / "x.csv"))
    assert result.returncode == 2
    assert "--rows: 0 must be >= 1" in result.stderr
    assert not (tmp_path / "x.csv").exists()


# Rows with problems of several kinds; some have two, and the first in schema order (columns before the
# store check) is the one reported.
MESSY = {
    2: {"Product_Weight": "heavy"},
    3: {"Product_MRP": "", "Product_Id": "XX1"},
    5: {"Store_Type": "Food Mart", "Store_Location_City_Type": "Tier 1"},
    6: {"Store_Establishment_Year": "1950"},
    7: {"Store_Establishment_Year": "1987.5", "Store_Size": "Huge"},
    11: {"Store_Type": "Food Mart", schema.TARGET: "-1"},
    12: {"Product_Allocated_Area": "inf"},
    13: {"Store_Id": "OUT009"},
    20: {schema.TARGET: ""},
    21: {"Product_Sugar_Content": "sweet", "Product_Weight": "0"},
}


def _messy(tmp_path: Path) -> pd.DataFrame:
    frame = _good(tmp_path)
    for row, values in MESSY.items():
        frame = _store_row(row, **values)(frame)
    return frame


def test_check_rows_gives_each_row_the_problem_validate_finds_in_it_alone(tmp_path):
    frame = _messy(tmp_path)
    checked = data.check_rows(frame, "messy.csv")
    assert sorted(checked.problems) == [row - 1 for row in MESSY]
    assert checked.keep.tolist() == [row + 1 not in MESSY for row in range(len(frame))]
    reasons = checked.reasons()
    for index, (column, message) in checked.problems.items():
        with pytest.raises(DataError) as caught:
            data.validate(frame.iloc[[index]], "messy.csv", row_offset=index)
        row = index + 1
        assert str(caught.value) == f"messy.csv: column '{column}', row {row} (line {row + 1}): {message}"
        assert reasons[index] == f"column '{column}': {message}"
    assert checked.problems[2] == ("Product_Id", "'XX1' is not a product id (FD, NC or DR then digits)")
    assert checked.problems[6] == ("Store_Establishment_Year", "1987.5 is not a whole number")
    assert checked.problems[10][0] == schema.TARGET  # a column problem comes before a store contradiction
    assert checked.problems[4][0] == "Store_Location_City_Type"  # store attributes in STORE_ATTRIBUTES order
    assert "contradicts store" in checked.problems[5][1]
    # The valid rows come back typed, exactly as validate types them.
    pd.testing.assert_frame_equal(checked.typed, data.validate(frame[checked.keep]))


def test_validate_reports_the_first_invalid_row(tmp_path):
    frame = _messy(tmp_path)
    with pytest.raises(DataError) as caught:
        data.validate(frame, "messy.csv", row_offset=100)
    assert str(caught.value) == "messy.csv: column 'Product_Weight', row 102 (line 103): 'heavy' is not a number"


def test_check_rows_still_raises_for_problems_of_the_whole_file(tmp_path):
    frame = _messy(tmp_path)
    with pytest.raises(DataError, match="messy.csv: missing column 'Store_Type'"):
        data.check_rows(frame.drop(columns=["Store_Type"]), "messy.csv")
    with pytest.raises(DataError, match="messy.csv: no data rows after the header"):
        data.check_rows(frame.head(0), "messy.csv")
    assert data.check_rows(frame.drop(columns=[schema.TARGET]), require_target=False).problems.keys() == {
        row - 1 for row in MESSY if row != 20
    }
