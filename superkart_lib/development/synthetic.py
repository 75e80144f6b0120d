"""Synthetic SuperKart data with the real data's structure.

The generator reproduces the real file's structure: four fixed stores with their own
sales levels, Product_Id prefixes tied to product types, NC products always
``No Sugar``, about 1.2% dirty ``reg`` labels, a right-skewed allocated area, and
sales driven mainly by MRP, weight and store, with noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from superkart_lib.contract import schema
from superkart_lib.contract.schema import REAL_ROWS

#: Rows per store in the real file; the generator samples stores in these shares.
STORE_ROWS = {"OUT001": 1586, "OUT002": 1152, "OUT003": 1349, "OUT004": 4676}
#: (sales mean, sales sd, weight mean) per store from the real file, and an MRP
#: mean per store chosen so the overall MRP mean and its correlations match.
STORE_PROFILE = {
    "OUT001": (3924.0, 905.0, 13.5, 160.0),
    "OUT002": (1763.0, 463.0, 9.9, 113.0),
    "OUT003": (4947.0, 678.0, 15.1, 181.0),
    "OUT004": (3299.0, 468.0, 12.4, 142.0),
}
TYPE_ROWS = {
    "Fruits and Vegetables": 1249,
    "Snack Foods": 1149,
    "Frozen Foods": 811,
    "Dairy": 796,
    "Household": 740,
    "Baking Goods": 716,
    "Canned": 677,
    "Health and Hygiene": 628,
    "Meat": 618,
    "Soft Drinks": 519,
    "Breads": 200,
    "Hard Drinks": 186,
    "Others": 151,
    "Starchy Foods": 141,
    "Breakfast": 106,
    "Seafood": 76,
}
#: Among food and drink rows: Low Sugar 4,885, Regular 2,251 + reg 108.
SUGAR_SHARES = {"Low Sugar": 4885, "Regular": 2251, "reg": 108}

WEIGHT_SD_WITHIN, WEIGHT_RANGE = 1.69, (4.0, 22.0)
MRP_SD_WITHIN, MRP_WEIGHT_CORR, MRP_RANGE = 24.0, 0.2, (31.0, 266.0)
AREA_BETA, AREA_RANGE = (1.6, 21.6), (0.004, 0.298)
SALES_RANGE = (33.0, 8000.0)
#: Share of each store's sales variance left to noise (what no model can learn).
NOISE_SHARE = 0.18
#: Noise is heavy-tailed, as in the real data (RMSE ~$280 but MAPE ~3.8%): most rows sit
#: close to what MRP, weight and store predict, a few (TAIL_SHARE) stray TAIL_SCALE times further.
TAIL_SHARE, TAIL_SCALE = 0.08, 6.0
WITHIN_FLOOR = -3.5
PRICE_EFFECT, WEIGHT_EFFECT, CURVE = 0.6, 0.4, 0.45


def _draw(counts: dict[str, int], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` labels in the shares of ``counts``, exact up to rounding, in random order.

    Quotas rather than independent draws keep small shares (such as the 1.2% of
    ``reg``) at their real size for every seed.
    """
    names = list(counts)
    p = np.array([counts[k] for k in names], dtype=float)
    quota = np.floor(p / p.sum() * n).astype(int)
    remainder = p / p.sum() * n - quota
    quota[np.argsort(-remainder, kind="stable")[: n - quota.sum()]] += 1
    return rng.permutation(np.repeat(np.asarray(names, dtype=object), quota))


