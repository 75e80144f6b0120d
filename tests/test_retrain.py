"""Retrain with a gate: a challenger trained on new data replaces the current model only if it is better.

Each retrain trains one decision tree without a search on a few hundred rows (seconds), writes
a real package, and scores both models through the production ONNX runtime.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import flip_one_byte, make_package, run_cli

from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import DataError, SuperKartError
from superkart_lib.contract.files import resolve_link, sha256_of
from superkart_lib.development.data import read_csv
from superkart_lib.development.retrain import DEFAULT_MARGIN, retrain
from superkart_lib.development.synthetic import data_frame
from superkart_lib.development.train import split
from superkart_lib.production import registry

FAST = {"families": ["decision_tree"], "n_iter": 0, "n_jobs": 1}
NEW_ROWS = 600


@pytest.fixture(scope="module")
def base_package(tmp_path_factory) -> Path:
    """Last quarter's model: a decision tree on 2,000 synthetic rows (its data can be regenerated)."""
    return make_package(tmp_path_factory.mktemp("base") / "model")


@pytest.fixture(scope="module")
def next_quarter(tmp_path_factory) -> Path:
    """A drifted next quarter, as ``superkart data --next-quarter`` writes it."""
    path = tmp_path_factory.mktemp("data") / "next.csv"
    data_frame(rows=NEW_ROWS, seed=0, drifted=True).to_csv(path, index=False)
    return path


@pytest.fixture
def root(tmp_path, base_package) -> Path:
    """A registry whose current version is the base package."""
    root = tmp_path / "registry"
    version = registry.add(root, base_package)
    registry.promote(root, version, "ci", "last quarter")
    return root


def _state(root: Path) -> dict[str, object]:
    """Everything a retrain may change: versions, pointer, history, data and reports."""
    listing = {
        d: sorted(p.name for p in (root / d).iterdir()) if (root / d).is_dir() else []
        for d in ("versions", "data", "reports")
    }
    history = (root / "history.jsonl").read_bytes() if (root / "history.jsonl").exists() else b""
    return {**listing, "current": registry.current_version(root), "history": history}


@pytest.mark.parametrize(("margin", "promoted"), [(-1.0, True), (0.99, False)])
def test_the_margin_decides_and_the_report_says_why(root, next_quarter, margin, promoted):
    before = registry.current_version(root)
    result = retrain(root, next_quarter, margin=margin, who="tester", **FAST)
    assert result.promoted is promoted and result.current == before
    assert registry.current_version(root) == (result.version if promoted else before)
    assert result.version in {e.version for e in registry.entries(root)}  # kept either way

    report = json.loads((root / "reports" / f"{result.version}.json").read_text())
    assert report["decision"] == ("promote" if promoted else "keep") and report["margin"] == margin
    assert report["holdout"]["rows"] == NEW_ROWS // 5
    assert report["current"]["version"] == before and report["challenger"]["version"] == result.version
    current, challenger = report["current"]["metrics"]["rmse"], report["challenger"]["metrics"]["rmse"]
    assert report["relative_rmse_change"] == pytest.approx(challenger / current - 1)
    assert (challenger <= current * (1 - margin)) is promoted
    assert report["new_data"]["sha256"] == sha256_of(next_quarter) and report["with_previous_data"] is False
    markdown = (root / "reports" / f"{result.version}.md").read_text()
    assert markdown == result.markdown and f"| challenger | {result.version} |" in markdown
    assert ("**Promoted**" if promoted else "**Kept**") in markdown

    events = registry.history(root)
    if promoted:
        assert events[-1]["version"] == result.version and events[-1]["who"] == "tester"
        assert events[-1]["why"].startswith("retrain: challenger RMSE ") and "(margin -100.0%)" in events[-1]["why"]
    else:
        assert len(events) == 1


def test_the_challenger_records_its_data_and_the_hold_out_is_never_trained_on(root, next_quarter):
    result = retrain(root, next_quarter, margin=-1.0, **FAST)
    manifest = mf.read(root / "versions" / result.version)
    facts = manifest["training_data"]
    assert facts["source"] == "file" and facts["rows"] == NEW_ROWS - NEW_ROWS // 5
    stored = root / "data" / f"{facts['sha256']}.csv"
    assert sha256_of(stored) == facts["sha256"] == result.report["training_data"]["sha256"]
    new, trained = read_csv(next_quarter), read_csv(stored)
    holdout = split(new, seed=0).X_test
    assert set(new["Product_Id"]) - set(trained["Product_Id"]) == set(holdout["Product_Id"])
    assert len(holdout) == result.report["holdout"]["rows"] == NEW_ROWS // 5


