"""Publishing a package is one atomic step: ``out`` is a link to an immutable version directory.

A reader sees the old package or the new one, never a mix and never nothing; concurrent writers
are safe; staging left by a killed writer is cleaned up; a package an older release wrote as a
plain directory is migrated without ever being lost.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import SuperKartError
from superkart_lib.development import package
from superkart_lib.production.runtime import OnnxModel
from superkart_lib.production.verify import verify_package
from tests.conftest import make_package, run_cli


@pytest.fixture(scope="module")
def trained():
    """A small trained result and its data facts: writing it takes well under a second."""
    from superkart_lib.development.data import load_training_data
    from superkart_lib.development.train import train

    frame, facts = load_training_data(None, rows=800, seed=3)
    return train(frame, seed=0, n_iter=0, families=["decision_tree"], n_jobs=1), facts


def _version(package: Path) -> str:
    return json.loads((package / mf.MANIFEST).read_text())["package_version"]


def _write(trained, out: Path) -> str:
    package.write_package(trained[0], out, trained[1])
    return _version(out)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_out_is_a_link_to_an_immutable_version(trained, tmp_path):
    out = tmp_path / "model"
    first = _write(trained, out)
    second = _write(trained, out)
    assert out.is_symlink() and os.readlink(out) == f"model.versions/{second}"  # relative: the run dir can move
    assert sorted(os.listdir(tmp_path)) == ["model", "model.versions"]
    versions = tmp_path / "model.versions"
    assert {first, second} <= set(os.listdir(versions))
    assert verify_package(versions / first)[-1].startswith(f"package {first} verified")  # untouched by the swap
    for given in (out, shutil.copytree(out, tmp_path / "plain")):  # --model takes a link or a plain directory
        result = run_cli("verify", str(given))
        assert result.returncode == 0 and result.stdout.splitlines()[-1].startswith(f"package {second} verified")
        assert OnnxModel.from_package(given).version == second


def test_the_newest_versions_are_kept_and_older_ones_pruned(trained, tmp_path):
    from superkart_lib.contract import package_dir as pd

    out = tmp_path / "model"
    written = [_write(trained, out) for _ in range(pd.KEEP_VERSIONS + 2)]
    kept = sorted(p for p in os.listdir(tmp_path / "model.versions") if not p.startswith("."))
    assert kept == sorted(written[-pd.KEEP_VERSIONS :])
    assert _version(out) == written[-1]


def _writer(trained, out: Path, times: int) -> None:
    for _ in range(times):
        package.write_package(trained[0], out, trained[1])


def test_concurrent_writers_and_a_reader(trained, tmp_path):
    out = tmp_path / "model"
    make_package(out, rows=800)  # the reader has a package from the start
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(trained, out, 2)) for _ in range(3)]
    for writer in writers:
        writer.start()
    reads, problems = 0, []
    while any(w.is_alive() for w in writers):
        try:
            model = OnnxModel.from_package(out)  # manifest and model.onnx of one version, always
            assert model.version == model.manifest["package_version"]
            reads += 1
        except (SuperKartError, OSError) as exc:
            problems.append(str(exc))
    for writer in writers:
        writer.join(timeout=120)
    assert [w.exitcode for w in writers] == [0, 0, 0]
    assert problems == [] and reads > 0
    assert verify_package(out)[-1].endswith("verified: 6 files")  # written without a frame: no drift statistics
    assert _leftovers(tmp_path) == []
    from superkart_lib.contract import package_dir as pd

    kept = [p for p in os.listdir(tmp_path / "model.versions") if not p.startswith(".")]
    assert os.readlink(out).split("/")[-1] in kept and len(kept) <= pd.KEEP_VERSIONS + 1


def test_a_reader_and_a_writer_right_after_a_writers_rename(trained, tmp_path, monkeypatch):
    """Whatever a rename of the swap leaves for a moment is whole: readers read it, writers write over it."""
    out = tmp_path / "model"
    first = _write(trained, out)
    real_replace, seen = os.replace, []

    def then_another_reader_and_writer(src, dst):
        real_replace(src, dst)
        if not seen:
            seen.append(OnnxModel.from_package(out).version)  # a reader just after this rename
            seen.append(_write(trained, out))  # and a whole other write

    monkeypatch.setattr(os, "replace", then_another_reader_and_writer)
    last = _write(trained, out)
    monkeypatch.undo()
    swapped, other = seen
    assert first != swapped != other == last  # the reader saw the package just swapped in; then the other won
    assert verify_package(out)[-1].startswith(f"package {other} verified")
    assert verify_package(tmp_path / "model.versions" / swapped) and _leftovers(tmp_path) == []


@pytest.mark.parametrize("reader", ["from_package", "verify_package"])
def test_a_reader_resolves_the_link_once(reader, tmp_path, monkeypatch):
    one = make_package(tmp_path / "one", rows=600)
    two = make_package(tmp_path / "two", rows=800)  # another model: other bytes, other hashes
    out = tmp_path / "model"
    out.symlink_to("two")
    real_read, swaps = mf.read, []

    def read_then_swap(directory):
        manifest = real_read(directory)
        if not swaps:  # a writer publishes right after the reader read the manifest
            (tmp_path / "next").symlink_to("one")
            os.replace(tmp_path / "next", out)
            swaps.append(directory)
        return manifest

    monkeypatch.setattr(mf, "read", read_then_swap)
    if reader == "from_package":
        model = OnnxModel.from_package(out)  # manifest of "two" with model.onnx of "one" would be refused
        assert model.version == _version(two) and swaps
    else:
        assert verify_package(out)[-1].startswith(f"package {_version(two)} verified") and swaps
    assert os.readlink(out) == "one" and _version(one) != _version(two)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_staging_of_dead_writers_is_removed_and_live_ones_kept(trained, tmp_path):
    out = tmp_path / "model"
    _write(trained, out)
    dead, alive = _dead_pid(), os.getppid()
    (tmp_path / f".model.staging-{dead}-0badf00d").mkdir()
    (tmp_path / f".model.staging-{dead}-0badf00d" / "model.pkl").write_bytes(b"half written")
    (tmp_path / f".model.link-{dead}-0badf00d").symlink_to("model.versions/gone")
    (tmp_path / f".model.staging-{alive}-c0ffee00").mkdir()  # a writer still at work
    (tmp_path / ".other.staging-1-deadbeef").mkdir()  # another package's business
    _write(trained, out)
    assert _leftovers(tmp_path) == [".model.staging-" + f"{alive}-c0ffee00", ".other.staging-1-deadbeef"]


def test_a_package_written_as_a_plain_directory_is_migrated(trained, tmp_path):
    legacy = make_package(tmp_path / "old", rows=800)
    out = tmp_path / "model"
    shutil.copytree(legacy, out)  # what an older release left: a plain directory
    old = _version(out)
    new = _write(trained, out)
    assert out.is_symlink() and _version(out) == new
    migrated = [p for p in (tmp_path / "model.versions").iterdir() if p.name.startswith("legacy-")]
    assert len(migrated) == 1 and _version(migrated[0]) == old
    verify_package(migrated[0])


def test_a_kill_mid_migration_loses_nothing_and_the_next_write_repairs_it(trained, tmp_path, monkeypatch):
    from superkart_lib.contract import package_dir as pd

    legacy = make_package(tmp_path / "old", rows=800)
    out = tmp_path / "model"
    shutil.copytree(legacy, out)
    old = _version(out)

    def killed(*args):
        raise KeyboardInterrupt  # the process dies after the rename, before the link exists

    with monkeypatch.context() as patch:
        patch.setattr(pd, "_point", killed)
        with pytest.raises(KeyboardInterrupt):
            package.prepare_destination(out)
    assert not os.path.lexists(out), "the window the migration cannot avoid"
    assert [_version(p) for p in (tmp_path / "model.versions").glob("legacy-*")] == [old]
    with monkeypatch.context() as patch:
        patch.setattr("superkart_lib.development.package.WRITERS", {"model.pkl": killed})
        with pytest.raises(KeyboardInterrupt):
            _write(trained, out)  # even a write that then fails puts the link back first
    assert _version(out) == old and verify_package(out)
    new = _write(trained, out)
    assert _version(out) == new and _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["file", "foreign directory"])
def test_something_else_at_out_is_refused_and_untouched(kind, tmp_path):
    out = tmp_path / "model"
    if kind == "file":
        out.write_text("notes")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("notes")
    with pytest.raises(SuperKartError, match=f"cannot write {out}: a .* in the way"):
        package.prepare_destination(out)
    assert (out.read_text() if kind == "file" else (out / "notes.txt").read_text()) == "notes"


def test_a_swap_takes_one_rename(trained, tmp_path, monkeypatch):
    """The only change readers can observe is one os.replace of a link onto ``out``."""
    out = tmp_path / "model"
    _write(trained, out)
    seen = []
    real_replace = os.replace

    def spy(src, dst):
        seen.append((Path(src).is_symlink(), Path(dst) == out))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    _write(trained, out)
    assert seen == [(True, True)]
