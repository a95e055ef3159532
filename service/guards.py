"""Request guards applied before any route code: a body size cap and a ban on encoded slashes in paths.

Body cap: a declared ``Content-Length`` over the cap is refused before a single body byte is read, and a body
without one (chunked) is counted while it streams and refused as soon as it passes the cap, so at most the cap
plus one network chunk is ever buffered. The refusal is an ``ApiError`` 413 raised from ``receive()``: it
surfaces wherever the body is read (FastAPI's body parsing re-raises HTTP exceptions, and so do our routes),
after routing, so the request is still counted under its route template.

Encoded slash: the server decodes ``%2F`` to ``/`` before routing, so ``/v1/groups/a%2Fb/...`` would silently
address other path segments; such requests get a 400 that says why.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import ApiError, error_response

__all__ = ["RequestGuardMiddleware", "body_too_large"]


def body_too_large(limit_bytes: int, seen_bytes: int | None = None) -> ApiError:
    """The 413 error for a body over ``limit_bytes``."""
    size = f"{seen_bytes} bytes" if seen_bytes is not None else "more than that"
    return ApiError(
        413, "payload_too_large", f"the request body is {size}; the limit is {limit_bytes} bytes (max_body_bytes)"
    )


class RequestGuardMiddleware:
    """Pure ASGI middleware enforcing ``max_body_bytes`` and rejecting ``%2F`` in the request path."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or b""
        if b"%" in raw_path and b"%2f" in raw_path.lower():
            response = error_response(
                400,
                "invalid_path",
                "a path segment contains an encoded '/' (%2F); group, feature and entity names cannot contain '/'",
            )
            await response(scope, receive, send)
            return
        declared: int | None = None
        has_body = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.strip().isdigit():
                    response = error_response(400, "invalid_header", "Content-Length must be a whole number of bytes")
                    await response(scope, receive, send)
                    return
                declared, has_body = int(value), True
            elif name == b"transfer-encoding":
                has_body = True
        if not has_body:
            await self.app(scope, receive, send)
            return
        await self.app(scope, self._limited(receive, declared), send)

    def _limited(self, receive: Receive, declared: int | None) -> Receive:
        limit = self.max_body_bytes
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            if declared is not None and declared > limit:
                raise body_too_large(limit, declared)
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise body_too_large(limit)
            return message

        return limited_receive
