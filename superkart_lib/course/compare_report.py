"""Present a format comparison (:func:`superkart_lib.course.compare.compare_formats`): its fixed-width
text table, its bar chart, and its JSON records and file (``formats.json`` for summary.json).

Nothing here measures; it reads the table and its ``attrs`` only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from superkart_lib.contract.formats import ONNX_FILE
from superkart_lib.course.compare import COLUMNS, REFERENCE, latency_ratio

#: Panels of :func:`comparison_chart`: size, fresh-process load, single-row p50, batch throughput.
CHART_PANELS = 4
#: Per column of :data:`~.compare.COLUMNS` in the text table: header (with unit), how a value is written.
_LOOKS: dict[str, tuple[str, Callable[[Any], str]]] = {
    "format": ("format", str),
    "size_bytes": ("size (bytes)", "{:,}".format),
    "save_ms": ("save ms", "{:,.1f}".format),
    "import_ms": ("import ms", "{:,.0f}".format),
    "load_ms": ("load ms", "{:,.1f}".format),
    "process_ms": ("process ms", "{:,.0f}".format),
    "p50_us": ("1-row p50 µs", "{:,.0f}".format),
    "p99_us": ("1-row p99 µs", "{:,.0f}".format),
    "rows_per_s": ("batch rows/s", "{:,.0f}".format),
    "parity_usd": ("max |Δ| $", "{:.3g}".format),
    "executes_code": ("load runs code", lambda v: "yes" if v else "no"),
    "requires": ("needs installed", ", ".join),
}
#: The text table: column, header, how a value is written; every column but ``file``, in table order.
_SHOWN: tuple[tuple[str, str, Callable[[Any], str]], ...] = tuple(
    (key, *_LOOKS[key]) for key in COLUMNS if key != "file"
)


def format_table(table: pd.DataFrame) -> str:
    """Fixed-width text of a :func:`~.compare.compare_formats` table with its data and latency ratio."""
    cells = [[render(value) for value in table[key]] for key, _, render in _SHOWN]
    widths = [max(len(head), *(len(c) for c in col)) for (_, head, _), col in zip(_SHOWN, cells, strict=True)]
    # Text columns read best left-aligned; numbers right-aligned so digits line up.
    left = {"format", "requires", "executes_code"}
    align = [str.ljust if key in left else str.rjust for key, _, _ in _SHOWN]
    lines = ["  ".join(a(head, w) for a, (_, head, _), w in zip(align, _SHOWN, widths, strict=True)).rstrip()]
    for i in range(len(table)):
        lines.append("  ".join(a(col[i], w) for a, col, w in zip(align, cells, widths, strict=True)).rstrip())
    attrs = table.attrs
    if "data" in attrs:
        lines.append(f"rows: {attrs['data']}; timings: medians of {attrs['repeats']} runs, single-threaded")
    if ONNX_FILE in set(table["file"]) and REFERENCE in set(table["file"]):
        r = latency_ratio(table)
        lines.append(
            f"one row: ONNX from a dict p50 {r['onnx_dict_p50_us']:,.0f} µs vs scikit-learn on a one-row DataFrame "
            f"p50 {r['sklearn_pandas_p50_us']:,.0f} µs: ratio {r['ratio']:.3f} ({r['speedup']:.1f}x faster)"
        )
    return "\n".join(lines)


def comparison_chart(table: pd.DataFrame) -> Figure:
    """Bars per format: file size (KB), fresh-process import + load (ms), one-row p50 (µs, log), rows/s."""
    fig = Figure(figsize=(15, 0.4 * len(table) + 2.2), dpi=80)
    axes = fig.subplots(1, CHART_PANELS, sharey=True)
    names = list(table["format"])
    colors = ["#c44e52" if risky else "#55a868" for risky in table["executes_code"]]
    axes[0].barh(names, table["size_bytes"] / 1024, color=colors)
    axes[0].set_xlabel("file size (KB)")
    axes[1].barh(names, table["import_ms"], color=colors, alpha=0.35)
    axes[1].barh(names, table["load_ms"], left=table["import_ms"], color=colors)
    axes[1].set_xlabel("fresh process: imports (pale) + verified load (ms)")
    axes[2].barh(names, table["p50_us"], color=colors)
    axes[2].set_xscale("log")  # ONNX is tens of times faster: a linear axis hides it
    axes[2].set_xlabel("one-row prediction p50 (µs, log)")
    axes[3].barh(names, table["rows_per_s"], color=colors)
    axes[3].set_xlabel("batch throughput (rows/s)")
    axes[0].invert_yaxis()
    legend = [Patch(color="#c44e52", label="loading can run code"), Patch(color="#55a868", label="no code on load")]
    fig.set_layout_engine("constrained")
    fig.legend(handles=legend, loc="outside upper center", ncols=2, fontsize=9, frameon=False)
    return fig


def _jsonable(value: Any) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    return None if isinstance(value, float) and not math.isfinite(value) else value


def to_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """One JSON-ready dict per format (plain ints, floats, bools, str and lists)."""
    return [{str(k): _jsonable(v) for k, v in row.items()} for row in table.to_dict(orient="records")]


def save_comparison(table: pd.DataFrame, path: str | Path) -> None:
    """Write the comparison as JSON (``formats``, ``ratio``, ``data``) for summary.json."""
    payload = {
        "formats": to_records(table),
        "ratio": _jsonable(table.attrs.get("ratio")),
        "data": table.attrs.get("data"),
    }
    Path(path).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
