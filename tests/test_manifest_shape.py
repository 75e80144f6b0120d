"""The manifest is untrusted input: one shape check, used by `superkart verify` and the server's loader.

Every malformed manifest is refused in one line naming the key, by the command line (exit 2, no
traceback) and by ``OnnxModel.from_package`` and the server's ``ModelState`` alike, so a manifest
that passes `verify` always loads in `serve`.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from superkart_lib import cli
from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import SuperKartError
from superkart_lib.contract.files import sha256_of
from superkart_lib.production.handlers import ModelState
from superkart_lib.production.runtime import OnnxModel
from superkart_lib.production.verify import verify_package
from tests.conftest import make_package, run_cli


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    return make_package(tmp_path_factory.mktemp("shape") / "model", rows=800)


@pytest.fixture
def copy(package, tmp_path) -> Path:
    """A plain-directory copy of the package, with a file ``x`` beside it (outside the package)."""
    (tmp_path / "x").write_bytes(b"outside the package\n")
    return Path(shutil.copytree(package, tmp_path / "package"))


def _entry(path: str | Path) -> dict:
    data = Path(path).read_bytes()
    return {"sha256": sha256_of(data), "bytes": len(data)}


#: The manifest size limit (mf.MANIFEST_SIZE_LIMIT): a real manifest is about 10 kB.
LIMIT = 1 << 20


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def _with(change):
    """Text of the real manifest after ``change(manifest)`` alters it in place."""

    def make(manifest: dict) -> str:
        change(manifest)
        return json.dumps(manifest)

    return make


def _as(replace):
    """Text of ``replace(manifest)``: another JSON value made from the real manifest."""
    return lambda manifest: json.dumps(replace(manifest))


def _set(path: str, value):
    keys = path.split("/")

    def change(manifest):
        node = manifest
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return _with(change)


def _drop(path: str):
    *parents, last = path.split("/")

    def change(manifest):
        node = manifest
        for key in parents:
            node = node[key]
        del node[last]

    return _with(change)


def _add_file(name: str, entry=None):
    def change(manifest):
        manifest["files"][name] = entry if entry is not None else _entry("/etc/hostname")

    return _with(change)


# (case id, manifest text from the real manifest, fragment the one-line error must hold)
CASES = [
    ("a list", _as(lambda m: [m]), "the manifest: expected an object, got array"),
    ("a string", _as(lambda m: "manifest"), "the manifest: expected an object, got string"),
    ("null", _as(lambda m: None), "expected an object, got null"),
    ("files a list", _as(lambda m: {**m, "files": list(m["files"])}), "files: expected an object, got array"),
    ("files a string", _set("files", "model.onnx"), "files: expected an object, got string"),
    ("files missing", _drop("files"), "files: missing"),
    ("an entry a string", _set("files/model.onnx", "abc"), 'files["model.onnx"]: expected an object, got string'),
    ("no sha256", _drop("files/model.onnx/sha256"), 'files["model.onnx"].sha256: missing'),
    ("sha256 not hex", _set("files/model.onnx", {"sha256": "z" * 64, "bytes": 1}), "expected 64 lowercase hex"),
    ("bytes negative", _set("files/model.onnx", {"sha256": "0" * 64, "bytes": -1}), ".bytes: expected a count"),
    ("bytes a bool", _set("files/model.onnx", {"sha256": "0" * 64, "bytes": True}), ".bytes: expected an integer"),
    ("parent path", _add_file("../x"), 'files["../x"]: not a plain file name in the package directory'),
    ("absolute path", _add_file("/etc/hostname"), 'files["/etc/hostname"]: not a plain file name'),
    ("sub-directory", _add_file("sub/model.onnx"), "not a plain file name"),
    ("backslash", _add_file("..\\x"), "not a plain file name"),
    ("hidden file", _add_file(".hidden"), "not a plain file name"),
    ("NUL", _add_file("model\x00.onnx"), "not a plain file name"),
    ("the manifest itself", _add_file("manifest.json"), 'files["manifest.json"]: not a plain file name'),
    ("no package_version", _drop("package_version"), "package_version: missing"),
    ("package_version a number", _set("package_version", 7), "package_version: expected a string, got integer"),
    ("package_version a path", _set("package_version", "../../etc"), "package_version: expected a plain name"),
    ("newer format", _set("format_version", 2), "format_version: 2 is newer than this release reads"),
    ("versions a list", _set("versions", ["numpy"]), "versions: expected an object, got array"),
    ("a version a number", _set("versions/numpy", 2), "versions.numpy: expected a string, got integer"),
    ("metrics a string", _set("metrics", "good"), "metrics: expected an object, got string"),
    ("a metric a string", _set("metrics/r2", "0.9"), "metrics.r2: expected a number, got string"),
    ("a key on two lines", _set("metrics/r2\nx", "0.9"), 'metrics["r2\\nx"]: expected a number, got string'),
    ("model a list", _set("model", []), "model: expected an object, got array"),
    ("rows a string", _set("training_data/rows", "many"), "training_data.rows: expected an integer, got string"),
    ("zoo rows strings", _set("zoo", ["x"]), "zoo[0]: expected an object, got string"),
    ("deep nesting", lambda m: json.dumps(m)[:-1] + ', "extra": ' + _deep(100_000) + "}", "nested too deeply"),
    ("nesting past the limit", lambda m: json.dumps({**m, "extra": json.loads(_deep(40))}), "nested deeper than 32"),
    ("not JSON", lambda m: "{not json", "not valid JSON"),
    ("NaN", lambda m: json.dumps(m)[:-1] + ', "extra": NaN}', "not valid JSON (NaN is not a JSON number)"),
    ("too big", lambda m: json.dumps({**m, "extra": "x" * LIMIT}), "larger than 1,048,576 bytes"),
]


def _write(package: Path, make) -> None:
    text = make(json.loads((package / mf.MANIFEST).read_text()))
    (package / mf.MANIFEST).write_text(text, encoding="utf-8")


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in text, text
    return lines[0]


@pytest.mark.parametrize(("make", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_malformed_manifest_is_one_line_in_verify_and_in_serve(copy, make, fragment, capsys):
    _write(copy, make)
    assert cli.main(["verify", str(copy)]) == 2
    captured = capsys.readouterr()
    line = _one_line(captured.err)
    assert line.startswith(f"superkart verify: error: {copy / mf.MANIFEST}: ") and fragment in line, line
    assert captured.out == ""
    with pytest.raises(SuperKartError) as raised:
        OnnxModel.from_package(copy)
    assert str(raised.value) == line.removeprefix("superkart verify: error: ")
    state = ModelState(copy)
    state.load()
    assert state.model is None and state.error == str(raised.value)


def test_not_utf8_is_one_line(copy):
    (copy / mf.MANIFEST).write_bytes(b'{"package_version": "\xff"}')
    for check in (verify_package, OnnxModel.from_package):
        with pytest.raises(SuperKartError, match=r"manifest\.json: not valid JSON \('utf-8' codec"):
            check(copy)


def test_a_listed_file_outside_the_package_is_refused_even_when_its_hash_matches(copy):
    for name, target in (("../x", copy.parent / "x"), ("/etc/hostname", Path("/etc/hostname"))):
        manifest = json.loads((copy / mf.MANIFEST).read_text())
        manifest["files"][name] = _entry(target)
        (copy / mf.MANIFEST).write_text(mf.dumps(manifest))
        result = run_cli("verify", str(copy))
        assert result.returncode == 2 and "ok  " not in result.stdout, result.stdout
        assert f"{json.dumps(name)}]: not a plain file name in the package directory" in _one_line(result.stderr)
        with pytest.raises(SuperKartError, match="not a plain file name"):
            OnnxModel.from_package(copy)
        del manifest["files"][name]
        (copy / mf.MANIFEST).write_text(mf.dumps(manifest))


def test_a_listed_file_that_is_a_symlink_is_refused(copy):
    onnx = copy / "model.onnx"
    real = copy.parent / "elsewhere.onnx"
    shutil.move(onnx, real)
    onnx.symlink_to(real)  # same bytes, same sha256: the file still lives outside the package
    with pytest.raises(SuperKartError, match=r"model\.onnx: a symbolic link, not a file of the package"):
        verify_package(copy)
    with pytest.raises(SuperKartError, match="a symbolic link"):
        OnnxModel.from_package(copy)


def test_what_passes_verify_loads_in_serve(copy):
    manifest = json.loads((copy / mf.MANIFEST).read_text())
    minimal = {key: manifest[key] for key in ("package_version", "files", "versions")}
    (copy / mf.MANIFEST).write_text(mf.dumps(minimal))
    assert verify_package(copy)[-1].endswith("verified: 7 files")
    state = ModelState(copy)
    state.load()
    assert state.error is None and state.version == manifest["package_version"]


def test_the_writer_writes_what_the_reader_accepts(package):
    manifest = mf.read(package)
    assert mf.check_shape(manifest) is manifest
    assert manifest["format_version"] == mf.FORMAT_VERSION
    assert len((package / mf.MANIFEST).read_bytes()) < LIMIT // 50 and mf.MANIFEST_SIZE_LIMIT == LIMIT
