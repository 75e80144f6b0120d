"""HTML report of a run: each executed notebook as a page (plots embedded) and an index."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

METRIC_FORMATS = {"cv_r2": "{:.4f}", "r2": "{:.4f}", "rmse": "{:.1f}", "mae": "{:.1f}", "mape": "{:.2%}"}


def notebook_pages(executed: Path, report: Path) -> list[Path]:
    """Convert every executed notebook in ``executed`` to a self-contained HTML page."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    report.mkdir(parents=True, exist_ok=True)
    pages = []
    for notebook in sorted(executed.glob("*.ipynb")):
        body, _ = exporter.from_filename(str(notebook))
        page = report / f"{notebook.stem}.html"
        page.write_text(body, encoding="utf-8")
        pages.append(page)
    return pages


def _models_table(models: list[dict[str, Any]], best: str) -> str:
    head = "".join(f"<th>{html.escape(m)}</th>" for m in ("family", *METRIC_FORMATS))
    rows = []
    for model in models:
        cells = "".join(f"<td>{fmt.format(model[m])}</td>" for m, fmt in METRIC_FORMATS.items() if m in model)
        mark = ' class="best"' if model["family"] == best else ""
        rows.append(f"<tr{mark}><td>{html.escape(model['family'])}</td>{cells}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def index_page(report: Path, pages: list[Path], summary: dict[str, Any]) -> Path:
    """Write ``report/index.html`` linking every page, with the models and the best one."""
    best = summary["best"]
    metrics = " · ".join(
        f"{m} {METRIC_FORMATS[m].format(v)}" for m, v in best["metrics"].items() if m in METRIC_FORMATS
    )
    links = "".join(f'<li><a href="{html.escape(p.name)}">{html.escape(p.stem)}</a></li>' for p in pages)
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SuperKart run report</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .3rem .8rem; border-bottom: 1px solid #ddd; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }} tr.best {{ background: #eef6ee; font-weight: 600; }}
</style></head><body>
<h1>SuperKart run report</h1>
<p>Data: {html.escape(str(summary["data"].get("source", "")))} ({summary["data"].get("rows", "?")} rows).</p>
<h2>Notebooks</h2><ol>{links}</ol>
<h2>Best model: {html.escape(best["family"])} ({"tuned" if best["tuned"] else "defaults"})</h2>
<p>Test split: {html.escape(metrics)}. Package version {html.escape(best["package_version"])}.</p>
<h2>Every model tried</h2>{_models_table(summary["models"], best["family"])}
</body></html>
"""
    path = report / "index.html"
    path.write_text(text, encoding="utf-8")
    return path


def write_report(executed: Path, report: Path, summary: dict[str, Any]) -> Path:
    """Notebook pages plus the index; returns the index path."""
    return index_page(report, notebook_pages(executed, report), summary)
