"""schemathesis against a live ``quotegate run``: requests generated from ``/openapi.json``
for every REST operation, each answer checked against the document (status listed, content
type, body schema, headers, no server error).

``/v1/sse`` is left out (a valid request is an endless stream), and schemathesis leaves out
the document's own path (tests/gateway/edge/test_openapi.py checks both). Two things are by
design and not checked: a well-formed request for something that does not exist (a channel
name of the right shape that no symbol has) is a 400 ``unknown_channel``, not a 2xx; and
unknown query parameters are ignored, so the generator adds none.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import positive_data_acceptance

from gateway.edge.openapi import document
from tests.live import quotegate_run

KEY = "schemathesis-key-0123456789"


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    log: Path = tmp_path_factory.mktemp("schemathesis") / "run.log"
    # a short long-poll cap keeps generated waits short; a quiet market keeps answers small
    env = {"QUOTEGATE_POLL_WAIT_MAX_S": "0.2"}
    with quotegate_run(log, "--rate", "50", key=KEY, env=env) as base:
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json").exclude(path="/v1/sse")
        schema.config.generation.update(
            allow_extra_parameters=False, with_security_parameters=False
        )
        yield schema


@pytest.mark.slow
def test_the_api_answers_as_its_openapi_document_says(api_schema: Any) -> None:
    operations = [result.ok() for result in api_schema.get_all_operations()]
    documented = {
        f"{method.upper()} {path}"
        for path, item in document()["paths"].items()
        for method in item
        if method in ("get", "post", "delete") and path not in ("/v1/sse", "/openapi.json")
    }
    assert {op.label for op in operations} == documented
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def answers_as_documented(case: Any) -> None:
            case.call_and_validate(
                headers={"Authorization": f"Bearer {KEY}"},
                excluded_checks=[positive_data_acceptance],
                timeout=15,
            )

        answers_as_documented()
