"""Batch scoring: a SuperKart CSV in, the same rows plus a ``prediction`` column out.

The input is streamed in chunks of raw rows (:mod:`.csv_files`). One function,
:func:`score_chunk`, checks a chunk column by column (:mod:`.table_validation`), scores its
valid rows with the package's verified ONNX model and renders them as CSV text. It runs on two
threads of this process (onnxruntime releases the GIL, so one thread predicts while the other
parses), or elsewhere through a ``cluster`` (Dask, in the development install); the client
writes chunks in file order, so every mode writes the same bytes. Output goes to a temporary
file beside the target and replaces it only when the whole file succeeded.

Numpy, onnxruntime and the standard library only: ``superkart predict`` runs in the
production install. The output is byte for byte what pandas wrote before (its ``to_csv``
goes through the same ``csv.writer``, and a float64 prints as Python's ``repr``).
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import functools
import gc
import math
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from superkart_lib.contract import limits, schema
from superkart_lib.contract.errors import DataError, SuperKartError
from superkart_lib.contract.files import atomic_write
from superkart_lib.production import csv_files, table_validation
from superkart_lib.production.runtime import OnnxModel

PREDICTION = "prediction"
#: Threads that score chunks in process: one predicts (without the GIL) while the other runs Python.
THREADS = 2


@dataclass(frozen=True)
class BatchReport:
    """What a batch run did: rows read, scored and skipped, wall time, where the results are."""

    rows_read: int
    rows_scored: int
    rows_skipped: int
    seconds: float
    output: Path
    rejected: Path | None
    model_version: str
    mode: str

    @property
    def rows_per_second(self) -> float:
        """Rows read per second of wall time, reading and writing included."""
        return self.rows_read / self.seconds if self.seconds > 0 else float("inf")

    def summary(self) -> str:
        """One line for the command line."""
        skipped = f", {self.rows_skipped:,} invalid rows in {self.rejected}" if self.rejected else ""
        return (
            f"scored {self.rows_scored:,} of {self.rows_read:,} rows in {self.seconds:.1f} s "
            f"({self.rows_per_second:,.0f} rows/s, {self.mode}, model {self.model_version}): {self.output}{skipped}"
        )


@dataclass(frozen=True)
class Chunk:
    """The unit of work, picklable: raw rows of the file and where the schema columns are in them."""

    positions: dict[str, int]
    width: int
    part: csv_files.RowChunk


@dataclass(frozen=True)
class ChunkResult:
    """One scored chunk as CSV text without a header (``rejected`` is empty unless rows were skipped)."""

    text: str
    rejected: str
    rows: int
    scored: int


Scorer = Callable[[Chunk], ChunkResult]
#: Chunks to score, each with a tag (bytes read so far) that comes back with its result.
Work = Iterable[tuple[Chunk, int]]
Run = Callable[[Scorer, Work], Iterator[tuple[ChunkResult, int]]]


class Cluster(Protocol):
    """Runs chunks elsewhere: ``with cluster as run:`` gives ``run(scorer, work)``, results in order.

    ``mode`` names it in the report once entered (e.g. ``dask, 2 worker threads``). Production
    never imports an implementation; see ``superkart_lib.development.dask_batch``.
    """

    mode: str

    def __enter__(self) -> Run: ...

    def __exit__(self, *exc: Any) -> bool | None: ...


# --- model: verified once per process ------------------------------------------------

_MODELS: dict[str, OnnxModel] = {}
_LOADING = threading.Lock()  # a multi-threaded Dask worker still loads once


def package_model(package_dir: str, version: str) -> OnnxModel:
    """The package's verified ONNX model, loaded once per process (and per package version).

    A long-lived Dask worker reloads when the package was rebuilt in place; a package
    changed in the middle of a run is an error rather than a file scored by two models.
    """
    with _LOADING:
        model = _MODELS.get(package_dir)
        if model is None or model.version != version:
            model = _MODELS[package_dir] = OnnxModel.from_package(package_dir)
    if model.version != version:
        raise SuperKartError(f"{package_dir}: package changed during the run ({version} -> {model.version})")
    return model


# --- one chunk: the unit of work in every mode ------------------------------------------


def score_chunk(package_dir: str, version: str, chunk: Chunk, source: str, skip_invalid: bool = False) -> ChunkResult:
    """Check, score and render one chunk of raw rows.

    Raises
    ------
    DataError
        At the first invalid row (file row and line numbers), unless ``skip_invalid``.
    """
    part = chunk.part
    checked = table_validation.check_rows(part.rows, chunk.positions, chunk.width)
    error = None if skip_invalid else checked.first_error(source, part.first_row, part.line_numbers)
    if error:
        raise error
    kept = (
        part.rows if not checked.problems else [row for row, keep in zip(part.rows, checked.keep, strict=True) if keep]
    )
    predictions: list[Any] = []
    if kept:
        model = package_model(package_dir, version)
        scores = model.predict({name: checked.typed[name] for name in model.input_names})
        predictions = scores.tolist()
        if np.isnan(scores).any():  # pandas wrote a missing float as an empty field
            predictions = ["" if math.isnan(p) else p for p in predictions]
    text = csv_files.csv_text_plus(kept, predictions, chunk.width)
    rejected = csv_files.csv_text(
        [str(part.first_row + i + 1), reason, *part.rows[i]] for i, reason in checked.reasons().items()
    )
    return ChunkResult(text, rejected, len(part.rows), len(kept))


# --- reading, writing, running --------------------------------------------------------


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for the run, then restore it.

    Every chunk makes one list per row, and each 700 new lists trigger a collector pass over the
    young objects, and now and then over all of them: about 15 % of the run. The run makes no
    reference cycles, so reference counting still frees each chunk as soon as it is written.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _in_process(scorer: Scorer, work: Work) -> Iterator[tuple[ChunkResult, int]]:
    """Chunks scored by :data:`THREADS` threads of this process, results in the order of ``work``.

    A prediction (onnxruntime, without the GIL) overlaps the Python work on the next chunk.
    """
    with concurrent.futures.ThreadPoolExecutor(THREADS, thread_name_prefix="superkart-batch") as pool:
        pending: collections.deque[tuple[concurrent.futures.Future[ChunkResult], int]] = collections.deque()
        try:
            for chunk, tag in work:
                pending.append((pool.submit(scorer, chunk), tag))
                if len(pending) > THREADS:  # bounded: a few chunks in memory whatever the file size
                    future, at = pending.popleft()
                    yield future.result(), at
            while pending:
                future, at = pending.popleft()
                yield future.result(), at
        finally:
            pool.shutdown(cancel_futures=True)  # after an error, start nothing more


class _Progress:
    """``scoring in.csv:  45% 120,000 rows`` on stderr, redrawn at most 4 times a second; a newline at the end."""

    def __init__(self, name: str, size: int, enabled: bool) -> None:
        self.name, self.size, self.enabled, self.drawn = name, max(size, 1), enabled, 0.0

    def update(self, rows: int, position: int, final: bool = False) -> None:
        if self.enabled and (final or time.monotonic() - self.drawn >= 0.25):
            share = 100 if final else min(99, 100 * position // self.size)
            sys.stderr.write(f"\rscoring {self.name}: {share:3d}% {rows:,} rows")
            sys.stderr.flush()
            self.drawn = time.monotonic()

    def close(self) -> None:
        if self.enabled and self.drawn:
            sys.stderr.write("\n")


def _open_input(
    source: Path, outputs: list[Path], stack: contextlib.ExitStack
) -> tuple[csv_files.CsvFile, dict[str, int]]:
    """The open input and where each input column is (names stripped, as the API does); whole-file problems raise."""
    csv_files.check_input_file(source)
    for output in outputs:
        if output.resolve() == source.resolve():
            raise SuperKartError(f"{output}: the output would overwrite the input; choose another file")
    table = stack.enter_context(csv_files.open_csv(source))
    if PREDICTION in table.header:
        raise DataError(f"{source}: already has a '{PREDICTION}' column; rename or drop it first")
    positions = table_validation.check_header([name.strip() for name in table.header], source, require_target=False)
    # A target column is echoed but not checked: scoring ignores it, as the API's CSV upload does.
    positions.pop(schema.TARGET, None)
    return table, positions


def predict_file(
    model_dir: str | Path,
    input_csv: str | Path,
    output_csv: str | Path,
    chunk_rows: int = limits.BATCH_CHUNK_ROWS,
    skip_invalid: bool = False,
    progress: bool = True,
    cluster: Cluster | None = None,
) -> BatchReport:
    """Score a SuperKart CSV file chunk by chunk and write the input columns plus ``prediction``.

    Parameters
    ----------
    model_dir : path
        Model package; its ``model.onnx`` is verified against the manifest before use.
    input_csv, output_csv : path
        CSV to score (the target column is optional) and CSV to write.
    chunk_rows : int
        Rows per chunk: memory is bounded by a few chunks whatever the file size.
    skip_invalid : bool
        Score the valid rows and write the invalid ones, with ``row`` and ``reason``, to
        ``<output stem>.rejected.csv``; otherwise the first invalid row stops the run.
    progress : bool
        Show a progress line (share of the input read, rows) on stderr.
    cluster : Cluster, optional
        Where chunks run (``superkart_lib.development.dask_batch.DaskChunks``); by default in this process.

    Raises
    ------
    SuperKartError
        One line naming the file, row and column; no output file is left behind.
    """
    started = time.perf_counter()
    source, output = Path(input_csv), Path(output_csv)
    if chunk_rows < 1:
        raise SuperKartError(f"chunk_rows must be >= 1, got {chunk_rows}")
    rejected = output.with_name(f"{output.stem}.rejected.csv") if skip_invalid else None
    read = scored = 0
    with contextlib.ExitStack() as stack:
        stack.enter_context(_collector_paused())
        table, positions = _open_input(source, [output, rejected] if rejected else [output], stack)
        package = str(Path(model_dir).resolve())
        model = _MODELS[package] = OnnxModel.from_package(package)  # verified here first, before any cluster starts
        scorer = functools.partial(score_chunk, package, model.version, source=str(source), skip_invalid=skip_invalid)
        run: Run = stack.enter_context(cluster) if cluster is not None else _in_process
        mode = cluster.mode if cluster is not None else f"in-process, {THREADS} threads"
        out = stack.enter_context(atomic_write(output))
        out.write(csv_files.csv_text([[*table.header, PREDICTION]]))
        side = stack.enter_context(atomic_write(rejected)) if rejected else None
        if side:
            side.write(csv_files.csv_text([["row", "reason", *table.header]]))
        bar = _Progress(source.name, source.stat().st_size, progress)
        stack.callback(bar.close)
        width = len(table.header)
        work = ((Chunk(positions, width, part), table.position) for part in table.chunks(chunk_rows))
        for result, position in run(scorer, work):
            out.write(result.text)
            if side:
                side.write(result.rejected)
            read, scored = read + result.rows, scored + result.scored
            bar.update(read, position)
        bar.update(read, table.position, final=True)
    seconds = time.perf_counter() - started
    return BatchReport(read, scored, read - scored, seconds, output, rejected, model.version, mode)
