"""Batch scoring (`superkart predict`): chunked, the same bytes in-process and on Dask and as pandas
wrote them, file row numbers in errors, invalid rows on the side with --skip-invalid, nothing left
behind on failure, and no pandas in production."""

from __future__ import annotations

import ast
import csv
import io
import math
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from superkart_lib import cli
from superkart_lib.contract import schema
from superkart_lib.contract.errors import DataError, SuperKartError
from superkart_lib.development import cluster, dask_batch
from superkart_lib.development.data import validate
from superkart_lib.development.synthetic import generate
from superkart_lib.production import batch, csv_files, table_validation
from superkart_lib.production.runtime import OnnxModel
from tests.conftest import ROOT, run_cli, run_without_training_stack

ROWS = 20_000
CHUNK = 3_000  # 7 chunks; row 3,000 ends the first, 12,345 sits inside the fifth


@pytest.fixture(scope="module")
def package(small_package) -> Path:
    """A real package, kept cheap: one decision tree on 2,000 synthetic rows (conftest)."""
    return small_package


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """20,000 synthetic rows (target included, as a labelled file would have) and their raw strings."""
    path = tmp_path_factory.mktemp("data") / "rows.csv"
    generate(rows=ROWS, seed=11).to_csv(path, index=False)
    return path, pd.read_csv(path, dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def scored(package, raw, tmp_path_factory) -> tuple[Path, batch.BatchReport]:
    """The in-process output every other mode is compared with."""
    out = tmp_path_factory.mktemp("scored") / "scored.csv"
    return out, batch.predict_file(package, raw[0], out, chunk_rows=CHUNK, progress=False)


@pytest.fixture(scope="module")
def scheduler() -> Iterator[tuple[str, object]]:
    """A running two-worker cluster, reached by address as `--scheduler ADDR` would."""
    with cluster.dask_client() as client:
        yield client.scheduler.address, client


def _with(raw: pd.DataFrame, path: Path, edits: dict[int, dict[str, str]]) -> Path:
    """Write ``raw`` with cells replaced: {file row (1-based): {column: text}}."""
    frame = raw.copy()
    for row, values in edits.items():
        for column, text in values.items():
            frame.loc[row - 1, column] = text
    frame.to_csv(path, index=False)
    return path


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_output_is_input_plus_runtime_predictions(package, raw, scored, tmp_path):
    path, frame = raw
    out, report = scored
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert list(written.columns) == [*frame.columns, batch.PREDICTION]
    pd.testing.assert_frame_equal(written[list(frame.columns)], frame)
    typed = validate(frame, path, require_target=False)
    model = OnnxModel.from_package(package)
    expected = model.predict({name: typed[name].to_numpy() for name in schema.FEATURE_COLUMNS})
    # Full-precision floats: the text reads back to the runtime's exact values.
    assert np.array_equal(written[batch.PREDICTION].astype("float64").to_numpy(), expected)
    assert (report.rows_read, report.rows_scored, report.rows_skipped) == (ROWS, ROWS, 0)
    assert report.rejected is None and report.model_version == model.version
    # Chunking is invisible in the output: one chunk gives the same bytes as seven.
    whole = batch.predict_file(package, path, tmp_path / "whole.csv", chunk_rows=ROWS, progress=False)
    assert whole.output.read_bytes() == out.read_bytes()


def test_embedded_dask_cluster_writes_the_same_bytes(package, raw, scored, tmp_path):
    on_dask = dask_batch.DaskChunks()
    report = batch.predict_file(
        package, raw[0], tmp_path / "dask.csv", chunk_rows=CHUNK, cluster=on_dask, progress=False
    )
    assert report.mode.startswith("dask")
    assert report.output.read_bytes() == scored[0].read_bytes()


def test_scheduler_workers_load_the_package_once(package, raw, scored, scheduler, tmp_path):
    address, client = scheduler

    def loaded() -> dict[str, int]:
        from superkart_lib.production import batch as on_worker

        return {directory: id(model) for directory, model in on_worker._MODELS.items()}

    runs = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.csv"
        on_dask = dask_batch.DaskChunks(scheduler=address)
        batch.predict_file(package, raw[0], out, chunk_rows=CHUNK, cluster=on_dask, progress=False)
        assert out.read_bytes() == scored[0].read_bytes()
        runs.append(client.run(loaded))  # worker address -> {package dir: id of its model}
    first, second = runs
    assert second == first  # the same model objects: nothing was reloaded for the second run
    assert all(len(m) <= 1 for m in first.values()) and any(first.values())  # one model per worker at most


@pytest.mark.parametrize("mode", ["in-process", "dask"])
def test_an_invalid_row_stops_the_run_and_leaves_nothing(package, raw, scheduler, tmp_path, mode):
    bad = _with(raw[1], tmp_path / "bad.csv", {12_345: {"Product_Weight": "heavy"}})
    out = tmp_path / "out" / "scored.csv"
    options = {"cluster": dask_batch.DaskChunks(scheduler=scheduler[0])} if mode == "dask" else {}
    with pytest.raises(DataError) as caught:
        batch.predict_file(package, bad, out, chunk_rows=CHUNK, progress=False, **options)
    message = str(caught.value)
    assert message == f"{bad}: column 'Product_Weight', row 12345 (line 12346): 'heavy' is not a number"
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no output, no partial file


BAD_ROWS = {
    1: (
        {"Store_Id": "OUT001", "Store_Establishment_Year": "1987", "Store_Size": "High"}
        | {"Store_Location_City_Type": "Tier 2", "Store_Type": "Food Mart"},
        "column 'Store_Type': 'Food Mart' contradicts store OUT001, whose Store_Type is 'Supermarket Type1'",
    ),
    3_000: ({"Product_Type": "Toys"}, "column 'Product_Type': 'Toys' is not allowed (allowed: "),
    3_001: ({"Product_Allocated_Area": "1.5"}, "column 'Product_Allocated_Area': 1.5 is out of range"),
    12_345: ({"Product_Weight": "heavy"}, "column 'Product_Weight': 'heavy' is not a number"),
    # Two problems: the reason is the first in schema order, as data.validate reports it.
    12_346: ({"Product_MRP": "", "Product_Id": "XX1"}, "column 'Product_Id': 'XX1' is not a product id"),
    ROWS: ({"Store_Establishment_Year": "1987.5"}, "column 'Store_Establishment_Year': 1987.5 is not a whole number"),
}


def test_skip_invalid_scores_the_rest_and_writes_the_rejects(package, raw, scored, scheduler, tmp_path):
    bad = _with(raw[1], tmp_path / "bad.csv", {row: edit for row, (edit, _) in BAD_ROWS.items()})
    out = tmp_path / "scored.csv"
    report = batch.predict_file(package, bad, out, chunk_rows=CHUNK, skip_invalid=True, progress=False)
    assert (report.rows_read, report.rows_scored, report.rows_skipped) == (ROWS, ROWS - 6, 6)
    assert report.rejected == tmp_path / "scored.rejected.csv"
    # Untouched rows score exactly as in the clean file: its output minus the bad rows' lines.
    clean = _lines(scored[0])
    assert _lines(out) == [line for number, line in enumerate(clean) if number not in BAD_ROWS]
    rejected = pd.read_csv(report.rejected, dtype=str, keep_default_na=False)
    assert list(rejected.columns) == ["row", "reason", *raw[1].columns]
    assert rejected["row"].astype(int).tolist() == sorted(BAD_ROWS)
    for row, reason in zip(rejected["row"].astype(int), rejected["reason"], strict=True):
        assert reason.startswith(BAD_ROWS[row][1]), (row, reason)
    assert rejected["Product_Type"].iloc[1] == "Toys"  # the row itself is echoed, to fix and resubmit
    on_dask = batch.predict_file(
        package,
        bad,
        tmp_path / "dask.csv",
        chunk_rows=CHUNK,
        skip_invalid=True,
        cluster=dask_batch.DaskChunks(scheduler=scheduler[0]),
        progress=False,
    )
    assert on_dask.output.read_bytes() == out.read_bytes()
    assert on_dask.rejected.read_bytes() == report.rejected.read_bytes()


# Every kind of row problem, some rows with two (the first in schema order counts, column checks before stores).
MANY_KINDS = [
    {"Product_Weight": "heavy"},
    {"Product_Weight": "-1.5"},
    {"Product_Allocated_Area": "0"},
    {"Product_Type": "Toys"},
    {"Store_Id": "OUT009"},
    {"Store_Size": ""},
    {"Store_Establishment_Year": "1987.5"},
    {"Store_Establishment_Year": "1950"},  # a whole year in range that contradicts the store
    {"Product_Id": "XX12"},
    {"Store_Type": "Food Mart", "Store_Location_City_Type": "Tier 1"},
    {"Product_MRP": "nan", "Product_Sugar_Content": "sweet"},
    {"Product_Sugar_Content": "", "Store_Id": "OUT009"},
]


def _reason_alone(row: pd.DataFrame, number: int) -> str:
    """The side-file reason for file row ``number``: data.validate's message for that row alone."""
    with pytest.raises(DataError) as caught:
        validate(row, "in.csv", require_target=False, row_offset=number - 1)
    prefix = "in.csv: column '"
    message = str(caught.value)
    assert message.startswith(prefix), message
    column, rest = message.removeprefix(prefix).split("', ", 1)
    location = f"row {number} (line {number + 1}): "
    assert rest.startswith(location), message
    return f"column '{column}': {rest.removeprefix(location)}"


def test_skip_invalid_lists_every_bad_row_with_its_own_reason(package, raw, scheduler, tmp_path):
    """One row in four is invalid, in runs and across chunk ends: each is on the side with its own reason."""
    frame = raw[1].head(1_200).drop(columns=[schema.TARGET])
    numbers = [n for n in range(1, 1_201) if n % 4 == 1 or 298 <= n <= 303]  # 300 ends the first chunk
    edits = {n: MANY_KINDS[k % len(MANY_KINDS)] for k, n in enumerate(numbers)}
    clean = batch.predict_file(
        package, _with(frame, tmp_path / "clean.csv", {}), tmp_path / "clean-out.csv", chunk_rows=300, progress=False
    )
    bad = _with(frame, tmp_path / "in.csv", edits)
    report = batch.predict_file(package, bad, tmp_path / "out.csv", chunk_rows=300, skip_invalid=True, progress=False)
    assert (report.rows_read, report.rows_skipped) == (1_200, len(numbers))
    assert _lines(report.output) == [line for n, line in enumerate(_lines(clean.output)) if n not in edits]
    rejected = pd.read_csv(report.rejected, dtype=str, keep_default_na=False)
    assert rejected["row"].astype(int).tolist() == numbers
    edited = pd.read_csv(bad, dtype=str, keep_default_na=False)
    expected = [_reason_alone(edited.iloc[[n - 1]], n) for n in numbers]
    assert rejected["reason"].tolist() == expected
    assert len({reason.split(":")[0] for reason in expected}) >= 8  # many columns' problems, stores included
    assert any("contradicts store" in reason for reason in expected)
    pd.testing.assert_frame_equal(
        rejected.drop(columns=["row", "reason"]), edited.iloc[[n - 1 for n in numbers]].reset_index(drop=True)
    )
    on_dask = batch.predict_file(
        package,
        bad,
        tmp_path / "dask.csv",
        chunk_rows=300,
        skip_invalid=True,
        cluster=dask_batch.DaskChunks(scheduler=scheduler[0]),
        progress=False,
    )
    assert on_dask.output.read_bytes() == report.output.read_bytes()
    assert on_dask.rejected.read_bytes() == report.rejected.read_bytes()


def _case(name: str, tmp_path: Path, raw: pd.DataFrame) -> tuple[Path, Path, dict]:
    """(input, output, options) of one user error."""
    good = tmp_path / "in.csv"
    raw.head(50).to_csv(good, index=False)
    out = tmp_path / "out.csv"
    if name == "missing file":
        return tmp_path / "nope.csv", out, {}
    if name == "directory":
        return tmp_path, out, {}
    if name == "empty file":
        good.write_text("")
    elif name == "header only":
        good.write_text(",".join(raw.columns) + "\n")
    elif name == "not utf-8":
        good.write_bytes(good.read_bytes().replace(b"Low Sugar", b"Low \xff Sugar"))
    elif name == "missing column":
        raw.head(50).drop(columns=["Store_Type"]).to_csv(good, index=False)
    elif name == "duplicate column":
        raw.head(50).rename(columns={"Product_Id": "Store_Size"}).to_csv(good, index=False)
    elif name == "unterminated quote":
        good.write_text(good.read_text() + 'FD1,12.5,"Low Sugar\n')
    elif name == "prediction column":
        raw.head(50).assign(prediction="1").to_csv(good, index=False)
    elif name == "output is input":
        out = good
    elif name == "unreachable scheduler":
        return good, out, {"cluster": dask_batch.DaskChunks(scheduler="tcp://127.0.0.1:9")}
    return good, out, {}


USER_ERRORS = {
    "missing file": "nope.csv: no such file",
    "directory": "is a directory, expected a CSV file",
    "empty file": "in.csv: the file is empty",
    "header only": "in.csv: no data rows after the header",
    "not utf-8": "in.csv: not a CSV file (not UTF-8 text",
    "missing column": "in.csv: missing column 'Store_Type'",
    "duplicate column": "in.csv: column 'Store_Size' appears twice in the header",
    "unterminated quote": "in.csv: not a valid CSV file (end of file inside a quoted field from line 52)",
    "prediction column": "in.csv: already has a 'prediction' column",
    "output is input": "the output would overwrite the input",
    "unreachable scheduler": "cannot reach the Dask scheduler at tcp://127.0.0.1:9",
}


@pytest.mark.parametrize("skip_invalid", [False, True], ids=["stop", "skip"])
@pytest.mark.parametrize("name", list(USER_ERRORS))
def test_user_errors_are_one_line_and_leave_nothing(package, raw, tmp_path, monkeypatch, name, skip_invalid):
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", "1s")
    source, out, options = _case(name, tmp_path, raw[1])
    before = sorted(tmp_path.iterdir())
    with pytest.raises(SuperKartError) as caught:
        batch.predict_file(package, source, out, skip_invalid=skip_invalid, progress=False, **options)
    message = str(caught.value)
    assert USER_ERRORS[name] in message and "\n" not in message, message
    assert sorted(tmp_path.iterdir()) == before


def test_scheduler_without_dask_is_one_line_and_leaves_nothing(package, raw, tmp_path, capsys):
    source = tmp_path / "in.csv"
    raw[1].head(50).to_csv(source, index=False)
    args = ["predict", "--model", str(package), "--input", str(source), "--output", str(tmp_path / "out.csv")]
    assert cli.main([*args, "--scheduler", "tcp://127.0.0.1:9"]) == cli.USER_ERROR
    assert capsys.readouterr().err == "superkart predict: error: --scheduler needs --dask\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_progress_bar_goes_to_stderr(package, raw, tmp_path, capfd):
    source = tmp_path / "in.csv"
    raw[1].head(100).to_csv(source, index=False)
    batch.predict_file(package, source, tmp_path / "out.csv", progress=True)
    captured = capfd.readouterr()
    assert "scoring in.csv" in captured.err and "100 rows" in captured.err and captured.out == ""


def test_cli_scores_and_fails_with_one_line(package, raw, tmp_path):
    source = tmp_path / "in.csv"
    raw[1].head(5_000).to_csv(source, index=False)
    ok = run_cli("predict", "--model", str(package), "--input", str(source), "--output", str(tmp_path / "out.csv"))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("scored 5,000 of 5,000 rows")
    bad = _with(raw[1].head(5_000), tmp_path / "bad.csv", {4_321: {"Store_Id": "OUT009"}})
    out = tmp_path / "bad-out.csv"
    failed = run_cli("predict", "--model", str(package), "--input", str(bad), "--output", str(out), "--quiet")
    assert failed.returncode == 2
    assert failed.stderr.strip().splitlines() == [
        f"superkart predict: error: {bad}: column 'Store_Id', row 4321 (line 4322): 'OUT009' is not allowed "
        "(allowed: 'OUT001', 'OUT002', 'OUT003', 'OUT004')"
    ]
    assert not out.exists()
    # On an embedded cluster too: one line, not the workers' logged tracebacks before it.
    args = ["--model", str(package), "--input", str(bad), "--output", str(out), "--quiet"]
    on_dask = run_cli("predict", *args, "--dask")
    assert on_dask.returncode == 2
    assert on_dask.stderr.strip().splitlines() == failed.stderr.strip().splitlines(), on_dask.stderr
    assert not out.exists()


def test_skip_invalid_with_every_row_invalid_writes_headers_only(package, raw, tmp_path):
    source = _with(raw[1].head(10), tmp_path / "in.csv", {row: {"Store_Size": "Huge"} for row in range(1, 11)})
    report = batch.predict_file(package, source, tmp_path / "out.csv", chunk_rows=4, skip_invalid=True, progress=False)
    assert (report.rows_read, report.rows_scored, report.rows_skipped) == (10, 0, 10)
    assert _lines(report.output) == [",".join([*raw[1].columns, batch.PREDICTION])]
    rejected = pd.read_csv(report.rejected, dtype=str, keep_default_na=False)
    assert rejected["row"].astype(int).tolist() == list(range(1, 11))
    assert rejected["reason"].str.startswith("column 'Store_Size': 'Huge' is not allowed").all()


def test_the_target_column_is_echoed_not_checked(package, raw, tmp_path):
    """A template with an empty target column scores, as the API's CSV upload allows."""
    source = tmp_path / "in.csv"
    raw[1].head(20).assign(**{schema.TARGET: ""}).to_csv(source, index=False)
    report = batch.predict_file(package, source, tmp_path / "out.csv", progress=False)
    written = pd.read_csv(report.output, dtype=str, keep_default_na=False)
    assert report.rows_scored == 20 and (written[schema.TARGET] == "").all()


# --- the same bytes as pandas wrote, without pandas ----------------------------------------------

TRICKY_EXTRAS = {
    "note": ['say "hi", then go', "ñandú, 東京 & Zürich", "", " padded ", "multi\nline", '"', ",", "tab\there"],
    "": ["unnamed", "x", "", "y", "z", "1", "2", "3"],  # pandas named it "Unnamed: <position>"
}


def _tricky_file(raw: pd.DataFrame, path: Path) -> Path:
    """Valid rows written the hard way: BOM, CRLF, blank lines, quoting, extra and unnamed columns,
    whitespace around values, a multi-line cell; the target column kept."""
    frame = raw.head(200).copy()
    frame.insert(0, "note", [TRICKY_EXTRAS["note"][i % 8] for i in range(len(frame))])
    frame[""] = [TRICKY_EXTRAS[""][i % 8] for i in range(len(frame))]
    frame.loc[3, "Product_Weight"] = " 12.50 "
    frame.loc[4, "Store_Size"] = frame.loc[4, "Store_Size"] + "\t"
    frame.loc[5, "Product_MRP"] = "1.5e2"
    frame.loc[6, "Product_Sugar_Content"] = "reg"
    frame.loc[7, schema.TARGET] = ""
    text = io.StringIO()
    csv.writer(text, lineterminator="\r\n", quoting=csv.QUOTE_NONNUMERIC).writerows(
        [list(frame.columns), *frame.values.tolist()]
    )
    lines = text.getvalue().split("\r\n")
    lines[10:10] = ["", "  ", "\t"]  # blank lines pandas skipped
    path.write_bytes("\ufeff".encode() + "\r\n".join(lines).encode("utf-8"))
    return path


def _pandas_output(package: Path, source: Path) -> bytes:
    """What the pandas implementation wrote for a valid file: the raw strings plus the runtime's predictions."""
    frame = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    typed = validate(frame.drop(columns=[schema.TARGET]), source, require_target=False)
    model = OnnxModel.from_package(package)
    predictions = model.predict({name: typed[name].to_numpy() for name in model.input_names})
    return frame.assign(**{batch.PREDICTION: predictions}).to_csv(index=False, lineterminator="\n").encode()


def test_output_bytes_are_what_pandas_wrote(package, raw, tmp_path):
    source = _tricky_file(raw[1], tmp_path / "tricky.csv")
    expected = _pandas_output(package, source)
    # The oracle read the tricky cells as meant: unnamed column named, quotes and commas kept.
    assert (
        expected.count(b"Unnamed: 13") == 1
        and '"\xc3\xb1and\xc3\xba, \xe6\x9d\xb1\xe4\xba\xac & Z\xc3\xbcrich"'.encode("latin-1") in expected
    )
    for chunk_rows in (7, 1_000):
        report = batch.predict_file(package, source, tmp_path / "out.csv", chunk_rows=chunk_rows, progress=False)
        assert report.output.read_bytes() == expected
        assert (report.rows_read, report.rows_scored) == (200, 200)


def test_floats_print_as_pandas_prints_them():
    rng = random.Random(5)
    values = [rng.uniform(-1, 1) * 10.0 ** rng.randint(-30, 30) for _ in range(20_000)]
    values += [0.0, -0.0, 1e16, 9_999_999_999_999_998.0, 1e-4, 1e-5, 5e-324, 1.7976931348623157e308, math.inf]
    frame = pd.DataFrame({"cell": "x", batch.PREDICTION: np.array(values)})
    expected = frame.to_csv(index=False, header=False, lineterminator="\n")
    assert csv_files.csv_text([["x", value] for value in values]) == expected
    assert csv_files.csv_text_plus([["x"]] * len(values), values, 1) == expected


def test_numbers_parse_as_pandas_parsed_them():
    """A value is a number exactly when pandas.to_numeric read one: no '_' separators, no non-ASCII digits."""
    texts = [
        "12.5",
        " 12.5 ",
        "1_000",
        "1__0",
        "١٢",
        "１２",
        "12\u00a0",
        "\u200912",
        "nan",
        "NaN",
        "-nan",
        "inf",
        "-inf",
    ]
    texts += ["Infinity", "1e400", "1e-400", "0x10", "1d5", "+5", "5.", ".5", "1e5", "1E+05", "12,5", "None", "True"]
    texts += ["0012", "99999999999999999999", "4.9e-324", "½", "²", "1 000", "--1", "e5", "1e", "٣.٥"]
    checked = table_validation.check_columns({"Product_MRP": texts})
    for i, text in enumerate(texts):
        number = pd.to_numeric(pd.Series([text.strip()]), errors="coerce").astype("float64").iloc[0]
        column, message = checked.problems.get(i, ("Product_MRP", ""))
        assert column == "Product_MRP"
        if math.isnan(number):
            assert message == f"{text.strip()!r} is not a number", (text, message)
        elif 0 < number <= 10_000:
            assert i not in checked.problems, (text, message)
        else:
            assert message.startswith(f"{text.strip()} is out of range"), (text, message)
    assert checked.problems[2] == ("Product_MRP", "'1_000' is not a number")
    assert checked.problems[4] == ("Product_MRP", "'١٢' is not a number")


def test_a_row_with_the_wrong_number_of_fields_is_a_row_problem(package, raw, tmp_path):
    """pandas refused a long row as a broken file and padded a short one; now both are invalid rows."""
    frame = raw[1].head(60)
    text = frame.to_csv(index=False).splitlines()
    text[30] += ",extra,more"  # row 30
    text[45] = ",".join(text[45].split(",")[:-2])  # row 45
    source = tmp_path / "in.csv"
    source.write_text("\n".join(text) + "\n")
    with pytest.raises(DataError) as caught:
        batch.predict_file(package, source, tmp_path / "out.csv", chunk_rows=20, progress=False)
    assert str(caught.value) == f"{source}: row 30 (line 31): 14 fields, but the header has 12"
    assert not (tmp_path / "out.csv").exists()
    report = batch.predict_file(package, source, tmp_path / "out.csv", chunk_rows=20, skip_invalid=True, progress=False)
    assert (report.rows_read, report.rows_scored, report.rows_skipped) == (60, 58, 2)
    rejected = list(csv.reader(report.rejected.read_text().splitlines()))
    assert rejected[0] == ["row", "reason", *frame.columns]
    assert rejected[1] == ["30", "14 fields, but the header has 12", *text[30].split(",")]
    assert rejected[2] == ["45", "10 fields, but the header has 12", *text[45].split(",")]


def test_rows_and_lines_count_as_in_the_file(package, raw, tmp_path):
    """Row numbers skip blank lines; the line is where the row starts, past line breaks inside quoted cells."""
    frame = raw[1].head(30).assign(note=["two\nlines" if i == 4 else "" for i in range(30)])
    lines = _with(frame, tmp_path / "in.csv", {20: {"Store_Size": "Huge"}}).read_text().split("\n")
    lines[10:10] = ["", ""]  # before row 9: the header, eight rows and the cell's second line come first
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines))
    with pytest.raises(DataError) as caught:
        batch.predict_file(package, source, tmp_path / "out.csv", chunk_rows=8, progress=False)
    # Row 20 is line 21 after the header, plus the cell's extra line and the two blank lines.
    assert str(caught.value).startswith(f"{source}: column 'Store_Size', row 20 (line 24): 'Huge' is not allowed")


