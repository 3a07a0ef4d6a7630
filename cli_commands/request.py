"""`mimctl request`: the jobs that applied MobileRequests opened — list, show, validate, QR."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli_commands.context import Context, pass_context

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

STATES = ("awaiting-validation", "pending", "locked", "collected", "canceled")
COLUMNS = ("request_name", "person_name", "profile_name", "kind", "status", "delivery",
           "requested_by", "validated_by", "expires_at", "created_at")


@click.group()
def request() -> None:
    """Pending requests: the jobs applying MobileRequest documents opened.

    A request is made, and canceled, through the specs (`reconcile --apply`); these commands
    look at the jobs, validate one that waits for a second person, show a code that is meant
    for the operator once, and draw the collection link as a QR code.
    """


def _engine(context: Context) -> Engine:
    from reconciler.db.engine import ensure_schema

    engine = context.engine()
    ensure_schema(engine)
    return engine


def _key(engine: Engine) -> Any:
    from reconciler.db import vault

    return vault.load_master_key(engine.url.render_as_string(hide_password=False), create=False)


def _row_json(row: Any) -> dict[str, Any]:
    data = {column: getattr(row, column) for column in COLUMNS}
    return {key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in data.items()}


@request.command("list")
@click.option("--person", help="Only this person's requests.")
@click.option("--profile", help="Only requests under this credential profile.")
@click.option("--state", type=click.Choice(STATES), help="Only requests in this state.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@pass_context
def list_requests(context: Context, person: str | None, profile: str | None, state: str | None,
                  output_format: str) -> None:
    """List request jobs, newest first."""
    from sqlalchemy import select

    from reconciler.db.models import request_jobs

    query = select(request_jobs).order_by(request_jobs.c.id.desc())
    for column, value in (("person_name", person), ("profile_name", profile),
                          ("status", state)):
        if value is not None:
            query = query.where(request_jobs.c[column] == value)
    with _engine(context).connect() as connection:
        rows = connection.execute(query).all()
    if output_format == "json":
        click.echo(json.dumps([_row_json(row) for row in rows], indent=2))
        return
    if not rows:
        click.echo("No requests.")
        return
    click.echo(f"{'REQUEST':24} {'PERSON':16} {'PROFILE':20} {'KIND':8} {'STATE':20} EXPIRES")
    for row in rows:
        expires = f"{row.expires_at:%Y-%m-%d %H:%M}" if row.expires_at else ""
        click.echo(f"{row.request_name:24} {row.person_name:16} {row.profile_name:20} "
                   f"{row.kind:8} {row.status:20} {expires}")


@request.command()
@click.argument("name")
@click.option("--reveal-code", is_flag=True,
              help="Show the authentication code, when it is meant for the operator (delivery "
                   "ShowCode, or notification scheme None). Works once; the code is then "
                   "gone from the database.")
@click.option("--actor", envvar="MIM_ACTOR", help="Who asks, for the audit log.")
@pass_context
def show(context: Context, name: str, reveal_code: bool, actor: str | None) -> None:
    """Show the request NAME (its newest job) and, once, its code."""
    from reconciler.apply import default_actor
    from reconciler.db import jobs, notices
    from reconciler.db.audit import AuditEvent, append

    engine = _engine(context)
    code = None
    with engine.begin() as connection:
        job = jobs.latest_job(connection, name)
        if reveal_code:
            code = jobs.reveal_code(connection, _key(engine), name)
            append(connection, [AuditEvent(actor or default_actor(), "code-reveal",
                                           "MobileRequest", name, {"job": job.id})])
        base = _collection_base(connection)
    for column, value in _row_json(job).items():
        if value is not None:
            click.echo(f"{column.replace('_', ' ').removesuffix(' name'):14} {value}")
    if job.status == "pending" and base:
        click.echo(f"{'link':14} {notices.collection_url(base, job.token)}")
    if code is not None:
        click.echo(f"{'code':14} {code}  (shown once; tell it to the person by another channel)")


def _collection_base(connection: Any) -> str | None:
    from sqlalchemy import select

    from reconciler.db.models import KIND_TABLES

    table = KIND_TABLES["Settings"].table
    document = connection.execute(select(table.c.document)).scalar()
    if document is None:
        return None
    return document["spec"].get("certificates", {}).get("mobileCertificateRecoveryServiceUrl")


@request.command()
@click.argument("name")
@click.option("--by", "validator", required=True, metavar="PERSON",
              help="The person validating: holds a role in the profile's canValidate, and is "
                   "not the one who made the request.")
@pass_context
def validate(context: Context, name: str, validator: str) -> None:
    """Approve request NAME for a profile that validates issuance; its code is then sent."""
    from reconciler.db import jobs
    from reconciler.db.audit import append

    engine = _engine(context)
    with engine.begin() as connection:
        event = jobs.validate(connection, _key(engine), name, validator,
                              now=datetime.now(UTC))
        append(connection, [event])
    click.echo(f"validated {name} by {validator}; the code and the link are on their way "
               "(mimctl notify flush)")


@request.command()
@click.argument("name")
@click.option("--out", "out_file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the QR code: a .png or .svg file.")
@pass_context
def qr(context: Context, name: str, out_file: Path) -> None:
    """Draw the collection link of request NAME as a QR code (the person scans it)."""
    from provisioning.qr import save_qr
    from reconciler.db import jobs, notices

    with _engine(context).connect() as connection:
        job = jobs.latest_job(connection, name)
        base = _collection_base(connection)
    if job.status != "pending":
        raise click.ClickException(f"request {name!r} is {job.status}; only a pending request "
                                   "has a link to collect")
    if not base:
        raise click.ClickException("Settings certificates.mobileCertificateRecoveryServiceUrl "
                                   "is not set")
    try:
        save_qr(notices.collection_url(base, job.token), out_file)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--out") from None
    click.echo(f"wrote {out_file}")
