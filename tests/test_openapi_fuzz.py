"""Schema fuzzing: requests generated from /openapi.json, sent to a real uvicorn service, must get no 5xx and
responses the schema describes (status codes, content types, bodies); invalid requests (negative mode) must be
refused; the documented examples must be accepted. Bounded: a few dozen examples per operation and mode, small
caps in the service so the load, pipeline and catalog routes stay fast."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.examples import get_strategies_from_examples

from service.launcher import ServiceProcess
from tests.conftest import ServiceFactory

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES_PER_MODE = 25
SMALL_CAPS = {
    "write_token": TOKEN,
    "max_request_memory_mb": 8,
    "max_total_memory_mb": 16,
    "max_hold_s": 0.01,
    "max_catalog_movies": 50,
    "max_pipeline_movies": 50,
    "max_io_rows": 1000,
    "max_io_columns": 8,
    "max_io_cells": 4000,
    "max_batch_ids": 100,
}


@pytest.fixture(scope="module")
def service(module_service_factory: ServiceFactory) -> ServiceProcess:
    return module_service_factory(**SMALL_CAPS)


@pytest.fixture(scope="module")
def api_schema(service: ServiceProcess) -> Iterator[schemathesis.BaseSchema]:
    yield schemathesis.openapi.from_url(service.base_url + "/openapi.json")


def _fuzz(strategy: st.SearchStrategy[schemathesis.Case], checks: list[Callable[..., object]], examples: int) -> None:
    @given(case=strategy)
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=AUTH, checks=checks, timeout=10)

    run()


def test_every_operation_conforms_to_the_schema(api_schema: schemathesis.BaseSchema) -> None:
    # One test driving hypothesis per operation and mode (schemathesis' pytest plugin fails under pytest 9.2);
    # the report lists every operation that failed, not only the first.
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 17
    for operation in operations:
        runs = {
            "positive": (operation.as_strategy(generation_mode=GenerationMode.POSITIVE), CHECKS),
            "negative": (
                operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
                [*CHECKS, negative_data_rejection],
            ),
        }
        examples = get_strategies_from_examples(operation)
        if examples:
            runs["examples"] = (st.one_of(examples), CHECKS)
        for mode, (strategy, checks) in runs.items():
            try:
                _fuzz(strategy, checks, EXAMPLES_PER_MODE)
            except Unsatisfiable:
                assert mode == "negative", operation.label  # nothing invalid can be expressed: nothing to refuse
            except Exception as error:  # report them all: each is a defect of its own
                failures[f"{operation.label} ({mode})"] = f"{type(error).__name__}: {error}"[:3000]
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def test_documented_examples_are_accepted(api_schema: schemathesis.BaseSchema, service: ServiceProcess) -> None:
    put = api_schema["/v1/groups/{group}/features/{feature}"]["PUT"]
    body = put.definition.raw["requestBody"]["content"]["application/json"]["schema"]
    assert len(body["examples"]) == 2
    with httpx.Client(base_url=service.base_url, headers=AUTH) as api:
        for example in body["examples"]:
            assert api.put("/v1/groups/examples/features/f", json=example).status_code == 201, example


def test_unsupported_methods_get_405_with_the_allow_header(
    api_schema: schemathesis.BaseSchema, service: ServiceProcess
) -> None:
    document = api_schema.raw_schema
    with httpx.Client(base_url=service.base_url, headers=AUTH) as api:
        for template, item in document["paths"].items():
            documented = {method.upper() for method in item if method in ("get", "put", "post", "delete")}
            path = template.replace("{group}", "g").replace("{feature}", "f").replace("{entity_id}", "1")
            response = api.request("PATCH", path)
            assert response.status_code == 405, (template, response.text)
            assert set(response.headers["allow"].replace(" ", "").split(",")) >= documented, template
            for operation in item.values():
                assert "Allow" in operation["responses"]["405"]["headers"], template