def test_with_previous_data_regenerates_synthetic_data_then_finds_the_registry_copy(root, next_quarter):
    first = retrain(root, next_quarter, with_previous_data=True, margin=-1.0, **FAST)
    previous = first.report["previous_data"]
    assert previous["origin"] == "regenerated synthetic(rows=2000, seed=3)" and previous["rows"] == 2_000
    assert first.report["training_data"]["rows"] == 2_000 + NEW_ROWS - NEW_ROWS // 5
    assert registry.current_version(root) == first.version

    # Now current was trained on a file: the registry holds it by sha256. Another seed splits the
    # new data differently, so some of its hold-out rows were trained on before: they are dropped.
    second = retrain(root, next_quarter, with_previous_data=True, margin=0.99, seed=1, **FAST)
    previous = second.report["previous_data"]
    assert previous["origin"] == f"data/{first.report['training_data']['sha256']}.csv"
    assert previous["sha256"] == first.report["training_data"]["sha256"]
    assert 0 < previous["dropped_holdout_rows"] <= NEW_ROWS // 5
    assert previous["rows"] == first.report["training_data"]["rows"] - previous["dropped_holdout_rows"]
    assert "hold-out rows" in second.markdown and not second.promoted


def test_with_previous_data_says_what_to_do_when_the_data_is_gone(tmp_path, next_quarter):
    root = tmp_path / "registry"
    lost = make_package(tmp_path / "lost", facts={"source": "file", "sha256": "ab" * 32, "rows": 2_000})
    registry.promote(root, registry.add(root, lost), "ci", "from a file we no longer have")
    before = _state(root)
    with pytest.raises(SuperKartError, match="retrain without --with-previous-data"):
        retrain(root, next_quarter, with_previous_data=True, **FAST)
    assert _state(root) == before


def test_an_empty_registry_gets_its_first_version(tmp_path, next_quarter):
    root = tmp_path / "new-registry"
    result = retrain(root, next_quarter, **FAST)
    assert result.promoted and result.current is None and registry.current_version(root) == result.version
    assert result.report["current"] is None and "first version" in result.reason
    assert "| current | (none) |" in result.markdown
    assert registry.history(root)[0]["previous"] is None
    with pytest.raises(SuperKartError, match="no current version"):
        retrain(tmp_path / "other", next_quarter, with_previous_data=True, **FAST)


def test_a_failed_retrain_changes_nothing(root, next_quarter, tmp_path):
    before = _state(root)
    bad = tmp_path / "bad.csv"
    bad.write_text(next_quarter.read_text().replace("Store_Size", "Store_Sise", 1))
    result = run_cli("retrain", "--registry", str(root), "--data", str(bad), "--n-iter", "0")
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith(f"superkart retrain: error: {bad}:") and "Store_Size" in result.stderr
    assert _state(root) == before

    with pytest.raises(DataError, match="at least"):
        few = tmp_path / "few.csv"
        few.write_text("".join(next_quarter.read_text().splitlines(keepends=True)[:11]))
        retrain(root, few, **FAST)
    assert _state(root) == before

    # Training succeeds, then the current package fails to load for the comparison: nothing is added.
    flip_one_byte(resolve_link(registry.current_link(root)) / "model.onnx")
    with pytest.raises(SuperKartError, match="model.onnx"):
        retrain(root, next_quarter, **FAST)
    assert _state(root) == before


def test_the_margin_must_be_below_one(root, next_quarter):
    with pytest.raises(SuperKartError, match="below 1"):
        retrain(root, next_quarter, margin=1.0, **FAST)
    refused = run_cli("retrain", "--registry", str(root), "--data", str(next_quarter), "--margin", "nan")
    assert refused.returncode == 2 and "--margin" in refused.stderr
    assert 0 < DEFAULT_MARGIN < 0.05
