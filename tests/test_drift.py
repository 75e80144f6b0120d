"""Input drift: reference statistics in the package, PSI and KS, the window, `superkart drift`, the next quarter."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import flip_one_byte, make_package, run_without_training_stack

from superkart_lib.contract import manifest as mf
from superkart_lib.contract import schema
from superkart_lib.contract.errors import SuperKartError
from superkart_lib.development import synthetic
from superkart_lib.production import drift
from superkart_lib.production.drift_cli import cmd_drift, drift_from_csv
from superkart_lib.production.verify import verify_package

ROWS, SEED = 2_000, 3  # make_package's defaults: the package trains on generate(ROWS, SEED)'s training split


@pytest.fixture(scope="module")
def small_package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("drift") / "model", rows=ROWS, seed=SEED)


@pytest.fixture(scope="module")
def next_quarter_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("quarter") / "next_quarter.csv"
    synthetic.data_frame(ROWS, SEED, drifted=True).to_csv(path, index=False)
    return path


def _training_inputs(package: Path):
    from superkart_lib.development.data import load_training_data
    from superkart_lib.development.train import split

    frame, _ = load_training_data(None, rows=ROWS, seed=SEED)
    seed = mf.read(package)["model"]["seed"]
    return split(frame, seed=seed).X_train.reset_index(drop=True)


def _psi(report: drift.DriftReport) -> dict[str, float]:
    return {c.name: round(c.psi, 3) for c in report.columns}


def test_next_quarter_flags_the_drifted_columns_and_only_them(small_package, next_quarter_csv):
    psi = _psi(drift_from_csv(small_package, next_quarter_csv))
    print("next quarter PSI:", psi)
    drifted = synthetic.next_quarter_drifted()
    assert set(drifted) >= {"Product_MRP", "Store_Id", "Product_Sugar_Content"}
    for name in schema.FEATURE_COLUMNS:
        if name in drifted:
            assert psi[name] > drift.DRIFTED, (name, psi[name])
        else:
            assert psi[name] < drift.STABLE, (name, psi[name])


def test_next_quarter_is_valid_and_deterministic():
    a = synthetic.data_frame(500, 7, drifted=True)
    assert a.equals(synthetic.data_frame(500, 7, drifted=True))
    assert not a.equals(synthetic.data_frame(500, 8, drifted=True))
    assert list(a.columns) == list(schema.ALL_COLUMNS)
    for store_id, rows in a.groupby("Store_Id"):  # moved rows carry their new store's attributes
        for column, attribute in schema.STORE_ATTRIBUTES.items():
            assert set(rows[column]) == {getattr(schema.STORES[store_id], attribute)}
    for column in schema.CATEGORICAL_FEATURES:
        assert set(a[column]) <= set(schema.BY_NAME[column].categories)


def test_a_resample_of_the_training_data_flags_nothing(small_package, tmp_path):
    inputs = _training_inputs(small_package)
    resample = inputs.sample(n=len(inputs), replace=True, random_state=11)
    resample.to_csv(tmp_path / "resample.csv", index=False)
    report = drift_from_csv(small_package, tmp_path / "resample.csv")
    print("resample PSI:", _psi(report))
    assert report.verdict == "stable" and report.flagged() == []
    assert all(c.psi < drift.STABLE for c in report.columns)


def test_psi_and_ks_against_hand_computed_examples():
    assert drift.psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.3, 0.3, 0.4])
    assert drift.psi(p, q) == pytest.approx(0.1 * np.log(1.5) - 0.1 * np.log(0.8))
    disjoint = drift.psi(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert disjoint == pytest.approx(2 * (1 - drift.EPSILON) * np.log(1 / drift.EPSILON)) and disjoint > 10

    ref = np.arange(1.0, 101.0)
    stats = drift.reference_from_columns(_columns(ref))
    assert stats["columns"]["Product_MRP"]["fractions"] == pytest.approx([0.1] * 10)
    for new, d in ((ref, 0.0), (ref + 1000, 1.0), (ref + 50, 0.5)):
        window = drift.DriftWindow(stats)
        window.add_columns(_columns(new))
        column = next(c for c in window.report().columns if c.name == "Product_MRP")
        assert column.ks_d == pytest.approx(d)
    assert drift.ks_pvalue(0.0, 100, 100) == 1.0
    # Kolmogorov's Q at lambda = 1.36 is the familiar 5% point.
    m = 50.0
    d = 1.36 / (np.sqrt(m) + 0.12 + 0.11 / np.sqrt(m))
    assert drift.ks_pvalue(d, 100, 100) == pytest.approx(0.0494, abs=5e-4)
    assert [drift.verdict(x) for x in (0.05, 0.15, 0.25)] == list(drift.VERDICTS)


def _columns(numbers: np.ndarray) -> dict[str, np.ndarray]:
    """Every input column: ``numbers`` for each numeric one, the first category for each category."""
    return {
        **{name: numbers for name in drift.NUMERIC},
        **{name: np.full(len(numbers), schema.BY_NAME[name].categories[0], dtype=object) for name in drift.CATEGORICAL},
    }


def test_the_window_gives_the_same_report_in_chunks(small_package):
    stats = drift.load_reference(small_package)
    rows = synthetic.data_frame(900, 5, drifted=True)
    columns = {name: rows[name].to_numpy() for name in schema.FEATURE_COLUMNS}
    whole = drift.DriftWindow(stats)
    whole.add_columns(columns)
    chunked = drift.DriftWindow(stats)
    for start in range(0, 900, 250):
        chunked.add_columns({name: values[start : start + 250] for name, values in columns.items()})
    chunked.add_records(rows.iloc[:100].to_dict(orient="records"))
    chunked.remove_columns({name: values[:100] for name, values in columns.items()})  # a sliding window
    assert chunked.rows == 900
    assert chunked.report().as_dict() == whole.report().as_dict()
    with pytest.raises(ValueError, match="no rows"):
        drift.DriftWindow(stats).report()


def test_the_command_prints_the_table_and_writes_json_and_html(small_package, next_quarter_csv, tmp_path, capsys):
    args = argparse.Namespace(
        model=str(small_package),
        input=str(next_quarter_csv),
        json=str(tmp_path / "d.json"),
        html=str(tmp_path / "d.html"),
    )
    assert cmd_drift(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split() == ["column", "kind", "PSI", "KS", "D", "verdict"]
    assert "Product_MRP" in out and out.count("drifted") >= 2
    assert any(line.startswith("overall: drifted") for line in out.splitlines())
    document = json.loads((tmp_path / "d.json").read_text())
    assert document["verdict"] == "drifted" and len(document["columns"]) == len(schema.FEATURE_COLUMNS)
    page = (tmp_path / "d.html").read_text()
    assert "Product_MRP" in page and "class='bar ref'" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page.lower()


def test_a_package_without_statistics_is_one_line_exit_2(small_package, next_quarter_csv, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(small_package.resolve(), old)
    manifest = json.loads((old / mf.MANIFEST).read_text())
    del manifest["files"][drift.REFERENCE_STATS]
    (old / drift.REFERENCE_STATS).unlink()
    (old / mf.MANIFEST).write_text(mf.dumps(manifest))
    assert verify_package(old)[-1].startswith(f"package {manifest['package_version']} verified")  # still verifies
    args = argparse.Namespace(model=str(old), input=str(next_quarter_csv), json=None, html=None)
    with pytest.raises(SuperKartError) as caught:
        cmd_drift(args)
    message = str(caught.value)
    assert "\n" not in message and message.endswith(
        "this package has no reference statistics; retrain it with this release"
    )
    from superkart_lib import cli

    assert cli.main(["drift", "--model", str(old), "--input", str(next_quarter_csv)]) == 2


def test_verify_checks_the_statistics(small_package, tmp_path):
    lines = verify_package(small_package)
    assert any(line.startswith(f"ok  {drift.REFERENCE_STATS}") for line in lines)
    altered = tmp_path / "altered"
    shutil.copytree(small_package.resolve(), altered)
    flip_one_byte(altered / drift.REFERENCE_STATS)
    with pytest.raises(SuperKartError, match=r"reference_stats\.json"):
        verify_package(altered)
    with pytest.raises(SuperKartError, match=r"reference_stats\.json"):
        drift.load_reference(altered)


def test_drift_runs_without_the_training_stack(small_package, next_quarter_csv):
    code = """
import sys
from superkart_lib.production.drift_cli import drift_from_csv
print(drift_from_csv(sys.argv[1], sys.argv[2]).verdict)
"""
    result = run_without_training_stack(code, str(small_package), str(next_quarter_csv))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "drifted"


def test_a_bad_file_gets_the_validators_one_line_error(small_package, tmp_path):
    bad = tmp_path / "bad.csv"
    frame = synthetic.generate(20, 1)
    frame.loc[3, "Product_MRP"] = -5
    frame.to_csv(bad, index=False)
    with pytest.raises(SuperKartError, match=r"column 'Product_MRP', row 4 \(line 5\)"):
        drift_from_csv(small_package, bad)
