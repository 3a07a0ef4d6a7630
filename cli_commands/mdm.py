"""`mimctl mdm`: the external MDM systems, as the service sees them."""

from __future__ import annotations

import click

from cli_commands.context import Context, pass_context


@click.group()
def mdm() -> None:
    """Check the MDM systems (Intune, Workspace ONE, BlackBerry UEM) the service asks."""


@mdm.command("test-connection")
@click.argument("name")
@pass_context
def test_connection(context: Context, name: str) -> None:
    """Authenticate to the MDM ExternalSystem NAME and make one harmless call.

    Uses the system as applied to the database, with its stored secrets; prints each step and
    exits 1 if any failed.
    """
    from provisioning.mdm import MdmError, UnknownSystem, load_system, open_connector
    from reconciler.db import vault
    from reconciler.db.engine import ensure_schema

    engine = context.engine()
    ensure_schema(engine)
    key = vault.load_master_key(engine.url.render_as_string(hide_password=False), create=False)
    with engine.connect() as connection:
        try:
            system = load_system(connection, name)
            connector = open_connector(connection, key, name)
        except (MdmError, UnknownSystem) as error:
            raise click.ClickException(str(error)) from error
    with connector:
        steps = connector.test_connection()
    disabled = "" if system.spec.enabled else ", disabled"
    click.echo(f"ExternalSystem/{name} ({system.spec.listener_type}{disabled})")
    width = max(len(step.what) for step in steps)
    for step in steps:
        mark = click.style("ok  ", fg="green") if step.ok else click.style("FAIL", fg="red")
        click.echo(f"  {mark}  {step.what.ljust(width)}  {step.detail}".rstrip())
    if not all(step.ok for step in steps):
        raise click.ClickException("the connection does not work; fix the ExternalSystem spec "
                                   "or the MDM side, then apply and test again")
    click.echo("The connection works.")
