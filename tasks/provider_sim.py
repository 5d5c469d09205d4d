"""A local stand-in for the external send API (SPEC section 5): ``mailings provider-sim``.

It answers ``POST /send/{msgId}`` with ``200 {"code":0,"message":"OK"}`` and
records every accepted id (a count per id, so duplicates show), or misbehaves
on purpose: latency, 500s, reset connections, hangs, 429 with ``Retry-After``,
permanent 400 rejections, 200s with garbage, a token check, and outages that
truly stop listening. Faults come from the command line and can be changed
while it runs with ``POST /_sim/faults`` (a JSON object of the same names).

It is the denominator of the throughput benchmarks, so it is a bare asyncio
protocol speaking just enough HTTP/1.1 (keep-alive, ``Content-Length``
bodies) on uvloop when installed: measured on loopback it costs ~18 µs of CPU
a request against ~75 µs for a minimal aiohttp.web app.

Introspection: ``GET /_sim/stats``, ``GET /_sim/accepted`` (``[msgId, count,
first_accepted_at, phone]``), ``GET /_sim/requests`` (``[msgId, arrived_at,
outcome]`` for every send request), ``GET|POST /_sim/faults``, ``POST
/_sim/reset``. While the send port is down these stay reachable on
``--control-port``, and ``{"down_for": S}`` ends an outage by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import random
import signal
import socket
import struct
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import structlog

__all__ = [
    "Faults",
    "SimulatorServer",
    "add_fault_options",
    "run_simulator",
    "running_simulator",
]

log = structlog.get_logger(__name__)

HANG_LIMIT = 120.0  # a hung request is dropped after this, so hangs never pile up
_MAX_HEAD = 64 * 1024
_MAX_BODY = 1024 * 1024
_OUTCOMES = (
    "accepted", "rejected", "invalid", "unauthorized", "not_found",
    "failed", "reset", "hang", "rate_limited", "garbage",
)  # fmt: skip
_OUTCOME_CODE = {name: code for code, name in enumerate(_OUTCOMES)}
_REASONS = {
    200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
    405: "Method Not Allowed", 413: "Content Too Large", 429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented",
}  # fmt: skip
_GARBAGE = (
    b"<html><body>Service temporarily unavailable</body></html>",
    b'{"code": 1, "message": "queue full"}',
    b'{"status": "ok"}',
    b"",
    b'{"code": 0, "mess',
)


def _response(
    status: int, body: bytes, *, close: bool = False, extra: tuple[str, ...] = ()
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Unknown')}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *extra,
    ]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _json_error(status: int, message: str, *, close: bool = False) -> bytes:
    return _response(status, orjson.dumps({"code": status, "message": message}), close=close)


_OK = _response(200, b'{"code":0,"message":"OK"}')
_FAILED = _json_error(500, "simulated internal error")
_RATE_LIMITED = _response(
    429, b'{"code":429,"message":"simulated rate limit"}', extra=("Retry-After: 1",)
)
_REJECTED = _json_error(400, "invalid recipient (simulated permanent rejection)")
_UNAUTHORIZED = _json_error(401, "missing or wrong bearer token")
_RESET = object()  # actions that are not a response
_HANG = object()


@dataclasses.dataclass(frozen=True, slots=True)
class Faults:
    """How the simulator misbehaves. Rates are probabilities per request."""

    latency: float = 0.0  # ms before answering
    latency_jitter: float = 0.0  # ms, the latency varies uniformly by ± this
    fail_rate: float = 0.0  # 500 with a body
    reset_rate: float = 0.0  # connection reset, no answer
    hang_rate: float = 0.0  # no answer until the client gives up
    rate_limit_rate: float = 0.0  # 429 with Retry-After: 1
    reject_rate: float = 0.0  # 400, always the same ids: a permanent rejection
    garbage_rate: float = 0.0  # 200 with a body that is not a success
    down: bool = False  # not listening at all
    outage_every: float = 0.0  # s: an outage starts every this many seconds...
    outage_for: float = 0.0  # s: ...and lasts this long
    token: str | None = None  # require Authorization: Bearer <token>
    seed: int | None = None

    def replace(self, changes: Mapping[str, Any]) -> Faults:
        """A copy with ``changes`` (names with ``-`` or ``_``) applied; ValueError if invalid."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        values: dict[str, Any] = {}
        for raw_name, value in changes.items():
            name = raw_name.replace("-", "_")
            if name not in fields:
                raise ValueError(f"unknown fault {raw_name!r}")
            values[name] = _check_fault(name, value)
        faults = dataclasses.replace(self, **values)
        if faults.outage_every and not 0 < faults.outage_for < faults.outage_every:
            raise ValueError("outage_for must be between 0 and outage_every")
        return faults


