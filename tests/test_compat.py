"""Each private API in superkart_lib.compat: used under the pinned versions, guarded outside them."""

from __future__ import annotations

import asyncio
import re

import numpy as np
import pytest

from superkart_lib import compat
from superkart_lib.compat import runtime as compat_runtime
from superkart_lib.compat import training as compat_training
from superkart_lib.contract.errors import UncheckedVersionError
from tests.conftest import ROOT


@pytest.fixture
def unchecked(monkeypatch):
    """Pretend every library is a release nobody checked the private APIs with."""
    monkeypatch.setattr(compat, "installed", lambda distribution: "99.0.0")


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        name, _, version = line.split("#")[0].strip().partition("==")
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_every_pinned_version_is_a_checked_one():
    pins = _pins()
    for distribution in compat.CHECKED:
        assert compat.checked(distribution, pins[distribution]), (distribution, pins[distribution])
        assert compat.checked(distribution), f"the installed {distribution} is not the checked one"


def test_checked_compares_release_lines():
    assert compat.checked("onnxruntime", "1.32.5")
    assert compat.checked("onnxruntime", "1.20.0")
    assert not compat.checked("onnxruntime", "1.33.0")
    assert not compat.checked("onnxruntime", "1.19.2")
    assert not compat.checked("onnxruntime", "2.0.0")


# --- onnxruntime: the session binding ---------------------------------------------------------------


@pytest.fixture(scope="module")
def model(small_package):
    from superkart_lib.production.runtime import OnnxModel

    return OnnxModel.from_package(small_package)


@pytest.fixture(scope="module")
def records():
    from superkart_lib.contract import schema
    from superkart_lib.development.synthetic import generate
    from tests.conftest import json_records

    return json_records(generate(rows=50, seed=4).drop(columns=[schema.TARGET]))


def test_the_runtime_calls_the_session_binding_and_gets_what_run_gives(model, records):
    # The binding is what keeps one row under 0.1 ms (see compat/runtime.py); a release that
    # renames it falls back to run(), and this test says so.
    assert model._run == model._session._sess.run
    feeds = model._from_rows(records)
    public = model._session.run(["prediction"], feeds)[0].reshape(-1)
    assert np.array_equal(model.predict(records), public)


def test_an_unchecked_onnxruntime_uses_the_public_run(model, unchecked):
    assert compat_runtime.session_runner(model._session) == model._session.run


# --- starlette: the multipart parser ------------------------------------------------------------------


def _multipart(data: bytes) -> tuple[dict[str, str], bytes]:
    boundary = "superkart-boundary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="in.csv"\r\n'
            "Content-Type: text/csv\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return {"content-type": f"multipart/form-data; boundary={boundary}"}, body


@pytest.mark.parametrize("checked", [True, False], ids=["checked", "unchecked"])
def test_an_upload_already_read_is_parsed_in_memory(monkeypatch, checked):
    from starlette.datastructures import Headers

    if not checked:
        monkeypatch.setattr(compat, "installed", lambda distribution: "99.0.0")
    data = b"a,b\n" + b"1,2\n" * 400_000  # 3.2 MB: above starlette's own 1 MB spool threshold
    headers, body = _multipart(data)

    async def parse():
        form = await compat_runtime.parse_multipart(Headers(headers), body, spool_max_size=len(body))
        upload = form["file"]
        content, on_disk = await upload.read(), upload.file._rolled
        await form.close()
        return content, on_disk

    content, on_disk = asyncio.run(parse())
    assert content == data
    assert on_disk is (not checked)  # outside the checked versions: starlette's defaults, spooled to disk


# --- scikit-learn, skl2onnx, onnxmltools: the ONNX export ----------------------------------------------


@pytest.fixture(scope="module")
def fitted_hgb():
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(300, 3)), rng.normal(loc=5.0, size=300)
    return HistGradientBoostingRegressor(max_iter=7, random_state=0).fit(X, y), X, y


