"""`mimctl audit`: read the hash-chained audit log, and prove it intact."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import Any

import click

from cli_commands.context import Context, pass_context


@click.group()
def audit() -> None:
    """The audit log: every apply, request, collection, refusal and device operation."""


def _engine(context: Context) -> Any:
    from reconciler.db.engine import ensure_schema

    engine = context.engine()
    ensure_schema(engine)
    return engine


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not an ISO date or time (2026-11-28, "
                                 "2026-11-28T10:00)", param_hint="--since") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@audit.command("log")
@click.option("--since", help="Only events at or after this time (ISO 8601; UTC if no zone).")
@click.option("--kind", help="Only events about this kind (MobileRequest, Device, ...).")
@click.option("--actor", help="Only events by this actor (exact).")
@click.option("--action", help="Only events of this action (device-cancel, collect-reject, ...).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json (one object per line) for tools.")
@pass_context
def log(context: Context, since: str | None, kind: str | None, actor: str | None,
        action: str | None, output_format: str) -> None:
    """Print audit events, oldest first."""
    from sqlalchemy import select

    from reconciler.db.models import audit_events

    query = select(audit_events).order_by(audit_events.c.id)
    start = _since(since)
    if start is not None:
        query = query.where(audit_events.c.at >= start)
    for column, value in (("kind", kind), ("actor", actor), ("action", action)):
        if value is not None:
            query = query.where(audit_events.c[column] == value)
    with _engine(context).connect() as connection:
        for row in connection.execution_options(yield_per=1000).execute(query):
            if output_format == "json":
                click.echo(json.dumps({"id": row.id, "at": row.details.get("at"),
                                       "actor": row.actor, "action": row.action,
                                       "kind": row.kind, "name": row.name,
                                       "details": row.details, "hash": row.hash},
                                      sort_keys=True, default=str))
            else:
                subject = f"{row.kind}/{row.name}" if row.kind else (row.name or "-")
                click.echo(f"{row.id:>6}  {row.details.get('at', '')[:19]}  {row.action:24} "
                           f"{subject}  by {row.actor}")


@audit.command()
@pass_context
def verify(context: Context) -> None:
    """Walk the hash chain: exit 0 when intact, 1 naming each row where it breaks."""
    from sqlalchemy import func, select

    from reconciler.db.audit import verify as walk
    from reconciler.db.models import audit_events

    with _engine(context).connect() as connection:
        problems = walk(connection)
        count = connection.execute(select(func.count()).select_from(audit_events)).scalar_one()
    if problems:
        for problem in problems:
            click.echo(problem, err=True)
        click.echo(f"audit log NOT intact: {len(problems)} break(s) in {count} events", err=True)
        sys.exit(1)
    click.echo(f"audit log intact: {count} events, hash chain verified")
