"""Synthetic load: hold memory for a while, or round-trip a frame through the store's disk I/O."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil
from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from features.workloads import BYTES_PER_MB, MemoryBudgetExceededError, io_roundtrip, materialize_frame
from service.context import ServiceContext
from service.deps import Context, WriteAccess
from service.errors import ApiError
from service.responses import json_response
from service.schemas import IoLoadRequest, IoLoadResponse, MemoryLoadRequest, MemoryLoadResponse, error_responses

__all__ = ["router"]

router = APIRouter(prefix="/v1/load", tags=["load"])
_IO_COPIES = 3  # an I/O round trip holds the frame, its Parquet bytes and the frame read back


@router.post("/memory", response_model=MemoryLoadResponse, responses=error_responses(413, 422, 429))
async def load_memory(body: MemoryLoadRequest, context: Context) -> Response:
    """Materialize a frame of ``megabytes`` MB, hold it for ``hold_s`` seconds (capped), then release it."""
    settings = context.settings
    if body.megabytes > settings.max_request_memory_mb:
        raise ApiError(
            413,
            "too_much_memory",
            f"{body.megabytes:g} MB in one request; the limit is {settings.max_request_memory_mb:g} MB "
            "(max_request_memory_mb)",
        )
    hold_s = min(body.hold_s, settings.max_hold_s)
    process = psutil.Process()
    with _reserve(context, body.megabytes, hold_s):
        rss_before = process.memory_info().rss
        started = time.perf_counter()
        frame = await run_in_threadpool(materialize_frame, body.megabytes, body.seed)
        materialize_ms = (time.perf_counter() - started) * 1000.0
        rss_peak = process.memory_info().rss
        await asyncio.sleep(hold_s)
        rss_peak = max(rss_peak, process.memory_info().rss)
        frame_bytes = int(frame.memory_usage(index=False).sum())
        del frame
    return json_response(
        {
            "megabytes": body.megabytes,
            "frame_bytes": frame_bytes,
            "held_s": hold_s,
            "materialize_ms": materialize_ms,
            "rss_bytes_before": rss_before,
            "rss_bytes_peak": rss_peak,
            "rss_bytes_after": process.memory_info().rss,
            "pid": os.getpid(),
        }
    )


@router.post(
    "/io",
    response_model=IoLoadResponse,
    dependencies=[WriteAccess],
    responses=error_responses(401, 403, 413, 422, 429, 503, 507),
)
def load_io(body: IoLoadRequest, context: Context) -> Response:
    """Write a rows x columns float64 frame to the store, read it back, verify and delete it (write token)."""
    settings = context.settings
    cells = body.rows * body.columns
    if body.rows > settings.max_io_rows or body.columns > settings.max_io_columns or cells > settings.max_io_cells:
        raise ApiError(
            413,
            "too_large",
            f"{body.rows} rows x {body.columns} columns is over the limits: at most {settings.max_io_rows} rows, "
            f"{settings.max_io_columns} columns and {settings.max_io_cells} cells (max_io_*)",
        )
    megabytes = max(cells * 8 * _IO_COPIES / BYTES_PER_MB, 1e-3)
    with _reserve(context, megabytes, None):
        result: dict[str, Any] = io_roundtrip(context.store, body.rows, body.columns, body.seed)
    return json_response({**result, "pid": os.getpid()})


@contextmanager
def _reserve(context: ServiceContext, megabytes: float, hold_s: float | None) -> Iterator[None]:
    """Hold ``megabytes`` of this worker's budget (and the held-bytes gauge) for the ``with`` block.

    Raises ApiError 429 with Retry-After (seconds) when the budget is exhausted.
    """
    try:
        lease = context.budget.acquire(megabytes, hold_s=hold_s)
    except MemoryBudgetExceededError as error:
        retry_after_s = math.ceil(error.retry_after_s)
        raise ApiError(
            429, "memory_budget_exhausted", str(error), headers={"Retry-After": str(retry_after_s)}
        ) from None
    held_bytes = int(megabytes * BYTES_PER_MB)
    context.metrics.memory_held_bytes.inc(held_bytes)
    try:
        yield
    finally:
        context.metrics.memory_held_bytes.dec(held_bytes)
        lease.release()
