"""Issued devices and what operators and phones do to them: cancel, disable, enable.

A device's certificates follow it: cancel revokes every one still valid (with the reason
given, as RFC 5280 names them), disable puts them on hold (certificateHold, reversible) and
enable lifts the hold. CRL and OCSP read the same rows, so a change shows in both at once.
A device that cancels itself is `removed`; an operator's cancel makes it `canceled`.

Unlock: a phone whose key store is locked shows a challenge; an operator gets the response
(`unlock_code`) and reads it to the person; the phone checks it with the unlock key of its
package and confirms (`confirm_unlock`), once. The response is the first 64 bits of
HMAC-SHA256(unlock key, "mim-unlock-v1:" + challenge) as 8 decimal digits.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from reconciler.db.audit import AuditEvent
from reconciler.db.models import certificates, devices, unlock_codes
from reconciler.db.vault import MasterKey
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
    return device_event(actor, "device-remove" if by_device else "device-cancel", device,
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
    return device_event(actor, "device-disable", device, reason=reason, held=serials)


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
    return device_event(actor, "device-enable", device, reason=reason, released=serials)


def _serials(connection: Connection, device_id: int, statuses: tuple[str, ...]) -> list[str]:
    return [row.serial_number for row in connection.execute(
        select(certificates.c.serial_number).where(
            certificates.c.device_id == device_id, certificates.c.status.in_(statuses)))]


def device_event(actor: str, action: str, device: Any, **details: Any) -> AuditEvent:
    """An audit event about one device."""
    return AuditEvent(actor, action, "Device", str(device.id), {
        "device": device.id, "person": device.person_name, "profile": device.profile_name,
        "serialNumber": device.serial_number, **details})


# --- Unlock --------------------------------------------------------------------------------------

CHALLENGE_PATTERN = re.compile(r"^[A-Z0-9]{8,32}$")
UNLOCK_CODE_LIFETIME = timedelta(hours=24)


def unlock_place(token_hash: str) -> str:
    """What a device's unlock key is encrypted for (the vault's binding)."""
    return f"Device/{token_hash}/unlock-key"


def unlock_response(unlock_key: bytes, challenge: str) -> str:
    digest = hmac.new(unlock_key, b"mim-unlock-v1:" + challenge.encode(), hashlib.sha256)
    return f"{int.from_bytes(digest.digest()[:8], 'big') % 10**8:08d}"


def _unlock_key(key: MasterKey, device: Any) -> bytes:
    return key.decrypt(device.unlock_key, unlock_place(device.token_hash))


def normalize_challenge(challenge: str) -> str:
    """The challenge as stored: upper case, without spaces or dashes; DeviceError if not one."""
    cleaned = challenge.strip().upper().replace(" ", "").replace("-", "")
    if not CHALLENGE_PATTERN.match(cleaned):
        raise DeviceError("a challenge is 8 to 32 letters and digits, as the phone shows it")
    return cleaned


def unlock_code(connection: Connection, key: MasterKey, device_id: int, challenge: str, *,
                actor: str, now: datetime) -> tuple[str, AuditEvent]:
    """The response to a locked phone's challenge; the audit event names the challenge only."""
    device = find(connection, device_id)
    if device.status not in (ACTIVE, DISABLED):
        raise DeviceError(f"device {device_id} is {device.status}; it has nothing to unlock")
    cleaned = normalize_challenge(challenge)
    connection.execute(insert(unlock_codes).values(
        device_id=device_id, challenge=cleaned, issued_by=actor, issued_at=now))
    return (unlock_response(_unlock_key(key, device), cleaned),
            device_event(actor, "device-unlock-code", device, challenge=cleaned))


def confirm_unlock(connection: Connection, key: MasterKey, device: Any, challenge: str,
                   response: str, *, now: datetime) -> AuditEvent:
    """Accept a phone's confirmation that it unlocked with an operator's response, once."""
    cleaned = normalize_challenge(challenge)
    issued = connection.execute(select(unlock_codes).where(
        unlock_codes.c.device_id == device.id, unlock_codes.c.challenge == cleaned,
        unlock_codes.c.confirmed_at.is_(None)).order_by(unlock_codes.c.id.desc())).first()
    if issued is None:
        raise DeviceError("no operator obtained an unlock code for this challenge, or it was "
                          "used already")
    issued_at = issued.issued_at if issued.issued_at.tzinfo else issued.issued_at.replace(
        tzinfo=now.tzinfo)
    if now - issued_at > UNLOCK_CODE_LIFETIME:
        raise DeviceError("the unlock code for this challenge has expired; ask for a new one")
    expected = unlock_response(_unlock_key(key, device), cleaned)
    if not hmac.compare_digest(expected.encode(), response.strip().replace(" ", "").encode()):
        raise DeviceError("the response does not answer this challenge")
    connection.execute(update(unlock_codes).where(unlock_codes.c.id == issued.id).values(
        confirmed_at=now))
    return device_event(f"{device.person_name} (device {device.serial_number})", "device-unlock",
                  device, challenge=cleaned, issued_by=issued.issued_by)