def _check_fault(name: str, value: Any) -> Any:
    if name == "down":
        if not isinstance(value, bool):
            raise ValueError("down must be true or false")
        return value
    if name in ("token", "seed"):
        expected = str if name == "token" else int
        if value is not None and (type(value) is not expected):
            raise ValueError(f"{name} must be a {expected.__name__} or null")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a number >= 0")
    if name.endswith("_rate") and value > 1:
        raise ValueError(f"{name} must be a probability between 0 and 1")
    return float(value)


class _Recorder:
    """Everything the simulator saw, for tests and benchmarks to inspect."""

    def __init__(self) -> None:
        self.accepted: dict[int, list[Any]] = {}  # id -> [count, first accepted at, phone]
        self.outcomes: Counter[str] = Counter()
        # Compact columns: a benchmark sends hundreds of thousands of requests.
        self.arrived_at = array("d")
        self.arrived_id = array("q")
        self.arrived_outcome = array("B")

    def request(self, message_id: int, outcome: str, now: float) -> None:
        self.arrived_at.append(now)
        self.arrived_id.append(message_id)
        self.arrived_outcome.append(_OUTCOME_CODE[outcome])
        self.outcomes[outcome] += 1

    def stats(self) -> dict[str, Any]:
        accepted = self.outcomes["accepted"]
        return {
            "requests": len(self.arrived_at),
            "accepted": accepted,
            "unique_accepted": len(self.accepted),
            "duplicates": accepted - len(self.accepted),
            "by_outcome": dict(self.outcomes),
            "first_request_at": _iso(self.arrived_at[0]) if self.arrived_at else None,
            "last_request_at": _iso(self.arrived_at[-1]) if self.arrived_at else None,
        }

    def accepted_list(self) -> list[list[Any]]:
        return [[i, count, _iso(at), phone] for i, (count, at, phone) in self.accepted.items()]

    def requests_list(self) -> list[list[Any]]:
        return [
            [message_id if message_id >= 0 else None, _iso(at), _OUTCOMES[code]]
            for message_id, at, code in zip(
                self.arrived_id, self.arrived_at, self.arrived_outcome, strict=True
            )
        ]


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class SimulatorServer:
    """The simulator's state and listeners; use :func:`running_simulator` or :meth:`start`."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        control_port: int | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.control_port = control_port
        self.faults = Faults()
        self.records = _Recorder()
        self.rng = random.Random()
        self._listener: asyncio.Server | None = None
        self._control: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._timed_down_until = 0.0
        self._periodic_down = False
        self._outages: asyncio.Task[None] | None = None
        self._timed_up: asyncio.TimerHandle | None = None
        self._syncs: set[asyncio.Task[None]] = set()
        self._sync_lock = asyncio.Lock()
        self._seed_bytes = b"None"
        self._started = False
        self._expected_auth: bytes | None = None
        self._set(faults or Faults(), initial=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def open_connections(self) -> int:
        """Connections to the send port now open (hung requests included)."""
        return len(self._connections)

    @property
    def is_down(self) -> bool:
        return self.faults.down or self._periodic_down or time.time() < self._timed_down_until

    async def start(self) -> None:
        if self.control_port is not None:
            self._control = await asyncio.get_running_loop().create_server(
                lambda: _Connection(self, control_only=True),
                self.host,
                self.control_port,
                reuse_address=True,
            )
            self.control_port = self._control.sockets[0].getsockname()[1]
        if self.faults.outage_every and self._outages is None:
            self._restart_outages()
        if self.port == 0:
            # Bind once to learn the port: an outage closes the listener and
            # coming back must find the same port.
            await self._listen()
        await self.sync_listening()
        self._started = True
        log.info("provider simulator listening", url=self.url, control_port=self.control_port)

    async def stop(self) -> None:
        if self._outages is not None:
            self._outages.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._outages
            self._outages = None
        if self._timed_up is not None:
            self._timed_up.cancel()
        for task in list(self._syncs):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in (self._listener, self._control):
            if server is not None:
                server.close()
        for connection in list(self._connections):
            connection.abort()
        for server in (self._listener, self._control):
            if server is not None:
                await server.wait_closed()
        self._listener = self._control = None

    async def set_faults(self, **changes: Any) -> Faults:
        """Change faults at run time (``down_for=S`` starts an outage of S seconds)."""
        self.apply(changes)
        await self.sync_listening()
        return self.faults

    def apply(self, changes: Mapping[str, Any]) -> None:
        """Validate and apply fault changes; the caller then runs :meth:`sync_listening`."""
        changes = dict(changes)
        down_for = changes.pop("down_for", None)
        if down_for is not None and (
            isinstance(down_for, bool) or not isinstance(down_for, int | float) or down_for <= 0
        ):
            raise ValueError("down_for must be a number of seconds > 0")
        self._set(self.faults.replace(changes))
        if down_for is not None:
            self._timed_down_until = time.time() + down_for
            if self._timed_up is not None:
                self._timed_up.cancel()
            self._timed_up = asyncio.get_running_loop().call_later(down_for, self.sync_soon)

    def reset(self) -> None:
        """Forget every request seen so far (faults stay)."""
        self.records = _Recorder()

    def stats(self) -> dict[str, Any]:
        return {**self.records.stats(), "down": self.is_down, "faults": self.faults_dict()}

    def faults_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self.faults)

    def _set(self, faults: Faults, *, initial: bool = False) -> None:
        old, self.faults = self.faults, faults
        if initial or faults.seed != old.seed:
            self.rng.seed(faults.seed)
            self._seed_bytes = str(faults.seed).encode()
        self._expected_auth = b"Bearer " + faults.token.encode() if faults.token else None
        if (faults.outage_every, faults.outage_for) != (old.outage_every, old.outage_for) or (
            faults.outage_every and self._outages is None
        ):
            self._restart_outages()

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
                await self.sync_listening()
                await asyncio.sleep(length)
                self._periodic_down = False
                await self.sync_listening()
        finally:
            self._periodic_down = False

    def sync_soon(self) -> None:
        """Run :meth:`sync_listening` in a task of its own, kept until it is done."""
        task = asyncio.get_running_loop().create_task(self.sync_listening())
        self._syncs.add(task)
        task.add_done_callback(self._syncs.discard)

    async def sync_listening(self) -> None:
        """Listen when up; when down, close the listener and every send connection."""
        async with self._sync_lock:
            if self.is_down and self._listener is not None:
                self._listener.close()
                self._listener = None
                for connection in list(self._connections):
                    connection.abort()
                if self._started:
                    log.info("provider simulator down", port=self.port)
            elif not self.is_down and self._listener is None:
                await self._listen()
                if self._started:
                    log.info("provider simulator up", port=self.port)

    async def _listen(self) -> None:
        self._listener = await asyncio.get_running_loop().create_server(
            lambda: _Connection(self), self.host, self.port, reuse_address=True, backlog=1024
        )
        self.port = self._listener.sockets[0].getsockname()[1]

    # -- the send API ------------------------------------------------------------

    def decide(self, raw_id: bytes, auth: bytes | None, body: bytes) -> tuple[float, object]:
        """What to do with one send request: (seconds to wait, response bytes or an action)."""
        now = time.time()
        faults = self.faults
        records = self.records
        try:
            message_id = int(raw_id)
        except ValueError:
            records.request(-1, "not_found", now)
            return 0.0, _json_error(404, "no such path")
        if self._expected_auth is not None and auth != self._expected_auth:
            records.request(message_id, "unauthorized", now)
            return self._delay(), _UNAUTHORIZED
        phone, problem = _check_body(message_id, body)
        if problem is not None:
            records.request(message_id, "invalid", now)
            return self._delay(), _json_error(400, problem)
        draw = self.rng.random()
        for rate, outcome, action in (
            (faults.reset_rate, "reset", _RESET),
            (faults.hang_rate, "hang", _HANG),
            (faults.fail_rate, "failed", _FAILED),
            (faults.rate_limit_rate, "rate_limited", _RATE_LIMITED),
            (faults.garbage_rate, "garbage", None),
        ):
            if draw < rate:
                records.request(message_id, outcome, now)
                if action is None:
                    action = _response(200, self.rng.choice(_GARBAGE))
                return (0.0 if action is _HANG else self._delay()), action
            draw -= rate
        if faults.reject_rate and self._rejects(message_id):
            records.request(message_id, "rejected", now)
            return self._delay(), _REJECTED
        records.request(message_id, "accepted", now)
        seen = records.accepted.get(message_id)
        if seen is None:
            records.accepted[message_id] = [1, now, phone]
        else:
            seen[0] += 1
        return self._delay(), _OK

    def _delay(self) -> float:
        latency, jitter = self.faults.latency, self.faults.latency_jitter
        if jitter:
            latency = max(0.0, latency + self.rng.uniform(-jitter, jitter))
        return latency / 1000

    def _rejects(self, message_id: int) -> bool:
        # Deterministic per (seed, id): the retry of a rejected id is rejected again.
        key = self._seed_bytes + b":" + str(message_id).encode()
        digest = hashlib.blake2b(key, digest_size=8).digest()
        return int.from_bytes(digest, "little") / 2**64 < self.faults.reject_rate

    # -- introspection -----------------------------------------------------------

    def control(self, method: bytes, path: bytes, body: bytes) -> tuple[bytes, bool]:
        """Answer a ``/_sim/...`` request: (response, whether the listener must be synced)."""
        if method == b"GET" and path == b"/_sim/stats":
            return _response(200, orjson.dumps(self.stats())), False
        if method == b"GET" and path == b"/_sim/accepted":
            return _response(200, orjson.dumps(self.records.accepted_list())), False
        if method == b"GET" and path == b"/_sim/requests":
            return _response(200, orjson.dumps(self.records.requests_list())), False
        if method == b"GET" and path == b"/_sim/faults":
            return _response(200, orjson.dumps(self.faults_dict())), False
        if method == b"POST" and path == b"/_sim/reset":
            self.reset()
            return _response(200, orjson.dumps({"reset": True})), False
        if method == b"POST" and path == b"/_sim/faults":
            try:
                changes = orjson.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("expected a JSON object")
                self.apply(changes)
            except ValueError as exc:  # orjson.JSONDecodeError is a ValueError
                return _json_error(400, str(exc)), False
            return _response(200, orjson.dumps(self.faults_dict())), True
        return _json_error(404, "no such path"), False


def _check_body(message_id: int, body: bytes) -> tuple[int, str | None]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, "body is not JSON"
    if not isinstance(payload, dict):
        return 0, "body is not a JSON object"
    id_, phone, text = payload.get("id"), payload.get("phone"), payload.get("text")
    if type(id_) is not int or id_ != message_id:
        return 0, "id must be an integer equal to the msgId in the path"
    if type(phone) is not int:
        return 0, "phone must be an integer"
    if not isinstance(text, str):
        return 0, "text must be a string"
    return phone, None


class _Connection(asyncio.Protocol):
    """One client connection: parses requests one at a time and answers them in order."""

    def __init__(self, server: SimulatorServer, *, control_only: bool = False) -> None:
        self.server = server
        self.control_only = control_only
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.busy = False
        self.processing = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        if not self.control_only:
            self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.server._connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def abort(self) -> None:
        """Drop the connection as a crashed peer does: a TCP RST, not a FIN."""
        if self.transport is None:
            return
        with contextlib.suppress(OSError):
            sock = self.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy and not self.processing:
            self._process()

    def _process(self) -> None:
        self.processing = True
        try:
            while not self.busy and self.transport is not None and self.buffer:
                if not self._next_request():
                    return
        finally:
            self.processing = False

    def _next_request(self) -> bool:
        """Handle the first buffered request; False if it is still incomplete."""
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                self._write(_json_error(431, "headers too large", close=True), close=True)
            return False
        lines = bytes(buffer[:end]).split(b"\r\n")
        parts = lines[0].split(b" ")
        if len(parts) != 3:
            self._write(_json_error(400, "bad request line", close=True), close=True)
            return False
        method, target, version = parts
        length, auth, keep_alive = 0, None, version == b"HTTP/1.1"
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value) if value.strip().isdigit() else -1
            elif name == b"authorization":
                auth = value.strip()
            elif name == b"connection":
                token = value.strip().lower()
                keep_alive = token == b"keep-alive" or (keep_alive and token != b"close")
            elif name == b"transfer-encoding":
                length = -2
        if length < 0 or length > _MAX_BODY:
            status, reason = (501, "chunked bodies unsupported") if length == -2 else (413, "")
            self._write(_json_error(status, reason or "bad Content-Length", close=True), True)
            return False
        total = end + 4 + length
        if len(buffer) < total:
            return False
        body = bytes(buffer[end + 4 : total])
        del buffer[:total]
        self.busy = True
        self._dispatch(method, target.split(b"?", 1)[0], body, auth, not keep_alive)
        return True

    def _dispatch(
        self, method: bytes, path: bytes, body: bytes, auth: bytes | None, close: bool
    ) -> None:
        server = self.server
        if path.startswith(b"/send/") and method == b"POST" and not self.control_only:
            delay, action = server.decide(path[6:], auth, body)
            if delay > 0:
                loop = asyncio.get_running_loop()
                self.timer = loop.call_later(delay, self._perform, action, close)
            else:
                self._perform(action, close)
        elif path.startswith(b"/_sim/"):
            response, sync = server.control(method, path, body)
            if sync:
                # Going down aborts send connections; let this answer leave first.
                server._connections.discard(self)
                server.sync_soon()
            self._write(response, close or sync)
        else:
            self._write(_json_error(404, "no such path"), close)

    def _perform(self, action: object, close: bool) -> None:
        self.timer = None
        if self.transport is None:
            return
        if action is _RESET:
            self.abort()
        elif action is _HANG:
            self.timer = asyncio.get_running_loop().call_later(HANG_LIMIT, self.abort)
        else:
            assert isinstance(action, bytes)
            self._write(action, close)

    def _write(self, response: bytes, close: bool) -> None:
        if self.transport is None:
            return
        self.transport.write(response)
        if close:
            self.transport.close()
            return
        self.busy = False
        if self.buffer and not self.processing:
            self._process()


@contextlib.asynccontextmanager
async def running_simulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    control_port: int | None = None,
    **faults: Any,
) -> AsyncIterator[SimulatorServer]:
    """Run the simulator on the current event loop for the duration of the block."""
    server = SimulatorServer(host, port, control_port=control_port, faults=Faults().replace(faults))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


# -- the command ------------------------------------------------------------------


def _probability(value: str) -> float:
    number = float(value)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return number


def add_fault_options(parser: argparse.ArgumentParser) -> None:
    """The fault options of ``mailings provider-sim`` (``--host``/``--port`` come from the CLI)."""
    parser.add_argument("--control-port", type=int, help="also serve /_sim/* here, even when down")
    group = parser.add_argument_group("faults")
    add = group.add_argument
    add("--latency", type=float, default=0.0, metavar="MS", help="answer after this long")
    add("--latency-jitter", type=float, default=0.0, metavar="MS", help="latency varies ± this")
    add("--fail-rate", type=_probability, default=0.0, metavar="P", help="500 with a body")
    add("--reset-rate", type=_probability, default=0.0, metavar="P", help="reset the connection")
    add("--hang-rate", type=_probability, default=0.0, metavar="P", help="never answer")
    add("--rate-limit-rate", type=_probability, default=0.0, metavar="P", help="429, Retry-After")
    add("--reject-rate", type=_probability, default=0.0, metavar="P", help="400, same ids always")
    add("--garbage-rate", type=_probability, default=0.0, metavar="P", help="200 with garbage")
    add("--down", action="store_true", help="start down (not listening)")
    add("--outage-every", type=float, default=0.0, metavar="S", help="an outage every S seconds")
    add("--outage-for", type=float, default=0.0, metavar="S", help="each outage lasting S seconds")
    add("--token", help="require Authorization: Bearer TOKEN")
    add("--seed", type=int, help="seed of the random faults")


def _faults_from_args(args: argparse.Namespace) -> Faults:
    names = [field.name for field in dataclasses.fields(Faults)]
    return Faults().replace({name: getattr(args, name) for name in names if hasattr(args, name)})


def run_simulator(args: argparse.Namespace) -> None:
    """Run ``mailings provider-sim`` until SIGINT or SIGTERM."""
    faults = _faults_from_args(args)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        server = SimulatorServer(
            args.host, args.port, control_port=getattr(args, "control_port", None), faults=faults
        )
        await server.start()
        try:
            await stop.wait()
        finally:
            await server.stop()

    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(serve())
