"""The format comparison (compare, compare_report): invariants of its table, text, chart, records (never timings)."""

from __future__ import annotations

import io
import json
import math
import re

import pytest

from superkart_lib.contract import manifest as mf
from superkart_lib.contract import schema
from superkart_lib.contract.errors import SuperKartError
from superkart_lib.course import compare, compare_report
from tests.conftest import make_package

PICKLED = {"pickle", "joblib", "cloudpickle"}
NO_CODE_ON_LOAD = {"skops", "onnx"}
TIMINGS = ("save_ms", "import_ms", "load_ms", "process_ms", "p50_us", "p99_us", "rows_per_s")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A small gradient-boosting package; its training source is not reproducible on purpose."""
    facts = {"source": "test", "sha256": "0" * 64, "rows": 1500}
    return make_package(tmp_path_factory.mktemp("compare") / "model", "gradient_boosting", 1500, 0, facts)


@pytest.fixture(scope="module")
def table(package):
    return compare.compare_formats(package, repeats=1, latency_calls=3)


def test_one_row_per_file_of_the_package_with_every_column(table, package):
    model_files = sorted(p.name for p in package.iterdir() if p.name.startswith("model."))
    assert sorted(table["file"]) == model_files and len(model_files) == 5
    assert set(table["format"]) == PICKLED | NO_CODE_ON_LOAD
    assert tuple(table.columns) == compare.COLUMNS


def test_sizes_are_the_manifests(table, package):
    recorded = mf.read(package)["files"]
    assert {row.file: row.size_bytes for row in table.itertuples()} == {
        name: recorded[name]["bytes"] for name in table["file"]
    }


def test_python_formats_predict_exactly_like_joblib_and_onnx_within_a_cent(table):
    parity = table.set_index("format")["parity_usd"]
    for name in PICKLED | {"skops"}:
        assert parity[name] == 0.0, name
    assert 0.0 <= parity["onnx"] <= 0.01


def test_what_loading_needs_and_risks(table):
    rows = table.set_index("format")
    for name in PICKLED:
        assert rows.loc[name, "executes_code"], name
    for name in NO_CODE_ON_LOAD:
        assert not rows.loc[name, "executes_code"], name
    for name in PICKLED | {"skops"}:  # they rebuild scikit-learn objects
        assert "scikit-learn" in rows.loc[name, "requires"], name
    # The production environment's point: ONNX loads with numpy and onnxruntime alone.
    assert set(rows.loc["onnx", "requires"]) == {"numpy", "onnxruntime"}


def test_every_timing_was_measured_and_the_child_times_fit_in_its_wall_time(table):
    for column in TIMINGS:
        assert all(math.isfinite(v) and v > 0 for v in table[column]), column
    assert (table["import_ms"] + table["load_ms"] <= table["process_ms"]).all()


def test_ratio_is_onnx_over_the_joblib_pipeline_of_the_same_run(table):
    ratio = table.attrs["ratio"]
    p50 = table.set_index("format")["p50_us"]
    assert ratio["ratio"] == pytest.approx(p50["onnx"] / p50["joblib"])
    assert ratio["ratio"] * ratio["speedup"] == pytest.approx(1.0)


def test_format_table_is_fixed_width_names_every_format_and_the_ratio(table):
    text = compare_report.format_table(table)
    header, *lines = text.splitlines()
    column = header.index("needs installed")
    for row, line in zip(table.itertuples(), lines, strict=False):
        assert line.startswith(row.format), line
        assert line[column:] == ", ".join(row.requires), line
        assert len(line[:column].rstrip()) < column  # the columns before it are padded to one width
    assert re.search(r"ratio \d\.\d{3} \(\d+\.\dx faster\)", text)


def test_chart_has_one_panel_per_measure_and_renders(table):
    from matplotlib.figure import Figure

    fig = compare_report.comparison_chart(table)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == compare_report.CHART_PANELS == 4
    fig.savefig(io.BytesIO(), format="png")


def test_records_are_json_ready(table):
    records = compare_report.to_records(table)
    assert [r["format"] for r in records] == list(table["format"])
    assert all(tuple(r) == compare.COLUMNS for r in records)
    text = json.dumps({"formats": records, "ratio": table.attrs["ratio"]}, allow_nan=False)
    back = json.loads(text)["formats"]
    for row, record in zip(table.to_dict(orient="records"), back, strict=True):
        assert record == {k: list(v) if isinstance(v, tuple) else v for k, v in row.items()}


def test_default_data_falls_back_to_synthetic_rows_without_the_target(package):
    data, described = compare.default_data(package)
    assert len(data) == compare.FALLBACK_ROWS
    assert schema.TARGET not in data.columns
    assert "not reproducible" in described


def test_default_data_is_the_test_split_when_the_training_data_hash_matches(package):
    from superkart_lib.development.data import load_training_data

    manifest = mf.read(package)
    _, facts = load_training_data(None, rows=500, seed=3)
    manifest["training_data"] = {**facts, "test_size": 0.2}
    data, described = compare.default_data(package, manifest)
    assert len(data) == 100 and schema.TARGET not in data.columns
    assert "test split" in described
    manifest["training_data"]["sha256"] = "0" * 64  # the generator changed since training
    assert len(compare.default_data(package, manifest)[0]) == compare.FALLBACK_ROWS


def test_data_missing_a_feature_is_a_clear_error(package):
    from superkart_lib.development.synthetic import generate

    data = generate(20, 5).drop(columns=["Store_Size"])
    with pytest.raises(SuperKartError, match="Store_Size"):
        compare.compare_formats(package, data=data, repeats=1, latency_calls=1)


def test_read_data_drops_the_target(tmp_path):
    from superkart_lib.development.synthetic import generate

    path = tmp_path / "rows.csv"
    generate(20, 5).to_csv(path, index=False)
    data = compare.read_data(path)
    assert len(data) == 20 and schema.TARGET not in data.columns
