"""The device side of a mobile ID's life, authenticated by the device token of its package.

    GET  /provision/v1/devices/<id>/status     active, disabled, canceled or removed
    POST /provision/v1/devices/<id>/cancel     {"reason"}: the person removes the identity
    POST /provision/v1/devices/<id>/unlock/confirm   {"challenge", "response"}: the phone
                                               unlocked with an operator's response

`Authorization: Bearer <deviceToken>`; the token is stored only as its SHA-256 and compared in
constant time. A wrong token and an unknown device get the same 401. The status stays
readable after a cancel, so the agent learns it must wipe the identity; every other operation
refuses a canceled or removed device (410).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import select

from provisioning.db import get_engine, master_key, write_transaction
from provisioning.errors import ApiError
from provisioning.links import stored_settings
from reconciler.db import devices as lifecycle
from reconciler.db.audit import append
from reconciler.db.models import devices

blueprint = Blueprint("devices", __name__, url_prefix="/provision/v1/devices")

ISSUED = (lifecycle.ACTIVE, lifecycle.DISABLED, lifecycle.CANCELED, lifecycle.REMOVED)
DEVICE_CANCEL_REASON = "cessationOfOperation"
MAX_REASON = 500


def authenticated(device_id: int) -> Any:
    """The device the bearer token belongs to, or 401."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    refused = ApiError(401, "unauthorized", "a valid device token is needed "
                       "(Authorization: Bearer <deviceToken>)",
                       headers={"WWW-Authenticate": 'Bearer realm="mimctl devices"'})
    if scheme.lower() != "bearer" or not token.strip():
        raise refused
    with get_engine().connect() as connection:
        row = connection.execute(select(devices).where(devices.c.id == device_id)).first()
    presented = hashlib.sha256(token.strip().encode()).hexdigest()
    if row is None or row.status not in ISSUED or row.token_hash is None \
            or not hmac.compare_digest(presented, row.token_hash):
        raise refused
    return row


def usable(device_id: int) -> Any:
    """An authenticated device that is still live (active or disabled), else 410."""
    row = authenticated(device_id)
    if row.status in (lifecycle.CANCELED, lifecycle.REMOVED):
        raise ApiError(410, "device_canceled", f"this device was {row.status}; its identity "
                       "must be removed from the phone")
    return row


@blueprint.get("/<id:device_id>/status")
def status(device_id: int) -> Any:
    row = authenticated(device_id)
    return jsonify({"deviceId": row.id, "status": row.status})


@blueprint.post("/<id:device_id>/cancel")
def cancel(device_id: int) -> Any:
    row = usable(device_id)
    body = request.get_json(silent=True) or {}
    reason = body.get("reason") if isinstance(body, dict) else None
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise ApiError(400, "malformed", f"reason must be text of at most {MAX_REASON} "
                                         "characters", field="reason")
    with write_transaction(get_engine()) as connection:
        settings = stored_settings(connection)
        revoke = settings.devices.revoke_on_device_cancel if settings else True
        try:
            event = lifecycle.cancel(connection, row.id, reason=DEVICE_CANCEL_REASON,
                                     actor=f"{row.person_name} (device {row.serial_number})",
                                     now=datetime.now(UTC), by_device=True, revoke=revoke)
        except lifecycle.DeviceError as error:  # canceled meanwhile
            raise ApiError(410, "device_canceled", str(error)) from None
        event.details["said"] = reason
        append(connection, [event])
    return jsonify({"deviceId": row.id, "status": lifecycle.REMOVED,
                    "certificatesRevoked": revoke})


@blueprint.post("/<id:device_id>/unlock/confirm")
def confirm_unlock(device_id: int) -> Any:
    row = usable(device_id)
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(
            isinstance(body.get(field), str) and 0 < len(body[field]) <= 64
            for field in ("challenge", "response")):
        raise ApiError(400, "malformed", "the body must be {\"challenge\": ..., "
                                         "\"response\": ...}")
    now = datetime.now(UTC)
    with write_transaction(get_engine()) as connection:
        try:
            event = lifecycle.confirm_unlock(connection, master_key(), row, body["challenge"],
                                             body["response"], now=now)
            refusal = None
        except lifecycle.DeviceError as error:
            refusal = str(error)
            event = lifecycle.device_event(
                f"{row.person_name} (device {row.serial_number})", "device-unlock-reject",
                row, challenge=body["challenge"][:64], reason=refusal)
        append(connection, [event])
    if refusal is not None:
        raise ApiError(403, "unlock_refused", refusal)
    return jsonify({"deviceId": row.id, "unlocked": True})