def test_hist_gradient_boosting_trees_are_the_model(fitted_hgb):
    estimator, X, y = fitted_hgb
    trees, baseline = compat_training.hist_gradient_boosting_trees(estimator)
    assert len(trees) == estimator.n_iter_ == 7
    assert baseline == pytest.approx(float(np.mean(y)))  # squared error starts from the mean
    # What the ONNX export reads from each tree (parity of the exported model: tests/test_onnx.py).
    assert all(tree.nodes["is_leaf"].any() and "value" in tree.nodes.dtype.names for tree in trees)


def test_onehot_infrequent_grouping_is_seen():
    from sklearn.preprocessing import OneHotEncoder

    column = np.array([["a"]] * 10 + [["b"]] * 10 + [["rare"]])
    assert compat_training.onehot_has_infrequent_categories(OneHotEncoder(min_frequency=2).fit(column))
    assert not compat_training.onehot_has_infrequent_categories(OneHotEncoder().fit(column))


def test_skl2onnx_tree_helpers_write_a_tree(fitted_hgb):
    from sklearn.tree import DecisionTreeRegressor

    estimator, X, y = fitted_hgb
    tree = DecisionTreeRegressor(max_depth=2, random_state=0).fit(X, y).tree_
    helpers = compat_training.skl2onnx_tree_helpers()
    attrs = helpers.defaults()
    helpers.add_tree(attrs, False, tree, 0, 1.0, 0, False, False, dtype=np.float64)
    assert len(attrs["nodes_nodeids"]) == tree.node_count
    assert attrs["nodes_modes"].count("LEAF") == tree.n_leaves


def test_onnxmltools_xgboost_converter_is_found():
    shape, convert = compat_training.xgboost_converter()
    assert callable(shape) and callable(convert)


@pytest.mark.parametrize(
    ("call", "library"),
    [
        (lambda: compat_training.hist_gradient_boosting_trees(None), "scikit-learn"),
        (lambda: compat_training.onehot_has_infrequent_categories(None), "scikit-learn"),
        (compat_training.skl2onnx_tree_helpers, "skl2onnx"),
        (compat_training.xgboost_converter, "onnxmltools"),
    ],
)
def test_an_unchecked_training_library_stops_the_export_in_one_line(unchecked, call, library):
    with pytest.raises(UncheckedVersionError) as caught:
        call()
    message = str(caught.value)
    assert f"{library} 99.0.0 is installed" in message and "\n" not in message
    low, high = compat.CHECKED[library]
    assert f"checked with {low} to {high}" in message


def test_uvicorn_gets_the_guarded_protocol_only_where_it_was_checked(monkeypatch):
    """The read deadlines subclass uvicorn's httptools protocol: its parser callbacks are internals."""
    from uvicorn.config import Config

    from superkart_lib.compat import http

    assert http.http_protocol() == http.GUARDED_HTTP
    config = Config(app=lambda *a: None, http=http.http_protocol())
    config.load()  # uvicorn imports the class by its path, as each worker does
    assert config.http_protocol_class is http.GuardedHttpProtocol
    hooks = ("connection_made", "connection_lost", "data_received", "on_message_begin", "on_headers_complete")
    for hook in hooks:
        assert callable(getattr(config.http_protocol_class.__mro__[1], hook)), hook  # what the subclass extends
    monkeypatch.setattr(compat, "installed", lambda distribution: "99.0.0")
    assert http.http_protocol() == "httptools"  # unchecked: uvicorn's own protocol, keep-alive timeout only


