"""Dask clusters for training and batch scoring: one way to get a client, one way to map in order.

``dask.distributed`` is imported only when a client is asked for, so the rest of the
library (and the serving runtime) does not need Dask installed to import.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from superkart_lib.contract.errors import SuperKartError, first_line

if TYPE_CHECKING:
    from dask.distributed import Client

#: How long to wait for the scheduler at an address before giving up.
CONNECT_TIMEOUT = "10s"
#: Tasks in flight per worker thread: workers stay busy while the client consumes results, memory stays bounded.
WINDOW_PER_THREAD = 2

Result = TypeVar("Result")
Tag = TypeVar("Tag")


@contextlib.contextmanager
def dask_client(scheduler: str | None = None) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of an embedded LocalCluster.

    Parameters
    ----------
    scheduler : str or None
        Address of a running scheduler (``tcp://host:port``). Without one, a LocalCluster of
        2 single-threaded worker processes is started, and closed when the block ends.

    Yields
    ------
    dask.distributed.Client
        The client; it is also the default client for joblib's ``dask`` backend.

    Raises
    ------
    SuperKartError
        One line when the scheduler cannot be reached within :data:`CONNECT_TIMEOUT`.
    """
    from dask.distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler:
            try:
                client = stack.enter_context(Client(scheduler, timeout=CONNECT_TIMEOUT))
            except (OSError, TimeoutError, ValueError) as exc:
                raise SuperKartError(f"cannot reach the Dask scheduler at {scheduler}: {first_line(exc)}") from None
        else:
            # No dashboard, and the scheduler's HTTP routes on a free local port: the default 8787 warns when taken.
            http = {"dashboard": False, "dashboard_address": "127.0.0.1:0"}
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, scheduler_kwargs=http
                )
            )
            client = stack.enter_context(Client(cluster))
        yield client


def map_in_order(
    client: Client, function: Callable[[Any, int], Result], work: Iterable[tuple[int, Any, Tag]]
) -> Iterator[tuple[Result, Tag]]:
    """``function(part, key)`` on the cluster for each ``(key, part, tag)`` of ``work``, in order.

    Parameters
    ----------
    client : dask.distributed.Client
        The cluster to run on.
    function : callable
        Called on a worker with the scattered ``part`` and its ``key``.
    work : iterable of (int, object, object)
        Read lazily: at most :data:`WINDOW_PER_THREAD` tasks per worker thread are in flight.

    Yields
    ------
    (object, object)
        Each task's result with the ``tag`` it came with, in the order of ``work``.
    """
    window = WINDOW_PER_THREAD * max(1, sum(client.nthreads().values()))
    pending: deque = deque()
    for key, part, tag in work:
        # Scattered, not embedded in the task: big parts would trip Dask's large-graph warning.
        [future] = client.scatter([part], hash=False)
        pending.append((client.submit(function, future, key, pure=False), tag))
        if len(pending) >= window:
            task, at = pending.popleft()
            yield task.result(), at
    while pending:
        task, at = pending.popleft()
        yield task.result(), at
