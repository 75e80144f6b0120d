"""Batch scoring on Dask: ``superkart predict --dask [--scheduler ADDR]``.

:class:`DaskChunks` is the ``cluster`` that :func:`superkart_lib.production.batch.predict_file`
takes: chunks are scored by :func:`~superkart_lib.production.batch.score_chunk` on the workers
(each verifies and loads the model once) and come back in file order, so the output has the
same bytes as in-process. It lives in the development install, as Dask does; production never
imports it.

A user error on a worker (an invalid row) comes back as a value and is raised here as the one
line it is: raised on the worker, Dask would log it there with its traceback ("Compute Failed"),
on the terminal of an embedded cluster, before the error itself.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from superkart_lib.contract.errors import SuperKartError
from superkart_lib.development.cluster import dask_client, map_in_order
from superkart_lib.production.batch import ChunkResult, Run, Scorer, Work


@dataclass(frozen=True)
class _Failed:
    """A chunk's user error, sent back as a result rather than raised on the worker."""

    error: SuperKartError


def _score(scorer: Scorer, chunk: Any, key: int) -> ChunkResult | _Failed:
    """What a worker runs: ``map_in_order`` also passes the chunk's key, which scoring does not need."""
    try:
        return scorer(chunk)
    except SuperKartError as exc:
        return _Failed(exc)


def _raising(results: Iterator[tuple[ChunkResult | _Failed, int]]) -> Iterator[tuple[ChunkResult, int]]:
    """The results in order, up to the first failed chunk, whose error is raised here."""
    for result, tag in results:
        if isinstance(result, _Failed):
            raise result.error
        yield result, tag


class DaskChunks:
    """Chunks scored on a Dask cluster: the one at ``scheduler``, or an embedded LocalCluster.

    Use as ``with DaskChunks() as run:``; ``run(scorer, work)`` yields ``(result, tag)`` in the
    order of ``work``, and ``mode`` then names the cluster (``dask, 2 worker threads``).

    Raises
    ------
    SuperKartError
        On entering, when the scheduler cannot be reached.
    """

    def __init__(self, scheduler: str | None = None) -> None:
        self.scheduler = scheduler
        self.mode = "dask"
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Run:
        client = self._stack.enter_context(dask_client(self.scheduler))
        self.mode = f"dask, {sum(client.nthreads().values())} worker threads"

        def run(scorer: Scorer, work: Work) -> Iterator[tuple[ChunkResult, int]]:
            keyed = ((key, chunk, tag) for key, (chunk, tag) in enumerate(work))
            return _raising(map_in_order(client, functools.partial(_score, scorer), keyed))

        return run

    def __exit__(self, *exc: Any) -> bool | None:
        return self._stack.__exit__(*exc)
