"""File-system faults on a path the user named are one line and exit 2; nothing half-written stays.

A full disk cannot be had without mounting a file system, so :data:`FULL_DISK` simulates one
outside the product: in the child process, files opened for writing under one directory accept
a budget of bytes, then every write fails with ENOSPC as the kernel's would. The other faults
are real: a parent that is a file, an output that is a directory, and a file-size limit
(RLIMIT_FSIZE: the kernel fails the write with EFBIG, even for root). A read-only directory is
not among them: root, which CI runs as, writes through mode bits; the file-size limit takes the
same path through the code with another errno.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from superkart_lib.contract import manifest as mf
from superkart_lib.production.verify import verify_package
from tests.conftest import ROOT, make_package, run_cli

#: Run ``superkart ARGS`` with a disk that is full after DISK_FREE_BYTES written under DISK_ROOT
#: (by files from ``open`` and from ``io.FileIO``, the two ways the library opens a file to write).
FULL_DISK = r"""
import builtins, errno, io, os, sys

ROOT, FREE = os.environ["DISK_ROOT"], [int(os.environ["DISK_FREE_BYTES"])]
_open = io.open


def _take(size):
    if size > FREE[0]:
        FREE[0] = 0
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # write(2) names no file
    FREE[0] -= size


class _OnFullDisk:  # a file from open(): its writes draw on the budget

    def __init__(self, file):
        self._file = file

    def write(self, data):
        _take(len(data.encode("utf-8") if isinstance(data, str) else data))
        return self._file.write(data)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def __getattr__(self, name):
        return getattr(self._file, name)

    def __iter__(self):
        return iter(self._file)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._file.close()


def _where(file):
    if isinstance(file, int):  # os.fdopen (atomic_write): the descriptor's path
        try:
            return os.readlink(f"/proc/self/fd/{file}")
        except OSError:
            return ""
    return os.path.abspath(os.fspath(file))


def _open_on_disk(file, mode="r", *args, **kwargs):
    handle = _open(file, mode, *args, **kwargs)
    if any(flag in mode for flag in "wax+") and _where(file).startswith(ROOT):
        return _OnFullDisk(handle)
    return handle


class _FileIOOnFullDisk(io.FileIO):  # a raw file built directly: its writes draw on the budget

    def write(self, data):
        if _where(self.name).startswith(ROOT):
            _take(len(data))
        return super().write(data)


io.open = builtins.open = _open_on_disk
io.FileIO = _FileIOOnFullDisk
from superkart_lib.cli import main

sys.exit(main(sys.argv[1:]))
"""


def run_on_full_disk(root: Path, free_bytes: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": "0", "DISK_ROOT": str(root), "DISK_FREE_BYTES": str(free_bytes)}
    return subprocess.run(
        [sys.executable, "-c", FULL_DISK, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=600
    )


def run_with_file_size_limit(limit: int, *args: str) -> subprocess.CompletedProcess:
    """``superkart ARGS`` where no file may grow past ``limit`` bytes (Python ignores SIGXFSZ: writes get EFBIG)."""

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "superkart_lib.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
        preexec_fn=limit_files,
    )


def one_error_line(result: subprocess.CompletedProcess, command: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith(f"superkart {command}: ")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("faults") / "model", rows=800)


@pytest.fixture(scope="module")
def input_csv(tmp_path_factory) -> Path:
    from superkart_lib.contract import schema
    from superkart_lib.development.synthetic import generate

    path = tmp_path_factory.mktemp("input") / "in.csv"
    generate(rows=2_000, seed=1).drop(columns=[schema.TARGET]).to_csv(path, index=False)
    return path


@pytest.fixture
def out_dir(tmp_path) -> Path:
    out = tmp_path / "out"
    out.mkdir()
    (out / "out.csv").write_text("the previous results\n")
    return out


def assert_previous_output_intact(out: Path) -> None:
    assert (out / "out.csv").read_text() == "the previous results\n"
    assert sorted(p.name for p in out.iterdir()) == ["out.csv"], "no temporary file left behind"


@pytest.mark.parametrize("skip_invalid", [False, True])
def test_predict_on_a_full_disk(package, input_csv, out_dir, skip_invalid):
    options = ["--skip-invalid"] if skip_invalid else []
    args = ["predict", "--model", str(package), "--input", str(input_csv), "--output", str(out_dir / "out.csv")]
    result = run_on_full_disk(out_dir, 20_000, *args, *options, "--quiet")
    line = one_error_line(result, "predict")
    assert line == f"superkart predict: error: cannot write {out_dir / 'out.csv'}: No space left on device"
    assert_previous_output_intact(out_dir)


def test_train_on_a_full_disk(tmp_path):
    data = tmp_path / "data.csv"
    assert run_cli("data", "--rows", "300", "--seed", "0", "--out", str(data)).returncode == 0
    runs = tmp_path / "runs"
    out = make_package(runs / "model", rows=800)
    before = mf.read(out)["package_version"]
    args = ["train", "--data", str(data), "--n-iter", "0", "--out", str(out)]
    result = run_on_full_disk(runs, 30_000, *args)
    assert one_error_line(result, "train") == f"superkart train: error: cannot write {out}: No space left on device"
    assert verify_package(out)[-1].startswith(f"package {before} verified")
    assert sorted(os.listdir(runs)) == ["model", "model.versions"], "no staging directory left behind"
    assert sorted(os.listdir(runs / "model.versions")) == [".lock", before]


def test_an_output_whose_parent_is_a_file(package, input_csv, tmp_path):
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file, not a directory")
    for command, args in (
        ("train", ["--n-iter", "0", "--out", str(blocker / "model")]),
        ("predict", ["--model", str(package), "--input", str(input_csv), "--output", str(blocker / "out.csv")]),
        ("data", ["--rows", "10", "--out", str(blocker / "sub" / "data.csv")]),
    ):
        line = one_error_line(run_cli(command, *args), command)
        assert line.startswith(f"superkart {command}: error: cannot write {blocker}/")
        assert line.endswith(f": {blocker} is not a directory")
    assert blocker.read_text() == "a file, not a directory"
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_predict_to_an_existing_directory(package, input_csv, tmp_path):
    (tmp_path / "results").mkdir()
    args = ["--model", str(package), "--input", str(input_csv), "--output", str(tmp_path / "results")]
    line = one_error_line(run_cli("predict", *args), "predict")
    assert line == f"superkart predict: error: cannot write {tmp_path / 'results'}: it is a directory"
    assert os.listdir(tmp_path / "results") == []


def test_predict_past_the_file_size_limit(package, input_csv, out_dir):
    args = ["predict", "--model", str(package), "--input", str(input_csv), "--output", str(out_dir / "out.csv")]
    line = one_error_line(run_with_file_size_limit(50_000, *args, "--quiet"), "predict")
    assert line == f"superkart predict: error: cannot write {out_dir / 'out.csv'}: File too large"
    assert_previous_output_intact(out_dir)
