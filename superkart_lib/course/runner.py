"""``superkart run``: execute the notebooks in order with papermill, each in a fresh kernel.

Importing this module needs only the standard library (the command line reads its defaults
here); papermill, PyYAML and the workspace load when a run starts.

Every notebook gets ``output_dir`` (the run directory) and ``data_path`` (the user's
CSV for the first, the validated copy it wrote for the rest), plus any override it
declares. A failing cell stops the run; papermill keeps the partial notebook with its
error banner.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from superkart_lib.contract.errors import SuperKartError, first_line
from superkart_lib.contract.files import write_text_atomically

if TYPE_CHECKING:
    from superkart_lib.course.workspace import Workspace

#: Where ``superkart run`` and ``make run`` write unless told otherwise.
RUN_DIR = "runs/latest"

NOTEBOOKS: tuple[str, ...] = (
    "01_exploration.ipynb",
    "02_preprocessing.ipynb",
    "03_training.ipynb",
    "04_tuning.ipynb",
    "05_serialization.ipynb",
    "06_deployment.ipynb",
    "07_lifecycle.ipynb",
)
#: Parameters the runner sets itself; users choose them through --data and --out.
MANAGED = ("data_path", "output_dir")
_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}


def notebooks_dir() -> Path:
    """The directory holding the course notebooks (``SUPERKART_NOTEBOOKS`` overrides)."""
    path = Path(os.environ.get("SUPERKART_NOTEBOOKS") or Path(__file__).resolve().parents[2] / "notebooks")
    if not path.is_dir():
        raise SuperKartError(f"notebooks not found at {path} (set SUPERKART_NOTEBOOKS to their directory)")
    return path


def declared_parameters(notebook: Path) -> dict[str, dict[str, Any]]:
    """Name -> papermill's description (type, default, help) of a notebook's parameters."""
    import papermill

    return dict(papermill.inspect_notebook(str(notebook)))


def parse_overrides(params_file: str | None, pairs: list[str]) -> dict[str, Any]:
    """Parameters from a YAML mapping file, then ``NAME=VALUE`` pairs (YAML-typed values)."""
    import yaml

    overrides: dict[str, Any] = {}
    if params_file:
        path = Path(params_file)
        if not path.is_file():
            raise SuperKartError(f"{path}: no such parameters file")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise SuperKartError(f"{path}: not valid YAML ({first_line(exc)})") from None
        if not isinstance(loaded, dict):
            raise SuperKartError(f"{path}: expected a mapping of parameter names to values")
        overrides.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise SuperKartError(f"-p {pair!r}: expected NAME=VALUE")
        overrides[name.strip()] = yaml.safe_load(value) if value.strip() else ""
    return overrides


def check_overrides(overrides: dict[str, Any], declared: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Reject unknown names and values of the wrong type; return overrides typed as declared."""
    known: dict[str, str] = {}
    for parameters in declared.values():
        for name, info in parameters.items():
            known.setdefault(name, info.get("inferred_type_name", "None"))
    checked = {}
    for name, value in overrides.items():
        if name in MANAGED:
            raise SuperKartError(f"parameter {name!r} is set by the runner: use --data or --out")
        if name not in known:
            allowed = ", ".join(sorted(n for n in known if n not in MANAGED))
            raise SuperKartError(f"unknown parameter {name!r} (notebooks declare: {allowed})")
        expected = known[name]
        if expected == "str" and not isinstance(value, str):
            value = str(value)
        types = _TYPES.get(expected)
        if types and (not isinstance(value, types) or (isinstance(value, bool) and expected != "bool")):
            raise SuperKartError(f"parameter {name!r} must be {expected}, got {value!r}")
        checked[name] = value
    return checked


def run_notebooks(
    out: str | Path,
    data: str | None = None,
    overrides: dict[str, Any] | None = None,
    notebooks: tuple[str, ...] = NOTEBOOKS,
    progress: bool = True,
) -> Workspace:
    """Execute ``notebooks`` in order into ``out/notebooks``; return the run's workspace.

    Raises
    ------
    SuperKartError
        Naming notebook, cell and error when a cell fails (the partial notebook stays).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    from superkart_lib.course.workspace import Workspace

    source = notebooks_dir()
    paths = [source / name for name in notebooks]
    declared = {p.name: declared_parameters(p) for p in paths}
    overrides = check_overrides(overrides or {}, declared)
    workspace = Workspace.at(Path(out).resolve())
    executed = workspace.root / "notebooks"
    executed.mkdir(exist_ok=True)
    first_data = str(Path(data).resolve()) if data else ""
    for i, path in enumerate(paths, start=1):
        parameters = {k: v for k, v in overrides.items() if k in declared[path.name]}
        parameters["output_dir"] = str(workspace.root)
        parameters["data_path"] = first_data if i == 1 else str(workspace.data_csv)
        print(f"notebook {i} of {len(paths)}: {path.name}", file=sys.stderr, flush=True)
        try:
            papermill.execute_notebook(
                str(path),
                str(executed / path.name),
                parameters=parameters,
                kernel_name="python3",
                progress_bar=progress,
                cwd=str(workspace.root),
            )
        except PapermillExecutionError as exc:
            reason = first_line(str(exc.evalue))
            raise SuperKartError(
                f"notebook {path.name} failed at cell [{exc.exec_count}]: {exc.ename}: {reason} "
                f"(partial notebook: {executed / path.name})"
            ) from None
    return workspace


def write_summary(workspace: Workspace, notebooks: tuple[str, ...], parameters: dict[str, Any]) -> dict[str, Any]:
    """Gather every model's metrics, the best model and the format comparison into summary.json."""
    from superkart_lib.contract import manifest as mf
    from superkart_lib.course.workspace import load_zoo

    package = mf.read(workspace.model_dir)
    zoo = load_zoo(workspace)
    summary = {
        "data": package["training_data"],
        "models": [] if zoo is None else zoo.to_dict(orient="records"),
        "best": {
            "family": package["model"]["family"],
            "params": package["model"]["params"],
            "tuned": package["model"]["tuned"],
            "metrics": package["metrics"],
            "package_version": package["package_version"],
            "package": str(workspace.model_dir),
        },
        "notebooks": list(notebooks),
        "parameters": parameters,
    }
    if workspace.formats_json.is_file():
        summary["formats"] = json.loads(workspace.formats_json.read_text())
    write_text_atomically(workspace.summary_json, mf.dumps(summary))
    return summary
