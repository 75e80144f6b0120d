"""Figures for the notebooks and reports. Each function returns a matplotlib Figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from superkart_lib.contract import schema
from superkart_lib.course.explore import correlations

NUMERIC = [c.name for c in schema.COLUMNS if c.kind == "number"]
DPI = 80


def _figure(rows: int = 1, cols: int = 1, figsize: tuple[float, float] = (7, 3.5)):
    # A bare Figure, not pyplot's: Jupyter then shows it once (as the cell's value),
    # and nothing accumulates in pyplot's global registry.
    fig = Figure(figsize=figsize, dpi=DPI)
    return fig, fig.subplots(rows, cols, squeeze=False)


def numeric_histograms(frame: pd.DataFrame) -> Figure:
    """Histogram of every numeric column."""
    fig, axes = _figure(1, len(NUMERIC), (4 * len(NUMERIC), 3.2))
    for ax, column in zip(axes[0], NUMERIC, strict=True):
        ax.hist(frame[column], bins=40, color="#4c72b0")
        ax.set_title(column, fontsize=9)
    fig.set_layout_engine("tight")
    return fig


def category_counts(frame: pd.DataFrame) -> Figure:
    """Bar chart of the row count per category of every categorical input column."""
    columns = [c.name for c in schema.COLUMNS if c.kind == "category"]
    fig, axes = _figure(2, 3, (15, 7))
    for ax, column in zip(axes.flat, columns, strict=True):
        counts = frame[column].value_counts().sort_values()
        ax.barh(counts.index.astype(str), counts.to_numpy(), color="#55a868")
        ax.set_title(column, fontsize=9)
        ax.tick_params(labelsize=7)
    fig.set_layout_engine("tight")
    return fig


def sales_by_store(frame: pd.DataFrame) -> Figure:
    """Box plot of sales per store."""
    stores = sorted(frame["Store_Id"].unique())
    fig, axes = _figure(figsize=(7, 3.5))
    ax = axes[0, 0]
    ax.boxplot([frame.loc[frame["Store_Id"] == s, schema.TARGET] for s in stores], tick_labels=stores)
    ax.set_ylabel("sales ($)")
    ax.set_title("Sales by store")
    fig.set_layout_engine("tight")
    return fig


def sales_against(frame: pd.DataFrame, columns: tuple[str, ...] = ("Product_MRP", "Product_Weight")) -> Figure:
    """Scatter of sales against each of ``columns``, coloured by store."""
    fig, axes = _figure(1, len(columns), (6 * len(columns), 4))
    for ax, column in zip(axes[0], columns, strict=True):
        for store, rows in frame.groupby("Store_Id"):
            ax.scatter(rows[column], rows[schema.TARGET], s=4, alpha=0.4, label=store)
        ax.set_xlabel(column)
        ax.set_ylabel("sales ($)")
    axes[0, 0].legend(markerscale=3, fontsize=8)
    fig.set_layout_engine("tight")
    return fig


def correlation_heatmap(frame: pd.DataFrame) -> Figure:
    """Heatmap of the numeric correlations with the values written in."""
    corr = correlations(frame)
    fig, axes = _figure(figsize=(6, 5))
    ax = axes[0, 0]
    image = ax.imshow(corr.to_numpy(), vmin=-1, vmax=1, cmap="coolwarm")
    ax.set_xticks(range(len(corr)), corr.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(corr)), corr.index, fontsize=8)
    for (i, j), value in np.ndenumerate(corr.to_numpy()):
        ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax)
    fig.set_layout_engine("tight")
    return fig


def metric_bars(table: pd.DataFrame, metric: str = "r2", label: str = "family") -> Figure:
    """Horizontal bars of one metric per row of ``table``."""
    ordered = table.sort_values(metric)
    fig, axes = _figure(figsize=(7, 0.45 * len(table) + 1))
    ax = axes[0, 0]
    ax.barh(ordered[label], ordered[metric], color="#8172b2")
    ax.set_xlabel(f"test {metric}")
    ax.set_xlim(min(0.0, ordered[metric].min()), max(1.0, ordered[metric].max()) if metric == "r2" else None)
    fig.set_layout_engine("tight")
    return fig


def residuals(y_true, y_pred) -> Figure:
    """Residuals against predictions, and their histogram, in dollars."""
    y_true, y_pred = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    error = y_true - y_pred
    fig, axes = _figure(1, 2, (11, 3.8))
    left, right = axes[0]
    left.scatter(y_pred, error, s=4, alpha=0.4)
    left.axhline(0, color="black", linewidth=0.8)
    left.set_xlabel("predicted sales ($)")
    left.set_ylabel("actual - predicted ($)")
    right.hist(error, bins=50, color="#c44e52")
    right.set_xlabel("actual - predicted ($)")
    fig.set_layout_engine("tight")
    return fig


def importance_bars(importance: pd.DataFrame) -> Figure:
    """Bars of permutation importance (mean drop in R2) with their sd as error bars."""
    ordered = importance.sort_values("mean")
    fig, axes = _figure(figsize=(7, 4))
    ax = axes[0, 0]
    ax.barh(ordered.index, ordered["mean"], xerr=ordered["sd"], color="#64b5cd")
    ax.set_xlabel("drop in test R2 when the column is shuffled")
    fig.set_layout_engine("tight")
    return fig


def search_scores(table: pd.DataFrame) -> Figure:
    """Cross-validated R2 of every search candidate, best first, with +-1 sd."""
    ordered = table.sort_values("cv_r2", ascending=False).reset_index(drop=True)
    fig, axes = _figure(figsize=(7, 3.5))
    ax = axes[0, 0]
    ax.errorbar(ordered.index + 1, ordered["cv_r2"], yerr=ordered["cv_r2_std"], fmt="o", markersize=4)
    ax.set_xlabel("candidate (ranked)")
    ax.set_ylabel("cross-validated R2")
    fig.set_layout_engine("tight")
    return fig
