"""The running API against its own OpenAPI document, with schemathesis-generated requests."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import Case
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from mailopsd.http.openapi import OPENAPI
from tests.integration.test_http import Running
from tests.integration.test_http_api import AUTH_A, SECRETS
from tests.integration.test_http_api import api as api

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def base_url(api: Running) -> str:
    """The root URL of the running daemon's HTTP server."""
    listen = api.daemon.http_listen
    assert listen is not None, "the http server is not running"
    return f"http://{listen}"


def _operations() -> list[tuple[str, str]]:
    """Every (path, method) of the document, read from the static copy for test ids."""
    paths = OPENAPI["paths"]
    assert isinstance(paths, dict)
    return [
        (path, method) for path, item in paths.items() for method in item if method != "parameters"
    ]


KNOWN = {"campaign_id": "camp", "id": "a"}
"""Ids that exist for key A's account, so the 200 answers are generated too."""


@pytest.mark.parametrize(("path", "method"), _operations())
def test_api_answers_as_documented(path: str, method: str, base_url: str) -> None:
    """Every operation, with a valid key, answers as the served OpenAPI document says."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", timeout=10)
    operation = schema[path][method]
    known = {name: value for name, value in KNOWN.items() if f"{{{name}}}" in path}
    cases = operation.as_strategy() | operation.as_strategy(path_parameters=known)

    @given(case=cases)
    @settings(
        max_examples=20,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    def check(case: Case) -> None:
        response = case.call_and_validate(
            base_url=base_url, headers=dict(AUTH_A), checks=CHECKS, timeout=10
        )
        shown = response.text + repr(response.headers)
        for secret in SECRETS:
            assert secret not in shown

    check()
