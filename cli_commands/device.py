"""`mimctl device`: issued devices — list, show, cancel, disable, enable.

A change takes effect at once for every relying party: CRL and OCSP read the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import click

from cli_commands.context import Context, pass_context

STATES = ("provisioning", "active", "disabled", "canceled", "removed", "abandoned")
REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded",
           "cessationOfOperation")
ACTOR = click.option("--actor", envvar="MIM_ACTOR",
                     help="Who does it, for the audit log (default: the git user, else login).")


@click.group()
def device() -> None:
    """Issued devices and their certificates: look, cancel, disable, enable."""


def _engine(context: Context) -> Any:
    from reconciler.db.engine import ensure_schema

    engine = context.engine()
    ensure_schema(engine)
    return engine


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _device_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "person": row.person_name, "profile": row.profile_name,
            "status": row.status, "serialNumber": row.serial_number, "platform": row.platform,
            "model": row.model, "mdmDeviceId": row.mdm_device_id,
            "created": _when(row.created_at), "updated": _when(row.updated_at)}


def _certificate_json(row: Any) -> dict[str, Any]:
    return {"authority": row.authority_name, "serial": row.serial_number,
            "policy": row.policy_name, "subject": row.subject, "status": row.status,
            "reason": row.revocation_reason, "revoked": _when(row.revoked_at),
            "notAfter": _when(row.not_after)}


@device.command("list")
@click.option("--person", help="Only this person's devices.")
@click.option("--status", type=click.Choice(STATES), help="Only devices in this state.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for machines.")
@pass_context
def list_devices(context: Context, person: str | None, status: str | None,
                 output_format: str) -> None:
    """List issued devices, oldest first."""
    from reconciler.db import devices

    with _engine(context).connect() as connection:
        rows = devices.listed(connection, person=person, status=status)
    if output_format == "json":
        click.echo(json.dumps([_device_json(row) for row in rows], indent=2))
    elif not rows:
        click.echo("No devices.")
    else:
        click.echo(f"{'ID':>5} {'PERSON':16} {'PROFILE':20} {'STATUS':12} {'PLATFORM':9} SERIAL")
        for row in rows:
            click.echo(f"{row.id:>5} {row.person_name:16} {row.profile_name:20} "
                       f"{row.status:12} {row.platform or '':9} {row.serial_number or ''}")


@device.command()
@click.argument("device_id", type=int)
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text for people, json for machines.")
@pass_context
def show(context: Context, device_id: int, output_format: str) -> None:
    """Show device DEVICE_ID and its certificates."""
    from reconciler.db import devices

    with _engine(context).connect() as connection:
        row = devices.find(connection, device_id)
        issued = devices.certificates_of(connection, device_id)
    data = {**_device_json(row), "certificates": [_certificate_json(c) for c in issued]}
    if output_format == "json":
        click.echo(json.dumps(data, indent=2))
        return
    for key, value in data.items():
        if key != "certificates":
            click.echo(f"{key:14} {value if value is not None else '-'}")
    for certificate in data["certificates"]:
        state = certificate["status"] + (f" ({certificate['reason']})"
                                         if certificate["reason"] else "")
        click.echo(f"certificate    {certificate['policy']} {certificate['serial']} {state}: "
                   f"{certificate['subject']}")


def _change(context: Context, actor: str | None,
            operation: Callable[[Any, str, datetime], Any]) -> Any:
    """Run one lifecycle change and its audit event in one transaction."""
    from reconciler.apply import default_actor
    from reconciler.db.audit import append

    engine = _engine(context)
    with engine.begin() as connection:
        event = operation(connection, actor or default_actor(), datetime.now(UTC))
        append(connection, [event])
    return event


@device.command()
@click.argument("device_id", type=int)
@click.option("--reason", type=click.Choice(REASONS), default="unspecified", show_default=True,
              help="Revocation reason written into the CRL and OCSP answers.")
@ACTOR
@pass_context
def cancel(context: Context, device_id: int, reason: str, actor: str | None) -> None:
    """Cancel device DEVICE_ID: every certificate it holds is revoked, for good."""
    from reconciler.db import devices

    event = _change(context, actor, lambda connection, who, now: devices.cancel(
        connection, device_id, reason=reason, actor=who, now=now))
    click.echo(f"canceled device {device_id}; revoked {len(event.details['revoked'])} "
               f"certificate(s) ({reason})")


@device.command()
@click.argument("device_id", type=int)
@click.option("--reason", help="Why, for the audit log.")
@ACTOR
@pass_context
def disable(context: Context, device_id: int, reason: str | None, actor: str | None) -> None:
    """Suspend device DEVICE_ID: its certificates are on hold until it is enabled."""
    from reconciler.db import devices

    event = _change(context, actor, lambda connection, who, now: devices.disable(
        connection, device_id, actor=who, now=now, reason=reason))
    click.echo(f"disabled device {device_id}; {len(event.details['held'])} certificate(s) on "
               "hold (certificateHold)")


@device.command()
@click.argument("device_id", type=int)
@click.option("--reason", help="Why, for the audit log.")
@ACTOR
@pass_context
def enable(context: Context, device_id: int, reason: str | None, actor: str | None) -> None:
    """Lift the suspension of device DEVICE_ID: its certificates are valid again."""
    from reconciler.db import devices

    event = _change(context, actor, lambda connection, who, now: devices.enable(
        connection, device_id, actor=who, now=now, reason=reason))
    click.echo(f"enabled device {device_id}; {len(event.details['released'])} certificate(s) "
               "valid again")


@device.command("unlock-code")
@click.argument("device_id", type=int)
@click.option("--challenge", required=True, help="The challenge the locked phone shows.")
@click.option("--operator", required=True,
              help="The person asking: one of their roles must have Unlock Credential, reach "
                   "the device's owner, and be in the profile's canUnlock.")
@pass_context
def unlock_code(context: Context, device_id: int, challenge: str, operator: str) -> None:
    """Print the response that unlocks device DEVICE_ID for the challenge it shows.

    The phone checks the response itself and then confirms the unlock to the service. The
    audit log records who asked, for which challenge; refusals are audited too.
    """
    from reconciler.db import devices, operators, vault
    from reconciler.db.audit import append

    engine = _engine(context)
    key = vault.load_master_key(engine.url.render_as_string(hide_password=False), create=False)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        row = devices.find(connection, device_id)
        try:
            role = operators.check(connection, operators.load_operator(connection, operator),
                                   "unlock-code", row)
        except operators.NotPermitted as refused:
            append(connection, [devices.device_event(operator, "device-unlock-code-reject",
                                                     row, reason=str(refused))])
            refusal: operators.NotPermitted | None = refused
        else:
            refusal = None
            code, event = devices.unlock_code(connection, key, device_id, challenge,
                                              actor=operator, now=now)
            event.details["role"] = role
            append(connection, [event])
    if refusal is not None:
        raise click.ClickException(f"not permitted: {refusal}")
    click.echo(f"unlock code for device {device_id}: {code[:4]} {code[4:]}")


def _request_for(context: Context, device_id: int, kind: str, delivery: str,
                 reason: str | None, actor: str | None) -> str:
    from reconciler.apply import default_actor
    from reconciler.db import devices, jobs, vault
    from reconciler.db.audit import append

    engine = _engine(context)
    key = vault.load_master_key(engine.url.render_as_string(hide_password=False), create=False)
    with engine.begin() as connection:
        row = devices.find(connection, device_id)
        if row.status != devices.ACTIVE:
            raise click.ClickException(f"device {device_id} is {row.status}; only an active "
                                       "device can be replaced or renewed")
        name, events = jobs.open_operator_request(
            connection, key, person=row.person_name, profile=row.profile_name, kind=kind,
            device_serial=row.serial_number, delivery=delivery,
            requested_by=actor or default_actor(), reason=reason, now=datetime.now(UTC))
        append(connection, events)
        status = jobs.latest_job(connection, name).status
    return f"request {name} ({status})"


DELIVERY = click.option("--delivery", type=click.Choice(["Email", "Sms", "QrCode", "ShowCode"]),
                        default="Email", show_default=True,
                        help="How the new request's link and code reach the person.")
REASON = click.option("--reason", help="Why, kept with the request and in the audit log.")


@device.command()
@click.argument("device_id", type=int)
@DELIVERY
@REASON
@ACTOR
@pass_context
def replace(context: Context, device_id: int, delivery: str, reason: str | None,
            actor: str | None) -> None:
    """Replace device DEVICE_ID: it is canceled (certificates revoked as superseded) and a new
    request opens for the person's next phone."""
    opened = _request_for(context, device_id, "Replace", delivery, reason, actor)
    click.echo(f"canceled device {device_id}; {opened}")


@device.command()
@click.argument("device_id", type=int)
@DELIVERY
@REASON
@ACTOR
@pass_context
def renew(context: Context, device_id: int, delivery: str, reason: str | None,
          actor: str | None) -> None:
    """Renew device DEVICE_ID: a request for new certificates onto the same phone, which
    collects them with its device token (or the link and code)."""
    click.echo(f"renewal of device {device_id}: "
               + _request_for(context, device_id, "Renew", delivery, reason, actor))
