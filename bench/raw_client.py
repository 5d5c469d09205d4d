"""The raw limit: how fast a bare aiohttp client can post to the simulator.

No classification, no logging, no retries: ``concurrency`` tasks share one
connection pool and post pre-encoded bodies as fast as answers come back.
The end-to-end engine benchmark divides its throughput by this figure, so it
measures what the engine costs on top of the HTTP round trips themselves.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import aiohttp
import orjson

__all__ = ["raw_limit"]


async def raw_limit(url: str, n: int, concurrency: int) -> float:
    """Post ``n`` messages to ``{url}/send/{id}`` with ``concurrency`` in flight; requests/s."""
    base = url.rstrip("/")
    ids = itertools.count(1)
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=0)
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

        async def worker() -> None:
            for message_id in ids:
                if message_id > n:
                    return
                body = orjson.dumps({"id": message_id, "phone": 79000000000, "text": "bench"})
                async with session.post(f"{base}/send/{message_id}", data=body) as response:
                    await response.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
        elapsed = time.perf_counter() - started
    return n / elapsed
