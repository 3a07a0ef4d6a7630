"""Collection links: the URL in the e-mail, the app's deep link, and what a token leads to.

The collection URL is `{mobileCertificateRecoveryServiceUrl}/collect/<token>`: the page a
person opens, the text of the QR code, and what the Identity Agent is handed. Every place that
builds one calls the one `collection_url`: it lives with the e-mail that carries it
(reconciler/db/notices.py, written when a request is applied) and is re-exported here for the
landing page, the QR routes and the CLI. A token's state is what a browser may learn of its
request: open, unknown, collected, closed (canceled or expired) or locked — never who it is for.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.engine import Connection

from reconciler.db import jobs
from reconciler.db.models import KIND_TABLES, request_jobs
from reconciler.db.notices import collection_url
from specs.settings import SettingsSpec

__all__ = ["APP_LINK_SCHEME", "LinkState", "app_link", "collection_url", "link_state",
           "service_base_url", "stored_settings"]

APP_LINK_SCHEME = "mimid"  # the Identity Agent's URL scheme
MAX_TOKEN_LENGTH = 64  # request_jobs.token is String(64)


def app_link(url: str) -> str:
    """The deep link that opens the Identity Agent on a collection URL."""
    return f"{APP_LINK_SCHEME}://collect?url={quote(url, safe='')}"


def stored_settings(connection: Connection) -> SettingsSpec | None:
    """The applied Settings' spec, or None when no Settings document has been applied."""
    table = KIND_TABLES["Settings"].table
    document = connection.execute(select(table.c.document)).scalar()
    if document is None:
        return None
    return SettingsSpec.model_validate(document.get("spec") or {})


def service_base_url(settings: SettingsSpec | None) -> str | None:
    """mobileCertificateRecoveryServiceUrl without blanks or a trailing /, or None if unset."""
    written = settings and settings.certificates.mobile_certificate_recovery_service_url
    base = (written or "").strip().rstrip("/")
    return base or None


class LinkState(StrEnum):
    """What a collection link leads to, as far as a browser may know."""

    OPEN = "open"  # a pending request, not expired: collect now
    UNKNOWN = "unknown"  # no such token (or a request not yet validated)
    COLLECTED = "collected"  # used: a link works once
    CLOSED = "closed"  # canceled, or expired unused
    LOCKED = "locked"  # too many wrong authentication codes


_BY_STATUS = {jobs.PENDING: LinkState.OPEN, jobs.COLLECTED: LinkState.COLLECTED,
              jobs.CANCELED: LinkState.CLOSED, jobs.LOCKED: LinkState.LOCKED}


def link_state(connection: Connection, token: str, now: datetime) -> LinkState:
    """The state of the request behind `token` at `now` (an aware datetime)."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return LinkState.UNKNOWN
    job = connection.execute(select(request_jobs.c.status, request_jobs.c.expires_at)
                             .where(request_jobs.c.token == token)).first()
    if job is None:
        return LinkState.UNKNOWN
    state = _BY_STATUS.get(job.status, LinkState.UNKNOWN)  # awaiting-validation: not live yet
    if state is LinkState.OPEN and job.expires_at is not None and aware(job.expires_at) <= now:
        return LinkState.CLOSED
    return state


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
