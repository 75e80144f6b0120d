"""Input drift: reference statistics of the training inputs, and PSI and KS against new rows.

Numpy and the standard library only, so drift runs in the production install. The package
holds :data:`REFERENCE_STATS`, written at training time by :func:`reference_from_columns`:

- a numeric column: :data:`BINS` quantile bins of the training values (inner edges, the
  fraction of rows in each), and the training ECDF at its :data:`KS_POINTS` percentiles;
- a category column: the fraction of each of the schema's categories (raw spellings included).

New rows are counted into the same bins by a :class:`DriftWindow`. Its counts are additive,
so rows can be fed in chunks (a CSV, or a server's served records) and a sliding window can
remove its oldest chunk; :meth:`DriftWindow.report` compares the counts with the reference.

PSI = sum over bins of (new - ref) * ln(new / ref), each fraction floored at :data:`EPSILON`
(an empty bin would make it infinite). KS D = the largest gap between the two ECDFs, taken at
the reference percentiles (exact for a column with at most 101 distinct values, such as a year;
otherwise it may miss at most the 1% step between two percentiles), with the asymptotic
Kolmogorov p-value. The verdict is PSI's alone: with thousands of rows KS flags differences far
too small to matter, which is worth seeing next to PSI.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from superkart_lib.contract import integrity, schema
from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import SuperKartError

#: The package file holding the reference statistics (optional: older packages lack it).
REFERENCE_STATS = mf.REFERENCE_STATS
STATS_FORMAT = 1
#: Quantile bins per numeric column (deciles); fewer when values tie (a year, a store's size).
BINS = 10
#: Percentiles stored for KS (0, 1, ..., 100).
KS_POINTS = 101
#: Floor of a bin fraction in PSI: an empty bin then adds (q - 1e-4) * ln(q / 1e-4), large but finite.
EPSILON = 1e-4
#: PSI below STABLE: stable; up to DRIFTED: moderate shift; above: drifted (the credit-scoring rule of thumb).
STABLE, DRIFTED = 0.1, 0.2
VERDICTS = ("stable", "moderate shift", "drifted")
#: Columns compared: every model input (Product_Id is an optional identifier, the target no input).
NUMERIC = tuple(c for c in schema.FEATURE_COLUMNS if schema.BY_NAME[c].kind in ("number", "integer"))
CATEGORICAL = tuple(c for c in schema.FEATURE_COLUMNS if schema.BY_NAME[c].kind == "category")


def verdict(psi: float) -> str:
    """The verdict of one PSI value: one of :data:`VERDICTS`."""
    return VERDICTS[0] if psi < STABLE else VERDICTS[1] if psi <= DRIFTED else VERDICTS[2]


def psi(ref: np.ndarray, new: np.ndarray) -> float:
    """Population stability index of two fraction vectors of shape (bins,), each summing to 1."""
    p = np.maximum(np.asarray(ref, dtype=np.float64), EPSILON)
    q = np.maximum(np.asarray(new, dtype=np.float64), EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_pvalue(d: float, n_ref: int, n_new: int) -> float:
    """Asymptotic two-sample KS p-value of statistic ``d`` (Kolmogorov's series, Stephens' correction).

    P(D > d) ~ Q(lam) = 2 * sum_k (-1)^(k-1) exp(-2 k^2 lam^2), lam = (sqrt(m) + 0.12 + 0.11 / sqrt(m)) * d,
    with m = n_ref * n_new / (n_ref + n_new) (Numerical Recipes, ``probks``).
    """
    m = n_ref * n_new / (n_ref + n_new)
    lam = (math.sqrt(m) + 0.12 + 0.11 / math.sqrt(m)) * d
    if lam < 0.2:  # the series converges slowly there, and Q is 1 to 7 decimals
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return min(max(2 * total, 0.0), 1.0)


def _bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of shape (len(edges) + 1,): bin i holds edges[i-1] < x <= edges[i] (open at both ends)."""
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)


