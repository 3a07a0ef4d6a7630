"""SMTP sink stand-in: a real aiosmtpd server on 127.0.0.1 recording every message it accepts.

`SmtpSink()` picks a free port once and keeps it: `stop()` then `start()` simulates an SMTP
relay that goes down and comes back at the same address. With `credentials`, the sink offers
AUTH LOGIN/PLAIN (over plain SMTP too) and refuses mail from a client that did not log in;
every login attempt is recorded. `tls="StartTls"` offers STARTTLS (and then requires it before
AUTH), `tls="Tls"` speaks implicit TLS; both with `server_certificate()`, which a client trusts
through `client_context()`.
"""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from functools import cache
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class Received:
    """One message the sink accepted: the envelope, the parsed message, who had logged in."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    login: str | None

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


@dataclass(slots=True)
class _Handler:
    """aiosmtpd handler and authenticator, sharing the sink's records."""

    credentials: dict[str, str]
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        # aiosmtpd's own auth_required warns when TLS is not required too: check it here.
        if self.credentials and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        data = raw if isinstance(raw, bytes) else raw.encode()
        parsed = message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        credentials = session.auth_data if session.authenticated else None
        login = credentials.login.decode() if isinstance(credentials, LoginPassword) else None
        with self.lock:
            self.received.append(Received(envelope.mail_from or "", tuple(envelope.rcpt_tos),
                                          parsed, login))
        return "250 2.0.0 OK: queued"

    def __call__(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                 auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.credentials.get(user) == password
        with self.lock:
            self.logins.append((user, password, ok))
        return AuthResult(success=ok, handled=False, auth_data=auth_data)


class SmtpSink:
    """A running (or stopped) SMTP sink; see the module docstring."""

    def __init__(self, *, credentials: dict[str, str] | None = None,
                 tls: Literal["StartTls", "Tls"] | None = None) -> None:
        self.host = HOST
        self.port = free_port()
        self.tls = tls
        self._handler = _Handler(dict(credentials or {}))
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        with self._handler.lock:
            return list(self._handler.received)

    @property
    def logins(self) -> list[tuple[str, str, bool]]:
        """(user, password, accepted) of every AUTH attempt."""
        with self._handler.lock:
            return list(self._handler.logins)

    def message_ids(self) -> list[str]:
        return [r.message_id for r in self.received]

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> Self:
        assert self._controller is None, "the sink is running"
        self._controller = self._make_controller()
        self._controller.start()
        return self

    def stop(self) -> None:
        """Stop listening (the port is then closed: a relay that is down)."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _make_controller(self) -> Controller:
        options: dict[str, Any] = {"hostname": self.host, "port": self.port,
                                   "ready_timeout": 5.0}
        if self._handler.credentials:
            # With implicit TLS the whole connection is encrypted, but aiosmtpd only counts
            # STARTTLS as TLS: it would never offer AUTH there if it required TLS.
            options.update(authenticator=self._handler,
                           auth_require_tls=self.tls == "StartTls")
        if self.tls == "StartTls":
            options.update(tls_context=server_context(), require_starttls=True)
        elif self.tls == "Tls":
            options["ssl_context"] = server_context()
        return Controller(self._handler, **options)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def free_port() -> int:
    """A port on 127.0.0.1 nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@cache
def server_certificate() -> tuple[bytes, bytes]:
    """A self-signed certificate for 127.0.0.1 and its key, PEM (made once per run)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp sink")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(IPv4Address(HOST))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


def server_context() -> ssl.SSLContext:
    """A server TLS context with `server_certificate()`."""
    certificate, key = server_certificate()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "cert.pem").write_bytes(certificate)
        (Path(folder) / "key.pem").write_bytes(key)
        context.load_cert_chain(Path(folder) / "cert.pem", Path(folder) / "key.pem")
    return context


def client_context() -> ssl.SSLContext:
    """A client TLS context that trusts the sink's certificate (and nothing else)."""
    return ssl.create_default_context(cadata=server_certificate()[0].decode())
