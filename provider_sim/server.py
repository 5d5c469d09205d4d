"""The simulator's listeners, outages, timed windows and ``/_sim/*`` endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

import orjson
import structlog

from provider_sim import answers
from provider_sim.faults import Faults, split_timed
from provider_sim.ledger import Ledger
from provider_sim.protocol import Connection
from provider_sim.send import SendApi

__all__ = ["HANG_LIMIT", "SimulatorServer", "running_simulator"]

log = structlog.get_logger(__name__)

HANG_LIMIT = 120.0  # s: a hung request is dropped after this, so hangs never pile up


class SimulatorServer:
    """The simulator's state and listeners; use :func:`running_simulator` or :meth:`start`.

    ``clock`` (epoch seconds, ``time.time`` by default) stamps every recorded
    instant. Durations (latency, late answers, hangs, outages, the timed
    windows, the ``max_rps`` second) run on the event loop's monotonic time,
    so a fake clock that stands still stalls nothing. ``sock`` and
    ``control_sock``: sockets bound already (by whoever started the process)
    to serve on instead of ``host`` with ``port`` and ``control_port``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        control_port: int | None = None,
        sock: socket.socket | None = None,
        control_sock: socket.socket | None = None,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.time,
        hang_limit: float = HANG_LIMIT,
    ) -> None:
        self.host = host
        self.port = port
        self.control_port = control_port
        self._sock = sock
        self._control_sock = control_sock
        self.hang_limit = hang_limit
        self.ledger = Ledger()
        self.send = SendApi(self.ledger, clock)
        self.connections: set[Connection] = set()
        self._listener: asyncio.Server | None = None
        self._control: asyncio.Server | None = None
        self._windows: dict[str, asyncio.TimerHandle] = {}
        self._timed_down = False
        self._periodic_down = False
        self._outages: asyncio.Task[None] | None = None
        self._said_down = False
        self._started = False
        # Answers held back by hold_answers(): (msgId, connection, answer, close, record index).
        self._held: list[tuple[int, Connection, answers.Action, bool, int]] = []
        self._holding = False
        self._hold_waiters: list[asyncio.Future[None]] = []
        self._set(faults or Faults(), initial=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def faults(self) -> Faults:
        return self.send.faults

    @property
    def arrived_ids(self) -> set[int]:
        """The msgIds that at least one send request has carried (live; do not change it)."""
        return self.ledger.arrived_ids

    async def wait_arrived(self, ids: Iterable[int]) -> None:
        """Return once a send request has arrived for every id of ``ids``."""
        await self.ledger.wait_arrived(ids)

    @property
    def open_connections(self) -> int:
        """Connections to the send port now open (hung requests included)."""
        return len(self.connections)

    @property
    def is_down(self) -> bool:
        return self.faults.down or self._periodic_down or self._timed_down

    async def start(self) -> None:
        # The send port first: once the control port answers, sends are taken.
        self._listener = await self._serve(lambda: Connection(self), self._sock, self.port)
        self.host, self.port = self._listener.sockets[0].getsockname()[:2]
        if self._control_sock is not None or self.control_port is not None:
            self._control = await self._serve(
                lambda: Connection(self, control_only=True),
                self._control_sock,
                self.control_port or 0,
            )
            self.control_port = self._control.sockets[0].getsockname()[1]
        if self.faults.outage_every and self._outages is None:
            self._restart_outages()
        self._said_down = self.is_down
        self._started = True
        log.info("provider simulator listening", url=self.url, control_port=self.control_port)

    async def _serve(
        self, factory: Callable[[], Connection], sock: socket.socket | None, port: int
    ) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        if sock is not None:
            return await loop.create_server(factory, sock=sock, backlog=1024)
        return await loop.create_server(factory, self.host, port, reuse_address=True, backlog=1024)

    async def stop(self) -> None:
        if self._outages is not None:
            self._outages.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outages
            self._outages = None
        for timer in self._windows.values():
            timer.cancel()
        self._windows.clear()
        for server in (self._listener, self._control):
            if server is not None:
                server.close()
        for connection in list(self.connections):
            connection.abort()
        for server in (self._listener, self._control):
            if server is not None:
                await server.wait_closed()
        self._listener = self._control = None

    async def set_faults(self, **changes: Any) -> Faults:
        """Change faults at run time; ``down_for``, ``unauthorized_for``, ``forbidden_for`` too."""
        self.apply(changes)
        self.enforce_outage()
        return self.faults

    def apply(self, changes: Mapping[str, Any]) -> None:
        """Validate and apply fault changes; the caller then runs :meth:`enforce_outage`."""
        fault_changes, timed = split_timed(changes)
        self._set(self.faults.replace(fault_changes))
        for name, seconds in timed.items():
            self._open_window(name, seconds)

    def reset(self) -> None:
        """Forget every request seen so far (faults stay)."""
        self.ledger.clear()
        self.send.forget()

    def stats(self) -> dict[str, Any]:
        return {
            **self.ledger.stats(),
            "down": self.is_down,
            "unauthorized": self.send.unauthorized,
            "forbidden": self.send.forbidden,
            "faults": self.faults.as_dict(),
        }

    def _set(self, faults: Faults, *, initial: bool = False) -> None:
        old = self.send.faults
        self.send.configure(faults, reseed=initial)
        if (faults.outage_every, faults.outage_for) != (old.outage_every, old.outage_for) or (
            faults.outage_every and self._outages is None
        ):
            self._restart_outages()

    # -- answers held back (in process only) ----------------------------------------

    def hold_answers(self) -> None:
        """Decide and record each send request as usual, but answer none until released.

        A test holds requests in flight this way while it acts (pauses,
        cancels, lets a lease end) and lets the answers arrive when it says.
        """
        self._holding = True

    def release_answers(self) -> list[int]:
        """Stop holding; answer what was held, in arrival order; their msgIds.

        An answer whose connection closed meanwhile (its client gave up or
        died, or the simulator went down) was lost: see :meth:`connection_lost`.
        """
        self._holding = False
        held, self._held = self._held, []
        for _, connection, action, close, _ in held:
            connection.answer(action, close)
        return [message_id for message_id, *_ in held]

    def connection_lost(self, connection: Connection) -> None:
        """A connection closed: the answers held for it never leave.

        An acceptance whose answer is lost so is recorded as ``accepted_hang``
        (accepted, never answered), which a client may retry with the same id.
        """
        if not self._held:
            return
        kept = []
        for entry in self._held:
            if entry[1] is connection:
                self.ledger.answer_lost(entry[4])
            else:
                kept.append(entry)
        self._held = kept

    @property
    def held_ids(self) -> list[int]:
        """The msgIds whose answers are held now, one per request, in arrival order."""
        return [message_id for message_id, *_ in self._held]

    def wait_held(self) -> asyncio.Future[None]:
        """Done once another answer is held: after this call, not after its first await.

        A coroutine would register only when it first ran, and an answer held
        in between (its request read in the same turn of the loop) would be
        missed, leaving the caller waiting for one more that never comes.
        """
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._hold_waiters.append(waiter)
        return waiter

    def held(
        self, raw_id: bytes, connection: Connection, action: answers.Action, close: bool
    ) -> bool:
        """Keep this answer for :meth:`release_answers` if answers are held; whether it was."""
        if not self._holding:
            return False
        message_id = int(raw_id) if raw_id.isdigit() else -1
        # decide() has just recorded the request: the last one.
        self._held.append((message_id, connection, action, close, len(self.ledger) - 1))
        waiters, self._hold_waiters = self._hold_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        return True

    # -- windows that end by themselves ------------------------------------------

    def _open_window(self, name: str, seconds: float) -> None:
        timer = self._windows.pop(name, None)
        if timer is not None:
            timer.cancel()
        self._window(name, True)
        self._windows[name] = asyncio.get_running_loop().call_later(
            seconds, self._close_window, name
        )

    def _close_window(self, name: str) -> None:
        del self._windows[name]
        self._window(name, False)

    def _window(self, name: str, is_open: bool) -> None:
        if name == "unauthorized_for":
            self.send.unauthorized = is_open
        elif name == "forbidden_for":
            self.send.forbidden = is_open
        else:
            self._timed_down = is_open
            if not is_open:
                self.enforce_outage()

    # -- outages -----------------------------------------------------------------

    def _restart_outages(self) -> None:
        with contextlib.suppress(RuntimeError):  # no loop yet: start() will come back here
            loop = asyncio.get_running_loop()
            if self._outages is not None:
                self._outages.cancel()
                self._outages = None
            self._periodic_down = False
            if self.faults.outage_every:
                self._outages = loop.create_task(self._periodic_outages())

    async def _periodic_outages(self) -> None:
        every, length = self.faults.outage_every, self.faults.outage_for
        try:
            while True:
                await asyncio.sleep(every - length)
                self._periodic_down = True
                self.enforce_outage()
                await asyncio.sleep(length)
                self._periodic_down = False
                self.enforce_outage()
        finally:
            self._periodic_down = False

    def enforce_outage(self) -> None:
        """While down, reset every open send connection; new ones are reset as they come.

        The listening socket stays open from :meth:`start` to :meth:`stop`: a
        port closed for an outage could be taken by another process before it
        is bound again. A client sees an outage as a connection reset.
        """
        down = self.is_down
        if down:
            for connection in list(self.connections):
                connection.abort()
        if down != self._said_down and self._started:
            log.info("provider simulator down" if down else "provider simulator up", port=self.port)
        self._said_down = down

    # -- introspection -----------------------------------------------------------

    def control(self, method: bytes, path: bytes, body: bytes) -> tuple[bytes, bool]:
        """Answer a ``/_sim/...`` request: (response, whether faults changed: enforce them)."""
        if method == b"GET" and path == b"/_sim/stats":
            return answers.response(200, orjson.dumps(self.stats())), False
        if method == b"GET" and path == b"/_sim/accepted":
            return answers.response(200, orjson.dumps(self.ledger.accepted_list())), False
        if method == b"GET" and path == b"/_sim/requests":
            return answers.response(200, orjson.dumps(self.ledger.requests_list())), False
        if method == b"GET" and path == b"/_sim/faults":
            return answers.response(200, orjson.dumps(self.faults.as_dict())), False
        if method == b"POST" and path == b"/_sim/reset":
            self.reset()
            return answers.response(200, orjson.dumps({"reset": True})), False
        if method == b"POST" and path == b"/_sim/faults":
            try:
                changes = orjson.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object")
                self.apply(changes)
            except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
                return answers.json_error(400, str(exc)), False
            return answers.response(200, orjson.dumps(self.faults.as_dict())), True
        return answers.NOT_FOUND, False


@contextlib.asynccontextmanager
async def running_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    control_port: int | None = None,
    clock: Callable[[], float] = time.time,
    hang_limit: float = HANG_LIMIT,
    **faults: Any,
) -> AsyncIterator[SimulatorServer]:
    """Run the simulator on the current event loop for the duration of the block.

    ``faults`` are :class:`Faults` names and the timed windows (``down_for``...).
    """
    changes, timed = split_timed(faults)
    server = SimulatorServer(
        host,
        port,
        control_port=control_port,
        faults=Faults().replace(changes),
        clock=clock,
        hang_limit=hang_limit,
    )
    await server.start()
    try:
        if timed:
            await server.set_faults(**timed)
        yield server
    finally:
        await server.stop()
