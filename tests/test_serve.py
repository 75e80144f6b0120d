"""The prediction API over real HTTP: endpoints, bad input, readiness, parity and a bounded load test.

Servers are real uvicorn processes on a free 127.0.0.1 port; requests go through httpx;
predictions are compared with ``OnnxModel.predict`` run offline on the same records. Two checks
run the app in-process through httpx's ASGI transport, because they need what a live server
cannot show on demand: a model not loaded yet, and the documented route without the fast path.
"""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import pytest

from superkart_lib.contract import limits, schema
from superkart_lib.contract.limits import MAX_CSV_BYTES, MAX_CSV_ROWS, MAX_JSON_BYTES, MAX_RECORDS
from superkart_lib.course.serving import free_port
from superkart_lib.production import record_validation as records
from superkart_lib.production.runtime import OnnxModel
from tests.conftest import ROOT, json_records, live_server, run_without_training_stack, to_csv, wait_ready

STARTUP_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def server(package, tmp_path_factory) -> Iterator[str]:
    with live_server(package, tmp_path_factory.mktemp("serve") / "server.log", ready_path="/readyz") as url:
        yield url


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def offline(package) -> OnnxModel:
    return OnnxModel.from_package(package)


@pytest.fixture(scope="module")
def sample_records() -> list[dict]:
    """500 realistic records (synthetic, seed 1) as plain JSON values, without the target."""
    from superkart_lib.development.synthetic import generate

    return json_records(generate(rows=500, seed=1).drop(columns=[schema.TARGET]))


# --- endpoints as documented -----------------------------------------------------------------


def test_health_and_readiness(client, package):
    assert client.get("/healthz").json() == {"status": "ok"}
    manifest = json.loads((package / "manifest.json").read_text())
    assert client.get("/readyz").json() == {"status": "ready", "model_version": manifest["package_version"]}


def test_model_endpoint_is_the_manifest(client, package):
    response = client.get("/v1/model")
    assert response.status_code == 200
    assert response.json() == json.loads((package / "manifest.json").read_text())
    body = response.json()
    assert body["files"]["model.onnx"]["sha256"] and set(body["metrics"]) >= {"r2", "rmse", "mae", "mape"}
    assert body["versions"]["onnxruntime"] and body["schema"]["columns"]


def test_schema_endpoint_is_derived_from_the_schema(client):
    body = client.get("/v1/schema").json()
    assert body["columns"] == schema.as_dict()["columns"]
    assert body["input_columns"] == list(schema.INPUT_COLUMNS)
    assert body["store_attributes"] == schema.STORE_ATTRIBUTES
    assert body["limits"] == {
        "max_records": MAX_RECORDS,
        "max_json_bytes": MAX_JSON_BYTES,
        "max_csv_bytes": MAX_CSV_BYTES,
        "max_csv_rows": MAX_CSV_ROWS,
        "max_uploads_in_flight": limits.MAX_UPLOADS_IN_FLIGHT,
    }


def test_web_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/web/app.js", "/web/style.css"):
        assert asset in page.text
        assert client.get(asset).status_code == 200
    for path in (ROOT / "superkart_lib" / "production" / "web").iterdir():
        text = path.read_text()
        assert "http://" not in text and "https://" not in text, f"{path.name} reaches outside the server"


def test_single_record_matches_offline(client, offline, sample_records):
    for record in sample_records[:20]:
        body = client.post("/v1/predict", json=record).json()
        assert body == {"prediction": float(offline.predict(record)[0]), "model_version": offline.version}


def test_batch_matches_offline(client, offline, sample_records):
    response = client.post("/v1/predict", json={"records": sample_records})
    assert response.status_code == 200
    assert response.json() == {
        "predictions": offline.predict(sample_records).tolist(),
        "model_version": offline.version,
    }


def test_batch_at_the_record_limit_is_accepted(client, sample_records):
    batch = (sample_records * 3)[:MAX_RECORDS]
    assert len(client.post("/v1/predict", json={"records": batch}).json()["predictions"]) == MAX_RECORDS


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"Product_Sugar_Content": "reg"}, id="dirty-spelling-reg"),
        pytest.param({"Product_Id": "NC42"}, id="product-id-given"),
        pytest.param({"Product_Weight": 12}, id="integer-for-a-number"),
    ],
)
def test_accepted_variants(client, offline, sample_records, change):
    record = {**sample_records[0], **change}
    body = client.post("/v1/predict", json=record).json()
    assert body["prediction"] == float(offline.predict(record)[0])