def test_duplicate_header_names_are_refused(package, raw, tmp_path):
    source = tmp_path / "in.csv"
    raw[1].head(5).assign(note="a").rename(columns={"note": "Product_Type"}).to_csv(source, index=False)
    with pytest.raises(DataError, match=r"in.csv: column 'Product_Type' appears twice in the header$"):
        batch.predict_file(package, source, tmp_path / "out.csv", progress=False)


# --- production: no pandas, tqdm or development code -----------------------------------------------

PRODUCTION_MODULES = ("batch.py", "table_validation.py", "csv_files.py")
NOT_IN_PRODUCTION = ("pandas", "sklearn", "scipy", "dask", "distributed", "tqdm", "yaml", "matplotlib", "joblib")


@pytest.mark.parametrize("module", PRODUCTION_MODULES)
def test_production_modules_import_nothing_from_development(module):
    tree = ast.parse((ROOT / "superkart_lib" / "production" / module).read_text())
    imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    imported += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    forbidden = [
        name
        for name in imported
        if name.split(".")[0] in NOT_IN_PRODUCTION
        or name.startswith(("superkart_lib.development", "superkart_lib.course"))
    ]
    assert forbidden == [], f"{module} imports {forbidden}"  # anywhere, functions included


PREDICT_WITHOUT_TRAINING_STACK = """
from superkart_lib import cli
code = cli.main(["predict", "--model", sys.argv[1], "--input", sys.argv[2], "--output", sys.argv[3]])
blocked = {"pandas", "sklearn", "scipy", "tqdm", "skl2onnx", "xgboost", "joblib", "dask", "distributed"}
print(code, sorted(m for m in sys.modules if m.split(".")[0] in blocked))
"""


def test_predict_runs_without_pandas_and_writes_the_same_bytes(package, raw, scored, tmp_path):
    out = tmp_path / "scored.csv"
    result = run_without_training_stack(PREDICT_WITHOUT_TRAINING_STACK, str(package), str(raw[0]), str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 []", result.stdout + result.stderr
    assert "scoring rows.csv: 100% 20,000 rows" in result.stderr
    assert out.read_bytes() == scored[0].read_bytes()
