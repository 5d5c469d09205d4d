"""The raw loops of candidate HTTP clients, for ``bench/bench_http_clients.py``.

Each posts ``n`` messages to ``{url}/send/{id}`` with ``concurrency`` in
flight over one connection pool, as :func:`bench.raw_client.raw_limit` does
with aiohttp: no classification, no logging, the body read and dropped. A
client is measured only where it is installed (``uv pip install NAME`` into
the venv): none of them is a dependency of the project until it is adopted.
Rust-backed clients do their I/O on threads of their own: the bench takes
the process's CPU time, all threads included.
"""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

__all__ = ["CANDIDATES", "available"]

Raw = Callable[[str, int, int], Awaitable[float]]


def _body(message_id: int) -> bytes:
    return orjson.dumps({"id": message_id, "phone": 79000000000, "text": "bench"})


async def _loop(n: int, concurrency: int, post: Callable[[int], Awaitable[object]]) -> float:
    ids = itertools.count(1)

    async def worker() -> None:
        for message_id in ids:
            if message_id > n:
                return
            await post(message_id)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))
    return n / (time.perf_counter() - started)


async def raw_aiosonic(url: str, n: int, concurrency: int) -> float:
    import aiosonic
    from aiosonic.pools import PoolConfig

    pool = PoolConfig(size=concurrency, max_conn_requests=None)
    connector = aiosonic.TCPConnector(pool_configs={":default": pool})
    client = aiosonic.HTTPClient(connector)
    headers = {"Content-Type": "application/json"}

    async def post(message_id: int) -> None:
        response = await client.post(
            f"{url}/send/{message_id}", data=_body(message_id), headers=headers
        )
        await response.content()

    try:
        return await _loop(n, concurrency, post)
    finally:
        await client.aclose()


async def raw_pyreqwest(url: str, n: int, concurrency: int) -> float:
    from datetime import timedelta

    from pyreqwest.client import ClientBuilder

    builder = ClientBuilder().max_connections(concurrency).timeout(timedelta(seconds=60))
    async with builder.build() as client:

        async def post(message_id: int) -> None:
            request = (
                client.post(f"{url}/send/{message_id}")
                .header("Content-Type", "application/json")
                .body_bytes(_body(message_id))
                .build()
            )
            response = await request.send()
            await response.bytes()

        return await _loop(n, concurrency, post)


async def raw_rnet(url: str, n: int, concurrency: int) -> float:
    import rnet

    client = rnet.Client(timeout=60, pool_max_size=concurrency)
    headers = {"Content-Type": "application/json"}

    async def post(message_id: int) -> None:
        response = await client.post(
            f"{url}/send/{message_id}", body=_body(message_id), headers=headers
        )
        await response.bytes()

    return await _loop(n, concurrency, post)


async def raw_pycurl(url: str, n: int, concurrency: int) -> float:
    """pycurl's multi interface driven by the event loop's readers and a timer."""
    import pycurl

    loop = asyncio.get_running_loop()
    multi = pycurl.CurlMulti()
    multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, concurrency)
    waiting: dict[Any, asyncio.Future[None]] = {}
    timer: list[asyncio.TimerHandle | None] = [None]
    watched: dict[int, int] = {}

    def finish() -> None:
        while True:
            _, done, failed = multi.info_read()
            for handle in done:
                multi.remove_handle(handle)
                waiting.pop(handle).set_result(None)
            for handle, _code, message in failed:
                multi.remove_handle(handle)
                waiting.pop(handle).set_exception(RuntimeError(message))
            if not done and not failed:
                return

    def act(fd: int, what: int) -> None:
        multi.socket_action(fd, what)
        finish()

    def on_socket(event: int, fd: int, _multi: object, _data: object) -> None:
        if watched.pop(fd, 0):
            loop.remove_reader(fd)
            loop.remove_writer(fd)
        if event == pycurl.POLL_REMOVE:
            return
        if event in (pycurl.POLL_IN, pycurl.POLL_INOUT):
            loop.add_reader(fd, act, fd, pycurl.CSELECT_IN)
        if event in (pycurl.POLL_OUT, pycurl.POLL_INOUT):
            loop.add_writer(fd, act, fd, pycurl.CSELECT_OUT)
        watched[fd] = event

    def on_timer(ms: int) -> None:
        if timer[0] is not None:
            timer[0].cancel()
            timer[0] = None
        if ms >= 0:
            timer[0] = loop.call_later(ms / 1000, act, pycurl.SOCKET_TIMEOUT, 0)

    multi.setopt(pycurl.M_SOCKETFUNCTION, on_socket)
    multi.setopt(pycurl.M_TIMERFUNCTION, on_timer)
    idle: list[Any] = []

    async def post(message_id: int) -> None:
        handle = idle.pop() if idle else pycurl.Curl()
        handle.setopt(pycurl.URL, f"{url}/send/{message_id}")
        handle.setopt(pycurl.POSTFIELDS, _body(message_id))
        handle.setopt(pycurl.HTTPHEADER, ["Content-Type: application/json"])
        handle.setopt(pycurl.TIMEOUT, 60)
        handle.setopt(pycurl.WRITEFUNCTION, len)
        done = loop.create_future()
        waiting[handle] = done
        multi.add_handle(handle)
        try:
            await done
        finally:
            idle.append(handle)

    try:
        return await _loop(n, concurrency, post)
    finally:
        if timer[0] is not None:
            timer[0].cancel()
        for fd in watched:
            loop.remove_reader(fd)
            loop.remove_writer(fd)
        for handle in idle:
            handle.close()
        multi.close()


# Name -> (the module it needs, its raw loop).
CANDIDATES: dict[str, tuple[str, Raw]] = {
    "raw aiosonic": ("aiosonic", raw_aiosonic),
    "raw pyreqwest": ("pyreqwest", raw_pyreqwest),
    "raw rnet": ("rnet", raw_rnet),
    "raw pycurl": ("pycurl", raw_pycurl),
}


def available(names: list[str]) -> dict[str, Raw]:
    """The candidates named whose client is installed; the others are said to be missing."""
    found: dict[str, Raw] = {}
    for name in names:
        module, run = CANDIDATES[name]
        if importlib.util.find_spec(module) is None:
            print(f"{name}: {module} is not installed, not measured")
            continue
        found[name] = run
    return found
