"""Delivering the outbox: e-mail over SMTP (SMS too, through e-mail gateways) and HTTP SMS.

`flush` claims the due messages in a short transaction, sends each one outside any
transaction, and marks each sent or failed in a transaction of its own; a failure is retried
with the outbox's backoff. Each ExternalSystem is loaded once per flush; a missing, disabled or
unsuitable one is a delivery failure like a refused connection, never a crash.

A failure is described in a short text that names the system's host and the protocol's answer
codes, never a secret or the message's content (a code SMS holds an authentication code), and
nothing here logs content. `background_sender` runs `flush` periodically in a daemon thread
for the service.
"""

from __future__ import annotations

import json
import logging
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine

from provisioning.mdm.base import retry_after_seconds
from provisioning.systems import UnknownSystem, load_system, system_secrets
from reconciler.db import outbox
from reconciler.db.engine import SQLITE_BEGIN, is_sqlite
from reconciler.db.models import outbox as outbox_table
from reconciler.db.vault import MasterKey, VaultError
from specs.external_system import HttpSmsGatewaySystem, SmtpSystem

log = logging.getLogger(__name__)

SMTP_TIMEOUT = 15.0  # seconds, for each SMTP socket operation
HTTP_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
# Stop starting new sends once a claim is this old: past outbox.CLAIM_TIMEOUT another sender
# may take the rest over, and a message sent by both would arrive twice.
CLAIM_MARGIN = 0.8 * outbox.CLAIM_TIMEOUT.total_seconds()
ENHANCED_STATUS = re.compile(rb"\b[245]\.\d{1,3}\.\d{1,3}\b")
PLACEHOLDER = re.compile(r"\{(number|message)\}")

Clock = Callable[[], datetime]
NotificationSystem = SmtpSystem | HttpSmsGatewaySystem


class DeliveryError(Exception):
    """A message could not be delivered; the text is short and holds no secret or content.

    `wait` is how long the receiving system asked us to wait before trying again, if it did.
    """

    def __init__(self, message: str, wait: timedelta | None = None) -> None:
        super().__init__(message)
        self.wait = wait


@dataclass(frozen=True, slots=True)
class Gateway:
    """A notification ExternalSystem ready to send through: its spec and secrets in clear."""

    name: str
    spec: NotificationSystem
    secrets: dict[str, bytes] = field(repr=False)


@dataclass(frozen=True, slots=True)
class Failure:
    """A message this flush could not deliver, and when it will be tried again."""

    id: int
    message_id: str
    purpose: str
    channel: str
    system: str
    recipient: str
    error: str
    retry_at: datetime | None  # None when another sender took the message over meanwhile


@dataclass(frozen=True, slots=True)
class FlushResult:
    """What one flush did; `remaining` counts the unsent messages it did not try."""

    sent: int
    failures: tuple[Failure, ...]
    remaining: int

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def next_retry(self) -> datetime | None:
        """The earliest time a failed message will be tried again."""
        times = [f.retry_at for f in self.failures if f.retry_at is not None]
        return min(times) if times else None


# --- Loading the systems ---------------------------------------------------------------------

def load_gateway(connection: Connection, key: MasterKey, name: str) -> Gateway:
    """The notification system `name` with its secrets; DeliveryError when it cannot send."""
    try:
        system = load_system(connection, name)
    except UnknownSystem:
        raise DeliveryError(f"no ExternalSystem {name!r} in the database") from None
    spec = system.spec
    if not isinstance(spec, SmtpSystem | HttpSmsGatewaySystem):
        raise DeliveryError(f"ExternalSystem {name!r} ({spec.listener_type}) cannot send "
                            "notifications; name a Smtp or HttpSmsGateway system")
    if not spec.enabled:
        raise DeliveryError(f"ExternalSystem {name!r} is disabled")
    try:
        secrets = system_secrets(connection, key, name)
    except VaultError as error:
        raise DeliveryError(f"the secrets of ExternalSystem {name!r} cannot be read: "
                            f"{error}") from None
    return Gateway(name, spec, secrets)


def _load_gateways(engine: Engine, key: MasterKey,
                   names: set[str]) -> dict[str, Gateway | DeliveryError]:
    loaded: dict[str, Gateway | DeliveryError] = {}
    if not names:
        return loaded
    with engine.connect() as connection:
        for name in sorted(names):
            try:
                loaded[name] = load_gateway(connection, key, name)
            except DeliveryError as error:
                loaded[name] = error
    return loaded


