"""Every exception and warning the library raises, and how an error becomes one line.

The command line prints a :class:`SuperKartError` as one line and exits with status 2, without
a traceback: these are problems the user can fix (a file, a value, an option, a missing install).
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def first_line(exc: BaseException | str, limit: int = 300, with_type: bool = False) -> str:
    """The first non-empty line of an exception's message (or of a text), at most ``limit`` characters.

    Third-party libraries raise multi-line messages (parsers, converters, onnxruntime); a
    message of ours quotes only their first line, so the user still gets one line. An exception
    with an empty message gives its type name; ``with_type`` prefixes it anyway (``KeyError: 'x'``).
    """
    name = "" if isinstance(exc, str) else type(exc).__name__
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")[:limit]
    if not text:
        return name
    return f"{name}: {text}" if with_type and name else text


class SuperKartError(Exception):
    """A problem with the user's input, files or environment, stated in one line."""


class DataError(SuperKartError):
    """A data file or record does not match the schema."""


class NotTextError(DataError):
    """A file is not UTF-8 text; ``offset`` is the first byte that is not."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class IntegrityError(SuperKartError):
    """A package file is missing, altered, or not listed in the manifest; or the signature is wrong."""


class VersionMismatchError(SuperKartError):
    """The running library versions must not load a file the recorded versions wrote."""


class VersionSkewWarning(UserWarning):
    """Recorded and running versions differ where the format tolerates it."""


class FormatError(SuperKartError):
    """A model file cannot be saved or loaded in its format."""


class UntrustedTypeError(SuperKartError):
    """A skops file names a type outside the allow-list."""


class UncheckedVersionError(SuperKartError):
    """A private API of another library is needed from a release it was not checked with."""


class MissingExtraError(SuperKartError):
    """A command or function needs a library the current install does not have."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem of a request: where (record index or CSV row, field) and a message naming both."""

    message: str
    field: str | None = None
    record: int | None = None
    row: int | None = None
    line: int | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form used in API error bodies."""
        return {"message": self.message, "field": self.field, "record": self.record, "row": self.row, "line": self.line}


class RequestError(DataError):
    """A request the API refuses; ``status`` is the HTTP status (400, 413, 415, 422 or 503)."""

    def __init__(self, status: int, errors: list[FieldError]):
        super().__init__(errors[0].message)
        self.status = status
        self.errors = errors


class ManifestError(IntegrityError):
    """``manifest.json`` is not what a SuperKart writer writes: unreadable, too big, not JSON, or the wrong shape."""


class WriteError(SuperKartError):
    """A file or directory the user named cannot be written: disk full, read-only, in the way, not a directory."""
