"""Limits of the prediction API and of batch scoring, defined once.

The validators enforce these numbers; the OpenAPI text, ``GET /v1/schema`` (which the web page
reads), the error messages and the README are all written from them (a test keeps the README,
``deploy/nginx.conf`` and this module in step).
"""

from __future__ import annotations

MIB = 1024 * 1024

#: Records in one JSON request; more is a 422, like any other breach of the documented schema (maxItems).
MAX_RECORDS = 1_000
#: Largest ``POST /v1/predict`` body (1,000 pretty-printed records fit with room to spare).
MAX_JSON_BYTES = 2 * MIB
#: Largest uploaded CSV file.
MAX_CSV_BYTES = 5 * MIB
#: Data rows in one CSV upload; more is a 413.
MAX_CSV_ROWS = 10_000
#: CSV uploads one server worker handles at once; more are refused with 429 and ``Retry-After``.
#: This is what bounds a worker's memory under any number of concurrent uploads.
MAX_UPLOADS_IN_FLIGHT = 2
#: Open connections (and running requests) per server worker; beyond, a request gets an immediate 503.
MAX_CONNECTIONS = 1_000
#: What the multipart envelope around an uploaded file may add to the body.
MULTIPART_SLACK = 64 * 1024
#: Problems listed in one error answer: enough to fix a file, bounded in size.
MAX_ERRORS = 50
#: Rows per chunk of ``superkart predict``: memory is bounded by a few chunks whatever the file size.
BATCH_CHUNK_ROWS = 50_000


def as_dict() -> dict[str, int]:
    """The request limits as served by ``GET /v1/schema`` (and read by the web page)."""
    return {
        "max_records": MAX_RECORDS,
        "max_json_bytes": MAX_JSON_BYTES,
        "max_csv_bytes": MAX_CSV_BYTES,
        "max_csv_rows": MAX_CSV_ROWS,
        "max_uploads_in_flight": MAX_UPLOADS_IN_FLIGHT,
    }


def mib(size: int) -> str:
    """A byte count in MiB for messages and docs: ``2 MiB``."""
    return f"{size / MIB:g} MiB"


def summary() -> str:
    """One sentence stating every request limit (the API description and the docs use it)."""
    return (
        f"Limits: {MAX_RECORDS:,} records or {mib(MAX_JSON_BYTES)} per JSON request; "
        f"{MAX_CSV_ROWS:,} rows or {mib(MAX_CSV_BYTES)} per CSV upload, "
        f"{MAX_UPLOADS_IN_FLIGHT} uploads at once per server worker (429 beyond)."
    )