# --- Sending one message ---------------------------------------------------------------------

def send(gateway: Gateway, claimed: outbox.Claimed, now: datetime, *,
         ssl_context: ssl.SSLContext | None = None) -> None:
    """Deliver one message through its system; raises DeliveryError when it was not."""
    spec = gateway.spec
    if isinstance(spec, SmtpSystem):
        send_email(spec, gateway.secrets, claimed, now, ssl_context=ssl_context)
    elif claimed.message.channel != "sms":
        raise DeliveryError(f"HttpSmsGateway {gateway.name!r} cannot carry a "
                            f"{claimed.message.channel} message")
    else:
        send_http_sms(spec, gateway.secrets, claimed, now)


def build_email(spec: SmtpSystem, claimed: outbox.Claimed, now: datetime) -> EmailMessage:
    """The e-mail for a message: text, and HTML as the alternative when there is some.

    An SMS through an e-mail-to-SMS gateway (channel "sms") is text only: its recipient is
    already `<cell>@<gateway>`.
    """
    message = claimed.message
    email = EmailMessage()
    try:
        email["From"] = spec.from_address
        email["To"] = message.recipient
        if message.subject:
            email["Subject"] = message.subject
    except (ValueError, TypeError):  # a CR/LF or a malformed address: header injection
        raise DeliveryError("the sender or recipient address is not a valid header") from None
    email["Message-ID"] = f"<{claimed.message_id}@mimctl>"
    email["Date"] = format_datetime(now.astimezone(UTC))
    email.set_content(message.text)
    if message.html and message.channel == "email":
        email.add_alternative(message.html, subtype="html")
    return email


def send_email(spec: SmtpSystem, secrets: dict[str, bytes], claimed: outbox.Claimed,
               now: datetime, *, ssl_context: ssl.SSLContext | None = None) -> None:
    """Send one message over SMTP (STARTTLS, implicit TLS or plain, as the system says)."""
    email = build_email(spec, claimed, now)
    where = f"{spec.host}:{spec.port}"
    try:
        with _smtp(spec, ssl_context) as smtp:
            _login(smtp, spec, secrets)
            smtp.send_message(email, from_addr=spec.from_address,
                              to_addrs=[claimed.message.recipient])
    except DeliveryError:
        raise
    except Exception as error:  # noqa: BLE001 - every failure becomes a short, safe text
        raise DeliveryError(f"SMTP {where}: {_smtp_error(error)}") from None


@contextmanager
def _smtp(spec: SmtpSystem, ssl_context: ssl.SSLContext | None) -> Iterator[smtplib.SMTP]:
    context = ssl_context or ssl.create_default_context()
    smtp: smtplib.SMTP
    if spec.security == "Tls":
        smtp = smtplib.SMTP_SSL(spec.host, spec.port, timeout=SMTP_TIMEOUT, context=context)
    else:
        smtp = smtplib.SMTP(spec.host, spec.port, timeout=SMTP_TIMEOUT)
    try:
        smtp.ehlo()
        if spec.security == "StartTls":
            smtp.starttls(context=context)
            smtp.ehlo()
        yield smtp
        smtp.quit()
    finally:
        smtp.close()


def _login(smtp: smtplib.SMTP, spec: SmtpSystem, secrets: dict[str, bytes]) -> None:
    if spec.username is None:
        return
    password = secrets.get("password")
    if password is None:
        raise DeliveryError(f"SMTP {spec.host}:{spec.port}: a username is set but no password "
                            "is stored; apply the system with its password")
    smtp.login(spec.username, password.decode("utf-8"))