def _product_ids(prefixes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Unique ids: prefix + number of 1-4 digits (more digits only past 9,999 per prefix)."""
    ids = np.empty(len(prefixes), dtype=object)
    for prefix in np.unique(prefixes):
        where = np.flatnonzero(prefixes == prefix)
        upper = max(10_000, 10 ** len(str(len(where))))
        numbers = rng.choice(np.arange(1, upper), size=len(where), replace=False)
        ids[where] = [f"{prefix}{n}" for n in numbers]
    return ids


def generate(rows: int = REAL_ROWS, seed: int = 0) -> pd.DataFrame:
    """Generate ``rows`` synthetic SuperKart rows.

    Parameters
    ----------
    rows : int
        Number of product-store rows, >= 1.
    seed : int
        Seed of the random generator; the same seed gives the same frame.

    Returns
    -------
    pandas.DataFrame of shape (rows, 12)
        Columns and dtypes exactly as :data:`superkart_lib.contract.schema.COLUMNS`.
    """
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    rng = np.random.default_rng(seed)

    store = _draw(STORE_ROWS, rows, rng).astype(str)
    ptype = _draw(TYPE_ROWS, rows, rng)
    prefix = np.array([schema.PRODUCT_GROUP_OF[t] for t in ptype])

    # Non-consumables are always "No Sugar"; food and drinks never are.
    sugar = np.full(rows, "No Sugar", dtype=object)
    consumable = prefix != "NC"
    sugar[consumable] = _draw(SUGAR_SHARES, int(consumable.sum()), rng)

    profile = np.array([STORE_PROFILE[s] for s in store])
    sales_mean, sales_sd, weight_mean, mrp_mean = profile.T
    zw = rng.standard_normal(rows)
    weight = np.clip(weight_mean + WEIGHT_SD_WITHIN * zw, *WEIGHT_RANGE)
    zm = MRP_WEIGHT_CORR * zw + np.sqrt(1 - MRP_WEIGHT_CORR**2) * rng.standard_normal(rows)
    mrp = np.clip(mrp_mean + MRP_SD_WITHIN * zm, *MRP_RANGE)
    area = np.clip(rng.beta(*AREA_BETA, size=rows), *AREA_RANGE)

    # Sales: the store sets level and spread; within a store, MRP and weight drive it,
    # with diminishing returns on price (a curve a straight line cannot follow).
    price = (mrp - mrp_mean) / MRP_SD_WITHIN
    signal = PRICE_EFFECT * price + WEIGHT_EFFECT * zw - CURVE * (price**2 - 1)
    # Centre and scale per store so each store keeps its own sales level and spread.
    for s in np.unique(store):
        mask = store == s
        signal[mask] -= signal[mask].mean()
        sd = signal[mask].std()
        signal[mask] /= sd if sd > 0 else 1.0
    spread = np.where(rng.random(rows) < TAIL_SHARE, TAIL_SCALE, 1.0)
    noise = rng.standard_normal(rows) * spread / np.sqrt(1 - TAIL_SHARE + TAIL_SHARE * TAIL_SCALE**2)
    # Floored a little below -3 sd: no store sells a product for next to nothing, and such rows
    # would dominate MAPE (the real file has a single $33 row).
    within = np.maximum(np.sqrt(1 - NOISE_SHARE) * signal + np.sqrt(NOISE_SHARE) * noise, WITHIN_FLOOR)
    sales = np.clip(sales_mean + sales_sd * within, *SALES_RANGE)

    stores = [schema.STORES[s] for s in store]
    frame = pd.DataFrame(
        {
            "Product_Id": _product_ids(prefix, rng),
            "Product_Weight": np.round(weight, 2),
            "Product_Sugar_Content": sugar,
            "Product_Allocated_Area": np.round(area, 3),
            "Product_Type": ptype,
            "Product_MRP": np.round(mrp, 2),
            "Store_Id": store,
            "Store_Establishment_Year": np.array([s.establishment_year for s in stores], dtype="int64"),
            "Store_Size": [s.size for s in stores],
            "Store_Location_City_Type": [s.city_type for s in stores],
            "Store_Type": [s.store_type for s in stores],
            schema.TARGET: np.round(sales, 2),
        }
    )
    return frame.astype({c.name: c.dtype for c in schema.COLUMNS})[list(schema.ALL_COLUMNS)]


# --- the next quarter: the same generator, three things changed -----------------------

#: Prices up 18% across the board.
NEXT_QUARTER_PRICE = 1.18
#: Half of OUT004's rows move to OUT002: a store-mix shift (OUT002 differs from OUT004 in every attribute).
NEXT_QUARTER_STORES = ("OUT004", "OUT002", 0.5)
#: A till update writes 'reg' for 60% of Regular labels. The schema lists 'reg' (cleaning maps it to
#: Regular), so the file stays valid and the model sees the same thing: raw drift the pipeline absorbs.
NEXT_QUARTER_REG = 0.6
#: The new quarter's rows are drawn with ``seed + 1`` (new products, not the training rows shifted).
NEXT_QUARTER_SEED_OFFSET = 1


def next_quarter_drifted() -> tuple[str, ...]:
    """The input columns :func:`next_quarter` shifts, in schema order (the store attributes that differ)."""
    old, new, _ = NEXT_QUARTER_STORES
    a, b = schema.STORES[old], schema.STORES[new]
    moved = {"Store_Id"} | {c for c, attr in schema.STORE_ATTRIBUTES.items() if getattr(a, attr) != getattr(b, attr)}
    changed = moved | {"Product_MRP", "Product_Sugar_Content"}
    return tuple(c for c in schema.FEATURE_COLUMNS if c in changed)


def next_quarter(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A drifted copy of synthetic rows: prices up, a store-mix shift, more ``reg`` spellings.

    Weight, allocated area and product type keep their distribution. Moved rows take the new
    store's attributes and its sales level (their sales z-score is kept); sales are not raised
    with prices, so a model trained last quarter is also wrong about the target.

    Parameters
    ----------
    frame : pandas.DataFrame of shape (rows, 12)
        Rows as :func:`generate` makes them.
    seed : int
        Seed of the random choices (which rows move store, which labels change).

    Returns
    -------
    pandas.DataFrame of shape (rows, 12)
        Same columns and dtypes; valid against the schema.
    """
    rng = np.random.default_rng(seed)
    out = frame.copy()
    out["Product_MRP"] = np.round(out["Product_MRP"].to_numpy() * NEXT_QUARTER_PRICE, 2)

    old, new, share = NEXT_QUARTER_STORES
    where = np.flatnonzero(out["Store_Id"].to_numpy() == old)
    moved = rng.choice(where, size=round(share * len(where)), replace=False)
    (old_mean, old_sd, *_), (new_mean, new_sd, *_) = STORE_PROFILE[old], STORE_PROFILE[new]
    sales = out[schema.TARGET].to_numpy(copy=True)
    sales[moved] = np.clip(new_mean + new_sd * (sales[moved] - old_mean) / old_sd, *SALES_RANGE).round(2)
    out[schema.TARGET] = sales
    out.loc[out.index[moved], "Store_Id"] = new
    for column, attribute in schema.STORE_ATTRIBUTES.items():
        out.loc[out.index[moved], column] = getattr(schema.STORES[new], attribute)

    sugar = out["Product_Sugar_Content"].to_numpy(copy=True)
    regular = np.flatnonzero(sugar == "Regular")
    sugar[rng.choice(regular, size=round(NEXT_QUARTER_REG * len(regular)), replace=False)] = "reg"
    out["Product_Sugar_Content"] = sugar
    return out.astype({c.name: c.dtype for c in schema.COLUMNS})


def data_frame(rows: int = REAL_ROWS, seed: int = 0, drifted: bool = False) -> pd.DataFrame:
    """What ``superkart data`` writes: :func:`generate`, or with ``drifted`` the next quarter (:func:`next_quarter`)."""
    if not drifted:
        return generate(rows, seed)
    return next_quarter(generate(rows, seed + NEXT_QUARTER_SEED_OFFSET), seed)
