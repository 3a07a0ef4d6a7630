"""`mimctl apikey`: keys for the devices API, each bound to a person whose roles it carries."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime

import click

from cli_commands.context import Context, pass_context


@click.group()
def apikey() -> None:
    """API keys for the devices API (/api/v1): create, list, revoke.

    A key acts as its person: their roles' workflows and scope decide what it may do. Only a
    hash of each key is stored; the key itself is shown once, when it is made.
    """


def _engine(context: Context):  # type: ignore[no-untyped-def]
    from reconciler.db.engine import ensure_schema

    engine = context.engine()
    ensure_schema(engine)
    return engine


@apikey.command()
@click.option("--person", required=True, help="The person the key acts as.")
@click.option("--label", help="What the key is for (shown by list).")
@click.option("--actor", envvar="MIM_ACTOR", help="Who makes it, for the audit log.")
@pass_context
def create(context: Context, person: str, label: str | None, actor: str | None) -> None:
    """Make a key for PERSON and print it, once."""
    from sqlalchemy import insert

    from provisioning.api import KEY_PREFIX, key_hash
    from reconciler.apply import default_actor
    from reconciler.db import operators
    from reconciler.db.audit import AuditEvent, append
    from reconciler.db.models import api_keys

    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    who = actor or default_actor()
    with _engine(context).begin() as connection:
        operators.load_operator(connection, person)  # an enabled person, or NotPermitted
        key_id = connection.execute(insert(api_keys).values(
            person_name=person, label=label, key_hash=key_hash(secret), created_by=who,
            created_at=datetime.now(UTC)).returning(api_keys.c.id)).scalar_one()
        append(connection, [AuditEvent(who, "apikey-create", "Person", person,
                                       {"key": key_id, "label": label})])
    click.echo(f"API key {key_id} for {person} (shown once; keep it like a password):")
    click.echo(secret)


@apikey.command("list")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for machines.")
@pass_context
def list_keys(context: Context, output_format: str) -> None:
    """List keys: id, person, label, when made, last used and revoked (never the keys)."""
    from sqlalchemy import select

    from reconciler.db.models import api_keys

    with _engine(context).connect() as connection:
        rows = connection.execute(select(api_keys).order_by(api_keys.c.id)).all()
    data = [{"id": row.id, "person": row.person_name, "label": row.label,
             "created": row.created_at.isoformat(), "createdBy": row.created_by,
             "lastUsed": row.last_used_at.isoformat() if row.last_used_at else None,
             "revoked": row.revoked_at.isoformat() if row.revoked_at else None}
            for row in rows]
    if output_format == "json":
        click.echo(json.dumps(data, indent=2))
    elif not data:
        click.echo("No API keys.")
    else:
        for key in data:
            state = f"revoked {key['revoked']}" if key["revoked"] else "active"
            state += f", last used {key['lastUsed']}" if key["lastUsed"] else ", never used"
            click.echo(f"{key['id']:>4}  {key['person']:16} {key['label'] or '-':24} {state}")


@apikey.command()
@click.argument("key_id", type=int)
@click.option("--actor", envvar="MIM_ACTOR", help="Who revokes it, for the audit log.")
@pass_context
def revoke(context: Context, key_id: int, actor: str | None) -> None:
    """Revoke key KEY_ID: it stops working at once."""
    from sqlalchemy import update

    from reconciler.apply import default_actor
    from reconciler.db.audit import AuditEvent, append
    from reconciler.db.models import api_keys

    who = actor or default_actor()
    with _engine(context).begin() as connection:
        person = connection.execute(
            update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC)).returning(api_keys.c.person_name)).scalar()
        if person is None:
            raise click.ClickException(f"no active API key {key_id}")
        append(connection, [AuditEvent(who, "apikey-revoke", "Person", person,
                                       {"key": key_id})])
    click.echo(f"revoked API key {key_id} of {person}")