def _smtp_error(error: Exception) -> str:
    """A short description of an SMTP failure: the reply codes, never the server's free text."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        codes = [_reply(code, text) for code, text in error.recipients.values()]
        return f"the server refused the recipient ({', '.join(codes)})"
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return f"the server refused the login ({_reply(error.smtp_code, error.smtp_error)})"
    if isinstance(error, smtplib.SMTPSenderRefused):
        return f"the server refused the sender ({_reply(error.smtp_code, error.smtp_error)})"
    if isinstance(error, smtplib.SMTPDataError):
        return f"the server refused the message ({_reply(error.smtp_code, error.smtp_error)})"
    if isinstance(error, smtplib.SMTPResponseException):
        return f"the server answered {_reply(error.smtp_code, error.smtp_error)}"
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return "the server does not offer " + ("STARTTLS" if "STARTTLS" in str(error) else "AUTH")
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return "the server closed the connection"
    return _network_error(error)


def _reply(code: int, text: bytes | str) -> str:
    raw = text.encode("utf-8", "replace") if isinstance(text, str) else text
    enhanced = ENHANCED_STATUS.search(raw)
    return f"{code} {enhanced.group().decode()}" if enhanced else str(code)


def _network_error(error: Exception) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({error.verify_message})"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed ({error.reason or error.__class__.__name__})"
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, OSError) and error.strerror:
        return f"cannot connect ({error.strerror})"
    return f"failed ({error.__class__.__name__})"


def fill_template(template: str, number: str, message: str) -> str:
    """The request body: {number} and {message} replaced, JSON-escaped, in one pass."""
    values = {"number": number, "message": message}
    return PLACEHOLDER.sub(lambda match: _json_escape(values[match[1]]), template)


def _json_escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def sms_headers(spec: HttpSmsGatewaySystem, secrets: dict[str, bytes]) -> dict[str, str]:
    """Content-Type, the extra headers, the secret headers and the bearer token."""
    headers = {"Content-Type": spec.content_type, **spec.headers}
    for name in spec.secret_headers:
        value = secrets.get(f"secretHeaders.{name}")
        if value is None:
            raise DeliveryError(f"secret header {name} is not stored; apply the system again")
        headers[name] = value.decode("utf-8")
    if spec.token is not None:
        token = secrets.get("token")
        if token is None:
            raise DeliveryError("the token is not stored; apply the system again")
        headers["Authorization"] = f"Bearer {token.decode('utf-8')}"
    return headers


def send_http_sms(spec: HttpSmsGatewaySystem, secrets: dict[str, bytes],
                  claimed: outbox.Claimed, now: datetime) -> None:
    """POST one SMS to the gateway; any answer but 2xx is a failure. A 429 or 503 with
    Retry-After says when to try again (honoured by the outbox)."""
    body = fill_template(spec.body_template, claimed.message.recipient, claimed.message.text)
    headers = sms_headers(spec, secrets)
    host = httpx.URL(spec.url).host
    try:
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            response = client.post(spec.url, content=body.encode("utf-8"), headers=headers)
    except httpx.TimeoutException:
        raise DeliveryError(f"SMS gateway {host}: timed out") from None
    except httpx.HTTPError as error:
        raise DeliveryError(f"SMS gateway {host}: cannot connect "
                            f"({error.__class__.__name__})") from None
    if not response.is_success:
        wait = None
        if response.status_code in (429, 503):  # busy: it may say when to come back
            seconds = retry_after_seconds(response.headers.get("Retry-After"), now)
            if seconds is not None:  # the outbox takes at most a day; no timedelta overflow
                wait = timedelta(seconds=min(seconds, outbox.RETRY_AFTER_MAX.total_seconds()))
        raise DeliveryError(f"SMS gateway {host}: answered HTTP {response.status_code}"
                            + (f" (retry after {int(wait.total_seconds())} s)" if wait else ""),
                            wait)


# --- The flush loop --------------------------------------------------------------------------

@contextmanager
def _transaction(engine: Engine) -> Iterator[Connection]:
    """A short write transaction; on SQLite it takes the write lock up front (waiting for it)."""
    with engine.connect() as connection:
        if is_sqlite(str(engine.url)):
            connection.info[SQLITE_BEGIN] = "BEGIN IMMEDIATE"
        with connection.begin():
            yield connection


def flush(engine: Engine, key: MasterKey, *, sender: str = "mimctl",
          now: datetime | None = None, limit: int = 100,
          ssl_context: ssl.SSLContext | None = None,
          on_claimed: Callable[[int], Callable[[int], None]] | None = None) -> FlushResult:
    """Send up to `limit` due messages once; failures are put back for a later try.

    `now` fixes the clock (tests); by default each step reads the current time. `ssl_context`
    replaces the default TLS trust for SMTP (a relay with a private CA). `on_claimed(count)`
    returns a callback told of each message handled (the CLI's progress bar).
    """
    clock = _clock(now)
    with _transaction(engine) as connection:
        claimed = outbox.claim(connection, key, sender=sender, now=clock(), limit=limit)
    started = time.monotonic()
    gateways = _load_gateways(engine, key, {item.message.system for item in claimed})
    sent, failures = 0, list[Failure]()
    advance = on_claimed(len(claimed)) if on_claimed is not None else (lambda done: None)
    for position, item in enumerate(claimed):
        if time.monotonic() - started > CLAIM_MARGIN:
            log.warning("outbox: claim too old, leaving %d messages for a later flush",
                        len(claimed) - position)
            with _transaction(engine) as connection:
                for rest in claimed[position:]:
                    outbox.release(connection, rest)
            break
        failure = _deliver(engine, gateways[item.message.system], item, clock, ssl_context)
        if failure is None:
            sent += 1
        else:
            failures.append(failure)
        advance(1)
    return FlushResult(sent, tuple(failures), _unsent(engine) - len(failures))


def _clock(now: datetime | None) -> Clock:
    if now is None:
        return lambda: datetime.now(UTC)
    fixed = now
    return lambda: fixed


def _deliver(engine: Engine, gateway: Gateway | DeliveryError, item: outbox.Claimed,
             clock: Clock, ssl_context: ssl.SSLContext | None) -> Failure | None:
    """Send one claimed message and record the outcome; returns the failure, if any."""
    if isinstance(gateway, DeliveryError):  # the system is missing, disabled or unsuitable
        return _record_failure(engine, item, str(gateway), clock())
    try:
        send(gateway, item, clock(), ssl_context=ssl_context)
    except DeliveryError as error:
        return _record_failure(engine, item, str(error), clock(), error.wait)
    except Exception as error:  # noqa: BLE001 - a bug must not strand the rest of the claim
        # The class only: an unexpected error's text might quote what was being sent.
        return _record_failure(engine, item, f"failed ({error.__class__.__name__})", clock())
    with _transaction(engine) as connection:
        if not outbox.mark_sent(connection, item, clock()):
            log.warning("outbox: message %s was sent, but another sender had taken it over",
                        item.message_id)
    log.info("outbox: sent message %s (%s %s) via %s", item.message_id, item.message.purpose,
             item.message.channel, item.message.system)
    return None


def _record_failure(engine: Engine, item: outbox.Claimed, error: str,
                    now: datetime, wait: timedelta | None = None) -> Failure:
    with _transaction(engine) as connection:
        retry_at = outbox.mark_failed(connection, item, error, now, wait)
    log.warning("outbox: message %s via %s failed: %s", item.message_id, item.message.system,
                error)
    message = item.message
    return Failure(item.id, item.message_id, message.purpose, message.channel, message.system,
                   message.recipient, error, retry_at)


def _unsent(engine: Engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(outbox_table).where(
            outbox_table.c.status != outbox.SENT)).scalar_one()


# --- The service's background sender ---------------------------------------------------------

@dataclass(slots=True)
class BackgroundSender:
    """A daemon thread flushing the outbox every `interval` seconds until stopped."""

    thread: threading.Thread
    stopping: threading.Event
    waking: threading.Event

    def wake(self) -> None:
        """Flush now instead of at the end of the interval (after enqueueing, say)."""
        self.waking.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the thread to stop, and wait for the flush in progress to end."""
        self.stopping.set()
        self.waking.set()
        self.thread.join(timeout)


def background_sender(engine: Engine, key: MasterKey, interval: float, *,
                      sender: str = "service", limit: int = 100,
                      ssl_context: ssl.SSLContext | None = None,
                      chores: Callable[[], object] | None = None) -> BackgroundSender:
    """Start a daemon thread that flushes the outbox now and then every `interval` seconds,
    doing `chores` (the service's other periodic work) before each flush."""
    stopping, waking = threading.Event(), threading.Event()

    def run() -> None:
        while not stopping.is_set():
            waking.clear()  # a wake() from now on asks for one more flush after this one
            for name, work in (("chores", chores), ("flush", lambda: flush(
                    engine, key, sender=sender, limit=limit, ssl_context=ssl_context))):
                if work is None:
                    continue
                try:
                    work()
                except Exception as error:  # noqa: BLE001 - an outage must not end the loop
                    log.error("background %s failed (%s); trying again in %s s", name,
                              error.__class__.__name__, interval)
            waking.wait(interval)

    thread = threading.Thread(target=run, name="outbox sender", daemon=True)
    thread.start()
    return BackgroundSender(thread, stopping, waking)
