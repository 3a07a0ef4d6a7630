"""`mimctl notify`: deliver the notifications waiting in the outbox, and list them.

Neither command ever prints a message's content (a code SMS holds an authentication code):
only what it is for, its channel, system and recipient, and how its delivery goes.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from datetime import UTC, datetime
from typing import Any

import click

from cli_commands.context import Context, pass_context, plural
from cli_commands.progress import progress


@click.group()
def notify() -> None:
    """Deliver the e-mails and SMS waiting in the outbox, and see what is waiting.

    The service sends them by itself; these commands are for deployments without it and for
    looking into deliveries that keep failing.
    """


@notify.command("flush")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True,
              help="Send at most this many messages in this run.")
@pass_context
def flush_command(context: Context, limit: int) -> None:
    """Send the messages that are due, once.

    Prints how many were sent, failed and are still waiting. A failed delivery stays in the
    outbox and is retried later with backoff (30 s, 1 min, 2 min, ... up to 1 h): each one is
    reported on stderr with its system and the reason, but the exit code stays 0, as the run
    itself worked. Exit 1 only when the run could not happen (database, master key).
    """
    from provisioning.notify import flush
    from reconciler.db import vault
    from reconciler.db.engine import ensure_schema

    engine = context.engine()
    ensure_schema(engine)
    key = vault.load_master_key(engine.url.render_as_string(hide_password=False), create=False)
    with ExitStack() as stack:
        result = flush(engine, key, sender="mimctl notify flush", limit=limit,
                       on_claimed=lambda count: stack.enter_context(progress("Sending", count)))
    for failure in result.failures:
        retry = f"; retrying from {iso(failure.retry_at)}" if failure.retry_at else ""
        click.echo(f"failed: message {failure.id} ({failure.purpose} by {failure.channel}) "
                   f"to {failure.recipient} via {failure.system}: {failure.error}{retry}",
                   err=True)
    failed = f"failed {result.failed}"
    if result.next_retry is not None:
        failed += f" (retrying from {iso(result.next_retry)})"
    click.echo(f"sent {result.sent}, {failed}, {result.remaining} waiting")


@notify.command("list")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for machines.")
@pass_context
def list_command(context: Context, output_format: str) -> None:
    """List the messages not sent yet: pending ones and those being sent.

    Shows each message's id, purpose, channel, system, recipient, status, attempts, next
    attempt and last error, never its content.
    """
    from reconciler.db.engine import ensure_schema
    from reconciler.db.outbox import unsent

    engine = context.engine()
    ensure_schema(engine)
    with engine.connect() as connection:
        rows = [_row(row) for row in unsent(connection)]
    if output_format == "json":
        click.echo(json.dumps({"format_version": 1, "messages": rows}, indent=2))
    elif not rows:
        click.echo("no messages waiting")
    else:
        click.echo(_table(rows))
        click.echo(plural(len(rows), "message") + " waiting")


COLUMNS = {"id": "ID", "purpose": "PURPOSE", "channel": "CHANNEL", "system": "SYSTEM",
           "recipient": "RECIPIENT", "status": "STATUS", "attempts": "ATTEMPTS",
           "next_attempt_at": "NEXT ATTEMPT", "last_error": "LAST ERROR"}


def _row(row: Any) -> dict[str, Any]:
    return {"id": row.id, "message_id": row.message_id, "job_id": row.job_id,
            "purpose": row.purpose, "channel": row.channel, "system": row.system,
            "recipient": row.recipient, "status": row.status, "attempts": row.attempts,
            "next_attempt_at": iso(row.next_attempt_at), "last_error": row.last_error,
            "created_at": iso(row.created_at)}


def _table(rows: list[dict[str, Any]]) -> str:
    cells = [list(COLUMNS.values())]
    cells += [["" if row[column] is None else str(row[column]) for column in COLUMNS]
              for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(line, widths))
                     .rstrip() for line in cells)


def iso(moment: datetime | None) -> str | None:
    """A database time as ISO 8601 UTC (SQLite gives it back without a zone: it is UTC)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
