"""The synthetic generator reproduces the real data's schema and structure.

The expected figures are the real SuperKart file's (8,763 rows), written here independently of
the generator's own constants: a generator that drifted from the real data fails.
"""

from __future__ import annotations

import pandas as pd
import pytest

from superkart_lib.contract import schema
from superkart_lib.development.data import read_csv
from tests.conftest import run_cli

REAL = {
    "Product_Weight": 12.65,
    "Product_Allocated_Area": 0.069,
    "Product_MRP": 147.0,
    schema.TARGET: 3464.0,
}
STORE_SALES = {"OUT001": 3924, "OUT002": 1763, "OUT003": 4947, "OUT004": 3299}
STORE_WEIGHT = {"OUT001": 13.5, "OUT002": 9.9, "OUT003": 15.1, "OUT004": 12.4}
STORE_ROWS = {"OUT001": 1586, "OUT002": 1152, "OUT003": 1349, "OUT004": 4676}
SUGAR_ROWS = {"Low Sugar": 4885, "Regular": 2251, "No Sugar": 1519, "reg": 108}
PREFIX_ROWS = {"FD": 6539, "NC": 1519, "DR": 705}
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


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> pd.DataFrame:
    """`superkart data --rows 8763 --seed 0`, read back the way pandas reads any CSV."""
    out = tmp_path_factory.mktemp("data") / "synthetic.csv"
    result = run_cli("data", "--rows", "8763", "--seed", "0", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return pd.read_csv(out)


def within(value: float, expected: float, tolerance: float = 0.10) -> bool:
    return abs(value - expected) <= tolerance * abs(expected)


def test_exact_schema(written):
    assert tuple(written.columns) == schema.ALL_COLUMNS
    assert {c: str(t) for c, t in written.dtypes.items()} == {c.name: c.dtype for c in schema.COLUMNS}
    assert len(written) == 8763
    assert not written.isna().any().any()
    assert not written.duplicated().any()


def test_passes_validation(written, tmp_path):
    path = tmp_path / "again.csv"
    written.to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_csv(path), written)


def test_product_ids_and_groups(written):
    ids = written["Product_Id"]
    assert ids.is_unique
    assert ids.str.fullmatch(r"(FD|NC|DR)\d{1,4}").all()
    prefix = ids.str[:2]
    assert (prefix == written["Product_Type"].map(schema.PRODUCT_GROUP_OF)).all()
    for group, rows in PREFIX_ROWS.items():
        assert within((prefix == group).sum(), rows), group


def test_sugar_rules(written):
    sugar, prefix = written["Product_Sugar_Content"], written["Product_Id"].str[:2]
    assert (sugar[prefix == "NC"] == "No Sugar").all()
    assert not (sugar[prefix != "NC"] == "No Sugar").any()
    counts = sugar.value_counts()
    for label, rows in SUGAR_ROWS.items():
        assert within(counts[label], rows), label
    assert within(counts["reg"] / len(written), 0.012)


def test_product_type_shares(written):
    counts = written["Product_Type"].value_counts()
    assert set(counts.index) == set(TYPE_ROWS)
    for ptype, rows in TYPE_ROWS.items():
        assert within(counts[ptype], rows), ptype


def test_means_and_ranges(written):
    for column, mean in REAL.items():
        assert within(written[column].mean(), mean), column
    assert within(written[schema.TARGET].std(), 1066)
    assert written["Product_Weight"].between(4, 22).all()
    assert written["Product_Allocated_Area"].between(0.004, 0.298).all()
    assert written["Product_MRP"].between(31, 266).all()
    assert written[schema.TARGET].between(33, 8000).all()
    area = written["Product_Allocated_Area"]
    assert area.skew() > 0.5, "allocated area should be right-skewed"


def test_stores(written):
    by_store = written.groupby("Store_Id")
    for store_id, store in schema.STORES.items():
        rows = written[written["Store_Id"] == store_id]
        assert within(len(rows), STORE_ROWS[store_id])
        for column, attribute in schema.STORE_ATTRIBUTES.items():
            assert set(rows[column]) == {getattr(store, attribute)}, (store_id, column)
    sales = by_store[schema.TARGET].mean()
    weight = by_store["Product_Weight"].mean()
    for store_id in schema.STORES:
        assert within(sales[store_id], STORE_SALES[store_id]), store_id
        assert within(weight[store_id], STORE_WEIGHT[store_id]), store_id


def test_correlations(written):
    corr = written[["Product_Weight", "Product_MRP", "Product_Allocated_Area", schema.TARGET]].corr()
    assert corr.loc[schema.TARGET, "Product_MRP"] == pytest.approx(0.79, abs=0.08)
    assert corr.loc[schema.TARGET, "Product_Weight"] == pytest.approx(0.74, abs=0.08)
    assert corr.loc["Product_MRP", "Product_Weight"] == pytest.approx(0.53, abs=0.08)
    assert abs(corr.loc[schema.TARGET, "Product_Allocated_Area"]) < 0.05


def test_seeded():
    from superkart_lib.development.synthetic import generate

    pd.testing.assert_frame_equal(generate(500, seed=3), generate(500, seed=3))
    assert not generate(500, seed=3).equals(generate(500, seed=4))


def test_large_files_keep_ids_unique():
    from superkart_lib.development.synthetic import generate

    ids = generate(30_000, seed=1)["Product_Id"]
    assert ids.is_unique
