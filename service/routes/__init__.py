"""The API's routers, one module per area; ``ROUTERS`` is what ``create_app`` adds, in matching order.

The hot path (online lookups) and the reference endpoint come first: routes are matched in this order.
"""

from __future__ import annotations

from service.routes import catalog, features, health, load, online, ops, pipeline

__all__ = ["ROUTERS"]

ROUTERS = (
    online.router,
    health.fast_router,
    health.router,
    features.router,
    pipeline.router,
    load.router,
    catalog.router,
    ops.router,
)
