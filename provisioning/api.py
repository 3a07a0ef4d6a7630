"""The devices API for operators and external systems, authenticated by API keys.

    GET  /api/v1/devices                        devices the key's person may act on
    GET  /api/v1/devices/<id>                   one device and its certificates
    POST /api/v1/devices/<id>/cancel            {"reason"}: revoke every certificate
    POST /api/v1/devices/<id>/disable           put its certificates on hold
    POST /api/v1/devices/<id>/enable            lift the hold
    POST /api/v1/devices/<id>/unlock-code       {"challenge"} -> {"response"}
    POST /api/v1/devices/<id>/replace|renew|update   {"delivery", "reason"}: a new request;
                                                replace cancels the device (superseded)

`Authorization: Bearer <API key>` (`mimctl apikey create --person P`); only the key's SHA-256
is stored. The person's roles decide (reconciler/db/operators.py): a refusal — no role with
the workflow, a scope that does not reach the device's owner, a role missing from the
profile — is 403 `not_permitted`, audited with what was missing. Lists show only the devices
the person's scope reaches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, g, jsonify, request
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from provisioning.db import get_engine, master_key, write_transaction
from provisioning.errors import ApiError
from provisioning.links import aware
from reconciler.db import devices as lifecycle
from reconciler.db import operators
from reconciler.db.audit import AuditEvent, append
from reconciler.db.models import api_keys

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

KEY_PREFIX = "mimk_"


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@blueprint.before_request
def authenticate() -> None:
    """Every /api/v1 request needs a live API key; each use is recorded.

    A key that is unknown or revoked is refused (401) and the attempt audited, naming the
    revoked key's id or, for an unknown one, the first characters of its SHA-256 (never the
    key), so repeated guesses show up together; so is a key whose person is no longer enabled
    (403). A live key's `last_used_at` is moved on; what it was used for is audited by the
    route: a read, an operation, or its refusal.
    """
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(KEY_PREFIX):
        raise _unauthorized()
    digest, now = key_hash(secret), datetime.now(UTC)
    refusal: ApiError | None = None
    with write_transaction(get_engine()) as connection:
        row = connection.execute(select(api_keys).where(api_keys.c.key_hash == digest)).first()
        where = {"method": request.method, "path": request.path}
        if row is None:
            refusal = _unauthorized()
            append(connection, [AuditEvent("anonymous", "api-key-refused", None, None, {
                "key": digest[:12], "reason": "unknown key", **where})], now)
        else:
            actor = f"{row.person_name} (api key {row.id})"
            if row.revoked_at is not None:
                refusal = _unauthorized()
                append(connection, [AuditEvent(actor, "api-key-refused", "Person",
                                               row.person_name, {"apiKey": row.id,
                                               "reason": "revoked key", **where})], now)
            else:
                connection.execute(update(api_keys).where(api_keys.c.id == row.id)
                                   .values(last_used_at=now))
                try:
                    g.api_operator, g.api_actor = (
                        operators.load_operator(connection, row.person_name), actor)
                except operators.NotPermitted as error:
                    refusal = ApiError(403, "not_permitted", str(error))
                    append(connection, [AuditEvent(actor, "api-reject", "Person",
                                                   row.person_name, {"apiKey": row.id,
                                                   "reason": str(error), **where})], now)
    if refusal is not None:
        raise refusal


def _unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "a valid API key is needed "
                    "(Authorization: Bearer mimk_...)",
                    headers={"WWW-Authenticate": 'Bearer realm="mimctl api"'})


def _caller() -> tuple[operators.Operator, str]:
    """The operator behind the request's API key (see `authenticate`), and how the audit log
    names them: "bob (api key 2)"."""
    return g.api_operator, g.api_actor


def _device(connection: Connection, device_id: int) -> Any:
    try:
        return lifecycle.find(connection, device_id)
    except lifecycle.DeviceError:
        raise ApiError(404, "unknown_device", f"no device {device_id}") from None


def _device_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "person": row.person_name, "profile": row.profile_name,
            "status": row.status, "serialNumber": row.serial_number, "platform": row.platform,
            "model": row.model, "mdmDeviceId": row.mdm_device_id}


def _certificate_json(row: Any) -> dict[str, Any]:
    return {"authority": row.authority_name, "serialNumber": row.serial_number,
            "policy": row.policy_name, "subject": row.subject, "status": row.status,
            "revocationReason": row.revocation_reason,
            "notAfter": aware(row.not_after).isoformat() if row.not_after else None}


@blueprint.get("/devices")
def list_devices() -> Any:
    person, status = request.args.get("person"), request.args.get("status")
    with write_transaction(get_engine()) as connection:
        operator, actor = _caller()
        rows = lifecycle.listed(connection, person=person, status=status)
        seen = operators.visible(connection, operator, rows)
        append(connection, [AuditEvent(actor, "api-read", "Device", None, {
            "operation": "list", "person": person, "status": status,
            "devices": [row.id for row in seen]})])
    return jsonify({"devices": [_device_json(row) for row in seen]})


@blueprint.get("/devices/<id:device_id>")
def show_device(device_id: int) -> Any:
    with write_transaction(get_engine()) as connection:
        operator, actor = _caller()
        device = _device(connection, device_id)
        refusal = None
        if not operators.sees(connection, operator, device):
            refusal = (f"the scope of {operator.name}'s roles does not reach "
                       f"{device.person_name}")
            append(connection, [lifecycle.device_event(actor, "api-reject", device,
                                                       operation="show", reason=refusal)])
        else:
            issued = lifecycle.certificates_of(connection, device_id)
            append(connection, [lifecycle.device_event(
                actor, "api-read", device, operation="show",
                certificates=[row.serial_number for row in issued])])
    if refusal is not None:
        raise ApiError(403, "not_permitted", refusal, operation="show")
    return jsonify({**_device_json(device),
                    "certificates": [_certificate_json(row) for row in issued]})


def _operate(device_id: int, operation: str,
             act: Callable[[Connection, str, datetime], tuple[AuditEvent, dict[str, Any]]]
             ) -> Any:
    """Check the caller may do `operation`, do it and audit it, in one transaction."""
    with write_transaction(get_engine()) as connection:
        operator, actor = _caller()
        device = _device(connection, device_id)
        try:
            role = operators.check(connection, operator, operation, device)
        except operators.NotPermitted as error:
            refusal = str(error)
            append(connection, [lifecycle.device_event(actor, "api-reject", device,
                                                       operation=operation, reason=refusal)])
        else:
            refusal = None
            try:
                event, answer = act(connection, actor, datetime.now(UTC))
            except lifecycle.DeviceError as error:
                raise ApiError(409, "device_state", str(error)) from None
            event.details["role"] = role
            append(connection, [event])
    if refusal is not None:
        raise ApiError(403, "not_permitted", refusal, operation=operation)
    return jsonify(answer)


def _json() -> dict[str, Any]:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else {}


@blueprint.post("/devices/<id:device_id>/cancel")
def cancel_device(device_id: int) -> Any:
    reason = _json().get("reason", "unspecified")
    if reason not in lifecycle.REASONS:
        raise ApiError(400, "malformed", f"reason must be one of {', '.join(lifecycle.REASONS)}",
                       field="reason")
    return _operate(device_id, "cancel", lambda connection, actor, now: (
        lifecycle.cancel(connection, device_id, reason=reason, actor=actor, now=now),
        {"deviceId": device_id, "status": lifecycle.CANCELED}))


@blueprint.post("/devices/<id:device_id>/disable")
def disable_device(device_id: int) -> Any:
    return _operate(device_id, "disable", lambda connection, actor, now: (
        lifecycle.disable(connection, device_id, actor=actor, now=now),
        {"deviceId": device_id, "status": lifecycle.DISABLED}))


@blueprint.post("/devices/<id:device_id>/enable")
def enable_device(device_id: int) -> Any:
    return _operate(device_id, "enable", lambda connection, actor, now: (
        lifecycle.enable(connection, device_id, actor=actor, now=now),
        {"deviceId": device_id, "status": lifecycle.ACTIVE}))


@blueprint.post("/devices/<id:device_id>/unlock-code")
def request_unlock_code(device_id: int) -> Any:
    challenge = _json().get("challenge")
    try:
        lifecycle.normalize_challenge(challenge if isinstance(challenge, str) else "")
    except lifecycle.DeviceError as error:
        raise ApiError(400, "malformed", str(error), field="challenge") from None

    def act(connection: Connection, actor: str, now: datetime
            ) -> tuple[AuditEvent, dict[str, Any]]:
        code, event = lifecycle.unlock_code(connection, master_key(), device_id, challenge,
                                            actor=actor, now=now)
        return event, {"deviceId": device_id, "response": code}

    return _operate(device_id, "unlock-code", act)


DELIVERIES = ("Email", "Sms", "QrCode", "ShowCode")
KINDS = {"replace": "Replace", "renew": "Renew", "update": "Update"}


def _delivery_and_reason(body: dict[str, Any]) -> tuple[str, str | None]:
    """A new request's delivery (default Email) and reason, or 400."""
    delivery, reason = body.get("delivery", "Email"), body.get("reason")
    if delivery not in DELIVERIES:
        raise ApiError(400, "malformed", f"delivery must be one of {', '.join(DELIVERIES)}",
                       field="delivery")
    if reason is not None and (not isinstance(reason, str) or len(reason) > 500):
        raise ApiError(400, "malformed", "reason must be text of at most 500 characters",
                       field="reason")
    return str(delivery), reason


