"""Write the model package: one directory with the model files and the manifest.

The package is written to a temporary sibling directory and moved into place, so
a process killed mid-save leaves the previous package intact.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from superkart_lib.contract import integrity, schema
from superkart_lib.contract import manifest as mf
from superkart_lib.contract.formats import ONNX_FILE
from superkart_lib.development import model_card, python_formats
from superkart_lib.development.onnx_export import export_onnx
from superkart_lib.development.settings import TEST_SIZE
from superkart_lib.development.train import TrainResult

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


def write_package(result: TrainResult, out: str | Path, data: dict[str, Any]) -> Path:
    """Write the package for ``result`` to directory ``out`` atomically.

    Parameters
    ----------
    result : TrainResult
        The trained model and how it was chosen.
    out : path
        Target directory; an existing package there is replaced only once the new
        one is complete.
    data : dict
        Training-data facts for the manifest: ``sha256``, ``rows`` and ``source``.

    Returns
    -------
    Path
        ``out``.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; a package is meant to be shared
        files = {}
        for name, write in WRITERS.items():
            write(result.model, staging / name)
            files[name] = mf.file_entry(staging / name)
        manifest = build_manifest(result, files, data)
        # The card is rendered from the manifest, then listed in it, so both are covered by the sha256s.
        (staging / mf.CARD).write_text(model_card.render(manifest), encoding="utf-8")
        manifest["files"][mf.CARD] = mf.file_entry(staging / mf.CARD)
        manifest = integrity.sign_if_configured(manifest)
        (staging / mf.MANIFEST).write_text(mf.dumps(manifest), encoding="utf-8")
        _swap_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out


def _swap_into_place(staging: Path, out: Path) -> None:
    # Two renames: the old package stays whole until the new one is complete.
    if out.exists():
        retired = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
        os.replace(out, retired)
        os.replace(staging, out)
        shutil.rmtree(retired, ignore_errors=True)
    else:
        os.replace(staging, out)
