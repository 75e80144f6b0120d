"""The error path of ``POST /v1/predict``: any body the JSON parser accepts is answered 2xx or 4xx, never 5xx.

Requests run in-process through the real endpoint (:class:`~superkart_lib.production.handlers.PredictEndpoint`
with a loaded model), so thousands of them cost seconds; one test repeats the deep-nesting sweep
against a live server, whose stack depth differs. Messages must stay one bounded line whatever
the value they describe: nested a thousand levels deep, 4,300 digits long, or full of NUL and
lone surrogates.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from superkart_lib.contract import schema
from superkart_lib.contract.limits import MAX_ERRORS
from superkart_lib.production import value_text
from superkart_lib.production.handlers import ModelState, PredictEndpoint
from superkart_lib.production.record_validation import example_record
from tests.conftest import json_records, live_server, wait_ready

#: Generated requests the property test must have run (schemathesis adds its own 1,500).
MIN_CASES = 1_000
#: The longest message a 4xx may carry: the longest allowed-values list plus a shown value fits.
MAX_MESSAGE = 600
#: CPython's default recursion limit, which the server keeps; hypothesis raises it while a test runs.
SERVER_RECURSION_LIMIT = 1_000
#: Nesting depths that straddle the recursion limit, whatever the stack depth of the caller.
DEPTHS = range(1, SERVER_RECURSION_LIMIT + 50)
BASE = example_record()


class Endpoint:
    """``POST /v1/predict`` in-process: the ASGI endpoint with a loaded model, run on one worker thread.

    Every request starts at the worker's stack depth, wherever the test calls from, and runs
    under the server's recursion limit (hypothesis adds frames and raises the limit), so the
    deepest nesting the parser takes, :attr:`edge`, is one number.
    """

    def __init__(self, state: ModelState, pool: ThreadPoolExecutor):
        self.app = PredictEndpoint(state)
        self.pool = pool
        self.edge = bisect.bisect_left(range(10 * SERVER_RECURSION_LIMIT), True, key=self._refused)

    async def _call(self, body: bytes) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/predict",
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        return sent[0]["status"], sent[1]["body"]

    def raw(self, body: bytes) -> tuple[int, bytes]:
        limit = sys.getrecursionlimit()
        sys.setrecursionlimit(SERVER_RECURSION_LIMIT)
        try:
            return self.pool.submit(asyncio.run, self._call(body)).result()
        finally:
            sys.setrecursionlimit(limit)

    def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        """Status and decoded body of one request, once :func:`check_answer` accepts them."""
        status, content = self.raw(body)
        return status, check_answer(status, content)

    def _refused(self, depth: int) -> bool:
        return self.raw(nested(depth).encode())[0] == 400


@pytest.fixture(scope="module")
def endpoint(small_package) -> Iterator[Endpoint]:
    state = ModelState(Path(small_package))
    state.load()
    assert state.model is not None, state.error
    with ThreadPoolExecutor(1) as pool:
        yield Endpoint(state, pool)


def check_answer(status: int, content: bytes) -> dict[str, Any]:
    """The decoded body, once it is a documented answer: 200 with predictions, or a 4xx of bounded one-line messages."""
    assert status == 200 or 400 <= status < 500, content[:300]
    answer: dict[str, Any] = json.loads(content)
    if status == 200:
        assert "prediction" in answer or "predictions" in answer, answer
        return answer
    assert answer["detail"] == answer["errors"][0]["message"]
    assert 1 <= len(answer["errors"]) <= MAX_ERRORS
    for error in answer["errors"]:
        message = error["message"]
        assert len(message.splitlines()) == 1 and len(message) <= MAX_MESSAGE, message[:1000]
    return answer


def record_with(field: str, value_text: str) -> bytes:
    """The valid base record with ``field`` set to raw JSON text (which json.dumps may not be able to write)."""
    parts = [f"{json.dumps(k)}:{json.dumps(v)}" for k, v in BASE.items() if k != field]
    return ("{" + ",".join([*parts, f"{json.dumps(field)}:{value_text}"]) + "}").encode()


def nested(depth: int, core: str = "1", kind: str = "array") -> str:
    if kind == "array":
        return "[" * depth + core + "]" * depth
    return '{"a":' * depth + core + "}" * depth


# --- examples: the exact answer ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("field", ["Product_Weight", "Product_Type", "Product_Id", "Store_Id"])
def test_a_field_nested_at_any_depth_is_a_4xx_naming_it(endpoint, field, kind):
    statuses = set()
    for depth in DEPTHS:
        status, answer = endpoint.post(record_with(field, nested(depth, kind=kind)))
        statuses.add(status)
        if status == 422:
            assert answer["errors"][0]["field"] == field
            assert answer["detail"].startswith(f"record 0, field '{field}': must be"), answer["detail"]
        else:
            assert status == 400 and answer["detail"] == "malformed JSON: nested too deeply", (depth, answer)
    assert statuses == {400, 422}


@pytest.mark.parametrize(
    ("kind", "wrap", "start"),
    [
        ("array", "@", "the body must be a record object"),
        ("object", "@", "record 0, field 'Product_Weight': missing"),
        ("array", '{"records": [@]}', "record 0: must be an object of fields"),
        ("object", '{"records": @}', "field 'records': must be a list"),
        ("array", '{"records": [' + record_with("Store_Size", "@").decode() + "]}", "record 0, field 'Store_Size'"),
    ],
    ids=["whole-body-array", "whole-body-object", "batch-record", "records-value", "batch-field"],
)
def test_a_body_nested_at_any_depth_is_a_4xx(endpoint, kind, wrap, start):
    statuses = set()
    for depth in DEPTHS:
        status, answer = endpoint.post(wrap.replace("@", nested(depth, kind=kind)).encode())
        statuses.add(status)
        if status == 400:
            assert answer["detail"] == "malformed JSON: nested too deeply", depth
        else:
            assert (status, answer["detail"][: len(start)]) == (422, start), (depth, answer["detail"])
    assert statuses == {400, 422}


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"a":' * 100_000, b'{"records": [' + b"[" * 100_000, nested(100_000).encode()],
    ids=["unclosed-arrays", "unclosed-objects", "unclosed-batch", "closed-arrays"],
)
def test_a_body_nested_far_too_deep_is_a_400(endpoint, body):
    status, answer = endpoint.post(body)
    assert (status, answer["detail"]) == (400, "malformed JSON: nested too deeply")


@pytest.mark.parametrize(
    ("value_text", "fragment"),
    [
        ("9" * 4300, "is out of range (allowed: > 0 and <= 100)"),
        ("-" + "9" * 4300, "is out of range"),
        ("1e400", "must be a finite number, got Infinity"),
        ("-1e400", "must be a finite number, got -Infinity"),
        ("NaN", "must be a finite number, got NaN"),
        (json.dumps({"kg": [1.5] * 1000}), 'must be a number, got an object of 1 field: {"kg": [1.5, 1.5,'),
        (json.dumps("x" * 1_000_000), "must be a number, got 'xxxxxxxx"),
        (json.dumps("a\nb\x00\ud800\u2028"), "must be a number, got 'a\\nb\\x00\\ud800\\u2028'"),
    ],
    ids=["4300-digits", "negative-4300-digits", "1e400", "-1e400", "nan", "object", "megabyte-string", "control"],
)
def test_an_odd_number_is_a_422_naming_the_field(endpoint, value_text, fragment):
    status, answer = endpoint.post(record_with("Product_Weight", value_text))
    assert status == 422 and answer["errors"][0]["field"] == "Product_Weight"
    assert answer["detail"].startswith("record 0, field 'Product_Weight': ") and fragment in answer["detail"]


def test_a_number_past_the_digit_limit_is_a_400_in_plain_words(endpoint):
    status, answer = endpoint.post(record_with("Product_Weight", "9" * 4301))
    assert status == 400
    assert answer["detail"] == f"malformed JSON: a number has more than {sys.get_int_max_str_digits():,} digits"


@pytest.mark.parametrize(
    ("key", "shown"),
    [
        ("k" * 100_000, "'kkkkkkkkk"),
        ("a\nb", "'a\\nb'"),
        ("it's", '"it\'s"'),
        ("\x00\ud800", "'\\x00\\ud800'"),
        ("", "''"),
    ],
    ids=["long", "newline", "quote", "nul-surrogate", "empty"],
)
def test_an_odd_unknown_key_is_named_on_one_bounded_line(endpoint, key, shown):
    body = json.dumps({**BASE, key: 1}).encode()
    for wrapped in (body, b'{"records": [' + body + b"]}"):
        status, answer = endpoint.post(wrapped)
        assert status == 422 and answer["errors"][0]["field"] == key
        assert answer["detail"].startswith(f"record 0, field {shown}"), answer["detail"][:200]
        assert "unknown field" in answer["detail"]
    status, answer = endpoint.post(json.dumps({"records": [BASE], key: 1}).encode())
    assert status == 422 and answer["errors"][0]["field"] == key
    assert answer["detail"].startswith(f"field {shown}") and "next to 'records'" in answer["detail"]


def test_nesting_near_the_recursion_limit_is_a_4xx_on_a_live_server(small_package, tmp_path):
    """The deep-nesting sweep over real HTTP: the server's stack is not the test's; its log keeps no traceback."""
    log = tmp_path / "server.log"
    with live_server(small_package, log) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert wait_ready(url).status_code == 200
        statuses = set()
        for depth in DEPTHS:
            body = record_with("Product_Weight", nested(depth))
            response = client.post("/v1/predict", content=body, headers={"Content-Type": "application/json"})
            check_answer(response.status_code, response.content)
            statuses.add(response.status_code)
    assert statuses == {400, 422}
    assert "Traceback" not in log.read_text()


class _Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def _deep_list(depth: int) -> list[Any]:
    outer: list[Any] = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (_deep_list(100_000), "an array of 1 item: [[[[[[[[[["),
        ({"k" * 100: 1}, 'an object of 1 field: {"kkkkkkkk'),
        (10**5000, "a number of about 5,000 digits"),
        ([1, 10**5000], "[1, a number of about 5,000 digits]"),
        (_Unprintable(), "a value of type _Unprintable"),
        ([_Unprintable()], "a value of type list"),
        ({10**5000: 1}, "a value of type dict"),
        ((1, None, True), "[1, null, true]"),
        (float("inf"), "Infinity"),
        ("a\nb", "'a\\nb'"),
    ],
    ids=[
        "deep",
        "long-key",
        "past-digit-limit",
        "inside-list",
        "repr-raises",
        "repr-raises-inside",
        "int-key",
        "tuple",
        "inf",
        "str",
    ],
)
def test_describing_a_value_never_raises_and_stays_short(value, text):
    """Values no JSON body carries as well: CSV cells and the store table's values go through the same helper."""
    shown = value_text.describe(value)
    assert shown.startswith(text) and len(shown) <= 2 * value_text.WIDTH, shown


