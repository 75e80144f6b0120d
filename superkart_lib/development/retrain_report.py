"""The retrain gate (when a challenger replaces the current model) and its reports.

Standard library only, so the command line reads :data:`DEFAULT_MARGIN` from here in any install.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from superkart_lib.contract.errors import SuperKartError
from superkart_lib.contract.files import write_text_atomically

#: The gate's margin: a challenger is promoted only when its hold-out RMSE is at least 1% lower
#: than the current model's on the same rows. Two fits on similar data differ by a fraction of a
#: percent by chance; demanding a 1% improvement keeps the pointer (and every server's swap) from
#: chasing that noise, while a real gain after drift (the next quarter's is several percent) passes.
DEFAULT_MARGIN = 0.01
PROMOTE, KEEP = "promote", "keep"
_METRICS = ("r2", "rmse", "mae", "mape")


def check_margin(margin: float) -> float:
    """``margin`` if it is a finite number below 1 (a negative margin lets a worse challenger through)."""
    if not (isinstance(margin, int | float) and math.isfinite(margin) and margin < 1):
        raise SuperKartError(f"margin must be a finite number below 1 (0.01 is 1% lower RMSE), got {margin!r}")
    return float(margin)


def _change(relative: float) -> str:
    """A relative RMSE change as words: ``3.2% lower`` or ``1.0% higher``."""
    return f"{abs(relative):.1%} {'lower' if relative <= 0 else 'higher'}"


def decide(current_rmse: float | None, challenger_rmse: float, margin: float) -> tuple[bool, str, float | None]:
    """Whether to promote: challenger RMSE <= current RMSE * (1 - margin), both on the same hold-out rows.

    Returns
    -------
    (bool, str, float or None)
        The decision, its reason in one sentence, and the relative RMSE change
        (challenger / current - 1; negative is better; None without a current model).
    """
    if current_rmse is None:
        return True, "no current version: the challenger becomes the first version", None
    relative = challenger_rmse / current_rmse - 1 if current_rmse > 0 else (0.0 if challenger_rmse == 0 else math.inf)
    promote = challenger_rmse <= current_rmse * (1 - margin)
    needed = f"needs at least {margin:.1%} lower" if margin >= 0 else f"allows up to {-margin:.1%} higher"
    return promote, f"challenger RMSE {_change(relative)} than current; the gate {needed}", relative


def promotion_why(relative: float | None, margin: float) -> str:
    """The ``why`` the history records for a retrain's promotion."""
    if relative is None:
        return "retrain: first version of the registry"
    return f"retrain: challenger RMSE {_change(relative)} than current (margin {margin:.1%})"


def _row(role: str, side: dict[str, Any] | None) -> str:
    if side is None:
        return f"| {role} | (none) | - | - | - | - |"
    m = side["metrics"]
    return f"| {role} | {side['version']} | {m['r2']:.4f} | {m['rmse']:.1f} | {m['mae']:.1f} | {m['mape']:.2%} |"


def markdown(report: dict[str, Any]) -> str:
    """A short markdown report: the two models on the hold-out, the data, the decision in one sentence."""
    holdout = report["holdout"]
    decision = report["decision"]
    challenger = report["challenger"]["version"]
    if decision == PROMOTE:
        sentence = f"**Promoted** {challenger}: {report['reason']}."
    else:
        kept = report["current"]["version"] if report["current"] else "the current version"
        sentence = f"**Kept** {kept} as current ({challenger} is in the registry, not promoted): {report['reason']}."
    previous = report.get("previous_data")
    lines = [
        f"# Retrain {challenger}",
        "",
        f"Both models scored through the production ONNX runtime on the same {holdout['rows']:,} hold-out rows "
        f"of the new data (sha256 {report['new_data']['sha256'][:12]}, never trained on).",
        "",
        "| model | version | r2 | rmse ($) | mae ($) | mape |",
        "|---|---|---|---|---|---|",
        _row("current", report["current"]),
        _row("challenger", report["challenger"]),
        "",
        f"Trained on {report['training_data']['rows']:,} rows (sha256 {report['training_data']['sha256'][:12]}): "
        f"the new data's training part"
        + (
            f" plus {previous['rows']:,} rows the current version was trained on ({previous['origin']})."
            if previous
            else "."
        ),
        f"Gate: promote when the challenger's RMSE is at most {1 - report['margin']:.0%} of the current one's "
        f"(margin {report['margin']:.1%}).",
        *(
            [
                f"{previous['dropped_holdout_rows']:,} rows of the previous data are hold-out rows: the challenger "
                "did not train on them, the current model did (its hold-out score is optimistic)."
            ]
            if previous and previous.get("dropped_holdout_rows")
            else []
        ),
        "",
        sentence,
        "",
    ]
    return "\n".join(lines)


def write_reports(directory: Path, version: str, report: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``<version>.json`` and ``<version>.md`` in ``directory`` (each atomically); returns both paths."""
    json_path, md_path = directory / f"{version}.json", directory / f"{version}.md"
    write_text_atomically(json_path, json.dumps(report, indent=2) + "\n")
    write_text_atomically(md_path, markdown(report))
    return json_path, md_path


def metric_dict(metrics: dict[str, float]) -> dict[str, float]:
    """The four metrics, in table order, as plain floats."""
    return {name: float(metrics[name]) for name in _METRICS}
