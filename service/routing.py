"""Routing for speed: flat route tables, and a lean route class for the hot endpoints.

Both exist because of measurements on FastAPI 0.165 (in-process ASGI calls, one worker):

* ``include_router`` keeps each router nested and, on every request, walks the nested routers to check whether
  their routes changed; that costs about 10 µs per router passed. ``include_routes`` copies the routes into the
  app's own table instead, so matching is one flat scan.
* An ordinary route solves its dependencies and parameters on every request (about 30 µs for three path
  parameters and one dependency). ``DirectRoute`` is an ``APIRoute``, so OpenAPI documents it as usual, but
  its handler calls the endpoint straight away with the path parameters, the ``Request`` and the
  ``ServiceContext``. It accepts only endpoints that take nothing else and return a ``Response`` themselves,
  and refuses any other endpoint when the route is built.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.responses import Response

from service.deps import get_context

__all__ = ["DirectRoute", "include_routes"]


class DirectRoute(APIRoute):
    """An APIRoute whose handler skips per-request dependency solving (see the module docstring).

    The endpoint must be ``async``, return a ``Response``, and take only ``str`` path parameters, a ``Request``
    and the ``Context`` dependency. Raises TypeError at definition time otherwise.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        dependant = self.dependant
        hints = typing.get_type_hints(endpoint)
        unsupported = [
            *dependant.query_params,
            *dependant.header_params,
            *dependant.cookie_params,
            *dependant.body_params,
            *(p for p in dependant.path_params if hints.get(p.name) is not str),
            *(d for d in dependant.dependencies if d.call is not get_context),
            *self.dependencies,
            dependant.response_param_name,
            dependant.background_tasks_param_name,
            dependant.http_connection_param_name,
            dependant.security_scopes_param_name,
        ]
        if not inspect.iscoroutinefunction(endpoint) or any(item is not None for item in unsupported):
            raise TypeError(
                f"DirectRoute {self.path}: the endpoint must be async and take only str path parameters, a Request "
                "and the Context dependency"
            )
        path_names = {param.name for param in dependant.path_params}
        request_name = dependant.request_param_name
        context_names = [d.name for d in dependant.dependencies]

        async def handler(request: Request) -> Response:
            params = request.path_params
            kwargs: dict[str, Any] = {name: params[name] for name in path_names}
            if request_name is not None:
                kwargs[request_name] = request
            if context_names:
                context = request.app.state.context
                for name in context_names:
                    kwargs[name] = context
            return await endpoint(**kwargs)  # type: ignore[no-any-return]

        return handler


def include_routes(app: FastAPI, routers: Iterable[APIRouter]) -> None:
    """Add every route of ``routers`` to ``app``'s own route table, in order (see the module docstring)."""
    for router in routers:
        app.router.routes.extend(router.routes)
