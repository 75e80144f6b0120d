"""Request handling behind the API: the model state, bodies, uploads, answers and errors.

Kept apart from the routes (:mod:`superkart_lib.serve`) so the hot path is plain functions:
the JSON prediction route costs one body read, :func:`records.parse_json_request`, one
``OnnxModel.predict`` and one ``json.dumps``. Standard library, starlette and the
pure-Python parts of ``superkart_lib`` only (no pandas, no scikit-learn).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from superkart_lib import records, records_csv
from superkart_lib.errors import DataError, SuperKartError
from superkart_lib.records import FieldError, RequestError

#: Largest ``POST /v1/predict`` body (1,000 pretty-printed records fit with room to spare).
MAX_JSON_BYTES = 2 * 1024 * 1024
#: Largest uploaded CSV file; the multipart envelope around it may add :data:`MULTIPART_SLACK`.
MAX_CSV_BYTES = 5 * 1024 * 1024
MULTIPART_SLACK = 64 * 1024
log = logging.getLogger("superkart.serve")


class ModelState:
    """The process's model, loaded in a background thread so ``/healthz`` answers at once."""

    def __init__(self, package_dir: Path):
        self.package_dir = package_dir
        self.model: Any = None
        self.version = ""
        self.manifest_json = b""
        self.error: str | None = None
        self.ready = threading.Event()

    def load(self) -> None:
        """Verify, load and warm the model with one prediction, or record why that failed."""
        from superkart_lib.runtime import OnnxModel  # onnxruntime imports slowly: keep it off startup

        try:
            model = OnnxModel.from_package(self.package_dir)
            model.predict(records.example_record())
        except SuperKartError as exc:
            self.error = str(exc)
        except Exception as exc:  # a bad package must leave a readable reason, not a dead thread
            self.error = f"{type(exc).__name__}: {exc}"
        else:
            self.manifest_json = dumps(model.manifest)
            self.version = model.version
            self.model = model
            self.ready.set()
            return
        log.error("model package %s not loaded: %s", self.package_dir, self.error)

    def require_model(self) -> Any:
        """The loaded model, or a 503 saying whether it is loading or failed."""
        if self.model is None:
            detail = f"model failed to load: {self.error}" if self.error else "model is loading; retry shortly"
            raise fail(503, detail)
        return self.model


def dumps(data: Any) -> bytes:
    """Compact JSON bytes (NaN refused: no response may carry invalid JSON)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def fail(status: int, message: str, field: str | None = None) -> RequestError:
    """A request-level error with one message."""
    return RequestError(status, [FieldError(message, field)])


def error_body(errors: list[FieldError]) -> bytes:
    """The body of every error answer: the first message, then each problem."""
    return dumps({"detail": errors[0].message, "errors": [e.as_dict() for e in errors]})


def media_type(request: Request) -> str:
    """The request's Content-Type without parameters, lower case."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` (the declared length first, then as it streams)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise fail(413, f"body of {int(declared):,} bytes is over the limit of {limit:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise fail(413, f"body is over the limit of {limit:,} bytes")
    return bytes(body)


def predict_batch(model: Any, batch: Any) -> list[float]:
    """Predictions as plain floats (exact: float32 widens to float64 without rounding)."""
    try:
        return model.predict(batch).tolist()
    except DataError as exc:  # validation should have caught it; it is still the client's input
        raise fail(422, str(exc)) from None


def predict_json(state: ModelState, content_type: str, body: bytes) -> tuple[int, bytes]:
    """Status and JSON body answering ``POST /v1/predict`` (the fast path and the route share it)."""
    try:
        if content_type != "application/json":
            raise fail(415, "send Content-Type: application/json")
        model = state.require_model()
        batch, is_batch = records.parse_json_request(body)
        if is_batch:
            return 200, dumps({"predictions": predict_batch(model, batch), "model_version": state.version})
        return 200, dumps({"prediction": predict_batch(model, batch[0])[0], "model_version": state.version})
    except RequestError as exc:
        return exc.status, error_body(exc.errors)


async def uploaded_file(request: Request, body: bytes) -> bytes:
    """The bytes of multipart field ``file``, parsed from the already size-checked body."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    class _InMemory(MultiPartParser):
        spool_max_size = MAX_CSV_BYTES + MULTIPART_SLACK  # no temporary file for an upload we already hold

    async def stream() -> AsyncIterator[bytes]:
        yield body

    try:
        form = await _InMemory(request.headers, stream(), max_files=1, max_fields=8).parse()
    except MultiPartException as exc:
        raise fail(400, f"malformed multipart upload: {exc.message}") from None
    except (ValueError, KeyError, UnicodeError) as exc:  # python-multipart on mangled envelopes
        raise fail(400, f"malformed multipart upload: {exc}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        await form.close()
        raise fail(422, "field 'file': missing; upload the CSV as multipart form field 'file'", "file")
    data = await upload.read()
    await form.close()
    if len(data) > MAX_CSV_BYTES:
        raise fail(413, f"field 'file': {len(data):,} bytes, over the limit of {MAX_CSV_BYTES:,}", "file")
    return data


def csv_answer(table: records_csv.CsvTable, predictions: list[float], version: str) -> Response:
    """The uploaded rows as sent, plus a ``prediction`` column (the model version in a header)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([*table.header, "prediction"])
    writer.writerows([*row, repr(p)] for row, p in zip(table.rows, predictions, strict=True))
    return Response(out.getvalue(), media_type="text/csv", headers={"X-Model-Version": version})


class SuperKartAPI(FastAPI):
    """FastAPI whose hot route, ``POST /v1/predict``, skips routing, middleware and Request objects.

    That saves ~100 us of the ~400 us a one-record call costs in-process. The route stays
    registered (for the OpenAPI document) and answers identically without this shortcut.
    """

    model_state: ModelState

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] == "/v1/predict":
            await self._fast_predict(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)

    async def _fast_predict(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        content_type, declared = "", b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.split(b";", 1)[0].strip().lower().decode("latin-1")
            elif name == b"content-length":
                declared = value
        try:
            body = await _receive_body(receive, declared) if content_type == "application/json" else b""
            if body is None:
                return  # the client went away
            status, content = predict_json(self.model_state, content_type, body)
        except RequestError as exc:
            status, content = exc.status, error_body(exc.errors)
        except Exception:  # never a traceback to the client
            log.exception("POST /v1/predict failed")
            status, content = 500, dumps({"detail": "internal error (logged on the server)", "errors": []})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        if status == 503:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


async def _receive_body(receive: Any, declared: bytes) -> bytes | None:
    """The raw ASGI body, or None if the client disconnected; 413 past :data:`MAX_JSON_BYTES`."""
    if declared.isdigit() and int(declared) > MAX_JSON_BYTES:
        raise fail(413, f"body of {int(declared):,} bytes is over the limit of {MAX_JSON_BYTES:,} bytes")
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > MAX_JSON_BYTES:
            raise fail(413, f"body is over the limit of {MAX_JSON_BYTES:,} bytes")
        if not message.get("more_body", False):
            return body
