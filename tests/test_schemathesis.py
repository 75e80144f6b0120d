"""Property-based API tests: schemathesis generates requests from the app's own /openapi.json.

Against the live server (real HTTP): no 5xx, every status and body as documented, valid data
accepted and invalid data refused. At least 1,000 generated cases in all.
"""

from __future__ import annotations

from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.checks import positive_data_acceptance

from superkart_lib.serve import create_app
from tests.test_serve import live_server, wait_ready

MIN_CASES = 1_000
EXAMPLES_PER_OPERATION = 400
calls: dict[str, int] = {}


@pytest.fixture(scope="module")
def package(trained):
    return trained[0]


@pytest.fixture(scope="module")
def server(package, tmp_path_factory):
    with live_server(package, tmp_path_factory.mktemp("schemathesis") / "server.log") as url:
        assert wait_ready(url).status_code == 200
        yield url


# The OpenAPI document does not depend on the model (only on the schema), so it loads at import
# time without a package; the requests go to the live server.
schema = schemathesis.openapi.from_dict(create_app(Path("unused-package")).openapi())


@schema.parametrize()
@hypothesis.settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_api_conforms_to_its_schema(case, server):
    label = f"{case.method} {case.path}"
    calls[label] = calls.get(label, 0) + 1
    # A CSV is a binary string to OpenAPI: schema-valid uploads are random bytes, rightly refused.
    excluded = [positive_data_acceptance] if case.path == "/v1/predict/csv" else []
    case.call_and_validate(base_url=server, excluded_checks=excluded, timeout=30)


def test_enough_cases_were_generated():
    if not calls:
        pytest.skip("counts the cases of test_api_conforms_to_its_schema; run it in the same session")
    total = sum(calls.values())
    print(f"\nschemathesis: {total} cases: {calls}")
    assert total >= MIN_CASES, f"only {total} generated cases: {calls}"