@blueprint.post("/devices/<id:device_id>/<any(replace, renew, update):operation>")
def request_for_device(device_id: int, operation: str) -> Any:
    """Open a request for a device: its replacement (the old one is canceled), renewal or
    update (new certificates onto the same phone, which collects with its device token)."""
    delivery, reason = _delivery_and_reason(_json())

    def act(connection: Connection, actor: str, now: datetime
            ) -> tuple[AuditEvent, dict[str, Any]]:
        from reconciler.db import jobs

        device = lifecycle.find(connection, device_id)
        if device.status != lifecycle.ACTIVE:
            raise lifecycle.DeviceError(f"device {device_id} is {device.status}; only an "
                                        f"active device can be {operation}d")
        try:
            name, events = jobs.open_operator_request(
                connection, master_key(), person=device.person_name,
                profile=device.profile_name, kind=KINDS[operation],
                device_serial=device.serial_number, delivery=delivery, requested_by=actor,
                reason=reason, now=now)
        except jobs.JobError as error:
            raise ApiError(409, "request_refused", str(error)) from None
        append(connection, events[:-1])  # a replacement's cancel; the request-open is `event`
        job = jobs.latest_job(connection, name)
        return events[-1], {"deviceId": device_id, "request": name, "status": job.status}

    return _operate(device_id, operation, act)


