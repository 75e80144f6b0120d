"""`superkart run`: the papermill pipeline, its outputs, and how it fails."""

from __future__ import annotations

import json
import re

import nbformat
import papermill
import pytest

from superkart_lib.contract.errors import SuperKartError
from superkart_lib.course.runner import NOTEBOOKS, check_overrides, declared_parameters, notebooks_dir, parse_overrides
from tests.conftest import run_cli

EXPECTED_METRICS = {"r2", "rmse", "mae", "mape"}


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    result = run_cli("run", "--out", str(out), "-p", "rows=1500", "-p", "n_iter=2", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_run_leaves_every_output(small_run):
    out, result = small_run
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == sorted(NOTEBOOKS)
    report = out / "report"
    pages = sorted(p.name for p in report.iterdir())
    assert pages == sorted(["index.html", *[n.replace(".ipynb", ".html") for n in NOTEBOOKS]])
    index = (report / "index.html").read_text()
    for notebook in NOTEBOOKS:
        assert f'href="{notebook.replace(".ipynb", ".html")}"' in index
    exploration = nbformat.read(out / "notebooks" / "01_exploration.ipynb", as_version=4)
    images = [o for c in exploration.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) >= 5, "the exploration notebook draws its plots"
    page = (report / "01_exploration.html").read_text()
    assert page.count('src="data:image/png;base64,') >= len(images), "plots are embedded in the report"
    assert {"manifest.json", "model.joblib"} <= {p.name for p in (out / "model").iterdir()}
    assert f"report:             {report / 'index.html'}" in result.stdout
    for i, notebook in enumerate(NOTEBOOKS, start=1):
        assert f"notebook {i} of {len(NOTEBOOKS)}: {notebook}" in result.stderr


def test_summary_contents(small_run):
    out, _ = small_run
    summary = json.loads((out / "summary.json").read_text())
    families = {m["family"] for m in summary["models"]}
    assert len(families) == 7
    for model in summary["models"]:
        assert EXPECTED_METRICS | {"cv_r2"} <= set(model)
    best = summary["best"]
    assert best["family"] in families and best["params"]
    assert set(best["metrics"]) == EXPECTED_METRICS
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert best["package_version"] == manifest["package_version"]
    assert best["metrics"] == manifest["metrics"]
    assert summary["data"]["rows"] == 1500
    assert summary["parameters"] == {"rows": 1500, "n_iter": 2}


def test_executed_notebooks_received_their_parameters(small_run):
    out, _ = small_run
    for notebook in NOTEBOOKS:
        nb = nbformat.read(out / "notebooks" / notebook, as_version=4)
        injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
        assert len(injected) == 1
        assert "rows = 1500" in injected[0].source
        assert f'output_dir = "{out}"' in injected[0].source


def test_bad_data_path_stops_with_partial_notebook(tmp_path):
    out = tmp_path / "out"
    missing = tmp_path / "nowhere.csv"
    result = run_cli("run", "--out", str(out), "--data", str(missing), "--quiet")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("superkart run: error: notebook 01_exploration.ipynb failed at cell [")
    assert f"DataError: {missing}: no such file" in last
    assert "Traceback" not in result.stderr
    partial = nbformat.read(out / "notebooks" / "01_exploration.ipynb", as_version=4)
    tags = [t for c in partial.cells for t in c.metadata.get("tags", [])]
    assert "papermill-error-cell-tag" in tags, "papermill's error banner is kept"
    assert not (out / "notebooks" / "02_preprocessing.ipynb").exists()
    assert not (out / "summary.json").exists()


def is_parameters(cell) -> bool:
    return "parameters" in cell.metadata.get("tags", [])


def test_every_notebook_declares_typed_documented_parameters():
    for notebook in NOTEBOOKS:
        parameters = papermill.inspect_notebook(str(notebooks_dir() / notebook))
        assert {"data_path", "output_dir", "seed"} <= set(parameters), notebook
        for name, info in parameters.items():
            assert info["inferred_type_name"] in {"int", "str", "float", "bool"}, (notebook, name)
            assert info["help"], (notebook, name)
        # papermill skips a line it cannot parse (with a notice on stderr): every assignment must be read.
        cell = next(c for c in nbformat.read(notebooks_dir() / notebook, as_version=4).cells if is_parameters(c))
        assigned = [line.split(":")[0] for line in cell.source.splitlines() if re.match(r"^\w+\s*:", line)]
        assert assigned == list(parameters), (notebook, assigned, list(parameters))


def test_notebook_defaults_are_the_librarys():
    """Papermill needs literal defaults; they must still be the constants the command line uses."""
    from superkart_lib.contract.schema import REAL_ROWS
    from superkart_lib.development.settings import N_ITER, SEED

    expected = {"rows": str(REAL_ROWS), "seed": str(SEED), "n_iter": str(N_ITER)}
    for notebook in NOTEBOOKS:
        parameters = papermill.inspect_notebook(str(notebooks_dir() / notebook))
        for name, default in expected.items():
            if name in parameters:
                assert parameters[name]["default"] == default, (notebook, name)


def test_overrides_are_checked():
    declared = {n: declared_parameters(notebooks_dir() / n) for n in NOTEBOOKS}
    assert check_overrides({"rows": 10, "n_iter": 0}, declared) == {"rows": 10, "n_iter": 0}
    with pytest.raises(SuperKartError, match="unknown parameter 'nrows'.*rows"):
        check_overrides({"nrows": 10}, declared)
    with pytest.raises(SuperKartError, match="parameter 'rows' must be int, got 'many'"):
        check_overrides({"rows": "many"}, declared)
    with pytest.raises(SuperKartError, match="parameter 'seed' must be int, got True"):
        check_overrides({"seed": True}, declared)
    with pytest.raises(SuperKartError, match="use --data or --out"):
        check_overrides({"output_dir": "x"}, declared)


def test_parse_overrides(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("rows: 2000\nseed: 3\n")
    assert parse_overrides(str(params), ["seed=4", "data_note=hello"]) == {
        "rows": 2000,
        "seed": 4,
        "data_note": "hello",
    }
    params.write_text("- just\n- a list\n")
    with pytest.raises(SuperKartError, match="expected a mapping"):
        parse_overrides(str(params), [])
    with pytest.raises(SuperKartError, match="expected NAME=VALUE"):
        parse_overrides(None, ["seed"])
    with pytest.raises(SuperKartError, match="no such parameters file"):
        parse_overrides(str(tmp_path / "missing.yaml"), [])


def test_unknown_parameter_from_the_command_line(tmp_path):
    result = run_cli("run", "--out", str(tmp_path / "out"), "-p", "n_iters=3")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("superkart run: error: unknown parameter 'n_iters'")
