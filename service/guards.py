"""Request guards applied before any route code: a body size cap, a budget of body bytes in flight, and a ban on
encoded slashes in paths.

Body cap: a declared ``Content-Length`` over the cap is refused before a single body byte is read, and a body
without one (chunked) is counted while it streams and refused as soon as it passes the cap, so at most the cap
plus one network chunk is ever buffered. The refusal is an ``ApiError`` 413 raised from ``receive()``: it
surfaces wherever the body is read (FastAPI's body parsing re-raises HTTP exceptions, and so do our routes),
after routing, so the request is still counted under its route template.

Bodies in flight: the bodies held at once by the requests in flight in this worker are bounded by
``max_inflight_body_bytes`` and drawn from the worker's memory budget (``max_total_memory_mb``, the one the
``/v1/load/*`` holdings draw on, ``ServiceContext.budget``; bodies under 64 KiB only count in flight). A request
reserves its declared ``Content-Length`` when it first reads its body, a streamed body reserves 1 MiB steps as it
arrives; a reservation that does not fit is an ``ApiError`` 503 with ``Retry-After`` raised from ``receive()`` (like
the 413), and the reservation is released when the request ends, however it ends. Requests without a body pay
nothing.

Encoded slash: the server decodes ``%2F`` to ``/`` before routing, so ``/v1/groups/a%2Fb/...`` would silently
address other path segments; such requests get a 400 that says why.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from features.workloads import BYTES_PER_MB, MemoryBudget, MemoryBudgetExceededError, MemoryLease
from service.errors import ApiError, error_response

__all__ = ["BodyReservation", "InflightBodies", "RequestGuardMiddleware", "body_too_large"]

# A streamed body (no Content-Length) reserves in steps of this many bytes, not one lease per network chunk.
STREAM_STEP_BYTES = 1 << 20
RETRY_AFTER_S = 1
# Bodies smaller than this are not drawn from the memory budget (only counted in flight): uvicorn buffers that much
# per connection anyway, and a tiny JSON body must not push a /v1/load/* hold that fits the budget exactly over it.
MEMORY_BUDGET_MIN_BYTES = 64 << 10


def body_too_large(limit_bytes: int, seen_bytes: int | None = None) -> ApiError:
    """The 413 error for a body over ``limit_bytes``."""
    size = f"{seen_bytes} bytes" if seen_bytes is not None else "more than that"
    return ApiError(
        413, "payload_too_large", f"the request body is {size}; the limit is {limit_bytes} bytes (max_body_bytes)"
    )


def _budget_exhausted(detail: str) -> ApiError:
    return ApiError(503, "body_budget_exhausted", detail, headers={"Retry-After": str(RETRY_AFTER_S)})


class InflightBodies:
    """The body bytes reserved by the requests in flight in one process (the event loop's thread only)."""

    def __init__(self, cap_bytes: int, gauge: Any = None) -> None:
        self.cap_bytes = cap_bytes
        self.held_bytes = 0
        self.gauge = gauge  # a prometheus Gauge of held_bytes, or None


class BodyReservation:
    """One request's share of InflightBodies, and of the worker's MemoryBudget when there is one."""

    __slots__ = ("bytes", "inflight", "leased_bytes", "leases", "memory")

    def __init__(self, inflight: InflightBodies, memory: MemoryBudget | None) -> None:
        self.inflight = inflight
        self.memory = memory
        self.bytes = 0
        self.leased_bytes = 0  # of self.bytes, the part drawn from the memory budget
        self.leases: list[MemoryLease] = []

    def grow_to(self, total: int) -> None:
        """Hold ``total`` bytes for this request; ApiError 503 (nothing more held) when that does not fit."""
        extra = total - self.bytes
        if extra <= 0:
            return
        inflight = self.inflight
        if inflight.held_bytes + extra > inflight.cap_bytes:
            raise _budget_exhausted(
                f"request bodies in flight already hold {inflight.held_bytes} bytes; {extra} more would pass "
                f"the limit of {inflight.cap_bytes} bytes (max_inflight_body_bytes): retry in a moment"
            )
        if self.memory is not None and total >= MEMORY_BUDGET_MIN_BYTES:
            try:
                self.leases.append(self.memory.acquire((total - self.leased_bytes) / BYTES_PER_MB))
                self.leased_bytes = total
            except MemoryBudgetExceededError as error:
                raise _budget_exhausted(
                    f"a request body of {total} bytes does not fit in the worker's memory budget "
                    f"(max_total_memory_mb): {error}"
                ) from None
        inflight.held_bytes += extra
        self.bytes = total
        if inflight.gauge is not None:
            inflight.gauge.inc(extra)

    def release(self) -> None:
        """Give every byte back; calling it again does nothing."""
        if self.bytes:
            self.inflight.held_bytes -= self.bytes
            if self.inflight.gauge is not None:
                self.inflight.gauge.dec(self.bytes)
            self.bytes = 0
        for lease in self.leases:
            lease.release()
        self.leases.clear()
        self.leased_bytes = 0


def _memory_budget(scope: Scope) -> MemoryBudget | None:
    """The worker's memory budget (``ServiceContext.budget``), once the lifespan built the context."""
    app = scope.get("app")
    context = getattr(getattr(app, "state", None), "context", None)
    budget = getattr(context, "budget", None)
    return budget if isinstance(budget, MemoryBudget) else None


class RequestGuardMiddleware:
    """Pure ASGI middleware enforcing ``max_body_bytes`` and ``max_inflight_body_bytes`` and rejecting ``%2F`` in
    the request path. ``inflight_gauge``: a Gauge tracking the body bytes reserved (optional)."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        max_inflight_body_bytes: int | None = None,
        inflight_gauge: Any = None,
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        cap = max_inflight_body_bytes if max_inflight_body_bytes is not None else max(max_body_bytes, 256 << 20)
        self.inflight = InflightBodies(cap, inflight_gauge)

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
        reservation = BodyReservation(self.inflight, _memory_budget(scope))
        try:
            await self.app(scope, self._limited(receive, declared, reservation), send)
        finally:
            reservation.release()

    def _limited(self, receive: Receive, declared: int | None, reservation: BodyReservation) -> Receive:
        limit = self.max_body_bytes
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            if declared is not None:
                if declared > limit:
                    raise body_too_large(limit, declared)
                reservation.grow_to(declared)  # before a byte is read: 503 if it does not fit
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise body_too_large(limit)
                if seen > reservation.bytes:  # a streamed body: reserve as it arrives, in steps
                    reservation.grow_to(min(-(-seen // STREAM_STEP_BYTES) * STREAM_STEP_BYTES, limit))
            return message

        return limited_receive
