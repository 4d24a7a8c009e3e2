"""Schemathesis against the served OpenAPI document: property-based requests to every
operation of a real running daemon, as a supervisor. No request may get a server
error, and every response must match the document (status code, content type, schema)
and a request the document calls invalid must be refused. (Schemathesis' "schema-valid
request rejected" check is left out: a flow's YAML content, a period whose end is before
its start or an agent's account without agent id are refused with a 422 that names the
problem, and JSON Schema cannot say those rules.)

(schemathesis' own pytest plugin does not run under pytest 9 yet, so the operations
are driven here with hypothesis directly, one ``@given`` per operation.)
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from tests.api.conftest import PASSWORD, Api

pytestmark = pytest.mark.postgres

EXAMPLES = 40


def fuzzing_supervisor(api: Api) -> dict[str, str]:
    """A supervisor whose name the fuzzer will not hit by chance (a PATCH of its password
    would end its own login mid-run)."""
    name = f"fuzz-{uuid.uuid4().hex}"
    account = {"name": name, "role": "supervisor", "password": PASSWORD}
    created = requests.post(
        f"{api.base}/api/v1/users", json=account, headers=api.headers("sup"), timeout=10
    )
    assert created.status_code == 201, created.text
    login = requests.post(f"{api.base}/api/v1/login", json={**account, "kind": "token"}, timeout=10)
    return {"Authorization": f"Bearer {login.json()['token']}"}


def test_no_server_error_and_responses_match_the_document(api_daemon: Api) -> None:
    schema = schemathesis.openapi.from_url(f"{api_daemon.base}/api/v1/openapi.json")
    # Logging out would end the supervisor's token the other examples use.
    schema = schema.exclude(operation_id="logout")
    headers = fuzzing_supervisor(api_daemon)
    failures: dict[str, str] = {}
    tried = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tried.append(operation.label)

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            case.call_and_validate(
                base_url=api_daemon.base,
                headers=headers,
                excluded_checks=[positive_data_acceptance],
            )

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # one failing must not hide others
            failures[operation.label] = f"{type(exc).__name__}: {exc}"[:3000]
    assert len(tried) >= 25, tried
    assert failures == {}, "\n\n".join(f"{k}\n{v}" for k, v in failures.items())
    assert api_daemon.daemon.events("http_handler_failed") == []