def test_a_histogram_takes_counts_per_bucket_only_where_it_was_checked(monkeypatch):
    """prometheus-client's histogram internals: one increment per bucket equals observing each value."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    bounds = (1.0, 10.0)
    values = [0.5, 1.0, 3.0, 10.0, 11.0, 99.0]

    def fresh() -> tuple[CollectorRegistry, Histogram]:
        registry = CollectorRegistry()
        return registry, Histogram("h", "h", buckets=bounds, registry=registry)

    def text(registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]

    one_by_one, reference = fresh()
    for value in values:
        reference.observe(value)
    counted, histogram = fresh()
    add = compat_runtime.histogram_adder(histogram, bounds)
    assert add is not None
    add([2, 1, 0], 4.5)
    add([0, 1, 2], sum(values) - 4.5)  # added twice: as a flush every second does
    assert text(counted) == text(one_by_one)
    assert compat_runtime.histogram_adder(histogram, (1.0, 5.0)) is None  # other buckets: refused
    with pytest.raises(ValueError):
        add([1, 1], 1.0)  # one count per bucket, +Inf included
    monkeypatch.setattr(compat, "installed", lambda distribution: "99.0.0")
    assert compat_runtime.histogram_adder(fresh()[1], bounds) is None


def test_the_drain_before_a_stop_uses_uvicorn_internals_only_where_checked(monkeypatch):
    """compat.serving overrides uvicorn's signal handler and main-loop tick: what they set is internal."""
    import signal

    from uvicorn.config import Config

    from superkart_lib.compat import serving

    config = Config(app=lambda *a: None)
    config.load()
    asked: list[float] = []

    def server(drain: float, same_stop_seconds: float = 0.0) -> serving.DrainingServer:
        def on_stop() -> float:
            asked.append(drain)
            return drain

        made = serving.DrainingServer(config, on_stop, same_stop_seconds)
        made.started = True
        return made

    draining = server(60.0)
    draining.handle_exit(signal.SIGTERM, None)  # uvicorn's handler for SIGTERM and SIGINT
    assert asked == [60.0] and not draining.should_exit  # the first signal: drain, still serving
    assert not asyncio.run(draining.on_tick(0))  # uvicorn's main loop asks on_tick whether to stop
    draining.handle_exit(signal.SIGTERM, None)
    assert draining.should_exit and not draining.force_exit and asked == [60.0]  # a second: stop now
    assert asyncio.run(draining.on_tick(1))
    draining.handle_exit(signal.SIGINT, None)
    assert draining.force_exit  # then uvicorn's second Ctrl-C
    assert draining._captured_signals == []  # nothing re-raised after the stop: the process exits 0

    twice = server(60.0, same_stop_seconds=60.0)
    twice.handle_exit(signal.SIGINT, None)
    twice.handle_exit(signal.SIGTERM, None)  # the same stop, delivered twice
    assert not twice.should_exit
    ended = server(1e-6)
    ended.handle_exit(signal.SIGTERM, None)
    assert asyncio.run(ended.on_tick(0))  # the drain is over: uvicorn's graceful stop follows
    starting = server(60.0)
    starting.started = False
    starting.handle_exit(signal.SIGTERM, None)
    assert starting.should_exit  # not serving yet: nothing to drain

    assert serving.drains()
    monkeypatch.setattr(compat, "installed", lambda distribution: "99.0.0")
    assert not serving.drains()  # unchecked: serve() is uvicorn.run, with uvicorn's own stop


def test_the_draining_supervisor_replaces_every_place_uvicorn_makes_a_worker():
    """uvicorn's supervisor names its worker class in each method that starts one; the subclass overrides them all."""
    import inspect

    from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
    from uvicorn.server import Server
    from uvicorn.supervisors.multiprocess import Multiprocess, Process

    from superkart_lib.compat import serving

    members = inspect.getmembers(Multiprocess, inspect.isfunction)
    making = {name for name, method in members if "Process(" in inspect.getsource(method)}
    assert making and all(name in serving.DrainingMultiprocess.__dict__ for name in making), making
    assert "self.server.run(" in inspect.getsource(Process.target)  # a worker serves with its server property
    run = inspect.getsource(Multiprocess.run)
    assert run.index("self.terminate_all()") < run.index("self.join_all()")  # the stop the subclass extends
    assert "self.signal_queue.append" in inspect.getsource(Multiprocess.__init__)
    assert "self.handle_exit" in inspect.getsource(Server.capture_signals)
    assert "on_tick" in inspect.getsource(Server.main_loop)
    # The protocol's stop (compat.http): uvicorn's shutdown calls it, and it reads the request cycle.
    assert "connection.shutdown()" in inspect.getsource(Server.shutdown)
    assert {"self.keep_alive", "self.response_complete"} <= set(
        re.findall(r"self\.\w+", inspect.getsource(RequestResponseCycle.__init__))
    )
