"""Loopback ports for the benchmarks' processes: one free port, and a wait until it listens.

A benchmark runs alone on its machine (bench/README.md), so a port found free
here is still free a moment later when the child binds it. The tests, which
share the machine with other runs, hand over sockets already bound instead
(``tests/conftest.py``: ``bound_socket``).
"""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60, see: str = ""
) -> None:
    """Until something listens on ``port``; fails early if ``proc`` exits. ``see``: its log."""
    hint = f"; see {see}" if see else ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode}{hint}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s{hint}")
