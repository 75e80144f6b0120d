"""A running server changes model without a restart: verified and warmed first, refused when bad.

In-process tests drive :class:`LinkFollower` and the app directly; the load test runs
``superkart serve --registry DIR --workers 2`` under 20,000 requests while the registry's
``current`` moves four times, and checks every answer against the offline prediction of the
version it names.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import httpx
import pytest
from conftest import flip_one_byte, json_records, make_package

from superkart_lib.contract.files import replace_link, resolve_link
from superkart_lib.production.app import create_app
from superkart_lib.production.model_state import DRIFT_WINDOW, LinkFollower, ModelState
from superkart_lib.production.runtime import OnnxModel


@pytest.fixture(scope="module")
def two_versions(tmp_path_factory) -> tuple[Path, Path]:
    """Two packages whose predictions differ (other rows, other seed)."""
    root = tmp_path_factory.mktemp("versions")
    return (
        resolve_link(make_package(root / "a" / "model", seed=3)),
        resolve_link(make_package(root / "b" / "model", seed=4, rows=2_500)),
    )


@pytest.fixture(scope="module")
def records(synthetic_frame) -> list[dict]:
    return json_records(synthetic_frame.drop(columns="Product_Store_Sales_Total").head(50))


def point(link: Path, target: Path) -> None:
    """Move ``link`` to ``target`` the way the registry does: one atomic rename."""
    replace_link(link, str(target), link.with_name(f".{link.name}.tmp"))


def following(target: Path, tmp_path: Path) -> tuple[Path, ModelState, LinkFollower, list[tuple[str, bool]]]:
    """A link to ``target``, a state loaded through it, and a follower that records each load attempt."""
    link = tmp_path / "current"
    point(link, target)
    state = ModelState(link)
    state.load()
    loads: list[tuple[str, bool]] = []
    return link, state, LinkFollower(state, on_load=lambda version, ok: loads.append((version, ok))), loads


def offline(version_dir: Path, records: list[dict]) -> list[float]:
    model = OnnxModel.from_package(version_dir)
    return [float(model.predict(r)[0]) for r in records]


def test_the_follower_swaps_to_the_version_the_link_points_at(two_versions, records, tmp_path):
    a, b = two_versions
    link, state, follower, loads = following(a, tmp_path)
    before = state.require()
    assert before.directory == a and not follower.check()  # nothing moved: nothing loaded

    point(link, b)
    assert follower.check()
    after = state.require()
    assert after.directory == b and after.version == b.name and loads == [(b.name, True)]
    assert [float(after.model.predict(r)[0]) for r in records] == offline(b, records)
    # A request that took its snapshot before the swap finishes on the model it started with.
    assert [float(before.model.predict(r)[0]) for r in records] == offline(a, records)
    assert offline(a, records) != offline(b, records)


def test_a_tampered_version_is_refused_and_the_previous_one_keeps_answering(two_versions, tmp_path, caplog):
    a, b = two_versions
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for path in b.iterdir():
        (tampered / path.name).write_bytes(path.read_bytes())
    flip_one_byte(tampered / "model.joblib")  # not even the file the server loads: every file is checked
    link, state, follower, loads = following(a, tmp_path)

    point(link, tampered)
    with caplog.at_level(logging.ERROR, logger="superkart.serve"):
        assert not follower.check()
    assert state.require().directory == a and state.error is None
    assert loads == [("tampered", False)]
    assert "refused model version tampered" in caplog.text and "model.joblib" in caplog.text
    assert not follower.check() and len(loads) == 1  # refused once, not retried at every look

    point(link, b)  # the link moves on: the next good version is taken
    assert follower.check() and state.version == b.name


def test_a_link_that_vanishes_keeps_the_model(two_versions, tmp_path):
    a, _ = two_versions
    link = tmp_path / "current"
    point(link, a)
    state = ModelState(link)
    state.load()
    link.unlink()
    assert not LinkFollower(state).check()
    assert state.require().directory == a


def test_served_drift_counts_the_records_this_worker_answered(small_package, records):
    import asyncio

    app = create_app(small_package)
    app.state.model.load()  # httpx's ASGI transport runs no lifespan

    async def exchange() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            empty = await client.get("/v1/drift")
            for record in records[:20]:
                assert (await client.post("/v1/predict", json=record)).status_code == 200
            await client.post("/v1/predict", json={"records": records[20:30]})
            await client.post("/v1/predict", json={"Product_Weight": "heavy"})  # refused: not counted
            return empty, await client.get("/v1/drift")

    empty, full = asyncio.run(exchange())
    assert empty.status_code == 200 and empty.json()["rows"] == 0 and empty.json()["verdict"] == "no data"
    body = full.json()
    assert full.status_code == 200 and body["rows"] == 30 and body["window"] == DRIFT_WINDOW
    assert body["model_version"] == app.state.model.version
    assert {c["name"] for c in body["columns"]} >= {"Product_MRP", "Store_Id"}
    assert all(c["psi"] >= 0 for c in body["columns"])


# --- the registry under load -------------------------------------------------------------------------


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.02)


def test_promote_and_roll_back_twice_under_load_fails_no_request(two_versions, records, tmp_path):
    from superkart_lib.course.load import run_load_in_thread
    from superkart_lib.course.serving import ServerProcess
    from superkart_lib.production import registry

    a, b = two_versions
    root = tmp_path / "registry"
    v1, v2 = registry.add(root, a), registry.add(root, b)
    registry.promote(root, v1, who="test", why="first")
    expected = {v: offline(root / "versions" / v, records) for v in (v1, v2)}
    requests = 20_000
    with ServerProcess(root, workers=2, timeout=120, log=tmp_path / "serve.log", registry=True) as server:
        # At most 2,500 requests/s: the load lasts 8 s or more on any machine, time for the four moves.
        log, done = run_load_in_thread(server.url, records, requests, concurrency=32, rate=2_500)
        moves = [("promote", v2), ("rollback", v1), ("promote", v2), ("rollback", v1)]
        for step, (action, version) in enumerate(moves, start=1):
            # Each move at a point of the load, once both workers took the one before.
            mark = requests * (0.2 * step - 0.05)
            wait_for(lambda: len(log.answers) >= mark, 120, f"the load to reach move {step}")  # noqa: B023
            taken = server.log.read_text().count("now serving model version")
            if action == "promote":
                registry.promote(root, version, who="test", why=f"step {step}")
            else:
                registry.rollback(root, who="test", why=f"step {step}")
            assert registry.current_version(root) == version
            wait_for(
                lambda: server.log.read_text().count("now serving model version") >= taken + 2,  # noqa: B023
                30,
                f"both workers to serve {version}",
            )
        assert not done.done(), "the load ended before the last move: it would prove nothing"
        result = done.result(timeout=300)
    failed = result.failed
    assert not failed, f"{len(failed)} of {len(result.answers)} failed, first: {failed[0]}"
    assert len(result.answers) == requests
    wrong = [x for x in result.answers if x.prediction != expected[x.version][x.record % len(records)]]
    assert not wrong, f"{len(wrong)} answers differ from their version's offline prediction, first: {wrong[0]}"
    counts = result.versions()
    assert set(counts) == {v1, v2}, counts
    assert [h["version"] for h in registry.history(root)] == [v1, v2, v1, v2, v1]
    after_last = [x.version for x in result.answers if x.sent > result.answers[-1].sent - 0.05]
    assert set(after_last) == {v1}, "the last answers come from the version rolled back to"
    print(f"\n{requests:,} requests at c=32, 2 workers, 4 moves: 0 failed; answers per version {dict(counts)}")
    print(f"p50 {result.latency_ms(0.5):.1f} ms, p99 {result.latency_ms(0.99):.1f} ms, {result.seconds:.1f} s")


def test_a_tampered_version_forced_onto_the_pointer_is_refused_by_the_server(two_versions, records, tmp_path):
    from superkart_lib.course.serving import ServerProcess, get_json, post_json
    from superkart_lib.production import registry

    a, b = two_versions
    root = tmp_path / "registry"
    v1, v2 = registry.add(root, a), registry.add(root, b)
    registry.promote(root, v1, who="test", why="first")
    flip_one_byte(root / "versions" / v2 / "model.onnx")
    with pytest.raises(Exception, match="model.onnx"):
        registry.promote(root, v2, who="test", why="tampered")
    with ServerProcess(root, workers=1, timeout=120, log=tmp_path / "serve.log", registry=True) as server:
        # By hand, past the registry's check: the link now names the tampered version.
        point(registry.current_link(root), Path("versions") / v2)
        assert os.readlink(registry.current_link(root)) == f"versions/{v2}"
        wait_for(lambda: "refused model version" in server.log.read_text(), 10, "the server to refuse the version")
        status, answer = post_json(f"{server.url}/v1/predict", records[0])
        assert status == 200 and answer["model_version"] == v1
        assert answer["prediction"] == expected_first(root / "versions" / v1, records)
        assert get_json(f"{server.url}/readyz")[1] == {"status": "ready", "model_version": v1}
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'superkart_model_reloads_total{result="failure"} 1.0' in metrics, metrics


def expected_first(version_dir: Path, records: list[dict]) -> float:
    return offline(version_dir, records[:1])[0]