# --- the property: any JSON the parser accepts gives 2xx or 4xx -------------------------------------------

# Long texts are built from short specs (text, times): hypothesis quotes its strategies in reports.
ODD_KEYS = ["a\nb", "it's", '"', "\x00", "\ud800", "Product_weight", " Product_Weight", "records", ""]
LONG_KEYS = [("k", 5_000), ("\u2028", 100)]
ODD_SCALARS = [
    "1e400",
    "-1e400",
    "1E-400",
    "-0",
    "5e-324",
    "NaN",
    "Infinity",
    "-Infinity",
    '"\\ud800"',
    '"\\udfff\\ud800x"',
    '"\\u0000"',
    '"a\\nb"',
    '"\\u2028"',
    "2009.0",
    '"reg"',
    '"FD1234"',
]
#: (before, unit, times, after): numbers at and past the digit limit, one that overflows to inf, long strings.
LONG_SCALARS = [
    ("", "9", 4300, ""),
    ("-", "9", 4300, ""),
    ("", "9", 4301, ""),
    ("", "1", 400, ".5"),
    ('"', "x", 100_000, '"'),
]


def _long(spec: tuple[str, str, int, str]) -> str:
    before, unit, times, after = spec
    return before + unit * times + after


def _array(items: list[str]) -> str:
    return "[" + ",".join(items) + "]"


