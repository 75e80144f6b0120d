"""Retrain on new data and promote the challenger only if it beats the current model (``superkart retrain``).

The new CSV is split as training splits (:func:`~superkart_lib.development.train.split`): its
test part is the hold-out, never trained on. The challenger trains on the training part (plus,
with ``with_previous_data``, every row the current version was trained on), is written as a
package and added to the registry; then both models score the same hold-out rows through the
production ONNX runtime and the gate (:func:`~superkart_lib.development.retrain_report.decide`)
decides. The default margin, :data:`DEFAULT_MARGIN` = 0.01, promotes only a challenger whose
hold-out RMSE is at least 1% lower than the current model's: smaller differences are within what
two fits on similar data differ by chance, and each promotion makes every server swap models.

A failed or killed retrain changes nothing: nothing is added to the registry before training and
evaluation succeed, and the pointer moves last.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import DataError, SuperKartError, WriteError
from superkart_lib.contract.files import atomic_write, resolve_link, sha256_of
from superkart_lib.development import settings
from superkart_lib.development.data import data_facts, read_csv, regenerate
from superkart_lib.development.evaluate import regression_metrics
from superkart_lib.development.package import write_package
from superkart_lib.development.retrain_report import (
    DEFAULT_MARGIN,
    KEEP,
    PROMOTE,
    check_margin,
    decide,
    metric_dict,
    promotion_why,
    write_reports,
)
from superkart_lib.development.train import split, train
from superkart_lib.production import registry
from superkart_lib.production.runtime import OnnxModel

__all__ = ["DEFAULT_MARGIN", "MIN_ROWS", "RetrainResult", "previous_data", "retrain"]

#: Fewest rows of new data: its 20% hold-out must have enough rows for an RMSE worth comparing.
MIN_ROWS = 50


@dataclass(frozen=True)
class RetrainResult:
    """What a retrain did: the versions compared, the decision and where the reports are.

    ``current`` is None when the registry had no current version; ``report`` is the JSON report.
    """

    version: str
    current: str | None
    promoted: bool
    reason: str
    report: dict[str, Any]
    report_json: Path
    report_md: Path
    markdown: str


def previous_data(root: Path, manifest: dict[str, Any]) -> tuple[pd.DataFrame, str]:
    """The rows a version was trained on, from its manifest's ``training_data``; and where they came from.

    Found as ``DIR/data/<sha256>.csv``, or regenerated when the source is ``synthetic(rows=R, seed=S)``
    (its sha256 checked against the manifest's).

    Raises
    ------
    SuperKartError
        When neither is available, or the data found does not have the recorded sha256.
    """
    facts = manifest.get("training_data", {})
    sha, source, version = facts.get("sha256", ""), str(facts.get("source", "")), manifest["package_version"]
    path = registry.data_path(root, sha)
    if path is not None:
        if sha256_of(path) != sha:
            raise SuperKartError(f"{path}: its sha256 is not the one its name records; the file was altered")
        return read_csv(path), f"{registry.DATA}/{path.name}"
    regenerated = regenerate(source)
    if regenerated is not None:
        frame, regenerated_facts = regenerated
        if regenerated_facts["sha256"] != sha:
            raise SuperKartError(
                f"version {version} was trained on {source}, but regenerating it here gives other data "
                "(another generator release); retrain without --with-previous-data"
            )
        return frame, f"regenerated {source}"
    raise SuperKartError(
        f"the data version {version} was trained on (sha256 {sha[:12]}, source {source or 'unknown'}) is not in "
        f"{Path(root) / registry.DATA}; retrain without --with-previous-data"
    )


def _common_columns(*frames: pd.DataFrame) -> list[str]:
    """Columns every frame has, in the first frame's order (Product_Id is optional in a file)."""
    return [c for c in frames[0].columns if all(c in f.columns for f in frames[1:])]


def _without(frame: pd.DataFrame, rows: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """``frame`` less its rows identical to one of ``rows``: the hold-out must stay unseen."""
    keys = rows[frame.columns].drop_duplicates()
    marked = frame.merge(keys, how="left", on=list(frame.columns), indicator=True)
    keep = (marked["_merge"] == "left_only").to_numpy()
    return frame.loc[keep].reset_index(drop=True), int((~keep).sum())


def _score(package: Path, X: pd.DataFrame, y: pd.Series) -> dict[str, float]:
    """Hold-out metrics of a package's ONNX model, loaded and run as production does."""
    model = OnnxModel.from_package(package)
    return metric_dict(regression_metrics(y.to_numpy(), model.predict(X.to_dict(orient="list"))))


def retrain(
    root: Path,
    data: Path,
    with_previous_data: bool = False,
    margin: float = DEFAULT_MARGIN,
    seed: int = settings.SEED,
    n_iter: int = settings.N_ITER,
    who: str | None = None,
    families: list[str] | None = None,
    n_jobs: int = -1,
) -> RetrainResult:
    """Train a challenger on ``data``, add it to the registry at ``root``, promote it if it passes the gate.

    Parameters
    ----------
    root : Path
        The registry directory (created when it does not exist: the challenger becomes its first version).
    data : Path
        A SuperKart CSV of new rows (target required), at least :data:`MIN_ROWS` rows.
    with_previous_data : bool
        Also train on every row the current version was trained on (see :func:`previous_data`).
    margin : float
        Promote when challenger RMSE <= current RMSE * (1 - margin) on the hold-out; below 1.
    seed, n_iter, families, n_jobs
        As for :func:`~superkart_lib.development.train.train` (``seed`` also splits the new data).
    who : str, optional
        Recorded in the history on promotion (default: the login name).

    Raises
    ------
    SuperKartError
        Bad data or margin, previous data not found, a package that does not verify; the
        registry is then unchanged.
    """
    root, margin = Path(root), check_margin(margin)
    if root.exists() and not root.is_dir():  # refused before the long work, not after it
        raise WriteError(f"cannot write {root}: a file is in the way (not a registry directory)")
    new = read_csv(data)
    if len(new) < MIN_ROWS:
        raise DataError(f"{data}: {len(new)} rows; retraining needs at least {MIN_ROWS} (20% are held out)")
    parts = split(new, seed=seed)
    holdout = new.loc[parts.X_test.index]
    current = registry.current_version(root) if root.is_dir() else None
    current_dir = registry.current_link(root)
    current_manifest = None
    if current is not None:
        current_dir = resolve_link(current_dir)  # this one version is evaluated, whatever moves meanwhile
        _, current_manifest = mf.open_package(current_dir)
    frames, previous = [new.loc[parts.X_train.index]], None
    if with_previous_data:
        if current_manifest is None:
            raise SuperKartError(
                f"{root}: no current version, so no previous data; retrain without --with-previous-data"
            )
        old, origin = previous_data(root, current_manifest)
        old, dropped = _without(old[_common_columns(old, new)], holdout)
        frames.insert(0, old)
        previous = {"sha256": current_manifest["training_data"]["sha256"], "rows": len(old), "origin": origin}
        previous["dropped_holdout_rows"] = dropped
    columns = _common_columns(*frames)
    training = pd.concat([f[columns] for f in frames], ignore_index=True)

    result = train(training, seed=seed, n_iter=n_iter, families=families, n_jobs=n_jobs)
    with tempfile.TemporaryDirectory(prefix="superkart-retrain-") as tmp:
        csv_path = Path(tmp) / "training.csv"
        with atomic_write(csv_path) as f:
            training.to_csv(f, index=False)
        facts = data_facts(csv_path, training)
        package = resolve_link(write_package(result, Path(tmp) / "model", facts, frame=training))
        challenger_metrics = _score(package, parts.X_test, parts.y_test)
        current_metrics = _score(current_dir, parts.X_test, parts.y_test) if current is not None else None
        version = registry.add(root, package, data_csv=csv_path)

    promote, reason, relative = decide(
        current_metrics["rmse"] if current_metrics else None, challenger_metrics["rmse"], margin
    )
    new_sha = sha256_of(data)
    report: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "challenger": {"version": version, "metrics": challenger_metrics, "family": result.family},
        "current": (
            {
                "version": current,
                "metrics": current_metrics,
                "data_sha256": current_manifest["training_data"].get("sha256"),
            }
            if current is not None and current_manifest is not None
            else None
        ),
        "holdout": {"rows": len(holdout), "seed": seed, "share": settings.TEST_SIZE},
        "new_data": {"sha256": new_sha, "rows": len(new)},
        "training_data": {"sha256": facts["sha256"], "rows": len(training)},
        "with_previous_data": with_previous_data,
        "previous_data": previous,
        "relative_rmse_change": relative,
        "margin": margin,
        "decision": PROMOTE if promote else KEEP,
        "reason": reason,
    }
    reports = root / registry.REPORTS
    json_path, md_path = write_reports(reports, version, report)
    if promote:
        try:  # the pointer moves last, and only from the version the challenger was compared with
            registry.promote(
                root, version, who or registry.login_name(), promotion_why(relative, margin), expect_current=current
            )
        except SuperKartError as exc:
            report["decision"], report["reason"] = KEEP, f"not promoted: {exc}"
            json_path, md_path = write_reports(reports, version, report)
            promote = False
    return RetrainResult(
        version=version,
        current=current,
        promoted=promote,
        reason=report["reason"],
        report=report,
        report_json=json_path,
        report_md=md_path,
        markdown=md_path.read_text(encoding="utf-8"),
    )
