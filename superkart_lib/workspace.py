"""Where the notebooks and ``superkart run`` keep their results, and how each step
gets what it needs when an upstream notebook has not run (so every notebook runs
standalone with its defaults)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from superkart_lib.data import read_csv, sha256_file
from superkart_lib.synthetic import REAL_ROWS, generate


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
    def summary_json(self) -> Path:
        return self.root / "summary.json"


def gather(data_path: str, workspace: Workspace, rows: int = REAL_ROWS, seed: int = 0) -> pd.DataFrame:
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
    partial = workspace.data_csv.with_suffix(".partial")
    frame.to_csv(partial, index=False)
    partial.replace(workspace.data_csv)
    return frame


def load_training_data(path: str | None, rows: int = REAL_ROWS, seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """A validated frame from ``path``, or the built-in synthetic data; plus the facts the
    manifest records (for synthetic data, the sha256 of its CSV text)."""
    if path:
        frame = read_csv(path)
        return frame, data_facts(path, frame)
    frame = generate(rows=rows, seed=seed)
    digest = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    return frame, {"source": f"synthetic(rows={rows}, seed={seed})", "sha256": digest, "rows": len(frame)}


def data_facts(path: str | Path, frame: pd.DataFrame) -> dict:
    """What the manifest records about training data: source, sha256 and rows."""
    return {"source": str(path), "sha256": sha256_file(path), "rows": len(frame)}


def save_zoo(zoo: pd.DataFrame, workspace: Workspace) -> None:
    workspace.zoo_json.write_text(zoo.to_json(orient="records", indent=2) + "\n")


def load_zoo(workspace: Workspace) -> pd.DataFrame | None:
    """The zoo table 03_training wrote, or None when it has not run."""
    if not workspace.zoo_json.is_file():
        return None
    return pd.DataFrame(json.loads(workspace.zoo_json.read_text()))


def load_or_compare_zoo(workspace: Workspace, data, seed: int = 0) -> pd.DataFrame:
    """The zoo table from 03_training, or (standalone) compute and save it."""
    from superkart_lib.train import compare_zoo

    zoo = load_zoo(workspace)
    if zoo is None:
        zoo = compare_zoo(data, seed=seed)
        save_zoo(zoo, workspace)
    return zoo


def load_or_train_package(workspace: Workspace, frame: pd.DataFrame, seed: int = 0, n_iter: int = 20) -> Path:
    """The model package 04_tuning wrote, or (standalone) train and write it."""
    from superkart_lib.manifest import MANIFEST
    from superkart_lib.package import write_package
    from superkart_lib.train import train

    if not (workspace.model_dir / MANIFEST).is_file():
        result = train(frame, seed=seed, n_iter=n_iter, zoo=load_zoo(workspace))
        write_package(result, workspace.model_dir, data_facts(workspace.data_csv, frame))
    return workspace.model_dir