def _object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f"{key}:{value}" for key, value in pairs) + "}"


def _strategies(valid: list[dict[str, Any]], edge: int) -> st.SearchStrategy[bytes]:
    """Request bodies: arbitrary JSON, valid records with one field changed, deep nesting, batches."""
    names = st.one_of(
        st.sampled_from([*schema.INPUT_COLUMNS, schema.TARGET, *ODD_KEYS]),
        st.sampled_from(LONG_KEYS).map(lambda spec: spec[0] * spec[1]),
        st.text(max_size=12),
    )
    keys = names.map(json.dumps)
    columns = st.sampled_from([json.dumps(name) for name in schema.INPUT_COLUMNS])
    scalars = st.one_of(
        st.none().map(json.dumps),
        st.booleans().map(json.dumps),
        st.integers().map(str),
        st.floats().map(json.dumps),  # NaN and Infinity too: Python's parser accepts them
        st.text().map(json.dumps),
        st.sampled_from(ODD_SCALARS),
        st.sampled_from(LONG_SCALARS).map(_long),
        st.sampled_from([json.dumps(v) for record in valid[:3] for v in record.values()]),
    )
    values = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=6).map(_array) | st.lists(st.tuples(keys, inner), max_size=6).map(_object)
        ),
        max_leaves=20,
    )

    @st.composite
    def deep(draw: Any) -> str:
        # Just under the parser's edge is where describing the value overflowed the stack.
        depth = draw(st.integers(1, 64) | st.integers(edge - 8, edge) | st.integers(edge, 150_000))
        return nested(depth, draw(scalars | values), draw(st.sampled_from(["array", "object"])))

    @st.composite
    def deep_field(draw: Any) -> str:
        """The case of the issue: one field of a valid record nested just short of the parser's edge."""
        fields = {json.dumps(k): json.dumps(v) for k, v in draw(st.sampled_from(valid)).items()}
        depth = edge - draw(st.integers(0, 12))  # a batch and its record take 3 levels more
        fields[draw(columns)] = nested(depth, draw(scalars), draw(st.sampled_from(["array", "object"])))
        return _object(list(fields.items()))

    anything = values | deep()

    @st.composite
    def record(draw: Any) -> str:
        fields = {json.dumps(k): json.dumps(v) for k, v in draw(st.sampled_from(valid)).items()}
        for _ in range(draw(st.integers(0, 2))):
            key = draw(columns | keys)
            if draw(st.booleans()):
                fields.pop(key, None)
            else:
                fields[key] = draw(anything)
        return _object(list(fields.items()))

    items = record() | deep_field() | anything
    batch = st.lists(items, max_size=5).map(lambda records: _object([('"records"', _array(records))]))
    odd_batch = st.tuples(items, keys, anything).map(lambda t: _object([('"records"', _array([t[0]])), t[1:]]))
    text = st.one_of(record(), deep_field(), batch, anything, odd_batch)
    encoding = st.sampled_from(["utf-8"] * 6 + ["utf-16", "utf-32", "utf-8-sig"])
    return st.tuples(text, encoding).map(lambda t: t[0].encode(t[1], "surrogatepass"))


def test_any_json_body_is_answered_2xx_or_4xx(endpoint):
    valid = [BASE, *json_records(_synthetic_rows())]
    statuses: dict[int, int] = {}

    @given(body=_strategies(valid, endpoint.edge))
    @settings(
        max_examples=MIN_CASES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    def answered(body: bytes) -> None:
        status, _ = endpoint.post(body)
        statuses[status] = statuses.get(status, 0) + 1

    answered()
    print(
        f"\nerror path: {sum(statuses.values())} cases, parser edge {endpoint.edge}: {dict(sorted(statuses.items()))}"
    )
    assert sum(statuses.values()) >= MIN_CASES, statuses
    assert {200, 400, 422} <= set(statuses), statuses


def _synthetic_rows() -> Any:
    from superkart_lib.development.synthetic import generate

    return generate(rows=20, seed=11).drop(columns=[schema.TARGET])