def _category_counts(name: str, values: np.ndarray, categories: list[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(categories)}
    codes = np.fromiter((index.get(v, -1) for v in values.tolist()), dtype=np.intp, count=len(values))
    if (codes < 0).any():  # validated rows never get here with another value
        raise SuperKartError(f"column '{name}': {values[codes < 0][0]!r} is not one of the schema's categories")
    return np.bincount(codes, minlength=len(categories))


def reference_from_columns(columns: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Reference statistics of training inputs, JSON-ready (the content of :data:`REFERENCE_STATS`).

    Parameters
    ----------
    columns : mapping of str to numpy.ndarray
        Each model input column (:data:`NUMERIC` and :data:`CATEGORICAL`) of the training rows, shape (rows,).
    """
    rows = len(next(iter(columns.values())))
    stats: dict[str, Any] = {}
    for name in NUMERIC:
        v = np.asarray(columns[name], dtype=np.float64)
        # "lower" puts edges on observed values, so a tied value (a year) falls wholly in one bin.
        edges = np.unique(np.quantile(v, np.arange(1, BINS) / BINS, method="lower"))
        points = np.unique(np.quantile(v, np.linspace(0, 1, KS_POINTS), method="lower"))
        stats[name] = {
            "kind": "numeric",
            "edges": edges.tolist(),
            "fractions": (_bin_counts(v, edges) / rows).tolist(),
            "ks_points": points.tolist(),
            "ks_cdf": (np.searchsorted(np.sort(v), points, side="right") / rows).tolist(),
        }
    for name in CATEGORICAL:
        categories = list(schema.BY_NAME[name].categories)
        counts = _category_counts(name, np.asarray(columns[name], dtype=object), categories)
        stats[name] = {"kind": "category", "categories": categories, "fractions": (counts / rows).tolist()}
    return {"format": STATS_FORMAT, "rows": rows, "bins": BINS, "epsilon": EPSILON, "columns": stats}


def load_reference(package_dir: str | Path) -> dict[str, Any]:
    """The package's reference statistics, read through its manifest (sha256 checked).

    Raises
    ------
    SuperKartError
        One line: the package has no statistics (written before this release), or they were altered.
    """
    root, manifest = mf.open_package(package_dir)
    if REFERENCE_STATS not in manifest["files"]:
        raise SuperKartError(f"{root}: this package has no reference statistics; retrain it with this release")
    stats = json.loads(integrity.verify_file(root, REFERENCE_STATS, manifest))
    if stats.get("format") != STATS_FORMAT or set(stats.get("columns", ())) != set(NUMERIC + CATEGORICAL):
        raise SuperKartError(f"{root / REFERENCE_STATS}: statistics of another release; retrain the package")
    return dict(stats)


@dataclass(frozen=True)
class ColumnDrift:
    """One column compared: bin labels with reference and new fractions (shape (bins,)), PSI, KS."""

    name: str
    kind: str
    labels: list[str]
    ref: list[float]
    new: list[float]
    psi: float
    ks_d: float | None
    ks_p: float | None

    @property
    def verdict(self) -> str:
        return verdict(self.psi)


@dataclass(frozen=True)
class DriftReport:
    """Every input column compared, in schema order, for ``rows`` new rows against ``reference_rows``."""

    columns: list[ColumnDrift]
    rows: int
    reference_rows: int

    @property
    def verdict(self) -> str:
        """The worst column verdict."""
        return max((c.verdict for c in self.columns), key=VERDICTS.index, default=VERDICTS[0])

    def flagged(self) -> list[str]:
        """Columns whose verdict is not stable."""
        return [c.name for c in self.columns if c.verdict != VERDICTS[0]]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: thresholds, rows, the overall verdict and each column."""
        return {
            "thresholds": {"stable_below": STABLE, "drifted_above": DRIFTED, "epsilon": EPSILON},
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "verdict": self.verdict,
            "columns": [{**vars(c), "verdict": c.verdict} for c in self.columns],
        }


def _labels(edges: list[float]) -> list[str]:
    bounds = [f"{e:g}" for e in edges]
    return [f"<= {bounds[0]}", *(f"{a} - {b}" for a, b in zip(bounds, bounds[1:], strict=False)), f"> {bounds[-1]}"]


class DriftWindow:
    """Counts of new rows in the reference's bins; add (or remove) rows in any chunks, then :meth:`report`.

    The counts are sums over rows, so chunks give the same report as one array, and a server can
    keep a window of recent records by removing the chunk that leaves it.
    """

    def __init__(self, reference: Mapping[str, Any]) -> None:
        self.reference = reference
        self.rows = 0
        cols = reference["columns"]
        self._edges = {n: np.asarray(cols[n]["edges"], dtype=np.float64) for n in NUMERIC}
        self._points = {n: np.asarray(cols[n]["ks_points"], dtype=np.float64) for n in NUMERIC}
        self._bins = {n: np.zeros(len(cols[n]["fractions"]), dtype=np.int64) for n in cols}
        self._below = {n: np.zeros(len(self._points[n]), dtype=np.int64) for n in NUMERIC}

    def _count(self, columns: Mapping[str, Any], sign: int) -> None:
        arrays = {n: np.asarray(columns[n]) for n in NUMERIC + CATEGORICAL}
        rows = {len(a) for a in arrays.values()}
        if len(rows) != 1:
            raise ValueError(f"columns of different lengths: {sorted(rows)}")
        for n in NUMERIC:
            v = arrays[n].astype(np.float64)
            self._bins[n] += sign * _bin_counts(v, self._edges[n])
            self._below[n] += sign * np.searchsorted(np.sort(v), self._points[n], side="right")
        for n in CATEGORICAL:
            self._bins[n] += sign * _category_counts(
                n, arrays[n].astype(object), self.reference["columns"][n]["categories"]
            )
        self.rows += sign * rows.pop()

    def add_columns(self, columns: Mapping[str, Any]) -> None:
        """Count rows given as columns: each input column (validated), an array of shape (rows,)."""
        self._count(columns, 1)

    def remove_columns(self, columns: Mapping[str, Any]) -> None:
        """Uncount rows added before (a sliding window's oldest chunk)."""
        self._count(columns, -1)

    def add_records(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Count validated records (one mapping per row, as the API receives them)."""
        records = list(records)
        if records:
            self.add_columns({n: [r[n] for r in records] for n in NUMERIC + CATEGORICAL})

    def report(self) -> DriftReport:
        """Every column compared with the reference.

        Raises
        ------
        ValueError
            When the window holds no rows.
        """
        if self.rows <= 0:
            raise ValueError("no rows to compare with the reference")
        out = []
        n_ref = int(self.reference["rows"])
        for name in schema.FEATURE_COLUMNS:
            ref = self.reference["columns"][name]
            new = self._bins[name] / self.rows
            ks_d = ks_p = None
            if ref["kind"] == "numeric":
                labels = _labels(ref["edges"])
                ks_d = float(np.max(np.abs(self._below[name] / self.rows - np.asarray(ref["ks_cdf"]))))
                ks_p = ks_pvalue(ks_d, n_ref, self.rows)
            else:
                labels = list(ref["categories"])
            value = psi(np.asarray(ref["fractions"]), new)
            out.append(ColumnDrift(name, ref["kind"], labels, list(ref["fractions"]), new.tolist(), value, ks_d, ks_p))
        return DriftReport(out, self.rows, n_ref)
