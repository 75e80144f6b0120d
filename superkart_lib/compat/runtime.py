"""Private APIs the production environment uses: onnxruntime's session binding, starlette's multipart parser.

Imports only onnxruntime and starlette (the serve extra), never a training library.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any

from superkart_lib.compat import checked

#: ``run(output_names, feeds, run_options) -> list of arrays``, as both paths below take it.
Runner = Callable[[list[str], dict[str, Any], Any], list[Any]]


def session_runner(session: Any) -> Runner:
    """The fastest correct way to call ``session.run``.

    ``InferenceSession.run`` re-checks in Python, on every call, that the feeds name every input
    and own their arrays; the runtime's feeds always do, and for one row that check costs as much
    as the trees. The session's binding (``_sess``, what ``run()`` itself calls) skips it. Outside
    the onnxruntime versions where that binding was checked, or if it is gone, the public method.
    """
    binding: Any = getattr(session, "_sess", None)
    run: Runner = session.run
    if checked("onnxruntime") and callable(getattr(binding, "run", None)):
        run = binding.run
    return run


async def parse_multipart(headers: Any, body: bytes, spool_max_size: int) -> Any:
    """Parse a multipart body already read (and size-checked) into starlette's ``FormData``.

    ``headers`` are the request's (starlette ``Headers``).

    Starlette parses forms only from a request stream, through ``MultiPartParser``, which spools
    files larger than its ``spool_max_size`` class attribute to disk: for a body we already hold,
    that would write it again. Both are internals; outside the checked starlette versions the
    parser runs with its own defaults (the upload may then be spooled, still correct).

    Raises
    ------
    starlette.formparsers.MultiPartException, ValueError, KeyError, UnicodeError
        For a malformed envelope (the caller turns them into a 400).
    """
    from starlette.formparsers import MultiPartParser

    parser_class: type[MultiPartParser] = MultiPartParser
    if checked("starlette"):

        class InMemory(MultiPartParser):
            pass

        InMemory.spool_max_size = spool_max_size
        parser_class = InMemory

    async def stream() -> AsyncGenerator[bytes, None]:
        yield body

    parser = parser_class(headers, stream(), max_files=1, max_fields=8)
    return await parser.parse()
