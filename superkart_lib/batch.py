"""Batch scoring: a SuperKart CSV in, the same rows plus a ``prediction`` column out.

The input is streamed in chunks. One function, :func:`score_chunk`, validates a chunk with
``data.validate`` (or, to skip invalid rows, checks every row with ``data.check_rows``),
scores it with the package's verified ONNX model and renders it as CSV text; it runs in
this process or on Dask workers, and the client writes chunks in file order, so both modes
write the same bytes. Output goes to a temporary file beside the target and is renamed
into place only when the whole file succeeded.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from superkart_lib import data, schema
from superkart_lib.cluster import dask_client, map_in_order
from superkart_lib.errors import DataError, SuperKartError
from superkart_lib.runtime import OnnxModel

DEFAULT_CHUNK_ROWS = 50_000
PREDICTION = "prediction"
_READ = {"dtype": str, "keep_default_na": False, "encoding": "utf-8-sig"}


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
class ChunkResult:
    """One scored chunk as CSV text without a header (``rejected`` is empty unless rows were skipped)."""

    text: str
    rejected: str
    rows: int
    scored: int


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


# --- one chunk: the unit of work in both modes ----------------------------------------


def _csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, header=False, lineterminator="\n")


def score_chunk(
    package_dir: str, version: str, chunk: pd.DataFrame, before: int, source: str, skip_invalid: bool = False
) -> ChunkResult:
    """Validate, score and render one chunk of raw strings that follows ``before`` data rows.

    Raises
    ------
    DataError
        At the first invalid row (file row numbers), unless ``skip_invalid``.
    """
    # A target column is echoed but not checked: scoring ignores it, as the API's CSV upload does.
    inputs = chunk.drop(columns=[schema.TARGET], errors="ignore")
    if skip_invalid:
        checked = data.check_rows(inputs, source, require_target=False)
        keep, typed, reasons = checked.keep, checked.typed, checked.reasons()
    else:
        keep, typed, reasons = None, data.validate(inputs, source, require_target=False, row_offset=before), {}
    scored = chunk if keep is None else chunk[keep]
    predictions = np.empty(0)
    if len(typed):
        model = package_model(package_dir, version)
        # The runtime builds its input arrays from columns: no DataFrame on the scoring path.
        predictions = model.predict({name: typed[name].to_numpy() for name in model.input_names})
    rejected = ""
    if reasons:
        positions = sorted(reasons)
        notes = pd.DataFrame({"row": [before + p + 1 for p in positions], "reason": [reasons[p] for p in positions]})
        rejected = _csv_text(pd.concat([notes, chunk.iloc[positions].reset_index(drop=True)], axis=1))
    text = _csv_text(scored.assign(**{PREDICTION: predictions}))
    return ChunkResult(text, rejected, len(chunk), len(scored))


# --- reading, writing, running --------------------------------------------------------


def _check_paths(source: Path, outputs: list[Path], dask: bool, scheduler: str | None) -> None:
    if scheduler and not dask:
        raise SuperKartError("--scheduler needs --dask")
    data.check_input_file(source)
    for output in outputs:
        if output.resolve() == source.resolve():
            raise SuperKartError(f"{output}: the output would overwrite the input; choose another file")


def _chunks(handle: IO[bytes], source: Path, chunk_rows: int) -> Iterator[tuple[int, pd.DataFrame, int]]:
    """(data rows before, chunk of raw strings, bytes read so far) through the file."""
    before = 0
    try:
        for chunk in pd.read_csv(handle, chunksize=chunk_rows, **_READ):
            if PREDICTION in chunk.columns:
                raise DataError(f"{source}: already has a '{PREDICTION}' column; rename or drop it first")
            if len(chunk):
                yield before, chunk, handle.tell()
                before += len(chunk)
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: not a CSV file (not UTF-8 text at byte {exc.start})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty") from None
    except (pd.errors.ParserError, csv.Error, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{source}: not a valid CSV file ({first})") from None
    if not before:
        raise DataError(f"{source}: no data rows after the header")


@contextlib.contextmanager
def _staged(target: Path) -> Iterator[IO[str]]:
    """A text file beside ``target`` that replaces it on success and disappears on failure."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            yield f
        os.chmod(name, 0o644)  # mkstemp makes it private; results are meant to be shared
        os.replace(name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


Scorer = Callable[[pd.DataFrame, int], ChunkResult]
Work = Iterator[tuple[int, pd.DataFrame, int]]


def _in_process(scorer: Scorer, work: Work) -> Iterator[tuple[ChunkResult, int]]:
    for before, chunk, position in work:
        yield scorer(chunk, before), position


def _write_headers(source: Path, out: IO[str], side: IO[str] | None) -> None:
    """Header lines of the output and the side file, once the first chunk has parsed."""
    columns = list(pd.read_csv(source, nrows=0, **_READ).columns)
    # Written by pandas too, so header quoting matches the rows'.
    out.write(pd.DataFrame(columns=[*columns, PREDICTION]).to_csv(index=False, lineterminator="\n"))
    if side is not None:
        side.write(pd.DataFrame(columns=["row", "reason", *columns]).to_csv(index=False, lineterminator="\n"))


def predict_file(
    model_dir: str | Path,
    input_csv: str | Path,
    output_csv: str | Path,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    skip_invalid: bool = False,
    dask: bool = False,
    scheduler: str | None = None,
    progress: bool = True,
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
    dask, scheduler : bool, str
        Score chunks in parallel on an embedded LocalCluster, or on the cluster at ``scheduler``.
    progress : bool
        Show a progress bar (bytes of input) on stderr.

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
    _check_paths(source, [output, rejected] if rejected else [output], dask, scheduler)
    package = str(Path(model_dir).resolve())
    model = _MODELS[package] = OnnxModel.from_package(package)  # verified here first, before any cluster starts
    scorer = functools.partial(score_chunk, package, model.version, source=str(source), skip_invalid=skip_invalid)
    read = scored = 0
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(source, "rb"))
        client = stack.enter_context(dask_client(scheduler)) if dask else None
        mode = f"dask, {sum(client.nthreads().values())} worker threads" if client else "in-process"
        bar = stack.enter_context(
            tqdm(
                total=source.stat().st_size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                desc=f"scoring {source.name}",
                disable=not progress,
            )
        )
        out = stack.enter_context(_staged(output))
        side = stack.enter_context(_staged(rejected)) if rejected else None
        work = _chunks(handle, source, chunk_rows)
        results = map_in_order(client, scorer, work) if client else _in_process(scorer, work)
        for result, position in results:
            if not read:
                _write_headers(source, out, side)
            out.write(result.text)
            if side:
                side.write(result.rejected)
            read, scored = read + result.rows, scored + result.scored
            bar.set_postfix_str(f"{read:,} rows", refresh=False)
            bar.update(position - bar.n)
    seconds = time.perf_counter() - started
    return BatchReport(read, scored, read - scored, seconds, output, rejected, model.version, mode)
