"""The API's documented shapes, derived from the schema and the limits, for ``/openapi.json``.

Requests are validated by :mod:`.record_validation` on the raw bytes (microseconds a record);
these pydantic models only *document* the same rules, so OpenAPI clients, schemathesis and
people see every field, category and bound. A record is one of four
store-specific shapes (discriminated by ``Store_Id``): the store attributes are fixed per
store in the store table, and the API refuses a record that contradicts it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from superkart_lib.contract import limits, schema
from superkart_lib.contract.limits import MAX_RECORDS, mib
from superkart_lib.production.record_validation import REQUEST_COLUMNS

_STRICT = ConfigDict(extra="forbid", strict=True)


def _drop_default(field_schema: dict[str, Any]) -> None:
    field_schema.pop("default", None)  # optional, but never null: absent is the only "no value"


def _field(column: schema.Column, fixed: Any = None) -> tuple[Any, Any]:
    """(annotation, Field) of one column; ``fixed`` pins a store attribute to its one allowed value."""
    text = column.description + (f" ({column.unit})" if column.unit else "")
    if fixed is not None:
        return Literal[fixed], Field(description=f"{text}; fixed by the store table")
    if column.kind == "category":
        return Literal[column.categories], Field(description=text)
    if column.kind == "id":
        return str, Field(None, description=text, pattern=schema.PRODUCT_ID_PATTERN, json_schema_extra=_drop_default)
    lower = {"gt" if column.exclusive_minimum else "ge": column.minimum} if column.minimum is not None else {}
    upper = {"le": column.maximum} if column.maximum is not None else {}
    kind = int if column.kind == "integer" else float
    bounds: dict[str, Any] = {**lower, **upper}
    return kind, Field(description=text, **bounds)


def _store_record(store: schema.Store) -> type[BaseModel]:
    facts = {col: getattr(store, attr) for col, attr in schema.STORE_ATTRIBUTES.items()}
    facts["Store_Id"] = store.store_id
    fields: dict[str, Any] = {c.name: _field(c, facts.get(c.name)) for c in REQUEST_COLUMNS}
    return create_model(
        f"Record{store.store_id}",
        __config__=_STRICT,
        __doc__=f"One product in store {store.store_id}: the dataset's columns minus the target.",
        **fields,
    )


STORE_RECORDS = tuple(_store_record(s) for s in schema.STORES.values())
# A union built from a runtime tuple: a type to pydantic, a value to a static checker.
Record: Any = Annotated[Union[STORE_RECORDS], Field(discriminator="Store_Id")]  # noqa: UP007


class Batch(BaseModel):
    """Several records scored in one call."""

    model_config = _STRICT
    records: list[Record] = Field(min_length=1, max_length=MAX_RECORDS)


class Prediction(BaseModel):
    """The answer to one record."""

    prediction: float = Field(description="Predicted Product_Store_Sales_Total ($)")
    model_version: str = Field(description="package_version of the model that answered")


class Predictions(BaseModel):
    """The answer to a batch or a CSV upload: one prediction per record, in request order."""

    predictions: list[float]
    model_version: str


class ErrorItem(BaseModel):
    """One problem: the record index (0-based; CSV: also the 1-based row and file line) and the field."""

    message: str
    field: str | None = None
    record: int | None = None
    row: int | None = None
    line: int | None = None


class ErrorBody(BaseModel):
    """Every 4xx (and 503) body: the first problem in one line, then each problem found."""

    detail: str
    errors: list[ErrorItem] = []


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """``ready`` (200); ``loading``, ``failed`` or ``stopping`` (503: a stopping server still answers for a moment)."""

    status: Literal["ready", "loading", "failed", "stopping"]
    model_version: str | None = None
    detail: str | None = None


class ModelInfo(BaseModel):
    """The package manifest, as written by ``superkart train`` (see ``docs/architecture.md``)."""

    model_config = ConfigDict(extra="allow")
    package_version: str
    files: dict[str, dict[str, Any]]
    metrics: dict[str, Any]
    versions: dict[str, Any]
    schema_: dict[str, Any] = Field(alias="schema")


class SchemaInfo(BaseModel):
    """The input schema (columns, categories, bounds, store table) and the request limits."""

    model_config = ConfigDict(extra="allow")
    target: str
    columns: list[dict[str, Any]]
    stores: dict[str, dict[str, Any]]
    input_columns: list[str]
    store_attributes: dict[str, str]
    limits: dict[str, int]


class ServedDrift(BaseModel):
    """Drift of the records this worker served recently, against the model's training inputs."""

    model_config = ConfigDict(extra="allow")
    model_version: str
    window: int
    rows: int
    verdict: str = Field(description="stable, moderate shift, drifted (see docs/drift.md), or no data")
    columns: list[dict[str, Any]]


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer."""
    meaning = {
        400: "Malformed body: not JSON, not CSV text, or not a valid multipart upload",
        413: (
            f"Body size (JSON {mib(limits.MAX_JSON_BYTES)}, CSV {mib(limits.MAX_CSV_BYTES)}) "
            f"or CSV row count ({limits.MAX_CSV_ROWS:,}) over its limit"
        ),
        404: "Not available for this model package (see detail)",
        415: "Wrong Content-Type",
        422: (
            f"Refused by the schema (also more than {MAX_RECORDS:,} records): "
            "names the field and the record index or CSV row"
        ),
        429: (
            f"This worker is already scoring {limits.MAX_UPLOADS_IN_FLIGHT} CSV uploads; "
            "retry after the Retry-After seconds"
        ),
        503: "The model is not loaded yet (or failed to load); see /readyz",
    }
    return {code: {"model": ErrorBody, "description": meaning[code]} for code in codes}


def request_body_schema() -> dict[str, Any]:
    """JSON Schema of ``POST /v1/predict`` (one record, or ``{"records": [...]}``) plus its definitions."""
    adapter = TypeAdapter(Union[Record, Batch])  # noqa: UP007
    return adapter.json_schema(ref_template="#/components/schemas/{model}")


def install_openapi(app: FastAPI, documented: list[APIRoute]) -> None:
    """Make ``app.openapi()`` document the request bodies the routes read as raw bytes.

    ``documented`` are routes described in the document but served by something else (a plain
    ASGI endpoint that FastAPI cannot introspect): they are never added to the app.
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            routes = [*app.routes, *documented]
            document = get_openapi(title=app.title, version=app.version, description=app.description, routes=routes)
            body = request_body_schema()
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(body.pop("$defs", {}))
            components["PredictRequest"] = body
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
