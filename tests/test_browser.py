"""The web page in a real browser: headless Chromium (Debian's) driven by Playwright.

Needs /usr/bin/chromium; with CI set, its absence fails the test, otherwise it skips.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from superkart_lib.contract import schema
from superkart_lib.production.runtime import OnnxModel
from tests.conftest import live_server, to_csv

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 30_000


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (apt-get install chromium; pip install playwright)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def server(package, tmp_path_factory) -> Iterator[str]:
    with live_server(package, tmp_path_factory.mktemp("browser") / "server.log", ready_path="/readyz") as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _unavailable(f"{CHROMIUM} is missing")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, server):
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server + "/")
    page.wait_for_selector("#fields[data-ready='true']", state="attached")
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def dollars(value: float) -> str:
    return f"${value:,.2f}"


def test_form_is_generated_from_the_schema(page):
    for column in schema.COLUMNS:
        field = page.locator(f"#field-{column.name}")
        if column.name not in schema.INPUT_COLUMNS:
            assert field.count() == 0, "the target must not be a form field"
        elif column.kind == "category":
            assert field.locator("option").evaluate_all("os => os.map(o => o.value)") == list(column.categories)
        elif column.kind in ("number", "integer"):
            assert field.get_attribute("type") == "number"
    store = list(schema.STORES.values())[2]
    page.select_option("#field-Store_Id", store.store_id)
    for column, attribute in schema.STORE_ATTRIBUTES.items():
        assert page.input_value(f"#field-{column}") == str(getattr(store, attribute))
        assert page.locator(f"#field-{column}").is_disabled(), f"{column} is fixed by the store table"


def test_form_shows_a_prediction_and_the_model_version(page, package):
    store = list(schema.STORES.values())[1]
    page.fill("#field-Product_Weight", "9.75")
    page.fill("#field-Product_Allocated_Area", "0.061")
    page.fill("#field-Product_MRP", "141.5")
    page.select_option("#field-Product_Type", "Dairy")
    page.select_option("#field-Store_Id", store.store_id)
    page.click("#predict-button")
    page.wait_for_selector("#prediction")
    record = {
        "Product_Weight": 9.75,
        "Product_Sugar_Content": page.input_value("#field-Product_Sugar_Content"),
        "Product_Allocated_Area": 0.061,
        "Product_Type": "Dairy",
        "Product_MRP": 141.5,
        "Store_Id": store.store_id,
        **{column: getattr(store, attribute) for column, attribute in schema.STORE_ATTRIBUTES.items()},
    }
    model = OnnxModel.from_package(package)
    assert page.inner_text("#prediction") == dollars(float(model.predict(record)[0]))
    assert page.inner_text("#model-version") == model.version
    assert model.version in page.inner_text("#model-status")


def test_bad_value_shows_the_api_message(page):
    page.fill("#field-Product_Weight", "250")
    page.fill("#field-Product_Allocated_Area", "0.05")
    page.fill("#field-Product_MRP", "120")
    page.click("#predict-button")
    page.wait_for_selector("#record-errors")
    message = page.inner_text("#record-errors")
    assert "record 0, field 'Product_Weight'" in message and "out of range (allowed: > 0 and <= 100)" in message
    assert page.get_attribute("#field-Product_Weight", "aria-invalid") == "true"
    assert "Product_Weight" in page.inner_text("#error-Product_Weight")
    assert page.locator("#prediction").count() == 0


def test_missing_value_shows_the_api_message(page):
    page.fill("#field-Product_Weight", "10")
    page.click("#predict-button")  # area and price left empty
    page.wait_for_selector("#record-errors")
    message = page.inner_text("#record-errors")
    assert "field 'Product_Allocated_Area': missing" in message and "field 'Product_MRP': missing" in message


def test_csv_upload_shows_predictions(page, package, synthetic_frame):
    rows = synthetic_frame.head(7).to_dict(orient="records")  # with the target column: ignored
    page.set_input_files("#csv-file", files=[{"name": "p.csv", "mimeType": "text/csv", "buffer": to_csv(rows)}])
    page.click("#csv-button")
    page.wait_for_selector("#csv-predictions")
    model = OnnxModel.from_package(package)
    expected = [dollars(p) for p in model.predict([{k: _plain(v) for k, v in r.items()} for r in rows]).tolist()]
    cells = page.locator("#csv-predictions tr td:nth-child(2)").all_inner_texts()
    assert cells == expected
    assert page.inner_text("#csv-model-version") == model.version
    assert page.locator("#csv-download").is_enabled()


def test_bad_csv_shows_the_api_message(page, synthetic_frame):
    rows = synthetic_frame.head(3).to_dict(orient="records")
    rows[2]["Store_Size"] = "Huge"
    page.set_input_files("#csv-file", files=[{"name": "bad.csv", "mimeType": "text/csv", "buffer": to_csv(rows)}])
    page.click("#csv-button")
    page.wait_for_selector("#csv-errors")
    assert "row 3 (line 4), column 'Store_Size': 'Huge' is not allowed" in page.inner_text("#csv-errors")


def _plain(value):
    return value.item() if hasattr(value, "item") else value
