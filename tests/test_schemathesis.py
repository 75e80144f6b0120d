"""Property-based API tests: schemathesis generates requests from the app's own /openapi.json.

Against the live server (real HTTP): no 5xx, every status and body as documented, valid data
accepted and invalid data refused. One test generates and counts every case itself, so its
count holds however pytest-xdist distributes the tests.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import positive_data_acceptance

from superkart_lib.production.app import create_app
from tests.conftest import live_server, wait_ready

MIN_CASES = 1_000

# The OpenAPI document does not depend on the model (only on the schema and the limits), so it is
# built without a package; the requests go to the live server.
api = schemathesis.openapi.from_dict(create_app(Path("unused-package")).openapi())


@pytest.fixture(scope="module")
def server(package, tmp_path_factory):
    with live_server(package, tmp_path_factory.mktemp("schemathesis") / "server.log") as url:
        assert wait_ready(url).status_code == 200
        yield url


def test_api_conforms_to_its_schema(server):
    calls: Counter[str] = Counter()

    @hypothesis.given(case=api.as_strategy())
    @hypothesis.settings(
        max_examples=int(MIN_CASES * 1.5),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(hypothesis.HealthCheck),
    )
    def conforms(case) -> None:
        calls[f"{case.method} {case.path}"] += 1
        # A CSV is a binary string to OpenAPI: schema-valid uploads are random bytes, rightly refused.
        excluded = [positive_data_acceptance] if case.path == "/v1/predict/csv" else []
        case.call_and_validate(base_url=server, excluded_checks=excluded, timeout=30)

    conforms()
    documented = {f"{op.method.upper()} {op.path}" for op in (r.ok() for r in api.get_all_operations())}
    print(f"\nschemathesis: {sum(calls.values())} cases: {dict(calls)}")
    assert sum(calls.values()) >= MIN_CASES, dict(calls)
    assert documented <= set(calls), f"operations never exercised: {documented - set(calls)}"
