"""The SuperKart input schema, defined once.

Everything else derives from these definitions: CSV validation, the synthetic
generator, the model's input signature, the API request model, the web form and
the manifest. It needs only numpy, so the production runtime can import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Kind = Literal["id", "number", "integer", "category"]


@dataclass(frozen=True)
class Column:
    """One column of the SuperKart table.

    Parameters
    ----------
    name : str
        Column name exactly as in the CSV header.
    kind : {"id", "number", "integer", "category"}
        How values are parsed and validated.
    description : str
        One-line meaning, shown in docs, the API schema and the web form.
    categories : tuple of str
        Allowed values of a category column (raw spellings included).
    minimum, maximum : float or None
        Numeric bounds. ``exclusive_minimum`` makes the lower bound strict.
    unit : str
        Unit shown next to numeric fields.
    """

    name: str
    kind: Kind
    description: str
    categories: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    unit: str = ""
    required: bool = True

    @property
    def dtype(self) -> str:
        """The pandas dtype name this column has after reading."""
        return {"number": "float64", "integer": "int64"}.get(self.kind, "str")

    def bounds_text(self) -> str:
        """Human-readable allowed range, e.g. ``> 0 and <= 1``."""
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum:g}")
        if self.maximum is not None:
            parts.append(f"<= {self.maximum:g}")
        return " and ".join(parts)

    def out_of_bounds(self, values):
        """Boolean mask of values outside the bounds; NaN and infinity count as outside.

        ``values`` is a float or an array of floats (numpy is the runtime's only dependency).
        """
        v = np.asarray(values, dtype=np.float64)
        bad = ~np.isfinite(v)
        if self.minimum is not None:
            bad |= (v <= self.minimum) if self.exclusive_minimum else (v < self.minimum)
        if self.maximum is not None:
            bad |= v > self.maximum
        return bad


@dataclass(frozen=True)
class Store:
    """Attributes fixed per store (checked on every row)."""

    store_id: str
    establishment_year: int
    size: str
    city_type: str
    store_type: str


STORES: dict[str, Store] = {
    s.store_id: s
    for s in (
        Store("OUT001", 1987, "High", "Tier 2", "Supermarket Type1"),
        Store("OUT002", 1998, "Small", "Tier 3", "Food Mart"),
        Store("OUT003", 1999, "Medium", "Tier 1", "Departmental Store"),
        Store("OUT004", 2009, "Medium", "Tier 2", "Supermarket Type2"),
    )
}

#: Product categories grouped by the Product_Id prefix that carries them.
PRODUCT_GROUPS: dict[str, tuple[str, ...]] = {
    "NC": ("Household", "Health and Hygiene", "Others"),
    "DR": ("Soft Drinks", "Hard Drinks"),
    "FD": (
        "Fruits and Vegetables",
        "Snack Foods",
        "Frozen Foods",
        "Dairy",
        "Baking Goods",
        "Canned",
        "Meat",
        "Breads",
        "Starchy Foods",
        "Breakfast",
        "Seafood",
    ),
}

#: Product_Type -> product group (FD, NC, DR), the same fact the Product_Id prefix carries.
PRODUCT_GROUP_OF: dict[str, str] = {t: g for g, types in PRODUCT_GROUPS.items() for t in types}

#: Dirty spellings found in the real data and the clean value they stand for.
SUGAR_ALIASES: dict[str, str] = {"reg": "Regular"}
SUGAR_LEVELS: tuple[str, ...] = ("Low Sugar", "Regular", "No Sugar")

PRODUCT_ID_PATTERN = r"^(FD|NC|DR)[0-9]+$"

TARGET = "Product_Store_Sales_Total"
#: Rows of the real SuperKart file; the built-in synthetic data has as many by default.
REAL_ROWS = 8763

COLUMNS: tuple[Column, ...] = (
    Column("Product_Id", "id", "Product code: FD food, NC non-consumable, DR drinks", required=False),
    Column(
        "Product_Weight", "number", "Weight of the product", minimum=0, maximum=100, exclusive_minimum=True, unit="kg"
    ),
    Column("Product_Sugar_Content", "category", "Sugar content", categories=SUGAR_LEVELS + tuple(SUGAR_ALIASES)),
    Column(
        "Product_Allocated_Area",
        "number",
        "Share of the store's display area",
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
        unit="share",
    ),
    Column(
        "Product_Type",
        "category",
        "Product category",
        categories=tuple(sorted(t for g in PRODUCT_GROUPS.values() for t in g)),
    ),
    Column(
        "Product_MRP", "number", "Maximum retail price", minimum=0, maximum=10_000, exclusive_minimum=True, unit="$"
    ),
    Column("Store_Id", "category", "Store code", categories=tuple(STORES)),
    Column("Store_Establishment_Year", "integer", "Year the store opened", minimum=1900, maximum=2100),
    Column("Store_Size", "category", "Store size", categories=("Small", "Medium", "High")),
    Column("Store_Location_City_Type", "category", "City tier", categories=("Tier 1", "Tier 2", "Tier 3")),
    Column("Store_Type", "category", "Store format", categories=tuple(sorted({s.store_type for s in STORES.values()}))),
    Column(TARGET, "number", "Total sales of the product in the store", minimum=0, maximum=1_000_000, unit="$"),
)

BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
ALL_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS)
#: Columns a model takes: everything but the target (Product_Id optional, unused).
INPUT_COLUMNS: tuple[str, ...] = tuple(c for c in ALL_COLUMNS if c != TARGET)
FEATURE_COLUMNS: tuple[str, ...] = tuple(c.name for c in COLUMNS if c.required and c.name != TARGET)
NUMERIC_FEATURES: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if BY_NAME[c].kind in ("number", "integer"))
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(c for c in FEATURE_COLUMNS if BY_NAME[c].kind == "category")

#: Store columns and the Store attribute each must match.
STORE_ATTRIBUTES: dict[str, str] = {
    "Store_Establishment_Year": "establishment_year",
    "Store_Size": "size",
    "Store_Location_City_Type": "city_type",
    "Store_Type": "store_type",
}


def as_dict() -> dict:
    """The schema as plain JSON-ready data (for the manifest and the API)."""
    return {
        "target": TARGET,
        "columns": [
            {
                "name": c.name,
                "dtype": c.dtype,
                "kind": c.kind,
                "required": c.required,
                "description": c.description,
                **({"categories": list(c.categories)} if c.categories else {}),
                **({"minimum": c.minimum} if c.minimum is not None else {}),
                **({"maximum": c.maximum} if c.maximum is not None else {}),
                **({"exclusive_minimum": True} if c.exclusive_minimum else {}),
                **({"unit": c.unit} if c.unit else {}),
            }
            for c in COLUMNS
        ],
        "stores": {k: vars(v) for k, v in STORES.items()},
        "aliases": {"Product_Sugar_Content": dict(SUGAR_ALIASES)},
    }
