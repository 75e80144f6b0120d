"""Batch scoring (`superkart predict`): chunked, the same bytes in-process and on Dask, file row
numbers in errors, invalid rows on the side with --skip-invalid, nothing left behind on failure."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from superkart_lib import batch, cli, cluster, schema
from superkart_lib.data import validate
from superkart_lib.errors import DataError, SuperKartError
from superkart_lib.runtime import OnnxModel
from superkart_lib.synthetic import generate
from tests.conftest import run_cli

ROWS = 20_000
CHUNK = 3_000  # 7 chunks; row 3,000 ends the first, 12,345 sits inside the fifth
cli_wired = pytest.mark.skipif(not hasattr(cli, "cmd_predict"), reason="`superkart predict` not wired in cli.py yet")


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """A real package, kept cheap: one decision tree on 2,000 synthetic rows, written by write_package."""
    from superkart_lib.package import write_package
    from superkart_lib.train import train

    frame = generate(rows=2_000, seed=3)
    result = train(frame, families=["decision_tree"], n_iter=0, n_jobs=1)
    facts = {"source": "synthetic(rows=2000, seed=3)", "sha256": hashlib.sha256(b"test").hexdigest(), "rows": 2_000}
    return write_package(result, tmp_path_factory.mktemp("batch") / "model", facts)


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
    report = batch.predict_file(package, raw[0], tmp_path / "dask.csv", chunk_rows=CHUNK, dask=True, progress=False)
    assert report.mode.startswith("dask")
    assert report.output.read_bytes() == scored[0].read_bytes()


def test_scheduler_workers_load_the_package_once(package, raw, scored, scheduler, tmp_path):
    address, client = scheduler

    def loaded() -> dict[str, int]:
        from superkart_lib import batch as on_worker

        return {directory: id(model) for directory, model in on_worker._MODELS.items()}

    runs = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.csv"
        batch.predict_file(package, raw[0], out, chunk_rows=CHUNK, dask=True, scheduler=address, progress=False)
        assert out.read_bytes() == scored[0].read_bytes()
        runs.append(client.run(loaded))  # worker address -> {package dir: id of its model}
    first, second = runs
    assert second == first  # the same model objects: nothing was reloaded for the second run
    assert all(len(m) <= 1 for m in first.values()) and any(first.values())  # one model per worker at most


@pytest.mark.parametrize("mode", ["in-process", "dask"])
def test_an_invalid_row_stops_the_run_and_leaves_nothing(package, raw, scheduler, tmp_path, mode):
    bad = _with(raw[1], tmp_path / "bad.csv", {12_345: {"Product_Weight": "heavy"}})
    out = tmp_path / "out" / "scored.csv"
    options = {"dask": True, "scheduler": scheduler[0]} if mode == "dask" else {}
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
        dask=True,
        scheduler=scheduler[0],
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
    options = {"chunk_rows": 300, "skip_invalid": True, "dask": True, "scheduler": scheduler[0], "progress": False}
    on_dask = batch.predict_file(package, bad, tmp_path / "dask.csv", **options)
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
    elif name == "ragged row":
        good.write_text(good.read_text() + "a,b,c,d,e,f,g,h,i,j,k,l,m,n\n")
    elif name == "prediction column":
        raw.head(50).assign(prediction="1").to_csv(good, index=False)
    elif name == "output is input":
        out = good
    elif name == "scheduler without dask":
        return good, out, {"scheduler": "tcp://127.0.0.1:9"}
    elif name == "unreachable scheduler":
        return good, out, {"dask": True, "scheduler": "tcp://127.0.0.1:9"}
    return good, out, {}


USER_ERRORS = {
    "missing file": "nope.csv: no such file",
    "directory": "is a directory, expected a CSV file",
    "empty file": "in.csv: the file is empty",
    "header only": "in.csv: no data rows after the header",
    "not utf-8": "in.csv: not a CSV file (not UTF-8 text",
    "missing column": "in.csv: missing column 'Store_Type'",
    "ragged row": "in.csv: not a valid CSV file (",
    "prediction column": "in.csv: already has a 'prediction' column",
    "output is input": "the output would overwrite the input",
    "scheduler without dask": "--scheduler needs --dask",
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


def test_progress_bar_goes_to_stderr(package, raw, tmp_path, capfd):
    source = tmp_path / "in.csv"
    raw[1].head(100).to_csv(source, index=False)
    batch.predict_file(package, source, tmp_path / "out.csv", progress=True)
    captured = capfd.readouterr()
    assert "scoring in.csv" in captured.err and "100 rows" in captured.err and captured.out == ""


@cli_wired
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
