"""The OpenAPI document, completed with what the server enforces but FastAPI cannot see from the signatures.

* ``group`` and ``feature`` path parameters follow ``features.store.names`` (pattern and length): routes take them
  as plain ``str`` (the hot path skips FastAPI's parameter validation) and ``validate_name`` refuses others (422).
* Every operation with a JSON body can answer 400 (``invalid_json``): bodies are parsed before validation.
* A method a path does not support gets 405 with an ``Allow`` header listing those it does (Starlette's router).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from features.store.names import NAME_MAX_LENGTH, NAME_PATTERN

__all__ = ["describe_enforced", "install_openapi"]

_NAME_PARAMETERS = ("group", "feature")
_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")


def _name_schema(kind: str) -> dict[str, Any]:
    return {
        "type": "string",
        "title": kind.capitalize(),
        "pattern": f"^{NAME_PATTERN.pattern}$",
        "minLength": 1,
        "maxLength": NAME_MAX_LENGTH,
        "description": f"{kind} name: [A-Za-z0-9_-], 1-{NAME_MAX_LENGTH} chars, starting with a letter or digit",
    }


def describe_enforced(document: dict[str, Any]) -> dict[str, Any]:
    """Add the rules in the module docstring to ``document`` (in place); returns it."""
    for path_item in document.get("paths", {}).values():
        allowed = ", ".join(method.upper() for method in path_item if method in _METHODS)
        for method, operation in path_item.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "path" and parameter.get("name") in _NAME_PARAMETERS:
                    parameter["schema"] = _name_schema(parameter["name"])
                    responses.setdefault("422", {"description": "Invalid name", "content": _ERROR})
            if "application/json" in operation.get("requestBody", {}).get("content", {}):
                responses.setdefault("400", {"description": "The body is not valid JSON", "content": _ERROR})
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
    return document


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` (and ``/openapi.json``) return the completed document, built once."""
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = describe_enforced(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
