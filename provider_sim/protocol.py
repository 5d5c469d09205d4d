"""One HTTP/1.1 connection: httptools parses, requests are answered one at a time, in order."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING, cast

import httptools

from provider_sim import answers
from provider_sim.answers import Silence

if TYPE_CHECKING:
    from provider_sim.server import SimulatorServer

__all__ = ["Connection"]

MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
_MAX_QUEUED = 32  # pipelined requests held before reading pauses

# (method, path, Authorization, body, close after answering)
_Request = tuple[bytes, bytes, bytes | None, bytes, bool]


class _Refused(Exception):
    """Raised from a parser callback: answer this and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.response = answers.json_error(status, message, close=True)


class Connection(asyncio.Protocol):
    """A client connection to the send port (or, ``control_only``, to the control port)."""

    def __init__(self, server: SimulatorServer, *, control_only: bool = False) -> None:
        self.server = server
        self.control_only = control_only
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        # Parsed requests (or a last refusal) waiting for the one being answered.
        self.queue: deque[_Request | bytes] = deque()
        self.busy = False
        self.draining = False
        self.paused = False
        self.timer: asyncio.TimerHandle | None = None
        # The request being parsed; _head_bytes counts reads while its head is incomplete.
        self._in_head = True
        self._head_bytes = 0
        self._url = b""
        self._auth: bytes | None = None
        self._body: list[bytes] = []
        self._body_bytes = 0

    # -- asyncio -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        if not self.control_only:
            if self.server.is_down:
                self.abort()  # the port stays bound through an outage (SimulatorServer)
                return
            self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.queue.clear()
        self.server.connections.discard(self)
        self.server.connection_lost(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def data_received(self, data: bytes) -> None:
        queued = len(self.queue)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            self._refuse(refused if isinstance(refused, _Refused) else _Refused(400, str(exc)))
        except httptools.HttpParserUpgrade:
            self._refuse(_Refused(400, "protocol upgrades are not supported"))
        except httptools.HttpParserError as exc:
            self._refuse(_Refused(400, f"bad request: {exc}"))
        else:
            # As a hand-written parser would: too much read without the head ending.
            if self._in_head and len(self.queue) == queued:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEAD:
                    self._refuse(_Refused(431, "headers too large"))
        self._drain()

    def abort(self) -> None:
        """Drop the connection as a crashed peer does: a TCP RST, not a FIN."""
        if self.transport is None:
            return
        with contextlib.suppress(OSError):
            sock = self.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.transport.abort()

    # -- httptools callbacks -----------------------------------------------------

    # As few as will do: each is a Python call per request.

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 13 and name.lower() == b"authorization":
            self._auth = value

    def on_headers_complete(self) -> None:
        self._in_head = False

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._body_bytes > MAX_BODY:
            raise _Refused(413, "body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        path = self._url.split(b"?", 1)[0]
        body = b"".join(self._body)
        close = not self.parser.should_keep_alive()
        self.queue.append((self.parser.get_method(), path, self._auth, body, close))
        self._in_head = True
        self._head_bytes = 0
        self._url = b""
        self._auth = None
        self._body = []
        self._body_bytes = 0
        if len(self.queue) > _MAX_QUEUED and self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    # -- answering ---------------------------------------------------------------

    def _refuse(self, refused: _Refused) -> None:
        self.queue.append(refused.response)
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def _drain(self) -> None:
        if self.draining:
            return
        self.draining = True
        try:
            while not self.busy and self.queue and self.transport is not None:
                item = self.queue.popleft()
                if isinstance(item, bytes):
                    self._write(item, close=True)
                else:
                    self._dispatch(*item)
            transport = self.transport
            if self.paused and not self.queue and transport and not transport.is_closing():
                self.paused = False
                transport.resume_reading()
        finally:
            self.draining = False

    def _dispatch(
        self, method: bytes, path: bytes, auth: bytes | None, body: bytes, close: bool
    ) -> None:
        self.busy = True
        server = self.server
        if path.startswith(b"/send/") and method == b"POST" and not self.control_only:
            delay, action = server.send.decide(path[6:], auth, body)
            if server.held(path[6:], self, action, close):
                return
            if delay > 0:
                self.timer = asyncio.get_running_loop().call_later(
                    delay, self._perform, action, close
                )
            else:
                self._perform(action, close)
        elif path.startswith(b"/_sim/"):
            response, changed = server.control(method, path, body)
            if changed:
                if not self.control_only:
                    # Going down aborts send connections: answer, then close this one.
                    server.connections.discard(self)
                    close = True
                server.enforce_outage()
            self._write(response, close)
        else:
            self._write(answers.NOT_FOUND, close)

    def answer(self, action: answers.Action, close: bool) -> None:
        """Answer the request being served now (one held back by the server)."""
        self._perform(action, close)

    def _perform(self, action: answers.Action, close: bool) -> None:
        self.timer = None
        if self.transport is None:
            return
        if action is Silence.RESET:
            self.abort()
        elif action is Silence.HANG:
            self.timer = asyncio.get_running_loop().call_later(self.server.hang_limit, self.abort)
        else:
            self._write(action, close)

    def _write(self, response: bytes, close: bool) -> None:
        if self.transport is None:
            return
        if close:
            # Said in the answer, or a client may send its next request on this
            # connection before it sees the close (and get a reset).
            head = response.find(b"\r\n\r\n")
            if b"\r\nConnection: close" not in response[:head]:
                response = response[:head] + b"\r\nConnection: close" + response[head:]
            self.transport.write(response)
            self.transport.close()
            return
        self.transport.write(response)
        self.busy = False
        if self.queue:
            self._drain()
