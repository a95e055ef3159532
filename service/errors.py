"""JSON errors everywhere: one body shape, and the handlers that map domain exceptions to HTTP statuses.

Every error response is ``{"error": "<code>", "detail": "<what was wrong and what would be right>"}``, plus
``"errors": [{"loc": [...], "msg": ..., "type": ...}]`` for request validation failures.

| exception                               | status | error code          |
|-----------------------------------------|--------|---------------------|
| ApiError (raised by routes)             | its own| its own             |
| RequestValidationError, invalid JSON    | 422/400| validation_error / invalid_json |
| ValueError (bad names, bad frames, ...) | 422    | invalid_input       |
| FeatureNotFoundError, EntityNotFoundError | 404  | not_found           |
| IntegrityError (damaged file on disk)   | 500    | integrity_error     |
| StorageFullError, OSError ENOSPC/EDQUOT | 507    | insufficient_storage|
| StoreUnavailableError, OSError EROFS    | 503    | store_unavailable   |
| ClientDisconnect (client left mid-body) | 499    | none: nobody reads it; counted in /metrics as status 499 |
| anything else (a bug)                   | 500    | internal_error      |
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from features.store.feature_store import (
    EntityNotFoundError,
    FeatureNotFoundError,
    IntegrityError,
    StorageFullError,
    StoreUnavailableError,
)
from service.responses import json_response

__all__ = ["CLIENT_CLOSED_REQUEST", "ApiError", "error_response", "install_error_handlers"]

# nginx's status for "the client closed the connection before the response": not a server error, and not an
# HTTP status any client sees (the connection is gone), so it only labels the request in metrics.
CLIENT_CLOSED_REQUEST = 499

logger = logging.getLogger("service.errors")


class ApiError(HTTPException):
    """An error a route reports on purpose: HTTP ``status_code``, a short ``code`` and a ``detail`` sentence."""

    def __init__(self, status_code: int, code: str, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code=status_code, detail=detail, headers=dict(headers) if headers else None)
        self.code = code


def error_response(
    status_code: int,
    code: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    errors: list[dict[str, Any]] | None = None,
) -> Response:
    """The JSON error response every handler returns."""
    body: dict[str, Any] = {"error": code, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return json_response(body, status_code=status_code, headers=headers)


def _status_code_name(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at this path. Starlette's own 405 names only the first route whose path
    matched, so a path served by GET, PUT and DELETE routes would claim to allow one of them."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        if route.matches(request.scope)[0] != Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = getattr(exc, "code", None) or _status_code_name(exc.status_code)
    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    headers = exc.headers
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers = {**(headers or {}), "Allow": allowed}
        detail = f"{request.method} is not supported on this path: use {allowed}"
    return error_response(exc.status_code, code, detail, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    if any(e["type"] == "json_invalid" for e in errors):
        return error_response(400, "invalid_json", "the request body is not valid JSON", errors=errors)
    summary = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
    return error_response(422, "validation_error", summary or "the request is invalid", errors=errors)


async def _value_error(request: Request, exc: Exception) -> Response:
    return error_response(422, "invalid_input", str(exc))


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(404, "not_found", str(exc))


async def _integrity_error(request: Request, exc: Exception) -> Response:
    logger.error("integrity error on %s %s: %s", request.method, request.url.path, exc)
    return error_response(500, "integrity_error", f"stored data failed verification: {exc}")


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})


async def _storage_error(request: Request, exc: Exception) -> Response:
    """The disk said no: full (507) or not writable (503). Any other OSError is a bug or an I/O fault (500).

    The detail is the store's own sentence (it names no path); a bare OSError's message may name one, so it is
    replaced by its errno's text."""
    assert isinstance(exc, OSError)
    own = isinstance(exc, StorageFullError | StoreUnavailableError)
    detail = exc.strerror if own and exc.strerror else None
    if isinstance(exc, StorageFullError) or (not own and exc.errno in _FULL_ERRNOS):
        logger.warning("storage full on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            507, "insufficient_storage", detail or "the service's disk is full: nothing was written; retry later"
        )
    if isinstance(exc, StoreUnavailableError) or exc.errno == errno.EROFS:
        logger.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc)
        return error_response(
            503, "store_unavailable", detail or "the service's disk is read-only: nothing was written; retry later"
        )
    raise exc  # to the catch-all below, in ServerErrorMiddleware, which also logs the traceback


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    logger.debug("client left %s %s before sending the whole body", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def _internal_error(request: Request, exc: Exception) -> Response:
    # The server also logs the traceback (Starlette re-raises after this response is sent).
    logger.error("unhandled %s on %s %s: %s", type(exc).__name__, request.method, request.url.path, exc)
    return error_response(500, "internal_error", "internal server error: the failure has been logged")


def install_error_handlers(app: FastAPI) -> None:
    """Register the JSON handlers above on ``app``."""
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValueError, _value_error)
    app.add_exception_handler(FeatureNotFoundError, _not_found)
    app.add_exception_handler(EntityNotFoundError, _not_found)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(ClientDisconnect, _client_disconnected)
    app.add_exception_handler(OSError, _storage_error)
    app.add_exception_handler(Exception, _internal_error)
