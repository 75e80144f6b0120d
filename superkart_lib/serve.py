"""The prediction API and web page: FastAPI over one single-threaded ONNX session per process.

Production imports only: numpy, onnxruntime, fastapi (starlette, pydantic), uvicorn,
python-multipart and the pure-Python parts of ``superkart_lib`` (no pandas, no scikit-learn).

Endpoints (all documented in ``/openapi.json``):

- ``POST /v1/predict``: ``application/json``; one record -> ``{"prediction", "model_version"}``,
  or ``{"records": [...]}`` (1 to 1,000) -> ``{"predictions", "model_version"}``; body <= 2 MiB.
- ``POST /v1/predict/csv``: ``multipart/form-data`` with the CSV in field ``file`` (<= 5 MiB,
  <= 10,000 rows) -> the batch JSON, or with ``Accept: text/csv`` the uploaded rows plus a
  ``prediction`` column.
- ``GET /v1/model`` (the manifest), ``GET /v1/schema`` (schema, store table, limits),
  ``GET /healthz`` (alive), ``GET /readyz`` (503 until verified, loaded and warmed), ``GET /``.

Errors are ``{"detail": str, "errors": [{"message", "field", "record", "row", "line"}]}``:
400 malformed JSON, CSV or multipart; 413 body size or CSV row count over its limit; 415 wrong
Content-Type; 422 refused by the schema, including more than 1,000 records (names the field and
the record index, or the CSV row and line); 503 model not ready. No traceback reaches a client.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.staticfiles import StaticFiles

from superkart_lib import __version__, api, records, records_csv, schema
from superkart_lib import service as svc
from superkart_lib.errors import SuperKartError
from superkart_lib.records import FieldError, RequestError

#: Environment variable naming the package directory for :func:`app_from_env` (uvicorn workers).
MODEL_ENV = "SUPERKART_MODEL_DIR"
MAX_JSON_BYTES = svc.MAX_JSON_BYTES
MAX_CSV_BYTES = svc.MAX_CSV_BYTES
WEB_DIR = Path(__file__).with_name("web")
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
API_DESCRIPTION = (
    "Predicts Product_Store_Sales_Total for SuperKart product-store records with the packaged ONNX model. "
    "Records use the dataset's column names minus the target; Product_Id is optional; store attributes must "
    "match the store table. Errors name the field and the record index (CSV: row and line). "
    f"Limits: {records.MAX_RECORDS:,} records or {MAX_JSON_BYTES // 2**20} MiB per JSON request; "
    f"{records_csv.MAX_CSV_ROWS:,} rows or {MAX_CSV_BYTES // 2**20} MiB per CSV upload."
)
_JSON_CONTENT = {"schema": {"$ref": "#/components/schemas/PredictRequest"}, "example": records.example_record()}
_CSV_BODY = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary", "description": "A CSV file with a header row"}},
    "required": ["file"],
}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(svc.dumps(data), status_code=status, media_type="application/json", headers=headers)


def _score_csv(model: Any, data: bytes) -> tuple[records_csv.CsvTable, list[float]]:
    table = records_csv.parse_csv(data)
    return table, svc.predict_batch(model, table.records)


def _schema_info() -> dict[str, Any]:
    limits = {
        "max_records": records.MAX_RECORDS,
        "max_json_bytes": MAX_JSON_BYTES,
        "max_csv_bytes": MAX_CSV_BYTES,
        "max_csv_rows": records_csv.MAX_CSV_ROWS,
    }
    return {
        **schema.as_dict(),
        "input_columns": list(schema.INPUT_COLUMNS),
        "store_attributes": dict(schema.STORE_ATTRIBUTES),
        "limits": limits,
    }


def create_app(package_dir: str | Path) -> svc.SuperKartAPI:
    """The API and web page for one model package, loaded in a background thread at startup.

    Parameters
    ----------
    package_dir : str or Path
        A model package directory (``manifest.json`` and ``model.onnx``).

    Returns
    -------
    SuperKartAPI
        A FastAPI app; ``/readyz`` answers 503 until the package is verified, loaded and warmed.
    """
    state = svc.ModelState(Path(package_dir))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=state.load, name="superkart-model-load", daemon=True)
        loader.start()
        yield
        loader.join(timeout=30)  # exiting while onnxruntime builds a session aborts the process

    app = svc.SuperKartAPI(
        title="SuperKart sales prediction API",
        version=__version__,
        description=API_DESCRIPTION,
        docs_url=None,  # Swagger UI loads from a CDN; /openapi.json is the reference
        redoc_url=None,
        lifespan=lifespan,
    )
    app.model_state = state
    _register_handlers(app)
    _register_predict_routes(app, state)
    _register_info_routes(app, state, svc.dumps(_schema_info()))
    api.install_openapi(app)
    return app


def _register_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Response:
        headers = {"Retry-After": "1"} if exc.status == 503 else None
        return Response(svc.error_body(exc.errors), exc.status, headers, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        body = svc.error_body([FieldError(str(exc.detail))])
        return Response(body, exc.status_code, getattr(exc, "headers", None), media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # No route declares FastAPI-validated parameters; kept so any future one answers alike.
        messages = [FieldError(str(e.get("msg", "invalid request"))) for e in exc.errors()] or [FieldError("invalid")]
        return Response(svc.error_body(messages), 422, media_type="application/json")


def _register_predict_routes(app: FastAPI, state: svc.ModelState) -> None:
    @app.post(
        "/v1/predict",
        summary="Predict sales for one record or a batch",
        response_model=api.Prediction | api.Predictions,
        responses=api.error_responses(400, 413, 415, 422, 503),
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": _JSON_CONTENT}}},
    )
    async def predict(request: Request) -> Response:
        # Normally answered by SuperKartAPI's fast path before routing; identical answers here.
        content_type = svc.media_type(request)
        body = await svc.read_body(request, MAX_JSON_BYTES) if content_type == "application/json" else b""
        status, content = svc.predict_json(state, content_type, body)
        headers = {"Retry-After": "1"} if status == 503 else None
        return Response(content, status_code=status, headers=headers, media_type="application/json")

    @app.post(
        "/v1/predict/csv",
        summary="Predict sales for every row of an uploaded CSV",
        response_model=api.Predictions,
        responses={
            200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
            **api.error_responses(400, 413, 415, 422, 503),
        },
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _CSV_BODY}}}},
    )
    async def predict_csv(request: Request) -> Response:
        if svc.media_type(request) != "multipart/form-data":
            raise svc.fail(415, "upload the CSV as multipart/form-data in field 'file'")
        body = await svc.read_body(request, MAX_CSV_BYTES + svc.MULTIPART_SLACK)
        model = state.require_model()
        data = await svc.uploaded_file(request, body)
        # Up to 10,000 rows: parse and predict off the event loop so other requests keep flowing.
        table, predictions = await run_in_threadpool(_score_csv, model, data)
        if "text/csv" in request.headers.get("accept", ""):
            return svc.csv_answer(table, predictions, state.version)
        return _json({"predictions": predictions, "model_version": state.version})


def _register_info_routes(app: FastAPI, state: svc.ModelState, schema_json: bytes) -> None:
    @app.get(
        "/v1/model",
        summary="The model package's manifest",
        response_model=api.ModelInfo,
        responses=api.error_responses(503),
    )
    async def model_info() -> Response:
        state.require_model()
        return Response(state.manifest_json, media_type="application/json")

    @app.get("/v1/schema", summary="Input schema, store table and limits", response_model=api.SchemaInfo)
    async def schema_info() -> Response:
        return Response(schema_json, media_type="application/json")

    @app.get("/healthz", summary="The process is alive", response_model=api.Health)
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get(
        "/readyz",
        summary="The model is verified, loaded and warmed",
        response_model=api.Readiness,
        responses={503: {"model": api.Readiness, "description": "Loading, or failed to load (see detail)"}},
    )
    async def readyz() -> Response:
        if state.model is not None:
            return _json({"status": "ready", "model_version": state.version})
        status = "failed" if state.error else "loading"
        return _json({"status": status, "detail": state.error}, 503, {"Retry-After": "1"})

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        return FileResponse(WEB_DIR / "index.html", headers={"Content-Security-Policy": _CSP})

    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")


def app_from_env() -> FastAPI:
    """App factory for uvicorn workers: the package directory comes from ``SUPERKART_MODEL_DIR``."""
    package_dir = os.environ.get(MODEL_ENV)
    if not package_dir:
        raise SuperKartError(f"{MODEL_ENV} is not set (use `superkart serve --model DIR`)")
    return create_app(package_dir)


def run_server(
    package_dir: str | Path, host: str = "127.0.0.1", port: int = 8000, workers: int = 1, access_log: bool = False
) -> None:
    """Serve a model package with uvicorn until interrupted.

    The package is verified here first, so a bad package is one clear error before any
    worker starts; each worker process then builds its own app and ONNX session.

    Raises
    ------
    SuperKartError
        When the package is missing, altered or cannot be loaded, or the address is taken.
    """
    import uvicorn

    from superkart_lib.runtime import OnnxModel

    directory = Path(package_dir).resolve()
    OnnxModel.from_package(directory)
    try:  # uvicorn reports a busy port as a log line and exit 1; say it as the CLI says errors
        socket.create_server((host, port)).close()
    except OSError as exc:
        raise SuperKartError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    os.environ[MODEL_ENV] = str(directory)
    uvicorn.run(
        "superkart_lib.serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        log_level="info",
    )
