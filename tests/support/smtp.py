"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives, for the report tests."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from tests.conftest import bound_socket, port_of


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    def part(self, content_type: str) -> str:
        """The decoded body part of this type (``text/plain``, ``text/html``, ``text/csv``)."""
        for part in self.message.walk():
            if part.get_content_type() == content_type:
                content = part.get_content()
                return content if isinstance(content, str) else content.decode()
        raise AssertionError(f"no {content_type} part in {self.message['Subject']!r}")


@dataclass
class Inbox:
    """aiosmtpd's handler: keeps every message; refuses the recipients in ``refuse``."""

    refuse: set[str] = field(default_factory=set)
    received: list[Received] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_RCPT(  # noqa: N802 (aiosmtpd's hook name)
        self, server: Any, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802
        self, server: Any, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or b""
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self._lock:
            self.received.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), message)
            )
        return "250 Message accepted"

    def messages(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def wait_for(self, count: int, timeout: float = 30.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while len(self.messages()) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.messages())} emails, expected {count}")
            time.sleep(0.05)
        return self.messages()


def _check_login(
    server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"reporter",
        b"pa55word",
    )
    return AuthResult(success=ok, handled=False)


class _OnSocket(Controller):
    """aiosmtpd's threaded controller, serving on a socket bound already."""

    def __init__(self, handler: Any, sock: socket.socket, **smtp_options: Any) -> None:
        self._sock = sock
        super().__init__(handler, hostname="127.0.0.1", port=port_of(sock), **smtp_options)

    def _create_server(self) -> Any:
        # Controller binds host and port itself; this is its one place that does.
        return self.loop.create_server(self._factory_invoker, sock=self._sock, ssl=self.ssl_context)


class SmtpServer:
    """aiosmtpd in a thread of its own, on a loopback socket (``sock``, or one of its own).

    ``sock`` is a ``bound_socket()`` a test held while "nothing listened" there.
    """

    def __init__(self, sock: socket.socket | None = None, **smtp_options: Any) -> None:
        self.inbox = Inbox()
        sock = sock or bound_socket()
        self.port = port_of(sock)
        self.controller = _OnSocket(self.inbox, sock, **smtp_options)
        self.controller.start()

    @classmethod
    def with_login(cls, **smtp_options: Any) -> SmtpServer:
        """A server that wants the login ``reporter`` / ``pa55word``."""
        return cls(authenticator=_check_login, auth_required=True, **smtp_options)

    def env(self, **extra: str) -> dict[str, str]:
        """The settings that point the report at this server, without TLS."""
        return {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.port),
            "SMTP_TLS": "none",
            "REPORT_SENDER": "reports@mailings.test",
            "REPORT_RECIPIENTS": "ops@example.com, boss@example.com",
            **extra,
        }

    def stop(self) -> None:
        self.controller.stop()
