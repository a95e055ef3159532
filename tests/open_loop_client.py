"""An independent open-loop HTTP client (asyncio, no Locust, no gevent): the reference the truth tests compare
the harness with, in the spirit of wrk2 (Debian ships no wrk2 package).

Arrivals are planned at ``rate_per_s`` with constant spacing on the monotonic clock; each one sends ``GET path``
on an idle keep-alive connection (or a new one, up to ``max_connections``) and records the latency from its
intended start to the end of the response, so a stall of the service is counted in full for every arrival it
delays. Run it alone::

    python -m tests.open_loop_client http://127.0.0.1:8000 /v1/ping --rate 200 --duration 20
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["OpenLoopResult", "nearest_rank", "run_open_loop"]


@dataclass
class OpenLoopResult:
    """Latencies in ms from the intended start, per arrival sent; errors counted apart."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    planned: int = 0


def nearest_rank(values: list[float], percentile: float) -> float:
    """The nearest-rank percentile (0-100) of ``values``."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percentile / 100.0 * len(ordered))) - 1]


async def _request(host: str, port: int, path: str, idle: list, opened: list[int], max_connections: int) -> None:
    if idle:
        reader, writer = idle.pop()
    else:
        while opened[0] >= max_connections:
            await asyncio.sleep(0.001)
        opened[0] += 1
        reader, writer = await asyncio.open_connection(host, port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    if not head.startswith(b"HTTP/1.1 2"):
        raise RuntimeError(head.split(b"\r\n", 1)[0].decode())
    idle.append((reader, writer))


async def _run(base_url: str, path: str, rate_per_s: float, duration_s: float, max_connections: int) -> OpenLoopResult:
    url = urlsplit(base_url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    result, idle, opened, tasks = OpenLoopResult(), [], [0], []
    start = time.monotonic()

    async def arrival(intended: float) -> None:
        try:
            await _request(host, port, path, idle, opened, max_connections)
            result.latencies_ms.append((time.monotonic() - intended) * 1000.0)
        except (OSError, RuntimeError, asyncio.IncompleteReadError):
            result.errors += 1

    count = int(rate_per_s * duration_s)
    for i in range(count):
        intended = start + i / rate_per_s
        if (delay := intended - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(arrival(intended)))
    result.planned = count
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()
    return result


def run_open_loop(base_url: str, path: str, rate_per_s: float, duration_s: float,
                  max_connections: int = 256) -> OpenLoopResult:  # fmt: skip
    """Send ``rate_per_s`` x ``duration_s`` GET requests to ``base_url + path`` on schedule; see the module."""
    return asyncio.run(_run(base_url, path, rate_per_s, duration_s, max_connections))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("path")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    res = run_open_loop(args.base_url, args.path, args.rate, args.duration)
    print(f"{len(res.latencies_ms)} answered, {res.errors} errors; p50 {nearest_rank(res.latencies_ms, 50):.2f} ms, "
          f"p99 {nearest_rank(res.latencies_ms, 99):.2f} ms, max {max(res.latencies_ms):.1f} ms")  # fmt: skip
