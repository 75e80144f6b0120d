"""Write the model package: one directory with the model files and the manifest.

``--out runs/latest/model`` becomes a link to an immutable version directory,
``runs/latest/model.versions/<package_version>/``. The package is written to a staging
directory beside it, then published by replacing the link in one atomic step
(:func:`superkart_lib.contract.package_dir.publish_version`): a process killed mid-save leaves the
previous package intact, and concurrent writers are safe (the last one wins).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from superkart_lib.contract import integrity, schema
from superkart_lib.contract import manifest as mf
from superkart_lib.contract import package_dir as versioned
from superkart_lib.contract.files import write_failure
from superkart_lib.contract.formats import ONNX_FILE
from superkart_lib.development import model_card, python_formats
from superkart_lib.development.onnx_export import export_onnx
from superkart_lib.development.settings import TEST_SIZE
from superkart_lib.development.train import TrainResult, split
from superkart_lib.production.drift import NUMERIC, REFERENCE_STATS, reference_from_columns

#: File name -> writer(model, path): the four Python-object formats and ONNX.
WRITERS = {**python_formats.writers(), ONNX_FILE: export_onnx}


def build_manifest(result: TrainResult, files: dict[str, dict], data: dict[str, Any]) -> dict[str, Any]:
    """Manifest of a trained result; ``files`` maps file name to sha256 and size."""
    created = datetime.now(UTC).replace(microsecond=0)
    return {
        "format_version": 1,
        "package_version": f"{created:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        "created": created.isoformat(),
        "model": {
            "family": result.family,
            "estimator": type(result.model.named_steps["model"]).__name__,
            "params": result.params,
            "tuned": result.tuned,
            "seed": result.seed,
            "n_iter": result.n_iter,
        },
        "metrics": result.metrics,
        # Every family tried, so the model card can say what the winner beat.
        "zoo": result.zoo.to_dict(orient="records"),
        "training_data": {
            **data,
            "train_rows": result.train_rows,
            "test_rows": result.test_rows,
            "test_size": TEST_SIZE,
        },
        "schema": schema.as_dict(),
        "versions": mf.installed_versions(),
        "files": files,
    }


def reference_stats(result: TrainResult, frame: pd.DataFrame) -> dict[str, Any] | None:
    """Drift reference statistics of the rows ``result`` was trained on (the training split of ``frame``).

    None when ``frame`` is not the frame ``result`` was trained on (its split has another size):
    no reference is better than a false one.
    """
    inputs = split(frame, seed=result.seed).X_train
    if len(inputs) != result.train_rows:
        return None
    return reference_from_columns(
        {name: inputs[name].to_numpy(dtype="float64" if name in NUMERIC else object) for name in inputs.columns}
    )


def _absolute(out: str | Path) -> Path:
    # "." or "a/.." has no name to version; the package is named after the directory it means.
    return Path(os.path.abspath(out))


def prepare_destination(out: str | Path) -> None:
    """Check that a package can be written to ``out``, and tidy it, before the long work of training.

    Creates the parent, removes staging directories of dead writers, and migrates a package an
    older release wrote as a plain directory (see :func:`~superkart_lib.contract.package_dir.prepare_versioned`).

    Raises
    ------
    WriteError
        In one line naming ``out``: a file in the way, a read-only or full disk, a foreign directory.
    """
    try:
        versioned.prepare_versioned(_absolute(out))
    except OSError as exc:
        raise write_failure(out, exc) from None


def write_package(
    result: TrainResult, out: str | Path, data: dict[str, Any], frame: pd.DataFrame | None = None
) -> Path:
    """Write the package for ``result`` and make ``out`` point at it, atomically.

    Parameters
    ----------
    result : TrainResult
        The trained model and how it was chosen.
    out : path
        The package path readers use; it becomes a link to ``<out>.versions/<package_version>``.
        The previous package stays readable until the new one is complete, and the newest
        :data:`~superkart_lib.contract.package_dir.KEEP_VERSIONS` versions are kept.
    data : dict
        Training-data facts for the manifest: ``sha256``, ``rows`` and ``source``.
    frame : pandas.DataFrame, optional
        The validated frame ``result`` was trained on, for the drift reference statistics
        (``reference_stats.json``); without it the package has none (``superkart drift`` says so).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    WriteError
        When the file system refuses (full disk, read-only, a file in the way); nothing is left
        behind and the previous package is intact.
    """
    target = _absolute(out)
    prepare_destination(out)
    try:
        staging = versioned.staging_dir(target)
    except OSError as exc:
        raise write_failure(out, exc) from None
    try:
        files = {}
        for name, write in WRITERS.items():
            write(result.model, staging / name)
            files[name] = mf.file_entry(staging / name)
        stats = reference_stats(result, frame) if frame is not None else None
        if stats is not None:
            (staging / REFERENCE_STATS).write_text(json.dumps(stats) + "\n", encoding="utf-8")
            files[REFERENCE_STATS] = mf.file_entry(staging / REFERENCE_STATS)
        manifest = build_manifest(result, files, data)
        # The card is rendered from the manifest, then listed in it, so both are covered by the sha256s.
        (staging / mf.CARD).write_text(model_card.render(manifest), encoding="utf-8")
        manifest["files"][mf.CARD] = mf.file_entry(staging / mf.CARD)
        manifest = integrity.sign_if_configured(manifest)
        (staging / mf.MANIFEST).write_text(mf.dumps(manifest), encoding="utf-8")
        versioned.publish_version(staging, target, manifest["package_version"])
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):  # the user's disk, not a bug: one line
            raise write_failure(out, exc) from None
        raise
    return Path(out)
