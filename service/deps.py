"""Request dependencies, as ``Annotated`` aliases: the service context and the write-token check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.access import authorize_write
from service.context import ServiceContext

__all__ = ["Context", "WriteAccess", "get_context", "require_write_token"]

_bearer = HTTPBearer(
    auto_error=False,
    description=(
        "the write token (FEATURESTORE_WRITE_TOKEN) for writes; the read token (FEATURESTORE_READ_TOKEN), if set, "
        "for reads"
    ),
)


async def get_context(request: Request) -> ServiceContext:
    """The app's ServiceContext (async, so FastAPI calls it inline rather than in a thread)."""
    return request.app.state.context  # type: ignore[no-any-return]


async def require_write_token(
    context: Annotated[ServiceContext, Depends(get_context)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Allow the request when no write token is configured or the bearer token matches it.

    Raises ApiError 401 when the token is missing (or not a Bearer token), 403 when it is wrong.
    """
    header = None if credentials is None else f"{credentials.scheme} {credentials.credentials}"
    authorize_write(context.settings, header)


Context = Annotated[ServiceContext, Depends(get_context)]
WriteAccess = Depends(require_write_token)
