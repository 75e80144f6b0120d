"""The model registry: versions added verified, a current pointer moved atomically, a history that rolls back.

Real packages (``make_package``: a decision tree in seconds), the real command line, and the
production environment (no training stack) for the commands a server's host runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, flip_one_byte, make_package, run_cli, run_without_training_stack

from superkart_lib.contract import manifest as mf
from superkart_lib.contract.errors import IntegrityError, SuperKartError
from superkart_lib.contract.files import resolve_link, sha256_of
from superkart_lib.production import registry

MAIN = "import sys; from superkart_lib.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> list[Path]:
    """Three real packages, trained on different synthetic rows (so their metrics differ)."""
    base = tmp_path_factory.mktemp("packages")
    return [make_package(base / f"p{i}", seed=i + 1) for i in range(3)]


@pytest.fixture
def reg(tmp_path, packages) -> tuple[Path, list[str]]:
    """A registry holding the three packages, nothing promoted; and their versions in the order added."""
    root = tmp_path / "registry"
    return root, [registry.add(root, p) for p in packages]


def _current_dir(root: Path) -> Path:
    return resolve_link(registry.current_link(root))


def test_the_command_line_adds_lists_promotes_rolls_back_and_shows_history(tmp_path, packages):
    root = tmp_path / "reg"
    data = tmp_path / "train.csv"
    data.write_text("any,csv\n1,2\n")
    added = run_cli("registry", "add", "--registry", str(root), "--model", str(packages[0]), "--data", str(data))
    assert added.returncode == 0, added.stderr
    v1 = mf.read(resolve_link(packages[0]))["package_version"]
    assert f"added version {v1}" in added.stdout and "current is not set" in added.stdout
    assert (root / "data" / f"{sha256_of(data)}.csv").read_bytes() == data.read_bytes()
    v2 = registry.add(root, packages[1])

    listed = run_cli("registry", "list", "--registry", str(root))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["version", "created", "family"] and len(lines) == 3
    assert {line.split()[0] for line in lines[1:]} == {v1, v2}  # nothing current: no '*'

    promoted = run_cli("registry", "promote", v1, "--registry", str(root), "--why", "first model", "--who", "ana")
    assert promoted.returncode == 0, promoted.stderr
    assert run_cli("registry", "promote", v2, "--registry", str(root), "--why", "better rmse").returncode == 0
    assert _current_dir(root) == root / "versions" / v2
    assert Path(registry.current_link(root)).readlink() == Path("versions") / v2  # relative, as servers expect

    as_json = json.loads(run_cli("registry", "list", "--registry", str(root), "--json").stdout)
    by_version = {e["version"]: e for e in as_json}
    assert by_version[v2]["current"] and not by_version[v1]["current"]
    assert by_version[v1]["family"] == "decision_tree" and by_version[v1]["data_rows"] == 2_000
    assert set(by_version[v1]["metrics"]) == {"r2", "rmse", "mae", "mape"}
    star = [line for line in run_cli("registry", "list", "--registry", str(root)).stdout.splitlines() if line[0] == "*"]
    assert len(star) == 1 and star[0].split()[1] == v2

    back = run_cli("registry", "rollback", "--registry", str(root), "--why", "complaints")
    assert back.returncode == 0, back.stderr
    assert _current_dir(root).name == v1

    shown = run_cli("registry", "history", "--registry", str(root)).stdout.splitlines()
    assert len(shown) == 3
    assert "promote" in shown[0] and v1 in shown[0] and "by ana: first model" in shown[0]
    assert "rollback" in shown[2] and f"{v1} (from {v2})" in shown[2] and "complaints" in shown[2]
    events = registry.history(root)
    assert [(e["action"], e["version"], e["previous"]) for e in events] == [
        ("promote", v1, None),
        ("promote", v2, v1),
        ("rollback", v1, v2),
    ]
    assert events[1]["who"]  # the login name by default
    assert all(e["time"].endswith("+00:00") for e in events)


def test_why_is_required_and_errors_are_one_line(tmp_path, reg):
    root, versions = reg
    no_why = run_cli("registry", "promote", versions[0], "--registry", str(root))
    assert no_why.returncode == 2 and "--why" in no_why.stderr
    missing = run_cli("registry", "list", "--registry", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"superkart registry: error: {tmp_path / 'nowhere'}: no such registry directory"
    for action in (["promote", versions[0]], ["rollback"]):
        result = run_cli("registry", *action, "--registry", str(tmp_path / "nowhere"), "--why", "x")
        assert result.returncode == 2 and "no such registry directory" in result.stderr
        assert len(result.stderr.splitlines()) == 1


def test_two_rollbacks_after_three_promotions_walk_back_to_the_first(reg):
    root, (v1, v2, v3) = reg
    assert registry.current_version(root) is None
    for version in (v1, v2, v3):
        registry.promote(root, version, "ci", f"promote {version}")
    assert registry.rollback(root, "ops", "v3 is bad")["version"] == v2
    assert registry.current_version(root) == v2
    assert registry.rollback(root, "ops", "v2 is bad too")["version"] == v1
    assert _current_dir(root) == root / "versions" / v1
    with pytest.raises(SuperKartError, match="nothing to roll back to"):
        registry.rollback(root, "ops", "again")
    assert registry.current_version(root) == v1
    # A promotion after rollbacks pushes onto what is left: rolling it back returns to v1.
    registry.promote(root, v3, "ci", "v3 fixed")
    assert registry.rollback(root, "ops", "not fixed")["version"] == v1
    assert [e["action"] for e in registry.history(root)] == ["promote"] * 3 + ["rollback"] * 2 + ["promote", "rollback"]


def test_the_stack_survives_a_move_the_history_missed(reg):
    root, (v1, v2, v3) = reg
    registry.promote(root, v1, "ci", "one")
    registry.promote(root, v2, "ci", "two")
    # The pointer moved by hand (or a crash came between the move and its history line).
    (root / "tmp-link").symlink_to(f"versions/{v3}")
    (root / "tmp-link").replace(root / "current")
    assert registry.rollback(root, "ops", "from where it is")["version"] == v2
    assert registry.rollback(root, "ops", "and again")["version"] == v1


def test_a_tampered_package_is_never_promoted(reg):
    root, (v1, v2, _) = reg
    registry.promote(root, v1, "ci", "first")
    tampered = root / "versions" / v2 / "model.onnx"
    flip_one_byte(tampered)
    before = (root / "history.jsonl").read_bytes()
    with pytest.raises(IntegrityError) as caught:
        registry.promote(root, v2, "ci", "should not happen")
    message = str(caught.value)
    assert str(tampered) in message and v2 in message and "\n" not in message
    assert registry.current_version(root) == v1
    assert (root / "history.jsonl").read_bytes() == before
    result = run_cli("registry", "promote", v2, "--registry", str(root), "--why", "again")
    assert result.returncode == 2 and str(tampered) in result.stderr and len(result.stderr.splitlines()) == 1


def test_rollback_to_a_tampered_version_is_refused(reg):
    root, (v1, v2, _) = reg
    registry.promote(root, v1, "ci", "first")
    registry.promote(root, v2, "ci", "second")
    flip_one_byte(root / "versions" / v1 / mf.CARD)
    with pytest.raises(IntegrityError, match=f"refusing to rollback version {v1}: .*{mf.CARD}"):
        registry.rollback(root, "ops", "back")
    assert registry.current_version(root) == v2


def test_promote_refuses_unknown_current_and_moved_versions(reg):
    root, versions = reg
    with pytest.raises(SuperKartError) as caught:
        registry.promote(root, "20990101T000000Z-nope", "ci", "typo")
    assert "no version '20990101T000000Z-nope'" in str(caught.value)
    assert all(v in str(caught.value) for v in versions)  # the known ones are listed
    registry.promote(root, versions[0], "ci", "first")
    with pytest.raises(SuperKartError, match="already current"):
        registry.promote(root, versions[0], "ci", "twice")
    with pytest.raises(SuperKartError, match="current moved"):  # a retrain compared against another version
        registry.promote(root, versions[1], "ci", "stale", expect_current=versions[2])
    registry.promote(root, versions[1], "ci", "fresh", expect_current=versions[0])
    assert registry.current_version(root) == versions[1]


def test_add_verifies_and_refuses_a_version_twice(tmp_path, packages):
    root = tmp_path / "reg"
    version = registry.add(root, packages[0])
    with pytest.raises(SuperKartError, match=f"version {version} is already in the registry"):
        registry.add(root, packages[0])
    broken = tmp_path / "broken"
    shutil.copytree(resolve_link(packages[1]), broken)
    flip_one_byte(broken / "model.pkl")
    with pytest.raises(IntegrityError, match=str(broken / "model.pkl")):
        registry.add(root, broken)
    assert sorted(p.name for p in (root / "versions").iterdir()) == [version]  # no staging left behind
    copy = root / "versions" / version
    assert sorted(p.name for p in copy.iterdir()) == sorted([mf.MANIFEST, *mf.read(copy)["files"]])


def test_list_shows_an_unreadable_version_instead_of_failing(reg):
    root, versions = reg
    (root / "versions" / "half-copied").mkdir()
    (root / "versions" / "half-copied" / mf.MANIFEST).write_text("{not json")
    found = {e.version: e for e in registry.entries(root)}
    assert set(found) == {*versions, "half-copied"}
    assert "not valid JSON" in (found["half-copied"].problem or "")
    assert all(found[v].problem is None for v in versions)
    shown = run_cli("registry", "list", "--registry", str(root))
    assert shown.returncode == 0 and "problem:" in shown.stdout


def test_registry_commands_run_without_the_training_stack(reg):
    root, (v1, v2, _) = reg
    for args in (["promote", v1, "--why", "prod"], ["promote", v2, "--why", "prod"], ["rollback", "--why", "x"]):
        result = run_without_training_stack(MAIN, "registry", *args, "--registry", str(root))
        assert result.returncode == 0, result.stderr
    listed = run_without_training_stack(MAIN, "registry", "list", "--registry", str(root), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [e["version"] for e in json.loads(listed.stdout) if e["current"]] == [v1]


_PROMOTER = """
import sys
from pathlib import Path
from superkart_lib.contract.errors import SuperKartError
from superkart_lib.production import registry
root, rounds, versions = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
done = 0
for i in range(rounds):
    try:
        registry.promote(root, versions[i % len(versions)], "loop", f"round {i}")
        done += 1
    except SuperKartError as exc:
        assert "already current" in str(exc), exc
print(done)
"""


def test_concurrent_promotes_never_leave_current_missing(reg):
    root, versions = reg
    registry.promote(root, versions[0], "ci", "start")
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _PROMOTER, str(root), "25", *order],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for order in (versions, versions[::-1])
    ]
    seen: set[str] = set()
    reads = 0
    while any(w.poll() is None for w in writers) or reads < 50:
        directory = _current_dir(root)  # as a server does: resolve once, read from that version
        manifest = mf.read(directory)
        assert manifest["package_version"] == directory.name
        assert all((directory / name).is_file() for name in manifest["files"])
        seen.add(directory.name)
        reads += 1
    outputs = [w.communicate() for w in writers]
    assert all(w.returncode == 0 for w in writers), [err for _, err in outputs]
    promoted = sum(int(out) for out, _ in outputs)
    events = registry.history(root)
    assert len(events) == 1 + promoted  # every line whole, none lost between the two writers
    assert (root / "history.jsonl").read_text().count("\n") == len(events)
    assert events[-1]["version"] == registry.current_version(root)
    assert seen <= set(versions) and reads >= 50
    assert not [p for p in root.iterdir() if p.name.startswith(".current-")]  # no temporary link left
