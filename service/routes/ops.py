"""Operational views: Prometheus metrics and the feature cache's statistics."""

from __future__ import annotations

import os

from fastapi import APIRouter
from starlette.responses import Response

from service.deps import Context
from service.responses import json_response
from service.schemas import CacheStats

__all__ = ["router"]

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(context: Context) -> Response:
    """Prometheus exposition text (every worker's counts when running several workers)."""
    body, content_type = context.metrics.render()
    return Response(body, media_type=content_type)


@router.get("/v1/cache/stats", response_model=CacheStats)
async def cache_stats(context: Context) -> Response:
    """This worker's feature-cache statistics (size, bytes, hits, misses, hit rate, evictions...)."""
    cache = context.store.cache
    stats = {"enabled": False} if cache is None else {"enabled": True, **cache.get_stats()}
    return json_response({**stats, "pid": os.getpid()})
