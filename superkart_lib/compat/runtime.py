"""Private APIs the production environment uses: onnxruntime's session binding, starlette's multipart
parser, prometheus-client's histogram buckets.

Imports only onnxruntime and starlette (the serve extra), never a training library.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Sequence
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


#: ``add(counts, total)``: values already counted per bucket (``counts[i]`` in bucket ``i``, the
#: first whose upper bound is >= the value, the last +Inf) and their sum, added to one histogram.
BucketAdder = Callable[[Sequence[int], float], None]


def histogram_adder(histogram: Any, upper_bounds: Sequence[float]) -> BucketAdder | None:
    """A function adding observations already counted per bucket to a prometheus-client ``Histogram``.

    ``histogram`` has no labels (a labelled histogram's child, ``labels(...)``, qualifies).
    ``Histogram.observe`` costs ~3.5 us a value in multi-process mode (two locked writes to a
    shared file). Adding each bucket's count once uses the histogram's ``_upper_bounds``,
    ``_buckets`` and ``_sum`` (internals), checked here once: the function returned does no
    check (reading the installed version costs ~0.5 ms). Outside the checked prometheus-client
    versions, or when they are not as expected, None: the caller then observes each value.
    """
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    summed: Any = getattr(histogram, "_sum", None)
    if not (
        checked("prometheus-client")
        and bounds == [*map(float, upper_bounds), float("inf")]
        and isinstance(buckets, list)
        and len(buckets) == len(bounds)
        and all(callable(getattr(b, "inc", None)) for b in buckets)
        and callable(getattr(summed, "inc", None))
    ):
        return None

    def add(counts: Sequence[int], total: float) -> None:
        if len(counts) != len(buckets):
            raise ValueError(f"{len(counts)} counts for {len(buckets)} buckets (+Inf included)")
        for bucket, count in zip(buckets, counts, strict=True):
            if count:
                bucket.inc(int(count))
        summed.inc(float(total))

    return add
