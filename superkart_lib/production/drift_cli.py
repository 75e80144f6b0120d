"""``superkart drift``: compare a CSV of new rows with the package's reference statistics.

The CSV is streamed in chunks through the batch scorer's reader and table validator, so a bad
file gets the same one-line error (the first invalid row); every row must be valid, as for
training. Prints a fixed-width table and the overall verdict; ``--json`` and ``--html`` write the
report too (the HTML is self-contained: inline CSS bars, no script, nothing fetched). The exit
status is 0 whatever the verdict: drift is a finding to read, not a failure (a pipeline that
must stop on drift reads ``verdict`` from the JSON); 2 is a user error, in one line.
Numpy and the standard library only: it runs in the production install.
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path
from typing import Any

from superkart_lib.contract import limits
from superkart_lib.contract.files import write_text_atomically
from superkart_lib.production import csv_files, table_validation
from superkart_lib.production.drift import DRIFTED, STABLE, DriftReport, DriftWindow, load_reference


def drift_from_csv(package_dir: str | Path, csv_path: str | Path) -> DriftReport:
    """Compare every row of a SuperKart CSV (target optional) with the package's reference.

    Raises
    ------
    SuperKartError
        One line: no reference statistics in the package, or the file's first problem.
    """
    window = DriftWindow(load_reference(package_dir))
    with csv_files.open_csv(csv_path) as csv_file:
        positions = table_validation.check_header(csv_file.header, csv_path, require_target=False)
        for part in csv_file.chunks(limits.BATCH_CHUNK_ROWS):
            check = table_validation.check_rows(part.rows, positions, len(csv_file.header))
            error = check.first_error(csv_path, part.first_row, part.line_numbers)
            if error is not None:
                raise error
            window.add_columns(check.typed)
    return window.report()


def table_text(report: DriftReport) -> str:
    """The fixed-width table: column, kind, PSI, KS D (numeric columns), verdict; then the overall line."""
    lines = [f"{'column':<26} {'kind':<9} {'PSI':>7} {'KS D':>7}  verdict"]
    for c in report.columns:
        ks = f"{c.ks_d:7.3f}" if c.ks_d is not None else f"{'-':>7}"
        lines.append(f"{c.name:<26} {c.kind:<9} {c.psi:7.3f} {ks}  {c.verdict}")
    flagged = report.flagged()
    lines.append(
        f"overall: {report.verdict} ({len(flagged)} of {len(report.columns)} columns not stable"
        f"{': ' + ', '.join(flagged) if flagged else ''}; {report.rows:,} rows vs {report.reference_rows:,} "
        f"training rows; PSI < {STABLE} stable, > {DRIFTED} drifted)"
    )
    return "\n".join(lines) + "\n"


_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{padding:2px 8px;text-align:left;font-size:14px}
.bar{display:inline-block;height:10px}.ref{background:#8a9bb0}.new{background:#d9822b}
.stable{color:#2a7a2a}.moderate{color:#b07800}.drifted{color:#b22222}
"""


def html_text(report: DriftReport) -> str:
    """A self-contained HTML page: a summary, then per column the reference and new fractions as bars."""
    e = html.escape
    css_class = {"stable": "stable", "moderate shift": "moderate", "drifted": "drifted"}
    parts = [
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>SuperKart drift</title><style>{_CSS}</style>"
        f"</head><body><h1>Input drift: <span class='{css_class[report.verdict]}'>{e(report.verdict)}</span></h1>",
        f"<p>{report.rows:,} new rows against {report.reference_rows:,} training rows. "
        f"PSI &lt; {STABLE}: stable; {STABLE} to {DRIFTED}: moderate shift; &gt; {DRIFTED}: drifted. "
        "Grey bars: training (reference); orange bars: the new rows.</p>",
        "<table><tr><th>column</th><th>kind</th><th>PSI</th><th>KS D</th><th>verdict</th></tr>",
    ]
    for c in report.columns:
        ks = f"{c.ks_d:.3f}" if c.ks_d is not None else "-"
        parts.append(
            f"<tr><td><a href='#{e(c.name)}'>{e(c.name)}</a></td><td>{c.kind}</td><td>{c.psi:.3f}</td>"
            f"<td>{ks}</td><td class='{css_class[c.verdict]}'>{c.verdict}</td></tr>"
        )
    parts.append("</table>")
    for c in report.columns:
        ks = f", KS D {c.ks_d:.3f} (p {c.ks_p:.2g})" if c.ks_d is not None and c.ks_p is not None else ""
        parts.append(
            f"<h2 id='{e(c.name)}'>{e(c.name)}: <span class='{css_class[c.verdict]}'>{c.verdict}</span></h2>"
            f"<p>PSI {c.psi:.3f}{ks}</p><table><tr><th>{'bin' if c.kind == 'numeric' else 'category'}</th>"
            "<th>training</th><th>new</th><th></th></tr>"
        )
        for label, ref, new in zip(c.labels, c.ref, c.new, strict=True):
            parts.append(
                f"<tr><td>{e(label)}</td><td>{ref:.1%}</td><td>{new:.1%}</td><td>"
                f"<span class='bar ref' style='width:{ref * 300:.0f}px'></span><br>"
                f"<span class='bar new' style='width:{new * 300:.0f}px'></span></td></tr>"
            )
        parts.append("</table>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def cmd_drift(args: argparse.Namespace) -> int:
    """Run ``superkart drift``: print the table, write ``--json``/``--html`` if asked; 0 whatever the verdict."""
    report = drift_from_csv(args.model, args.input)
    print(table_text(report), end="")
    if args.json:
        document: dict[str, Any] = report.as_dict()
        write_text_atomically(args.json, json.dumps(document, indent=2) + "\n")
        print(f"json report: {args.json}")
    if args.html:
        write_text_atomically(args.html, html_text(report))
        print(f"html report: {args.html}")
    return 0