@blueprint.post("/requests")
def request_mobile_id() -> Any:
    """Request a mobile ID for a person, as applying a MobileRequest would (Request ID)."""
    from reconciler.db import jobs
    from reconciler.db.models import KIND_TABLES

    body = _json()
    person, profile = body.get("person"), body.get("profile")
    for field, value in (("person", person), ("profile", profile)):
        if not isinstance(value, str) or not value or len(value) > 128:
            raise ApiError(400, "malformed", f"{field} must be a name", field=field)
    delivery, reason = _delivery_and_reason(body)
    with write_transaction(get_engine()) as connection:
        operator, actor = _caller()
        for kind, name in (("Person", person), ("CredentialProfile", profile)):
            table = KIND_TABLES[kind].table
            if connection.execute(select(table.c.id).where(table.c.name == name)).first() \
                    is None:
                raise ApiError(404, f"unknown_{kind.lower()}", f"no {kind} {name!r}")
        try:
            role = operators.check_request(connection, operator, str(person), str(profile))
        except operators.NotPermitted as error:
            refusal = str(error)
            append(connection, [AuditEvent(actor, "api-reject", "Person", str(person), {
                "operation": "request", "profile": profile, "reason": refusal})])
        else:
            refusal = None
            try:
                name, events = jobs.open_operator_request(
                    connection, master_key(), person=str(person), profile=str(profile),
                    kind="Issue", device_serial=None, delivery=delivery, requested_by=actor,
                    reason=reason, now=datetime.now(UTC))
            except jobs.JobError as error:
                raise ApiError(409, "request_refused", str(error)) from None
            events[-1].details["role"] = role
            append(connection, events)
            status = jobs.latest_job(connection, name).status
    if refusal is not None:
        raise ApiError(403, "not_permitted", refusal, operation="request")
    return jsonify({"request": name, "person": person, "profile": profile,
                    "status": status}), 201
