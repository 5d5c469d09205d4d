"""One engine per worker process, on its own event loop in its own thread.

Huey runs plain functions in its worker threads and no ``async def`` tasks,
so the bridge is deliberate: the process starts one thread that owns one
event loop, one Tortoise context and one HTTP client, and the engine runs
there. Huey tasks only hand ids over (``submit_tend``) and wait for the
coroutine to finish. One loop per process, not per Huey thread, lets every
request share one connection pool and one database pool, and makes
``send_concurrency`` the process's real number of requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

from models import clock
from models.clock_sync import ClockFollower
from models.db import close_db, init_db
from settings import Settings, get_settings
from tasks.breaker import CircuitBreaker
from tasks.engine import Engine
from tasks.events import ProgressNotifier
from tasks.liveness import StallWatch
from tasks.pacing import SendPacer
from tasks.provider import make_provider_client
from tasks.worker_metrics import sample_forever

__all__ = ["EngineRuntime", "current_runtime", "start_engine"]

log = structlog.get_logger(__name__)

T = TypeVar("T")

_runtime: EngineRuntime | None = None


class EngineRuntime:
    """The engine thread of this process."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._loop: asyncio.AbstractEventLoop | None = None
        self._engine: Engine | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._stop_asked = threading.Event()
        self._thread = threading.Thread(target=self._main, name="engine", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise RuntimeError("the engine could not start") from self._failure

    def _main(self) -> None:
        try:
            import uvloop

            loop_factory: Any = uvloop.new_event_loop
        except ImportError:  # pragma: no cover - uvloop is a dependency, but optional
            loop_factory = None
        with asyncio.Runner(loop_factory=loop_factory) as runner:
            runner.run(self._serve())

    async def _serve(self) -> None:
        try:
            await init_db(self._settings)
            follower = ClockFollower(
                self._settings.clock_offset_bound, self._settings.clock_sync_interval
            )
            try:
                await follower.sync()
            except Exception as error:  # the database is down: the engine waits (below)
                log.warning("database clock not measured yet", error=type(error).__name__)
            provider = make_provider_client(self._settings)
            breaker = CircuitBreaker.from_settings(self._settings)
            pacer = SendPacer.from_settings(self._settings)
            notifier = ProgressNotifier(self._settings.redis_url)
            self._engine = Engine(self._settings, provider, breaker, notifier, pacer=pacer)
            self._loop = asyncio.get_running_loop()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            raise
        self._ready.set()
        sampler = asyncio.create_task(
            sample_forever(self._engine, breaker, pacer), name="metrics sampler"
        )
        following = asyncio.create_task(follower.run(), name="clock follower")
        watch = StallWatch(self._engine.progress, self._settings.loop_stall_exit)
        watch.start()
        try:
            # No decision on this host's clock alone: the engine starts on the database's.
            while not follower.measured.is_set() and not self._stop_asked.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(follower.measured.wait(), 0.5)
            if follower.measured.is_set():
                await self._engine.run()
        except Exception:
            # A worker without its engine would only fail every task: stop the
            # process, so that its supervisor starts a healthy one.
            log.exception("engine crashed; stopping the worker")
            os.kill(os.getpid(), signal.SIGTERM)
            raise
        finally:
            watch.stop()
            sampler.cancel()
            following.cancel()
            await notifier.aclose()
            await pacer.aclose()
            await provider.aclose()
            await close_db()

    def is_alive(self) -> bool:
        """Whether the engine's thread still runs."""
        return self._thread.is_alive()

    def submit_tend(self, mailing_id: int, timeout: float = 120.0) -> None:
        """Tend a mailing on the engine's loop; called from Huey's worker threads."""
        if self._loop is None or self._engine is None:
            raise RuntimeError("the engine is not running")
        if clock.database_offset() is None:
            raise RuntimeError("the engine waits for the database's clock")
        future = asyncio.run_coroutine_threadsafe(self._engine.tend(mailing_id), self._loop)
        future.result(timeout)

    def run(self, work: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run a coroutine on the engine's loop, in its Tortoise context; from Huey's threads."""
        if self._loop is None:
            work.close()
            raise RuntimeError("the engine is not running")
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Stop claiming, let in-flight requests finish and be recorded, then return.

        By default it waits for the requests in flight, the loops, and the
        outcomes held for up to ``STOP_GRACE`` (the database may be down).
        """
        if timeout is None:
            timeout = self._settings.stop_grace + 30.0
        self._stop_asked.set()
        if self._loop is not None and self._engine is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._engine.stop)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("engine did not stop in time", timeout_s=timeout)


def start_engine(settings: Settings | None = None) -> EngineRuntime:
    """Start this process's engine (once)."""
    global _runtime
    if _runtime is None:
        _runtime = EngineRuntime(settings or get_settings())
        _runtime.start()
    return _runtime


def current_runtime() -> EngineRuntime:
    """This process's running engine."""
    if _runtime is None:
        raise RuntimeError("no engine runs in this process: start it with `mailings worker`")
    return _runtime
