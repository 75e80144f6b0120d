"""Request handling behind the API: the model state, bodies, uploads, answers and errors.

Kept apart from the routes (:mod:`superkart_lib.production.app`) so the hot path is plain
functions: ``POST /v1/predict`` costs one body read, one
:func:`~.record_validation.parse_json_request`, one ``OnnxModel.predict`` and one ``json.dumps``.
Its endpoint, :class:`PredictEndpoint`, is a plain ASGI app mounted as an ordinary route: it
goes through the middleware and the router like every route, but builds no ``Request`` and
runs no FastAPI dependency machinery. Standard library, starlette, prometheus-client (through
:mod:`.metrics`) and the contract only.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from superkart_lib.compat.runtime import parse_multipart
from superkart_lib.contract.errors import DataError, FieldError, RequestError
from superkart_lib.contract.limits import MAX_CSV_BYTES, MAX_JSON_BYTES, MAX_UPLOADS_IN_FLIGHT, MULTIPART_SLACK
from superkart_lib.production import csv_files, csv_upload, metrics
from superkart_lib.production import record_validation as records
from superkart_lib.production.model_state import ModelState

log = logging.getLogger("superkart.serve")

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def dumps(data: Any) -> bytes:
    """Compact JSON bytes (NaN refused: no response may carry invalid JSON)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def fail(status: int, message: str, field: str | None = None) -> RequestError:
    """A request-level error with one message."""
    return RequestError(status, [FieldError(message, field)])


def error_body(errors: list[FieldError]) -> bytes:
    """The body of every error answer: the first message, then each problem."""
    return dumps({"detail": errors[0].message, "errors": [e.as_dict() for e in errors]})


def media_type(content_type: str) -> str:
    """A Content-Type header without parameters, lower case."""
    return content_type.split(";", 1)[0].strip().lower()


async def read_body(receive: Receive, declared: str, limit: int) -> bytes | None:
    """The raw ASGI body, or None if the client went away; 413 past ``limit`` bytes.

    ``declared`` is the Content-Length header: a body declared too big is refused before it is read.
    """
    if declared.isdigit() and int(declared) > limit:
        raise fail(413, f"body of {int(declared):,} bytes is over the limit of {limit:,} bytes")
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        body += message.get("body", b"")
        if len(body) > limit:
            raise fail(413, f"body is over the limit of {limit:,} bytes")
        if not message.get("more_body", False):
            return bytes(body)


def predict_batch(model: Any, batch: Any) -> list[float]:
    """Predictions as plain floats (exact: float32 widens to float64 without rounding)."""
    try:
        predictions: list[float] = model.predict(batch).tolist()
        return predictions
    except DataError as exc:  # validation should have caught it; it is still the client's input
        raise fail(422, str(exc)) from None


def predict_json(state: ModelState, content_type: str, body: bytes, record: bool = False) -> tuple[int, bytes]:
    """Status and JSON body answering ``POST /v1/predict``; ``record`` counts its predictions or refusal."""
    try:
        if content_type != "application/json":
            raise fail(415, "send Content-Type: application/json")
        loaded = state.require()  # once: the model and its version stay together through a swap
        batch, is_batch = records.parse_json_request(body)
        predictions = predict_batch(loaded.model, batch if is_batch else batch[0])
        state.recent.extend(batch)
        if record:
            metrics.predictions(predictions)
        if is_batch:
            return 200, dumps({"predictions": predictions, "model_version": loaded.version})
        return 200, dumps({"prediction": predictions[0], "model_version": loaded.version})
    except RequestError as exc:
        if record:
            metrics.refused(exc)
        return exc.status, error_body(exc.errors)


