"""Schema fuzzing: ``schemathesis run --checks all`` against a real uvicorn service, with the write token and
without it. Every check must pass: no 5xx, only declared statuses, content types, headers and bodies; schema-valid
requests accepted and schema-invalid ones refused; 405s with a true Allow header; writes refused without the token;
a deleted feature gone and a written one readable (stateful phase). The run is bounded (a fixed seed, a few dozen
examples per operation, short stateful scenarios, no example database) so it gives the same verdict every time and
takes about 15 s per mode on a busy 2-core machine.

The configuration (``SCHEMATHESIS_TOML``) says only what JSON Schema cannot:

* a request inside the schema may still be over a cap this service was started with (``max_*`` settings: movies,
  megabytes, rows x columns, ids per batch), which it refuses with 413; those caps differ between deployments, so
  413 joins the statuses a schema-valid request may get;
* a JSON frame's cross-field rules (equal column lengths, one type per column, an ``entity_column`` among the
  columns) are refused with 422, so a schema-valid PUT body may get 422 too;
* path parameters are drawn half of the time from the features seeded below, so lookups reach real rows, and a
  feature without an entity column (409), instead of only ever answering 404.

To reproduce a failure by hand: start ``python -m service --write-token fuzz-token`` with the caps in SMALL_CAPS,
write SCHEMATHESIS_TOML to a file and run the command ``_schemathesis`` prints in the assertion message.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from service.launcher import ServiceProcess
from tests.conftest import ServiceFactory

TOKEN = "fuzz-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SEED = 20261203
EXAMPLES = 15
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
SEEDED = {
    "ids": {"records": [{"id": 1, "score": 0.5, "name": "a", "tags": [1, 2]}, {"id": 2}], "entity_column": "id"},
    "plain": {"columns": {"a": [1, 2], "b": [0.5, 0.7]}},  # no entity column: lookups answer 409
}
_ACCEPTED = '"2xx", "3xx", "401", "403", "404", "409", "413", "429", "5xx"'
SCHEMATHESIS_TOML = f"""
[checks.positive_data_acceptance]
expected-statuses = [{_ACCEPTED}]

[[operations]]
include-path = "/v1/groups/{{group}}/features/{{feature}}"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = [{_ACCEPTED}, "422"]

[dictionaries.groups]
values = ["fuzz"]
[dictionaries.features]
values = {sorted(SEEDED)!r}
[dictionaries.entities]
values = ["1", "2"]

[parameters]
"path.group" = {{ dictionary = "groups", probability = 0.5 }}
"path.feature" = {{ dictionary = "features", probability = 0.5 }}
"path.entity_id" = {{ dictionary = "entities", probability = 0.5 }}

[phases.stateful]
max-steps = 5
[phases.stateful.generation]
max-examples = 8
""".replace("'", '"')


def _seeded_service(factory: ServiceFactory) -> ServiceProcess:
    service = factory(**SMALL_CAPS)
    # a save fsyncs: on a machine busy with the rest of the suite one took longer than httpx's default 5 s
    with httpx.Client(base_url=service.base_url, headers=AUTH, timeout=60.0) as api:
        for feature, body in SEEDED.items():
            assert api.put(f"/v1/groups/fuzz/features/{feature}", json=body).status_code == 201
    return service


def _schemathesis(service: ServiceProcess, tmp_path: Path, token: str | None) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_TOML)
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--config-file",
        str(config),
        "run",
        f"{service.base_url}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",  # hypothesis' too_slow and filter_too_much depend on the machine's load, not on the API
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--no-color",
    ]
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    started = time.monotonic()
    run = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    elapsed = time.monotonic() - started
    output = run.stdout + run.stderr
    shown = " ".join(command).replace(str(config), "schemathesis.toml")
    assert run.returncode == 0, f"{shown}\nexit {run.returncode} after {elapsed:.1f} s\n{output[-12000:]}"
    operations = re.search(r"Operations: +(\d+) selected / (\d+) total", output)
    assert operations and operations[1] == operations[2] and int(operations[1]) >= 17, output[-3000:]


def test_schemathesis_all_checks_with_the_write_token(service_factory: ServiceFactory, tmp_path: Path) -> None:
    _schemathesis(_seeded_service(service_factory), tmp_path, TOKEN)


def test_schemathesis_all_checks_without_a_token(service_factory: ServiceFactory, tmp_path: Path) -> None:
    _schemathesis(_seeded_service(service_factory), tmp_path, None)


@pytest.fixture(scope="module")
def service(module_service_factory: ServiceFactory) -> ServiceProcess:
    return module_service_factory(**SMALL_CAPS)


@pytest.fixture(scope="module")
def document(service: ServiceProcess) -> dict:
    return httpx.get(service.base_url + "/openapi.json").json()


def test_documented_examples_are_accepted(document: dict, service: ServiceProcess) -> None:
    put = document["paths"]["/v1/groups/{group}/features/{feature}"]["put"]
    body = put["requestBody"]["content"]["application/json"]["schema"]
    assert len(body["examples"]) == 2
    with httpx.Client(base_url=service.base_url, headers=AUTH) as api:
        for example in body["examples"]:
            assert api.put("/v1/groups/examples/features/f", json=example).status_code == 201, example


def test_unsupported_methods_get_405_with_the_allow_header(document: dict, service: ServiceProcess) -> None:
    with httpx.Client(base_url=service.base_url, headers=AUTH) as api:
        for template, item in document["paths"].items():
            documented = {method.upper() for method in item if method in ("get", "put", "post", "delete")}
            path = template.replace("{group}", "g").replace("{feature}", "f").replace("{entity_id}", "1")
            response = api.request("PATCH", path)
            assert response.status_code == 405, (template, response.text)
            assert set(response.headers["allow"].replace(" ", "").split(",")) >= documented, template
            for operation in item.values():
                assert "Allow" in operation["responses"]["405"]["headers"], template
