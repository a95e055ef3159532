"""Who may do what: the write token guards every route that creates, changes or deletes data; an optional read
token closes the rest.

| route kind                                              | no tokens set | write_token set | read_token set too |
|---------------------------------------------------------|---------------|-----------------|--------------------|
| writes (PUT/DELETE features, catalog load, IO workload, | open          | write token     | write token        |
| pipeline with a ``store`` target)                       |               |                 |                    |
| reads (everything else under /v1, /metrics)             | open          | open            | read or write token|
| /health, /ready, /v1/ping, /docs, /openapi.json, /redoc | open          | open            | open               |

Tokens are compared in constant time. A missing token is 401 with ``WWW-Authenticate: Bearer``, a wrong one 403.
The read check is a pure ASGI middleware, installed only when a read token is set, so open reads cost nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import ApiError, error_response
from service.settings import Settings

__all__ = ["OPEN_PATHS", "ReadAccessMiddleware", "authorize_write", "check_bearer"]

# Liveness and readiness probes, the reference endpoint and the API's own documentation.
OPEN_PATHS = frozenset({"/health", "/ready", "/v1/ping", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"})
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def check_bearer(authorization: str | None, accepted: Iterable[str], purpose: str) -> None:
    """Pass when ``authorization`` is ``Bearer <t>`` with ``t`` one of ``accepted``.

    Raises ApiError 401 (no bearer token) or 403 (a token that is not accepted for ``purpose``).
    """
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            f"{purpose} needs an 'Authorization: Bearer <token>' header",
            headers=_CHALLENGE,
        )
    given = token.strip().encode()
    # Compare against every accepted token, so timing does not tell which one nearly matched.
    matched = [secrets.compare_digest(given, expected.encode()) for expected in accepted]
    if not any(matched):
        raise ApiError(403, "forbidden", f"the bearer token is not valid for {purpose}")


def authorize_write(settings: Settings, authorization: str | None) -> None:
    """Pass when no write token is configured or ``authorization`` carries it; ApiError 401/403 otherwise."""
    if settings.write_token is not None:
        check_bearer(authorization, (settings.write_token,), "this endpoint, which changes data,")


class ReadAccessMiddleware:
    """Refuses every request outside ``OPEN_PATHS`` that lacks the read or the write token."""

    def __init__(self, app: ASGIApp, read_token: str, write_token: str | None) -> None:
        self.app = app
        self.accepted = tuple(t for t in (read_token, write_token) if t is not None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
        try:
            check_bearer(authorization.decode("latin-1"), self.accepted, "reading from this service")
        except ApiError as refused:
            response = error_response(refused.status_code, refused.code, str(refused.detail), headers=refused.headers)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