class PredictEndpoint:
    """``POST /v1/predict`` as a plain ASGI app (a route's endpoint; the router checks the method).

    It reads the body straight from ``receive`` and answers with two ``send`` calls. Errors are
    answered here as JSON; anything unexpected is logged and answered 500 without a traceback.
    """

    def __init__(self, state: ModelState, record: bool = False):
        self.state = state
        self.record = record

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        content_type, declared = "", ""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = media_type(value.decode("latin-1"))
            elif name == b"content-length":
                declared = value.decode("latin-1")
        try:
            body = await read_body(receive, declared, MAX_JSON_BYTES) if content_type == "application/json" else b""
            if body is None:
                return  # the client went away
            status, content = predict_json(self.state, content_type, body, self.record)
        except RequestError as exc:  # the body refused before it was read (413)
            status, content = exc.status, error_body(exc.errors)
        except Exception:  # never a traceback to the client
            log.exception("POST /v1/predict failed")
            status, content = 500, dumps({"detail": "internal error (logged on the server)", "errors": []})
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode())]
        if status == 503:
            headers.append((b"retry-after", b"1"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": content})


class UploadSlots:
    """The CSV uploads one worker handles at a time; one more is refused at once with a 429.

    An upload in flight holds its body, the file and its parsed rows: several times the file's
    size at its peak. Without a limit, many concurrent uploads grow a worker by gigabytes;
    with it, memory for uploads is bounded by ``limit`` times one upload's peak. The refusal
    comes before the body is read, so a refused upload costs no memory either.
    """

    def __init__(self, limit: int = MAX_UPLOADS_IN_FLIGHT):
        self.limit = limit
        self.busy = 0  # only touched on the event loop's thread: no lock needed

    @contextlib.contextmanager
    def claim(self) -> Iterator[None]:
        """Hold a slot for the duration of an upload; a :class:`RequestError` 429 when none is free."""
        if self.busy >= self.limit:
            raise fail(429, f"this server is already scoring {self.limit} CSV uploads; retry in a second")
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1


def release_memory() -> None:
    """Hand freed heap memory back to the operating system (glibc only; elsewhere nothing).

    Parsing an upload makes many small objects; once they are freed, glibc keeps the pages
    in its arenas (one per thread that parsed), so a worker would stay at its peak for good.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Any:
    try:
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc (macOS, musl): nothing to trim
        return None


def require_multipart(request: Request) -> None:
    """415 unless the request is ``multipart/form-data``, checked before anything is read."""
    if media_type(request.headers.get("content-type", "")) != "multipart/form-data":
        raise fail(415, "upload the CSV as multipart/form-data in field 'file'")


async def read_upload(request: Request) -> bytes:
    """The raw body of a CSV upload: 415 unless multipart, 413 over the size limit."""
    require_multipart(request)
    declared = request.headers.get("content-length", "")
    body = await read_body(request.receive, declared, MAX_CSV_BYTES + MULTIPART_SLACK)
    if body is None:
        raise fail(400, "the client closed the connection before the upload ended")
    return body


async def uploaded_file(request: Request, body: bytes) -> bytes:
    """The bytes of multipart field ``file``, parsed from the already size-checked body.

    Raises
    ------
    RequestError
        400 for a malformed envelope, 422 without a ``file`` field, 413 when the file is too big.
    """
    from starlette.formparsers import MultiPartException

    try:
        form = await parse_multipart(request.headers, body, spool_max_size=MAX_CSV_BYTES + MULTIPART_SLACK)
    except MultiPartException as exc:
        raise fail(400, f"malformed multipart upload: {exc.message}") from None
    except (ValueError, KeyError, UnicodeError) as exc:  # python-multipart on mangled envelopes
        raise fail(400, f"malformed multipart upload: {exc}") from None
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        await form.close()
        raise fail(422, "field 'file': missing; upload the CSV as multipart form field 'file'", "file")
    data: bytes = await upload.read()
    await form.close()
    if len(data) > MAX_CSV_BYTES:
        raise fail(413, f"field 'file': {len(data):,} bytes, over the limit of {MAX_CSV_BYTES:,}", "file")
    return data


def csv_answer(table: csv_upload.CsvTable, predictions: list[float], version: str) -> Response:
    """The uploaded rows as sent, plus a ``prediction`` column (the model version in a header).

    Written as batch writes its output: a cell that would start a spreadsheet formula gets a
    leading ``'`` (:func:`.cells.neutralize`); the predictions, floats, are written as they are.
    """
    rows: list[list[Any]] = [[*table.header, "prediction"]]
    rows += ([*row, p] for row, p in zip(table.rows, predictions, strict=True))
    return Response(csv_files.csv_text(rows), media_type="text/csv", headers={"X-Model-Version": version})
