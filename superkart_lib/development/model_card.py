"""MODEL_CARD.md, generated from the manifest so the two never disagree."""

from __future__ import annotations

from typing import Any

from superkart_lib.development.data import FILE_SOURCE


def _table(header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render(manifest: dict[str, Any]) -> str:
    """The model card of a package, as Markdown."""
    model, metrics, data = manifest["model"], manifest["metrics"], manifest["training_data"]
    columns = [c for c in manifest["schema"]["columns"] if c["name"] != manifest["schema"]["target"]]
    inputs = [
        (
            f"`{c['name']}`",
            c["dtype"],
            "optional, unused" if not c["required"] else "required",
            ", ".join(c.get("categories", [])) or _range(c),
        )
        for c in columns
    ]
    zoo = [
        (row["family"], f"{row['cv_r2']:.4f}", f"{row['r2']:.4f}", f"{row['rmse']:.1f}", f"{row['mape']:.2%}")
        for row in manifest.get("zoo", [])
    ]
    files = [
        (f"`{name}`", f"{entry['bytes']:,}", f"`{entry['sha256'][:16]}…`") for name, entry in manifest["files"].items()
    ]
    versions = [(name, version or "not installed") for name, version in manifest["versions"].items()]
    params = ", ".join(f"{k}={v}" for k, v in sorted(model["params"].items())) or "defaults"
    return f"""# Model card: SuperKart sales forecast

Package version `{manifest["package_version"]}`, created {manifest["created"]}.

## What it predicts
`{manifest["schema"]["target"]}`: the total sales, in dollars, of one product in one SuperKart store.
It takes **raw** records with the dataset's columns (cleaning and feature engineering are inside
the model) and returns one prediction per record.

## Model
{model["family"]} (`{model["estimator"]}`), {"tuned" if model["tuned"] else "default hyperparameters"}: {params}.
Chosen by 3-fold cross-validated R2 on the training split among:

{_table(("family", "cv R2", "test R2", "test RMSE ($)", "test MAPE"), zoo)}

## Performance on the held-out test split ({data["test_rows"]:,} rows)
R2 {metrics["r2"]:.4f} · RMSE ${metrics["rmse"]:,.2f} · MAE ${metrics["mae"]:,.2f} · MAPE {metrics["mape"]:.2%}

## Training data
{data["rows"]:,} rows from {_origin(data["source"])} (sha256 `{data["sha256"]}`); {data["train_rows"]:,} used for
training. Data that differs from it (new stores, new product types, prices outside the range seen)
is outside what this model was validated on: unknown categories are rejected by the serving API.

## Inputs
{_table(("column", "type", "", "allowed"), inputs)}

## Files
{_table(("file", "bytes", "sha256"), files)}

Every loader checks a file's sha256 against `manifest.json` before deserialising it. `model.onnx`
needs only numpy and onnxruntime; the other formats need the library versions below, and loading
`model.pkl`, `model.joblib` or `model.cloudpickle` can execute code: load them only from packages
whose manifest checks out.

## Library versions at training
{_table(("library", "version"), versions)}
"""


def _origin(source: str) -> str:
    """Where training data came from, as the card says it: a file is named by its sha256 alone."""
    return "a CSV file" if source == FILE_SOURCE else f"`{source}`"


def _range(column: dict[str, Any]) -> str:
    low = column.get("minimum")
    high = column.get("maximum")
    if low is None and high is None:
        return ""
    op = ">" if column.get("exclusive_minimum") else ">="
    return " and ".join(
        part
        for part in (f"{op} {low:g}" if low is not None else "", f"<= {high:g}" if high is not None else "")
        if part
    )
