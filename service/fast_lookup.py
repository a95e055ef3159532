"""The single lookup answered straight from memory, before FastAPI's routing, when nothing can go wrong.

``GET /v1/online/{group}/{feature}/{entity_id}`` is the hot path. Through FastAPI it pays route matching (a regex
with three parameters), a ``Request``, the endpoint's call and a ``Response`` object, about as much as the lookup
itself. This innermost middleware answers it with two ASGI messages when the store can answer from memory alone
(``SimpleFeatureStore.lookup_current``: the feature cached, known current by the commit counters, its index
built, the id in it). Every other case (a cold or changed feature, an unknown id, a bad name, another method, any
exception) goes down the full path unchanged, which answers, raises and counts as it always did.

The answer is the full path's, byte for byte: the same body (``service.responses.entity_answer`` around the same
kept encoded row) and the same headers as Starlette's ``Response`` with ``media_type=JSON``. It sits inside every
other middleware (metrics, request guards, the read token, fault injection), and sets ``scope["route"]`` as the
router would, so the request is timed and counted under the route's template.
"""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from service.responses import JSON, dumps, entity_answer
from service.routes.online import parse_entity_id

__all__ = ["FastLookupMiddleware"]

_CONTENT_TYPE = (b"content-type", JSON.encode())


class FastLookupMiddleware:
    """Pure ASGI middleware answering ``route`` (the single lookup's ``APIRoute``) from memory when it can."""

    def __init__(self, app: ASGIApp, route: APIRoute) -> None:
        self.app = app
        self.route = route
        # "/v1/online/{group}/{feature}/{entity_id}" -> "/v1/online/": three segments follow
        self.prefix = route.path.split("{", 1)[0]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            path: str = scope["path"]
            if path.startswith(self.prefix):
                body = self._answer(scope, path[len(self.prefix) :])
                if body is not None:
                    scope["route"] = self.route
                    headers = [(b"content-length", str(len(body)).encode()), _CONTENT_TYPE]
                    await send({"type": "http.response.start", "status": 200, "headers": headers})
                    await send({"type": "http.response.body", "body": body})
                    return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope, rest: str) -> bytes | None:
        parts = rest.split("/")
        if len(parts) != 3 or not all(parts):
            return None
        group, feature, entity_id = parts
        key = parse_entity_id(entity_id)
        try:
            found = scope["app"].state.context.store.lookup_current(group, feature, key, dumps)
        except Exception:  # whatever it is, the full path meets it again and answers (or raises) as it should
            return None
        if found is None:
            return None
        values, version = found
        return entity_answer(key, version, values)