def test_integral_float_year_and_charset_are_accepted(client, offline, sample_records):
    record = {k: v for k, v in sample_records[0].items() if k != "Product_Id"}
    record["Store_Establishment_Year"] = float(record["Store_Establishment_Year"])
    headers = {"Content-Type": "application/json; charset=utf-8"}
    response = client.post("/v1/predict", content=json.dumps(record), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["prediction"] == float(offline.predict(record)[0])


def test_csv_upload_matches_offline(client, offline, sample_records):
    data = to_csv(sample_records[:50])
    response = client.post("/v1/predict/csv", files={"file": ("products.csv", data, "text/csv")})
    assert response.status_code == 200, response.text
    assert response.json() == {
        "predictions": offline.predict(sample_records[:50]).tolist(),
        "model_version": offline.version,
    }


def test_csv_answer_keeps_input_columns_and_adds_prediction(client, offline, synthetic_frame):
    labelled = json.loads(synthetic_frame.head(30).to_json(orient="records"))  # with the target: ignored
    response = client.post(
        "/v1/predict/csv", files={"file": ("l.csv", to_csv(labelled), "text/csv")}, headers={"Accept": "text/csv"}
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-model-version"] == offline.version
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert list(rows[0]) == [*schema.ALL_COLUMNS, "prediction"]
    assert [float(r["prediction"]) for r in rows] == offline.predict(labelled).tolist()
    assert [r["Product_Id"] for r in rows] == [r["Product_Id"] for r in labelled]


def test_openapi_documents_every_field(client):
    document = client.get("/openapi.json").json()
    components = document["components"]["schemas"]
    assert set(document["paths"]) >= {
        "/v1/predict",
        "/v1/predict/csv",
        "/v1/model",
        "/v1/schema",
        "/healthz",
        "/readyz",
    }
    for store_id, store in schema.STORES.items():
        record = components[f"Record{store_id}"]
        assert list(record["properties"]) == list(schema.INPUT_COLUMNS)
        assert record["additionalProperties"] is False
        assert set(record["required"]) == {c for c in schema.INPUT_COLUMNS if schema.BY_NAME[c].required}
        for column in schema.COLUMNS:
            field = record["properties"].get(column.name)
            if column.name == schema.TARGET:
                assert field is None
            elif column.name in schema.STORE_ATTRIBUTES:
                assert field["const"] == getattr(store, schema.STORE_ATTRIBUTES[column.name])
            elif column.kind == "category" and column.name != "Store_Id":
                assert field["enum"] == list(column.categories)
            elif column.kind in ("number", "integer"):
                key = "exclusiveMinimum" if column.exclusive_minimum else "minimum"
                assert (field[key], field["maximum"]) == (column.minimum, column.maximum)
    assert components["Batch"]["properties"]["records"]["maxItems"] == MAX_RECORDS
    for path in ("/v1/predict", "/v1/predict/csv"):
        assert {"400", "413", "415", "422", "503"} <= set(document["paths"][path]["post"]["responses"])


def test_documented_schema_agrees_with_the_validator(client, sample_records):
    document = client.get("/openapi.json").json()
    validator = jsonschema.Draft202012Validator(
        {"$ref": "#/components/schemas/PredictRequest", "components": document["components"]}
    )
    for record in sample_records[:50]:
        assert validator.is_valid(record) and not records.check_record(record)
    for case in BAD_CASES:
        body = case.values[1].get("json")
        if case.values[2] == 422 and isinstance(body, dict) and "records" not in body:
            assert not validator.is_valid(body), f"{case.id}: the API refuses what its schema allows"


# --- bad input: always a documented 4xx naming the field and the record (or CSV row) ---------------

BASE = records.example_record()  # a valid record of the first store, derived from the schema
STORE = next(iter(schema.STORES.values()))
OTHER_STORE = list(schema.STORES.values())[1]


def _with(**changes) -> dict:
    return {**BASE, **changes}


def _without(name: str) -> dict:
    return {k: v for k, v in BASE.items() if k != name}


def _file(data: bytes) -> dict:
    return {"files": {"file": ("upload.csv", data, "text/csv")}}


def _csv(*rows: dict) -> dict:
    return _file(to_csv(list(rows)))


def _chunks(size: int):
    def generate():
        for _ in range(size // 65536 + 1):
            yield b" " * 65536

    return generate


def bad(case_id: str, status: int, field=None, record=None, contains=(), path="/v1/predict", **request):
    """One row of the bad-input table: the request, the status, the field and record the message must name."""
    return pytest.param(path, request, status, field, record, contains, id=case_id)


def raw(body: str | bytes, content_type: str = "application/json") -> dict:
    return {"content": body, "headers": {"Content-Type": content_type}}


CSV = "/v1/predict/csv"
TYPES = "'Baking Goods', 'Breads'"  # the start of the allowed Product_Type list
YEAR = "Store_Establishment_Year"
MAXR = MAX_RECORDS

# fmt: off
BAD_CASES = [
    bad("missing-field", 422, "Product_MRP", 0, ["missing"], json=_without("Product_MRP")),
    bad("unknown-field", 422, "Colour", 0, ["unknown field"], json=_with(Colour="red")),
    bad("misspelt-field", 422, "Product_weight", 0, ["did you mean 'Product_Weight'"],
        json={**_without("Product_Weight"), "Product_weight": 12.0}),
    bad("target-sent", 422, schema.TARGET, 0, ["target"], json=_with(**{schema.TARGET: 3000.0})),
    bad("string-for-number", 422, "Product_Weight", 0, ["a number, got '12.5'"], json=_with(Product_Weight="12.5")),
    bad("bool-for-number", 422, "Product_MRP", 0, ["must be a number", "true"], json=_with(Product_MRP=True)),
    bad("null-for-number", 422, "Product_Allocated_Area", 0, ["null"], json=_with(Product_Allocated_Area=None)),
    bad("number-for-category", 422, "Product_Type", 0, ["must be one of", TYPES], json=_with(Product_Type=3)),
    bad("unknown-category", 422, "Product_Type", 0, ["'Toys' is not allowed", TYPES], json=_with(Product_Type="Toys")),
    bad("category-wrong-case", 422, "Product_Sugar_Content", 0, ["'Low Sugar'", "'reg'"],
        json=_with(Product_Sugar_Content="low sugar")),
    bad("zero-weight-exclusive-bound", 422, "Product_Weight", 0, ["> 0 and <= 100"], json=_with(Product_Weight=0)),
    bad("weight-too-high", 422, "Product_Weight", 0, ["out of range"], json=_with(Product_Weight=100.5)),
    bad("area-over-one", 422, "Product_Allocated_Area", 0, ["> 0 and <= 1"], json=_with(Product_Allocated_Area=1.5)),
    bad("negative-price", 422, "Product_MRP", 0, ["out of range"], json=_with(Product_MRP=-5)),
    bad("nan", 422, "Product_MRP", 0, ["finite"], **raw(json.dumps(_with(Product_MRP=float("nan"))))),
    bad("infinity", 422, "Product_Weight", 0, ["finite"], **raw(json.dumps(_with(Product_Weight=float("inf"))))),
    bad("overflow-to-infinity", 422, "Product_Weight", 0, ["finite"],
        **raw(json.dumps(_with(Product_Weight=1.0)).replace("1.0", "1e400"))),
    bad("fractional-year", 422, YEAR, 0, ["whole number"], json=_with(**{YEAR: STORE.establishment_year + 0.5})),
    bad("string-year", 422, YEAR, 0, ["must be a whole number"], json=_with(**{YEAR: str(STORE.establishment_year)})),
    bad("year-out-of-range", 422, YEAR, 0, [">= 1900 and <= 2100"], json=_with(**{YEAR: 1800})),
    bad("store-size-contradicts-store", 422, "Store_Size", 0, [f"contradicts store {STORE.store_id}", repr(STORE.size)],
        json=_with(Store_Size=OTHER_STORE.size)),
    bad("store-year-contradicts-store", 422, YEAR, 0, [f"contradicts store {STORE.store_id}"],
        json=_with(**{YEAR: OTHER_STORE.establishment_year})),
    bad("unhashable-store", 422, "Store_Id", 0, ["must be one of"], json=_with(Store_Id={})),
    bad("many-junk-fields", 422, "junk0", 0, ["unknown field"], json=_with(**{f"junk{i}": i for i in range(50_000)})),
    bad("unknown-store", 422, "Store_Id", 0, [repr(STORE.store_id)], json=_with(Store_Id="OUT999")),
    bad("bad-product-id", 422, "Product_Id", 0, ["product id"], json=_with(Product_Id="XX12")),
    bad("numeric-product-id", 422, "Product_Id", 0, ["product id"], json=_with(Product_Id=12)),
    bad("second-record-bad", 422, "Product_Weight", 1, ["record 1"],
        json={"records": [BASE, _with(Product_Weight="heavy")]}),
    bad("record-not-an-object", 422, None, 2, ["object"], json={"records": [BASE, BASE, 5]}),
    bad("empty-records", 422, "records", None, ["empty"], json={"records": []}),
    bad("records-not-a-list", 422, "records", None, ["list"], json={"records": BASE}),
    bad("extra-key-next-to-records", 422, "limit", None, ["unknown field"], json={"records": [BASE], "limit": 3}),
    bad("too-many-records", 422, "records", None, [f"{MAXR:,}"], json={"records": [BASE] * (MAXR + 1)}),
    bad("json-array", 422, None, None, ["record object"], json=[BASE]),
    bad("malformed-json", 400, None, None, ["malformed JSON"], **raw(b'{"Product_Weight": ')),
    bad("not-utf8", 400, None, None, ["malformed JSON"], **raw(b'{"Product_Type": "\xff"}')),
    bad("text-plain", 415, None, None, ["application/json"], **raw(json.dumps(BASE), "text/plain")),
    bad("form-urlencoded", 415, None, None, ["application/json"], data={"a": "b"}),
    bad("declared-too-big", 413, None, None, ["over the limit"], **raw(b" " * (MAX_JSON_BYTES + 1))),
    bad("streamed-too-big", 413, None, None, ["over the limit"], **raw(_chunks(MAX_JSON_BYTES))),
    bad("csv-missing-column", 422, "Product_MRP", None, ["missing column"], CSV, **_csv(_without("Product_MRP"))),
    bad("csv-unknown-column", 422, "Colour", None, ["unknown column"], CSV, **_csv(_with(Colour="red"))),
    bad("csv-bad-number", 422, "Product_Weight", 1, ["'heavy'"], CSV, **_csv(BASE, _with(Product_Weight="heavy"))),
    bad("csv-bad-category", 422, "Store_Size", 0, ["'Huge' is not allowed"], CSV, **_csv(_with(Store_Size="Huge"))),
    bad("csv-empty-cell", 422, "Product_Type", 0, ["missing"], CSV, **_csv(_with(Product_Type=""))),
    bad("csv-ragged-row", 422, None, 1, ["fields, but the header has"], CSV, **_file(to_csv([BASE]) + b"1,2\n")),
    bad("csv-not-utf8", 400, None, None, ["UTF-8"], CSV, **_file(b"\xff\xfe\x00a,b")),
    bad("csv-unclosed-quote", 400, None, None, ["not a valid CSV"], CSV, **_file(to_csv([BASE]) + b'"open,quote')),
    bad("csv-empty-file", 422, None, None, ["empty"], CSV, **_file(b"")),
    bad("csv-header-only", 422, None, None, ["no data rows"], CSV, **_file(to_csv([BASE]).splitlines()[0])),
    bad("csv-too-many-rows", 413, None, None, [f"{MAX_CSV_ROWS:,}"], CSV, **_csv(*[BASE] * (MAX_CSV_ROWS + 1))),
    bad("csv-too-big", 413, None, None, ["over the limit"], CSV, **_file(b"x" * (MAX_CSV_BYTES + 1))),
    bad("csv-no-file-field", 422, "file", None, ["field 'file'"], CSV,
        files={"upload": ("a.csv", to_csv([BASE]), "text/csv")}),
    bad("csv-as-json", 415, None, None, ["multipart/form-data"], CSV, json=BASE),
]
# fmt: on


@pytest.mark.parametrize(("path", "request_kwargs", "status", "field", "record", "contains"), BAD_CASES)
def test_bad_input_is_a_clear_4xx(client, path, request_kwargs, status, field, record, contains):
    kwargs = dict(request_kwargs)
    if callable(kwargs.get("content")):
        kwargs["content"] = kwargs["content"]()
    response = client.post(path, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["detail"] == body["errors"][0]["message"]
    messages = " | ".join(e["message"] for e in body["errors"])
    for text in contains:
        assert text in messages, f"{text!r} not in {messages!r}"
    if field is not None:
        error = next((e for e in body["errors"] if e["field"] == field), None)
        assert error is not None, f"no error names field {field!r}: {body['errors']}"
        assert f"'{field}'" in error["message"]
    if record is not None:
        error = next((e for e in body["errors"] if e["record"] == record), None)
        assert error is not None, f"no error names record {record}: {body['errors']}"
        where = f"row {record + 1} (line {record + 2})" if path.endswith("csv") else f"record {record}"
        assert where in error["message"]


def test_every_problem_of_a_record_is_listed(client):
    response = client.post("/v1/predict", json={**_without("Product_MRP"), "Product_Weight": -1, "Store_Size": 1})
    fields = [e["field"] for e in response.json()["errors"]]
    assert response.status_code == 422 and set(fields) == {"Product_MRP", "Product_Weight", "Store_Size"}


def test_every_get_route_answers_head_like_get_without_a_body(client):
    """RFC 9110: HEAD wherever GET is allowed, same status and headers, no body."""
    paths = [p for p, ops in client.get("/openapi.json").json()["paths"].items() if "get" in ops]
    paths += ["/", "/web/app.js"]
    assert {"/v1/model", "/v1/schema", "/healthz", "/readyz"} <= set(paths)
    for path in paths:
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"", path
        for name in ("content-type", "content-length"):
            assert head.headers.get(name) == get.headers.get(name), (path, name)


def test_unknown_routes_and_methods_are_json_4xx(client):
    assert client.get("/v1/nothing").status_code == 404
    response = client.put("/v1/predict", json=BASE)
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.json()["detail"]


# --- readiness -------------------------------------------------------------------------------------


def test_readyz_is_503_while_loading_then_200(package):
    from superkart_lib.production.app import create_app

    app = create_app(package)  # httpx's ASGI transport runs no lifespan: nothing loads until we say so

    async def probe() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            before = [await c.get("/readyz"), await c.post("/v1/predict", json=BASE), await c.get("/healthz")]
            app.state.model.load()
            return [*before, await c.get("/readyz"), await c.post("/v1/predict", json=BASE)]

    import asyncio

    loading, predict_early, health, ready, predict = asyncio.run(probe())
    assert loading.status_code == 503 and loading.json()["status"] == "loading"
    assert loading.headers["retry-after"] == "1"
    assert predict_early.status_code == 503 and "loading" in predict_early.json()["detail"]
    assert predict_early.headers["retry-after"] == "1"
    assert health.status_code == 200
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert predict.status_code == 200


def test_predict_goes_through_middleware_and_the_router(package, sample_records):
    """The hot route is an ordinary route: middleware added to the app (metrics, auth) sees every call."""
    import asyncio

    from superkart_lib.production.app import create_app
    from superkart_lib.production.handlers import PredictEndpoint

    app = create_app(package)
    app.state.model.load()
    seen: list[tuple[str, int, bool]] = []

    class Recorder:  # a pure ASGI middleware, as a metrics or auth layer would be
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            async def record(message):
                if message["type"] == "http.response.start":
                    seen.append((scope["path"], message["status"], isinstance(scope.get("endpoint"), PredictEndpoint)))
                await send(message)

            await self.inner(scope, receive, record)

    app.add_middleware(Recorder)

    async def calls() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            ok = await c.post("/v1/predict", json=sample_records[0])
            bad = await c.post("/v1/predict", json={"records": []})
            return [ok.status_code, bad.status_code]

    assert asyncio.run(calls()) == [200, 422]
    assert seen == [("/v1/predict", 200, True), ("/v1/predict", 422, True)]  # the router chose the endpoint


def test_openapi_documents_the_predict_route_the_app_serves(package):
    """/v1/predict is served by a plain ASGI endpoint and documented by a route that is never served."""
    from starlette.routing import Route

    from superkart_lib.production.app import create_app
    from superkart_lib.production.handlers import PredictEndpoint

    app = create_app(package)
    served = [r for r in app.routes if getattr(r, "path", None) == "/v1/predict"]
    assert len(served) == 1 and isinstance(served[0], Route) and isinstance(served[0].app, PredictEndpoint)
    operation = app.openapi()["paths"]["/v1/predict"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PredictRequest"
    }


@pytest.fixture
def altered_package(package, tmp_path) -> Path:
    copy = tmp_path / "altered"
    shutil.copytree(package, copy)
    onnx = copy / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\0")
    return copy


def test_altered_package_is_never_ready(altered_package, tmp_path):
    with live_server(altered_package, tmp_path / "server.log", factory=True) as url:
        ready = wait_ready(url, timeout=30)
        assert ready.status_code == 503
        assert ready.json()["status"] == "failed" and "model.onnx" in ready.json()["detail"]
        assert httpx.get(f"{url}/healthz").status_code == 200
        response = httpx.post(f"{url}/v1/predict", json=BASE)
        assert response.status_code == 503 and "model.onnx" in response.json()["detail"]


def test_run_server_refuses_an_altered_package_before_listening(altered_package):
    from superkart_lib.contract.errors import SuperKartError
    from superkart_lib.production.server import run_server

    with pytest.raises(SuperKartError, match="model.onnx"):
        run_server(altered_package, port=free_port())


def test_run_server_refuses_a_busy_port(package):
    from superkart_lib.contract.errors import SuperKartError
    from superkart_lib.production.server import run_server

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SuperKartError, match=f"cannot listen on 127.0.0.1:{port}"):
            run_server(package, port=port)


def test_two_workers_each_load_the_model(package, tmp_path, offline, sample_records):
    with live_server(package, tmp_path / "server.log", workers=2) as url:
        assert wait_ready(url).status_code == 200
        # Fresh connections spread over both workers. A worker accepts connections only once its
        # model is loaded and warm, so no client ever meets a worker still loading (no 503).
        for record in sample_records[:40]:
            with httpx.Client(base_url=url) as fresh:
                response = fresh.post("/v1/predict", json=record)
            assert response.status_code == 200, response.text
            assert response.json()["prediction"] == float(offline.predict(record)[0])


# --- the production environment -------------------------------------------------------------------

SERVE_WITHOUT_TRAINING_STACK = """
import sys
from superkart_lib.production.app import create_app
app = create_app(sys.argv[1])
app.state.model.load()
assert app.state.model.model is not None, app.state.model.error
print("ok")
"""


def test_serving_modules_import_without_pandas_or_sklearn(package):
    result = run_without_training_stack(SERVE_WITHOUT_TRAINING_STACK, str(package))
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_bounds_checks_agree_with_the_schema():
    """The validator's pure-Python range tests answer as ``Column.out_of_bounds`` does."""
    specials = [float("nan"), float("inf"), -float("inf"), 0, 1, -1]
    for column in (c for c in schema.COLUMNS if c.kind in ("number", "integer")):
        edges = [e + d for e in (column.minimum, column.maximum) if e is not None for d in (0, -1, 1, -1e-9, 1e-9)]
        check = records._checker(column)
        for value in specials + edges:
            if column.kind == "integer" and math.isfinite(value) and value != int(value):
                continue  # a fractional year breaks the whole-number rule, not the bounds
            assert (check(value) is None) == (not column.out_of_bounds(value)), (column.name, value)


# --- a bounded load test on loopback ----------------------------------------------------------------

LOAD_REQUESTS = 10_000
LOAD_CONCURRENCY = 32
LOAD_TIMEOUT = 240.0


def test_load_10k_requests_at_concurrency_32(server, offline, sample_records):
    expected = [float(offline.predict(r)[0]) for r in sample_records]
    bodies = [json.dumps(r).encode() for r in sample_records]
    next_index = iter(range(LOAD_REQUESTS))
    lock = threading.Lock()
    failures: list[str] = []
    latencies: list[float] = []
    deadline = time.monotonic() + LOAD_TIMEOUT

    def worker() -> None:
        headers = {"Content-Type": "application/json"}
        with httpx.Client(base_url=server, timeout=30) as c:
            while time.monotonic() < deadline:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    return
                k = i % len(bodies)
                start = time.perf_counter()
                try:
                    response = c.post("/v1/predict", content=bodies[k], headers=headers)
                    got = response.json().get("prediction") if response.status_code == 200 else response.text
                except httpx.HTTPError as exc:
                    got = repr(exc)
                latencies.append(time.perf_counter() - start)
                if got != expected[k]:
                    failures.append(f"request {i}: {got!r} != {expected[k]!r}")

    threads = [threading.Thread(target=worker) for _ in range(LOAD_CONCURRENCY)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=LOAD_TIMEOUT + 30)
    wall = time.perf_counter() - started
    assert not failures, f"{len(failures)} failures, first: {failures[:3]}"
    assert len(latencies) == LOAD_REQUESTS, f"only {len(latencies)} requests within {LOAD_TIMEOUT}s"
    latencies.sort()
    p50, p99 = latencies[len(latencies) // 2], latencies[int(0.99 * (len(latencies) - 1))]
    # The client shares the machine's cores with the server, so this reports rather than gates latency.
    print(
        f"\nload: {LOAD_REQUESTS} requests, {LOAD_REQUESTS / wall:.0f}/s, "
        f"p50 {p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms"
    )
