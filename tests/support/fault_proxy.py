"""A TCP proxy that breaks on demand: reset, black-hole, refuse (issue 19).

It stands between the service and PostgreSQL or Redis, on a loopback port
of its own, and runs its own event loop in a thread, so a test can break the
connections whatever its own loop is doing, and real worker processes can be
pointed at it (``proxy.url(DATABASE_URL)``).

- ``reset()``: every open connection is closed with a RST on both sides, as
  a restarting server or a middlebox does; new connections work.
- ``black_hole()``: connections stay open and new ones are accepted, but no
  byte moves either way until ``restore()`` (a partition: what was held is
  delivered when it heals, as TCP would retransmit it).
- ``refuse()``: connections are refused (nothing listens), open ones reset.
- ``restore()``: back to passing everything.

The port is held all along by a second socket bound with ``SO_REUSEPORT``
that never listens, so refusing and listening again never frees it for
another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

__all__ = ["FaultProxy", "fault_proxy"]

T = TypeVar("T")
_CHUNK = 65536


def _reuse_port_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(("127.0.0.1", port))
    return sock


def _rst(writer: asyncio.StreamWriter) -> None:
    # SO_LINGER 0: close() sends a RST instead of a FIN.
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Forwards ``127.0.0.1:port`` to ``target``; breaks when told (thread-safe)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._reserve = _reuse_port_socket(0)
        self.port: int = self._reserve.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy")
        self._server: asyncio.Server | None = None
        self._flowing: asyncio.Event | None = None
        self._pairs: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.connections_made = 0
        # Bytes read while black-holed; set once some are: a test waits for
        # its request to be held.
        self.held_bytes = 0
        self.holding = threading.Event()

    # -- control, from any thread ---------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        self._call(self._start())
        return self

    def close(self) -> None:
        self._call(self._close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._reserve.close()

    def reset(self) -> None:
        """RST every open connection; new ones pass."""
        self._call(self._reset())

    def black_hole(self) -> None:
        """Hold every byte, both ways, until :meth:`restore`; connections stay open."""
        self._call(self._set_flowing(False))

    def refuse(self) -> None:
        """Refuse new connections and reset the open ones, until :meth:`restore`."""
        self._call(self._refuse())

    def restore(self) -> None:
        """Pass everything again (held bytes are delivered)."""
        self._call(self._restore())

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's."""
        parts = urlsplit(url)
        credentials = parts.netloc.rpartition("@")[0]
        netloc = f"{credentials}@" if credentials else ""
        return urlunsplit(parts._replace(netloc=f"{netloc}127.0.0.1:{self.port}"))

    def _call(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(30)

    # -- on the proxy's loop ---------------------------------------------------

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self) -> None:
        sock = _reuse_port_socket(self.port)
        self._server = await asyncio.start_server(self._accepted, sock=sock)

    async def _close(self) -> None:
        await self._stop_listening()
        await self._reset()
        # The connections' tasks end, and the loop turns a few more times:
        # abort() closes a socket only on the loop's next turn, and a loop
        # stopped before it leaves the socket to the garbage collector, whose
        # "unclosed transport" warning then fails whichever test runs next.
        pending = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for _ in range(3):
            await asyncio.sleep(0)

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _reset(self) -> None:
        for pair in list(self._pairs):
            for writer in pair:
                _rst(writer)
        self._pairs.clear()

    async def _set_flowing(self, flowing: bool) -> None:
        assert self._flowing is not None
        self.holding.clear()
        if flowing:
            self._flowing.set()
        else:
            self._flowing.clear()

    async def _refuse(self) -> None:
        await self._stop_listening()
        await self._reset()

    async def _restore(self) -> None:
        await self._set_flowing(True)
        if self._server is None:
            await self._listen()

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections_made += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            _rst(writer)
            return
        except BaseException:
            # Cancelled by close() while it connected upstream: the accepted
            # socket closes here, or the garbage collector finds it open.
            writer.transport.abort()
            raise
        pair = (writer, up_writer)
        self._pairs.add(pair)
        try:
            await asyncio.gather(
                self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
            )
        finally:
            self._pairs.discard(pair)
            for w in pair:
                w.transport.abort()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                # One side closed: close the other the same way.
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            if not self._flowing.is_set():
                self.held_bytes += len(data)
                self.holding.set()
                await self._flowing.wait()
            if writer.transport.is_closing():
                return
            writer.write(data)
            await writer.drain()


@contextlib.contextmanager
def fault_proxy(target_url: str) -> Iterator[FaultProxy]:
    """A started proxy to the host and port of ``target_url`` (a database or Redis URL)."""
    parts = urlsplit(target_url)
    proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 0).start()
    try:
        yield proxy
    finally:
        proxy.close()
