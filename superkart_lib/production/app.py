"""The prediction API and web page: FastAPI over one single-threaded ONNX session per process.

Production imports only: numpy, onnxruntime, fastapi (starlette, pydantic), python-multipart
and the contract (no pandas, no scikit-learn). Request handling is in :mod:`.handlers`, the
documented shapes in :mod:`.openapi`, the request limits in :mod:`superkart_lib.contract.limits`.

Endpoints (all documented in ``/openapi.json``):

- ``POST /v1/predict``: ``application/json``; one record -> ``{"prediction", "model_version"}``,
  or ``{"records": [...]}`` -> ``{"predictions", "model_version"}``.
- ``POST /v1/predict/csv``: ``multipart/form-data`` with the CSV in field ``file`` -> the batch
  JSON, or with ``Accept: text/csv`` the uploaded rows plus a ``prediction`` column.
- ``GET /v1/model`` (the manifest), ``GET /v1/schema`` (schema, store table, limits),
  ``GET /v1/drift`` (PSI and KS of the last records this worker served against the training inputs),
  ``GET /healthz`` (alive), ``GET /readyz`` (503 until verified, loaded and warmed, and once
  stopping), ``GET /``.
- ``GET /metrics``: Prometheus text (:mod:`.metrics`), left out of ``/openapi.json`` as an
  operator's route, not the API's; absent with ``SUPERKART_METRICS=off``.

Errors are ``{"detail": str, "errors": [{"message", "field", "record", "row", "line"}]}``:
400 malformed JSON, CSV or multipart; 413 body size or CSV row count over its limit; 415 wrong
Content-Type; 422 refused by the schema, including too many records (names the field and the
record index, or the CSV row and line); 503 model not ready. No traceback reaches a client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from superkart_lib import __version__
from superkart_lib.contract import limits, schema
from superkart_lib.contract.errors import FieldError, RequestError
from superkart_lib.production import csv_upload, lifecycle, metrics, openapi
from superkart_lib.production import handlers as h
from superkart_lib.production import record_validation as records
from superkart_lib.production.model_state import DRIFT_WINDOW, LinkFollower, Loaded, ModelState

Endpoint = Callable[[], Awaitable[Response]]
WEB_DIR = Path(__file__).with_name("web")
_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
API_DESCRIPTION = (
    "Predicts Product_Store_Sales_Total for SuperKart product-store records with the packaged ONNX model. "
    "Records use the dataset's column names minus the target; Product_Id is optional; store attributes must "
    "match the store table. Errors name the field and the record index (CSV: row and line). " + limits.summary()
)
_JSON_CONTENT = {"schema": {"$ref": "#/components/schemas/PredictRequest"}, "example": records.example_record()}
_CSV_BODY = {
    "type": "object",
    "properties": {"file": {"type": "string", "format": "binary", "description": "A CSV file with a header row"}},
    "required": ["file"],
}


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(h.dumps(data), status_code=status, media_type="application/json", headers=headers)


def _score_upload(model: Any, data: bytes, as_csv: bool, version: str, record: bool) -> Response:
    """The answer to an uploaded CSV; the parsed rows are freed, and their memory released, before it returns."""

    def answer() -> Response:
        table = csv_upload.parse_csv(data)
        predictions = h.predict_batch(model, table.records)
        if record:
            metrics.predictions(predictions)
        if as_csv:
            return h.csv_answer(table, predictions, version)
        return _json({"predictions": predictions, "model_version": version})

    try:
        return answer()
    finally:
        h.release_memory()


def _served_drift(loaded: Loaded, recent: list[dict[str, Any]]) -> dict[str, Any]:
    """The drift report of ``recent`` records against ``loaded``'s reference (this worker's window)."""
    from superkart_lib.production.drift import DriftWindow

    head = {"model_version": loaded.version, "window": DRIFT_WINDOW}
    if not recent:
        return {**head, "rows": 0, "verdict": "no data", "columns": []}
    window = DriftWindow(loaded.reference or {})
    window.add_records(recent)
    return {**head, **window.report().as_dict()}


def _schema_info() -> dict[str, Any]:
    return {
        **schema.as_dict(),
        "input_columns": list(schema.INPUT_COLUMNS),
        "store_attributes": dict(schema.STORE_ATTRIBUTES),
        "limits": limits.as_dict(),
    }


def create_app(package_dir: str | Path, follow: bool = False) -> FastAPI:
    """The API and web page for one model package, loaded (off the event loop) at startup.

    Parameters
    ----------
    package_dir : str or Path
        A model package directory (``manifest.json`` and ``model.onnx``), or a link to one.
    follow : bool
        Keep watching the link ``package_dir`` (a registry's ``current``) and swap to each
        version it comes to point at, verified and warmed first (:class:`~.model_state.LinkFollower`).

    Returns
    -------
    FastAPI
        The app; ``app.state.model`` is its :class:`~.model_state.ModelState`. ``/readyz`` answers
        503 until the package is verified, loaded and warmed.
    """
    state = ModelState(Path(package_dir))
    record = metrics.enabled()
    follower = LinkFollower(state, on_load=metrics.model_loaded if record else None) if follow else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Loaded before startup completes: uvicorn accepts no connection until the lifespan has
        # started, so a (re)started worker never takes a request its sibling could have answered.
        # A package that fails to load still starts the server, which then says why on /readyz.
        await to_thread.run_sync(state.load)
        if record:
            metrics.model_loaded(state.version, state.model is not None)
        if follower is not None:
            follower.start()
        try:
            yield
        finally:
            if follower is not None:
                follower.stop()
            if record:
                metrics.process_exited()

    app = FastAPI(
        title="SuperKart sales prediction API",
        version=__version__,
        description=API_DESCRIPTION,
        docs_url=None,  # Swagger UI loads from a CDN; /openapi.json is the reference
        redoc_url=None,
        lifespan=lifespan,
        # FastAPI's native OpenTelemetry looks for a configured provider on every request (three
        # environment lookups, ~10 us of a ~200 us prediction); this service configures none.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.model = state
    app.state.follower = follower
    _register_handlers(app)
    # First in the routing table: the hottest route is matched before any other is tried.
    app.router.routes.insert(
        0, Route("/v1/predict", h.PredictEndpoint(state, record), methods=["POST"], name="predict")
    )
    _register_csv_route(app, state, record)
    _register_info_routes(app, state, h.dumps(_schema_info()))
    if record:

        @_get(app, "/metrics", include_in_schema=False)
        async def metrics_text() -> Response:
            return Response(await to_thread.run_sync(metrics.exposition), media_type=metrics.CONTENT_TYPE)

        # Inside the server-error middleware and outside the exception handlers: it sees every
        # answer, errors included. Added last: its table of routes is made from all of them.
        app.add_middleware(metrics.MetricsMiddleware, routes=app.routes)
    openapi.install_openapi(app, documented=[_predict_documentation()])
    return app


def _register_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestError)
    async def request_error(request: Request, exc: RequestError) -> Response:
        headers = {"Retry-After": "1"} if exc.status in (429, 503) else None
        return Response(h.error_body(exc.errors), exc.status, headers, media_type="application/json")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        body = h.error_body([FieldError(str(exc.detail))])
        return Response(body, exc.status_code, getattr(exc, "headers", None), media_type="application/json")

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        # No route declares FastAPI-validated parameters; kept so any future one answers alike.
        messages = [FieldError(str(e.get("msg", "invalid request"))) for e in exc.errors()] or [FieldError("invalid")]
        return Response(h.error_body(messages), 422, media_type="application/json")


def _predict_documentation() -> APIRoute:
    """``POST /v1/predict`` as the OpenAPI document shows it; served by :class:`~.handlers.PredictEndpoint`."""

    async def predict() -> None:  # never called: the documented shape only
        raise NotImplementedError

    return APIRoute(
        "/v1/predict",
        predict,
        methods=["POST"],
        summary="Predict sales for one record or a batch",
        response_model=openapi.Prediction | openapi.Predictions,
        responses=openapi.error_responses(400, 413, 415, 422, 503),
        openapi_extra={"requestBody": {"required": True, "content": {"application/json": _JSON_CONTENT}}},
    )


def _register_csv_route(app: FastAPI, state: ModelState, record: bool) -> None:
    uploads = h.UploadSlots()

    @app.post(
        "/v1/predict/csv",
        summary="Predict sales for every row of an uploaded CSV",
        response_model=openapi.Predictions,
        responses={
            200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
            **openapi.error_responses(400, 413, 415, 422, 429, 503),
        },
        openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _CSV_BODY}}}},
    )
    async def predict_csv(request: Request) -> Response:
        h.require_multipart(request)
        loaded = state.require()  # the upload is answered by the model of this moment, swap or not
        with uploads.claim():
            data = await h.uploaded_file(request, await h.read_upload(request))
            # Up to MAX_CSV_ROWS rows: parse, predict and answer off the event loop so other requests flow.
            as_csv = "text/csv" in request.headers.get("accept", "")
            try:
                return await run_in_threadpool(_score_upload, loaded.model, data, as_csv, loaded.version, record)
            except RequestError as exc:
                if record:
                    metrics.refused(exc)
                raise


def _get(app: FastAPI, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """Register ``endpoint`` for GET (documented) and HEAD (RFC 9110: wherever GET is allowed).

    FastAPI's ``app.get`` registers GET only. HEAD is left out of the OpenAPI document, where it
    would repeat the GET operation under the same operation id.
    """

    def register(endpoint: Endpoint) -> Endpoint:
        app.add_api_route(path, endpoint, methods=["GET"], **options)
        app.add_api_route(path, endpoint, methods=["HEAD"], include_in_schema=False)
        return endpoint

    return register


def _register_info_routes(app: FastAPI, state: ModelState, schema_json: bytes) -> None:
    @_get(
        app,
        "/v1/model",
        summary="The model package's manifest",
        response_model=openapi.ModelInfo,
        responses=openapi.error_responses(503),
    )
    async def model_info() -> Response:
        return Response(state.require().manifest_json, media_type="application/json")

    @_get(
        app,
        "/v1/schema",
        summary="Input schema, store table and limits",
        response_model=openapi.SchemaInfo,
    )
    async def schema_info() -> Response:
        return Response(schema_json, media_type="application/json")

    @_get(app, "/healthz", summary="The process is alive", response_model=openapi.Health)
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @_get(
        app,
        "/readyz",
        summary="The model is verified, loaded and warmed",
        response_model=openapi.Readiness,
        responses={
            503: {
                "model": openapi.Readiness,
                "description": "Loading, failed to load (see detail), or stopping (send new requests elsewhere)",
            }
        },
    )
    async def readyz() -> Response:
        loaded = state.loaded
        if lifecycle.stopping():  # first, so a load balancer stops sending before the server stops accepting
            version = loaded.version if loaded is not None else None
            detail = "the server is shutting down: it still answers requests for a moment, send new ones elsewhere"
            return _json({"status": "stopping", "model_version": version, "detail": detail}, 503)
        if loaded is not None:
            return _json({"status": "ready", "model_version": loaded.version})
        status = "failed" if state.error else "loading"
        return _json({"status": status, "detail": state.error}, 503, {"Retry-After": "1"})

    @_get(
        app,
        "/v1/drift",
        summary="Drift of recently served records against the training inputs (PSI, KS)",
        response_model=openapi.ServedDrift,
        responses=openapi.error_responses(404, 503),
    )
    async def served_drift() -> Response:
        loaded = state.require()
        if loaded.reference is None:
            raise h.fail(404, f"model version {loaded.version} has no reference statistics (an earlier release)")
        return _json(await to_thread.run_sync(_served_drift, loaded, list(state.recent)))

    @_get(app, "/", include_in_schema=False)
    async def index() -> Response:
        return FileResponse(WEB_DIR / "index.html", headers={"Content-Security-Policy": _CSP})

    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
