"""Issued devices and what operators and phones do to them: cancel, disable, enable.

A device's certificates follow it: cancel revokes every one still valid (with the reason
given, as RFC 5280 names them), disable puts them on hold (certificateHold, reversible) and
enable lifts the hold. CRL and OCSP read the same rows, so a change shows in both at once.
A device that cancels itself is `removed`; an operator's cancel makes it `canceled`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from reconciler.db.audit import AuditEvent
from reconciler.db.models import certificates, devices
from reconciler.errors import MimError

ACTIVE, DISABLED, CANCELED, REMOVED = "active", "disabled", "canceled", "removed"
GOOD, HOLD, REVOKED = "good", "hold", "revoked"
HOLD_REASON = "certificateHold"
REASONS = ("unspecified", "keyCompromise", "affiliationChanged", "superseded",
           "cessationOfOperation")


class DeviceError(MimError):
    """A device that does not exist, or is not in a state the operation needs."""


def find(connection: Connection, device_id: int) -> Any:
    row = connection.execute(select(devices).where(devices.c.id == device_id)).first()
    if row is None:
        raise DeviceError(f"no device {device_id}; `mimctl device list` shows them")
    return row


def listed(connection: Connection, *, person: str | None = None,
           status: str | None = None) -> list[Any]:
    query = select(devices).order_by(devices.c.id)
    if person is not None:
        query = query.where(devices.c.person_name == person)
    if status is not None:
        query = query.where(devices.c.status == status)
    return list(connection.execute(query))


def certificates_of(connection: Connection, device_id: int) -> list[Any]:
    return list(connection.execute(select(certificates).where(
        certificates.c.device_id == device_id).order_by(certificates.c.id)))


def cancel(connection: Connection, device_id: int, *, reason: str, actor: str, now: datetime,
           by_device: bool = False, revoke: bool = True) -> AuditEvent:
    """Cancel a device (an operator) or remove it (the phone itself); revoke its certificates."""
    if reason not in REASONS:
        raise DeviceError(f"unknown revocation reason {reason!r}; one of {', '.join(REASONS)}")
    device = find(connection, device_id)
    if device.status in (CANCELED, REMOVED):
        raise DeviceError(f"device {device_id} is already {device.status}")
    status = REMOVED if by_device else CANCELED
    connection.execute(update(devices).where(devices.c.id == device_id).values(
        status=status, updated_at=now))
    serials = _serials(connection, device_id, (GOOD, HOLD)) if revoke else []
    if revoke:
        connection.execute(update(certificates).where(
            certificates.c.device_id == device_id, certificates.c.status.in_((GOOD, HOLD)))
            .values(status=REVOKED, revocation_reason=reason, revoked_at=now))
    return _event(actor, "device-remove" if by_device else "device-cancel", device,
                  reason=reason, revoked=serials)


def disable(connection: Connection, device_id: int, *, actor: str, now: datetime,
            reason: str | None = None) -> AuditEvent:
    """Suspend an active device: its valid certificates go on hold."""
    device = find(connection, device_id)
    if device.status != ACTIVE:
        raise DeviceError(f"device {device_id} is {device.status}; only an active device "
                          "can be disabled")
    serials = _serials(connection, device_id, (GOOD,))
    connection.execute(update(devices).where(devices.c.id == device_id).values(
        status=DISABLED, updated_at=now))
    connection.execute(update(certificates).where(
        certificates.c.device_id == device_id, certificates.c.status == GOOD)
        .values(status=HOLD, revocation_reason=HOLD_REASON, revoked_at=now))
    return _event(actor, "device-disable", device, reason=reason, held=serials)


def enable(connection: Connection, device_id: int, *, actor: str, now: datetime,
           reason: str | None = None) -> AuditEvent:
    """Lift a disabled device's hold: its certificates are valid again."""
    device = find(connection, device_id)
    if device.status != DISABLED:
        raise DeviceError(f"device {device_id} is {device.status}; only a disabled device "
                          "can be enabled")
    serials = _serials(connection, device_id, (HOLD,))
    connection.execute(update(devices).where(devices.c.id == device_id).values(
        status=ACTIVE, updated_at=now))
    connection.execute(update(certificates).where(
        certificates.c.device_id == device_id, certificates.c.status == HOLD)
        .values(status=GOOD, revocation_reason=None, revoked_at=None))
    return _event(actor, "device-enable", device, reason=reason, released=serials)


def _serials(connection: Connection, device_id: int, statuses: tuple[str, ...]) -> list[str]:
    return [row.serial_number for row in connection.execute(
        select(certificates.c.serial_number).where(
            certificates.c.device_id == device_id, certificates.c.status.in_(statuses)))]


def _event(actor: str, action: str, device: Any, **details: Any) -> AuditEvent:
    return AuditEvent(actor, action, "Device", str(device.id), {
        "device": device.id, "person": device.person_name, "profile": device.profile_name,
        "serialNumber": device.serial_number, **details})
