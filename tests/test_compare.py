"""The format comparison (compare, compare_report): invariants of its table, text, chart, records (never timings)."""

from __future__ import annotations

import io
import json
import math

import pytest

from superkart_lib import compare, compare_report, formats, schema
from superkart_lib import manifest as mf
from superkart_lib.errors import SuperKartError

PICKLED = {"pickle", "joblib", "cloudpickle"}
NO_CODE_ON_LOAD = {"skops", "onnx"}
TIMINGS = ("save_ms", "import_ms", "load_ms", "process_ms", "p50_us", "p99_us", "rows_per_s")


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """A small gradient-boosting package; its training source is not reproducible on purpose."""
    from superkart_lib.package import write_package
    from superkart_lib.synthetic import generate
    from superkart_lib.train import train

    result = train(generate(1500, 0), n_iter=0, families=["gradient_boosting"])
    out = tmp_path_factory.mktemp("compare") / "model"
    return write_package(result, out, {"source": "test", "sha256": "0" * 64, "rows": 1500})


@pytest.fixture(scope="module")
def table(package):
    return compare.compare_formats(package, repeats=1, latency_calls=3)


def test_one_row_per_format_with_every_column(table):
    assert list(table["file"]) == list(formats.FORMATS)
    assert list(table["format"]) == [fmt.name for fmt in formats.FORMATS.values()]
    assert tuple(table.columns) == compare.COLUMNS


def test_sizes_are_the_manifests(table, package):
    recorded = mf.read(package)["files"]
    assert {row.file: row.size_bytes for row in table.itertuples()} == {
        name: recorded[name]["bytes"] for name in formats.FORMATS
    }


def test_python_formats_predict_exactly_like_joblib_and_onnx_within_a_cent(table):
    parity = table.set_index("format")["parity_usd"]
    for name in PICKLED | {"skops"}:
        assert parity[name] == 0.0, name
    assert 0.0 <= parity["onnx"] <= 0.01


def test_security_and_requirements_come_from_formats(table):
    rows = table.set_index("format")
    for name in PICKLED:
        assert rows.loc[name, "executes_code"], name
    for name in NO_CODE_ON_LOAD:
        assert not rows.loc[name, "executes_code"], name
    assert "scikit-learn" not in rows.loc["onnx", "requires"]
    assert "onnxruntime" in rows.loc["onnx", "requires"]
    for fmt in formats.FORMATS.values():
        assert tuple(rows.loc[fmt.name, "requires"]) == fmt.requires


def test_every_timing_was_measured_and_the_child_times_fit_in_its_wall_time(table):
    for column in TIMINGS:
        assert all(math.isfinite(v) and v > 0 for v in table[column]), column
    assert (table["import_ms"] + table["load_ms"] <= table["process_ms"]).all()


def test_ratio_is_onnx_over_the_joblib_pipeline_of_the_same_run(table):
    ratio = table.attrs["ratio"]
    p50 = table.set_index("format")["p50_us"]
    assert ratio["onnx_dict_p50_us"] == p50["onnx"]
    assert ratio["sklearn_pandas_p50_us"] == p50["joblib"]
    assert ratio["ratio"] == pytest.approx(p50["onnx"] / p50["joblib"])
    assert compare.latency_ratio(table) == ratio


def test_format_table_is_fixed_width_names_every_format_and_the_ratio(table):
    text = compare_report.format_table(table)
    header, *lines = text.splitlines()
    column = header.index("needs installed")
    for fmt, line in zip(formats.FORMATS.values(), lines, strict=False):
        assert line.startswith(fmt.name), line
        assert line[column:] == ", ".join(fmt.requires), line
    assert "ratio" in text


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
    assert json.loads(text)["formats"][4]["requires"] == list(formats.FORMATS["model.onnx"].requires)


def test_default_data_falls_back_to_synthetic_rows_without_the_target(package):
    data, described = compare.default_data(package)
    assert len(data) == compare.FALLBACK_ROWS
    assert schema.TARGET not in data.columns
    assert "not reproducible" in described


def test_default_data_is_the_test_split_when_the_training_data_hash_matches(package):
    from superkart_lib.workspace import load_training_data

    manifest = mf.read(package)
    _, facts = load_training_data(None, rows=500, seed=3)
    manifest["training_data"] = {**facts, "test_size": 0.2}
    data, described = compare.default_data(package, manifest)
    assert len(data) == 100 and schema.TARGET not in data.columns
    assert "test split" in described
    manifest["training_data"]["sha256"] = "0" * 64  # the generator changed since training
    assert len(compare.default_data(package, manifest)[0]) == compare.FALLBACK_ROWS


def test_data_missing_a_feature_is_a_clear_error(package):
    from superkart_lib.synthetic import generate

    data = generate(20, 5).drop(columns=["Store_Size"])
    with pytest.raises(SuperKartError, match="Store_Size"):
        compare.compare_formats(package, data=data, repeats=1, latency_calls=1)


def test_read_data_drops_the_target(tmp_path):
    from superkart_lib.synthetic import generate

    path = tmp_path / "rows.csv"
    generate(20, 5).to_csv(path, index=False)
    data = compare.read_data(path)
    assert len(data) == 20 and schema.TARGET not in data.columns
