"""Where the notebooks and ``superkart run`` keep their results, and how each step
gets what it needs when an upstream notebook has not run (so every notebook runs
standalone with its defaults)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from superkart_lib.contract.files import atomic_write, write_text_atomically
from superkart_lib.contract.schema import REAL_ROWS
from superkart_lib.development.data import data_facts, read_csv
from superkart_lib.development.settings import N_ITER, SEED
from superkart_lib.development.synthetic import generate


@dataclass(frozen=True)
class Workspace:
    """The files of one run under ``root``."""

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> Workspace:
        path = Path(root)
        path.mkdir(parents=True, exist_ok=True)
        return cls(path)

    @property
    def data_csv(self) -> Path:
        """The validated data the run works on (written by 01_exploration)."""
        return self.root / "data.csv"

    @property
    def zoo_json(self) -> Path:
        """Every family's metrics (written by 03_training)."""
        return self.root / "zoo.json"

    @property
    def model_dir(self) -> Path:
        """The model package (written by 04_tuning)."""
        return self.root / "model"

    @property
    def formats_json(self) -> Path:
        """The format comparison (written by 05_serialization)."""
        return self.root / "formats.json"

    @property
    def registry_dir(self) -> Path:
        """The model registry 07_lifecycle builds: versions, ``current``, history, reports."""
        return self.root / "registry"

    @property
    def summary_json(self) -> Path:
        return self.root / "summary.json"


def gather(data_path: str, workspace: Workspace, rows: int = REAL_ROWS, seed: int = SEED) -> pd.DataFrame:
    """Read and validate ``data_path`` or, when it is empty, generate synthetic data.

    Writes the validated frame to ``workspace.data_csv`` (unless it is that file)
    and returns it, shape (rows, 12).
    """
    if data_path:
        frame = read_csv(data_path)
        if Path(data_path).resolve() == workspace.data_csv.resolve():
            return frame
    else:
        frame = generate(rows=rows, seed=seed)
    with atomic_write(workspace.data_csv) as f:
        frame.to_csv(f, index=False)
    return frame


def save_zoo(zoo: pd.DataFrame, workspace: Workspace) -> None:
    write_text_atomically(workspace.zoo_json, zoo.to_json(orient="records", indent=2) + "\n")


def load_zoo(workspace: Workspace) -> pd.DataFrame | None:
    """The zoo table 03_training wrote, or None when it has not run."""
    if not workspace.zoo_json.is_file():
        return None
    return pd.DataFrame(json.loads(workspace.zoo_json.read_text()))


def load_or_compare_zoo(workspace: Workspace, data, seed: int = SEED) -> pd.DataFrame:
    """The zoo table from 03_training, or (standalone) compute and save it."""
    from superkart_lib.development.train import compare_zoo

    zoo = load_zoo(workspace)
    if zoo is None:
        zoo = compare_zoo(data, seed=seed)
        save_zoo(zoo, workspace)
    return zoo


def load_or_train_package(workspace: Workspace, frame: pd.DataFrame, seed: int = SEED, n_iter: int = N_ITER) -> Path:
    """The model package 04_tuning wrote, or (standalone) train and write it."""
    from superkart_lib.contract.manifest import MANIFEST
    from superkart_lib.development.package import write_package
    from superkart_lib.development.train import train

    if not (workspace.model_dir / MANIFEST).is_file():
        result = train(frame, seed=seed, n_iter=n_iter, zoo=load_zoo(workspace))
        write_package(result, workspace.model_dir, data_facts(workspace.data_csv, frame), frame=frame)
    return workspace.model_dir
