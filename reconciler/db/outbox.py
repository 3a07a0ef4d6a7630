"""The outbox: notifications written in the same transaction as the change that causes them.

A message is a row, its content (subject, text, HTML) encrypted under the master key — a code
SMS holds the authentication code, which must never sit in the database in clear. Senders
(`mimctl notify flush`, the service's background sender) claim due messages, send them outside
any transaction, and mark each one sent or failed; a failure is retried with exponential
backoff. A claim is a conditional UPDATE, so two senders never take the same message; a claim
left by a sender that died is taken over after CLAIM_TIMEOUT (the one case where a message
could go twice, and its Message-ID lets the receiving side see the duplicate).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection

from reconciler.db.models import outbox
from reconciler.db.vault import MasterKey, VaultError

PENDING, SENDING, SENT = "pending", "sending", "sent"
BACKOFF_FIRST = timedelta(seconds=30)
BACKOFF_MAX = timedelta(hours=1)
CLAIM_TIMEOUT = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class Message:
    """A notification to send: what for, by which channel and system, to whom, what it says."""

    purpose: str  # "link" (the collection URL) or "code" (the authentication code)
    channel: str  # "email" or "sms"
    system: str  # the ExternalSystem that carries it (Smtp or HttpSmsGateway)
    recipient: str  # an e-mail address (for SMS through an e-mail gateway too) or a number
    subject: str
    text: str
    html: str | None = None
    job_id: int | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed message, decrypted, ready to send."""

    id: int
    message_id: str
    attempts: int
    message: Message
    claim: str  # the token this sender's claim holds it by


def _place(message_id: str) -> str:
    return f"outbox/{message_id}"


def enqueue(connection: Connection, key: MasterKey, messages: Iterable[Message],
            now: datetime) -> list[str]:
    """Write messages to the outbox in one statement; returns their message ids."""
    rows = []
    for message in messages:
        message_id = uuid.uuid4().hex
        content = json.dumps({"subject": message.subject, "text": message.text,
                              "html": message.html}).encode()
        rows.append({"message_id": message_id, "job_id": message.job_id,
                     "purpose": message.purpose, "channel": message.channel,
                     "system": message.system, "recipient": message.recipient,
                     "payload": key.encrypt(content, _place(message_id)), "status": PENDING,
                     "attempts": 0, "next_attempt_at": now, "created_at": now})
    if rows:
        connection.execute(outbox.insert(), rows)
    return [row["message_id"] for row in rows]


def claim(connection: Connection, key: MasterKey, *, sender: str, now: datetime,
          limit: int = 100) -> list[Claimed]:
    """Take up to `limit` due messages for `sender` (call in a short transaction of its own)."""
    token = f"{sender}/{uuid.uuid4().hex[:16]}"[-64:]
    due = or_(and_(outbox.c.status == PENDING, outbox.c.next_attempt_at <= now),
              and_(outbox.c.status == SENDING, outbox.c.claimed_at < now - CLAIM_TIMEOUT))
    ids = list(connection.execute(select(outbox.c.id).where(due)
                                  .order_by(outbox.c.next_attempt_at, outbox.c.id)
                                  .limit(limit)).scalars())
    if not ids:
        return []
    connection.execute(update(outbox).where(outbox.c.id.in_(ids), due).values(
        status=SENDING, claimed_by=token, claimed_at=now))
    rows = connection.execute(select(outbox).where(
        outbox.c.id.in_(ids), outbox.c.claimed_by == token, outbox.c.status == SENDING)).all()
    claimed = []
    for row in sorted(rows, key=lambda r: r.id):
        try:
            claimed.append(_open(key, row, token))
        except VaultError as error:  # one damaged row must not hold up the others
            connection.execute(update(outbox).where(outbox.c.id == row.id).values(
                status=PENDING, claimed_by=None, claimed_at=None, attempts=row.attempts + 1,
                next_attempt_at=now + BACKOFF_MAX, last_error=str(error)[:2000]))
    return claimed


def _open(key: MasterKey, row: Any, token: str) -> Claimed:
    content = json.loads(key.decrypt(row.payload, _place(row.message_id)))
    return Claimed(row.id, row.message_id, row.attempts, Message(
        row.purpose, row.channel, row.system, row.recipient, content["subject"],
        content["text"], content["html"], row.job_id), token)


def _held(claimed: Claimed) -> Any:
    return and_(outbox.c.id == claimed.id, outbox.c.claimed_by == claimed.claim,
                outbox.c.status == SENDING)


def mark_sent(connection: Connection, claimed: Claimed, now: datetime) -> bool:
    """Record a message as sent, if the claim still holds it; False when it does not."""
    result = connection.execute(update(outbox).where(_held(claimed))
        .values(status=SENT, sent_at=now, attempts=outbox.c.attempts + 1, claimed_by=None,
                claimed_at=None, last_error=None))
    return result.rowcount == 1


def release(connection: Connection, claimed: Claimed) -> bool:
    """Hand a claimed message back untried (a sender stopping), without counting an attempt."""
    result = connection.execute(update(outbox).where(_held(claimed)).values(
        status=PENDING, claimed_by=None, claimed_at=None))
    return result.rowcount == 1


RETRY_AFTER_MAX = timedelta(days=1)  # a longer Retry-After is taken as a day


def backoff(attempts: int) -> timedelta:
    """How long to wait after the `attempts`-th failure: 30 s, 1 min, 2 min, ... up to 1 h."""
    return min(BACKOFF_FIRST * 2 ** max(0, attempts - 1), BACKOFF_MAX)


def mark_failed(connection: Connection, claimed: Claimed, error: str, now: datetime,
                wait: timedelta | None = None) -> datetime | None:
    """Put a message back for a later try; returns when, or None if the claim lost it.

    `wait` is how long the system asked us to wait (an HTTP Retry-After): the next try is no
    sooner than that, nor than the backoff, and at most a day away.
    """
    attempts = claimed.attempts + 1
    retry_at = now + min(max(backoff(attempts), wait or timedelta(0)), RETRY_AFTER_MAX)
    result = connection.execute(update(outbox).where(_held(claimed)).values(
        status=PENDING, attempts=attempts, next_attempt_at=retry_at, last_error=error[:2000],
        claimed_by=None, claimed_at=None))
    return retry_at if result.rowcount == 1 else None


def unsent(connection: Connection) -> list[Any]:
    """Messages not yet sent, oldest first, without their content (for `notify list`)."""
    return connection.execute(select(
        outbox.c.id, outbox.c.message_id, outbox.c.job_id, outbox.c.purpose, outbox.c.channel,
        outbox.c.system, outbox.c.recipient, outbox.c.status, outbox.c.attempts,
        outbox.c.next_attempt_at, outbox.c.last_error, outbox.c.created_at)
        .where(outbox.c.status != SENT).order_by(outbox.c.id)).all()
