"""The OpenAPI document, completed with what the server enforces but FastAPI cannot see from the signatures.

* ``group`` and ``feature`` path parameters follow ``features.store.names`` (pattern and length): routes take them
  as plain ``str`` (the hot path skips FastAPI's parameter validation) and ``validate_name`` refuses others (422).
* Every operation can answer 400: a path with an encoded ``/`` (``%2F``) or a malformed ``Content-Length``
  (``service.guards``), and a JSON body that does not parse (``invalid_json``).
* Every operation with a body can answer 413: a body over ``max_body_bytes`` (``service.guards``).
* Every operation outside ``service.access.OPEN_PATHS`` can answer 401/403: the read token, once one is set.
* Every operation can answer 500: a bug (``internal_error``) or stored data failing verification (``integrity_error``).
* Every operation can answer 503 (connection cap, bodies-in-flight budget, read-only store), 408 (a head or body
  sent too slowly) and 431 (a head over the cap): ``service.http_protocol`` and ``service.guards``.
* A method a path does not support gets 405 with an ``Allow`` header listing those it does (Starlette's router).
* int64 bounds are exact: FastAPI's OpenAPI models hold ``minimum``/``maximum`` as floats, which turns
  2**63 - 1 into 9.223372036854776e18 (= 2**63), and a schema reader stepping inside it lands past int64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from features.store.names import NAME_MAX_LENGTH, NAME_PATTERN
from service.access import OPEN_PATHS
from service.codec import INT64_MAX, INT64_MIN
from service.schemas import INT64_JSON_VALUE, INT64_JSON_VALUE_SCHEMA

__all__ = ["describe_enforced", "install_openapi"]

_NAME_PARAMETERS = ("group", "feature")
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
_UNAVAILABLE = (
    "Busy, retry after Retry-After: too many connections, the bodies-in-flight budget is spent, or the store is "
    "read-only (writes)"
)
_BAD_REQUEST = "A path with an encoded '/' (%2F), a malformed Content-Length, or a body that is not valid JSON"


def _name_schema(kind: str) -> dict[str, Any]:
    return {
        "type": "string",
        "title": kind.capitalize(),
        "pattern": f"^{NAME_PATTERN.pattern}$",
        "minLength": 1,
        "maxLength": NAME_MAX_LENGTH,
        "description": f"{kind} name: [A-Za-z0-9_-], 1-{NAME_MAX_LENGTH} chars, starting with a letter or digit",
    }


def _declare(responses: dict[str, Any], status: str, description: str) -> None:
    """Declare ``status`` with the JSON error body, keeping a route's own declaration (and its description)."""
    declared = responses.setdefault(status, {"description": description})
    declared.setdefault("content", _ERROR)


_EXACT_BOUNDS = {("minimum", float(INT64_MIN)): INT64_MIN, ("maximum", float(INT64_MAX)): INT64_MAX}


def _exact_int64_bounds(node: Any) -> None:
    """Put back the exact int64 bounds that FastAPI's float-typed schema models rounded (in place)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, float) and (key, value) in _EXACT_BOUNDS:
                node[key] = _EXACT_BOUNDS[key, value]
            else:
                _exact_int64_bounds(value)
    elif isinstance(node, list):
        for item in node:
            _exact_int64_bounds(item)


def describe_enforced(document: dict[str, Any]) -> dict[str, Any]:
    """Add the rules in the module docstring to ``document`` (in place); returns it."""
    for path, path_item in document.get("paths", {}).items():
        allowed = ", ".join(method.upper() for method in path_item if method in _METHODS)
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") in _NAME_PARAMETERS:
                    parameter["schema"] = _name_schema(parameter["name"])
                    responses.setdefault("422", {"description": "Invalid name", "content": _ERROR})
            _declare(responses, "400", _BAD_REQUEST)
            if "requestBody" in operation:
                _declare(responses, "413", "The body is over max_body_bytes")
            if path not in OPEN_PATHS:
                _declare(responses, "401", "No bearer token, and this route needs one (a read token is set)")
                _declare(responses, "403", "The bearer token is not valid here")
            _declare(responses, "500", "Internal error (logged), or stored data that failed verification")
            _declare(responses, "503", _UNAVAILABLE)
            _declare(responses, "408", "The request's head or body came too slowly (header/body timeouts)")
            _declare(responses, "431", "The request's head is over the server's cap")
            responses.setdefault(
                "405",
                {
                    "description": "Method Not Allowed: this path answers only the methods in the Allow header",
                    "headers": {
                        "Allow": {"description": f"the path's methods: {allowed}", "schema": {"type": "string"}}
                    },
                    "content": _ERROR,
                },
            )
    document.setdefault("components", {}).setdefault("schemas", {})[INT64_JSON_VALUE] = INT64_JSON_VALUE_SCHEMA
    _exact_int64_bounds(document)
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) return the completed document, built once."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_enforced(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
