"""Tables for exploring SuperKart data: schema check, data-quality findings, summaries."""

from __future__ import annotations

import pandas as pd

from superkart_lib.contract import schema
from superkart_lib.development.data import clean


def schema_check(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per schema column: expected and actual dtype, nulls, distinct values."""
    rows = []
    for column in schema.COLUMNS:
        present = column.name in frame.columns
        values = frame[column.name] if present else pd.Series(dtype=object)
        rows.append(
            {
                "column": column.name,
                "expected": column.dtype,
                "actual": str(values.dtype) if present else "missing",
                "nulls": int(values.isna().sum()),
                "distinct": int(values.nunique()),
                "ok": present and str(values.dtype) == column.dtype and not values.isna().any(),
            }
        )
    return pd.DataFrame(rows).set_index("column")


def quality_findings(frame: pd.DataFrame) -> pd.DataFrame:
    """The data-quality facts a student should notice before modelling."""
    sugar = frame["Product_Sugar_Content"]
    dirty = sugar.isin(list(schema.SUGAR_ALIASES)).sum()
    per_store = frame.groupby("Store_Id")[list(schema.STORE_ATTRIBUTES)].nunique()
    group = frame["Product_Type"].map(schema.PRODUCT_GROUP_OF)
    findings = {
        "rows": len(frame),
        "duplicate rows": int(frame.duplicated().sum()),
        "null cells": int(frame.isna().sum().sum()),
        "Product_Id unique per row": bool(frame["Product_Id"].is_unique) if "Product_Id" in frame else "n/a",
        "dirty sugar labels ('reg')": f"{dirty} ({dirty / len(frame):.1%})",
        "store attributes fixed per store": bool((per_store == 1).all().all()),
        "NC products not 'No Sugar'": int(((group == "NC") & (sugar != "No Sugar")).sum()),
        "FD/DR products 'No Sugar'": int(((group != "NC") & (sugar == "No Sugar")).sum()),
    }
    return pd.DataFrame({"finding": list(findings), "value": [str(v) for v in findings.values()]}).set_index("finding")


def numeric_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """count, mean, sd, min, quartiles and max of every numeric column, rounded."""
    return frame.describe().T.round(3)


def sales_by_store(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows, sales mean and sd, and mean weight and MRP per store, with its attributes."""
    table = frame.groupby("Store_Id").agg(
        rows=(schema.TARGET, "size"),
        sales_mean=(schema.TARGET, "mean"),
        sales_sd=(schema.TARGET, "std"),
        weight_mean=("Product_Weight", "mean"),
        mrp_mean=("Product_MRP", "mean"),
    )
    stores = pd.DataFrame([vars(s) for s in schema.STORES.values()]).set_index("store_id")
    return stores.join(table, how="inner").round(1)


def correlations(frame: pd.DataFrame) -> pd.DataFrame:
    """Pearson correlations of the numeric columns, rounded to 2 decimals."""
    numeric = [c.name for c in schema.COLUMNS if c.kind == "number"]
    return frame[numeric].corr().round(2)


def cleaning_effect(frame: pd.DataFrame) -> pd.DataFrame:
    """Sugar-label counts before and after :func:`superkart_lib.development.data.clean`."""
    column = "Product_Sugar_Content"
    table = pd.DataFrame({"raw": frame[column].value_counts(), "cleaned": clean(frame)[column].value_counts()})
    return table.fillna(0).astype(int)
