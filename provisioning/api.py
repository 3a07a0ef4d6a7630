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
the person's scope reaches. Every call is one transaction that checks the key and its person
again, and audits either what was done or read, or the refusal (403, 404, 409) and why.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, current_app, g, jsonify, request
from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from provisioning.db import get_engine, master_key, write_transaction
from provisioning.errors import ApiError
from provisioning.links import aware
from reconciler.db import devices as lifecycle
from reconciler.db import jobs, operators
from reconciler.db.audit import AuditEvent, append
from reconciler.db.models import KIND_TABLES, api_keys, devices

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")
log = logging.getLogger(__name__)

KEY_PREFIX = "mimk_"


def key_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class RefusalThrottle:
    """At most one audit event a minute for refused keys of one kind, per process.

    Unknown keys share one budget (a caller inventing keys cannot multiply it), each revoked
    key has its own. The attempts in between go to the application log and are counted in the
    next event (`suppressed`), so the audit log stays bounded however hard it is knocked on.
    """

    def __init__(self, window: float = 60.0) -> None:
        self.window = window
        self.last: dict[str, float] = {}
        self.suppressed: dict[str, int] = {}
        self.lock = threading.Lock()

    def admit(self, ref: str) -> int | None:
        """The attempts suppressed since the last event of `ref`, or None to log only."""
        now = time.monotonic()
        with self.lock:
            if now - self.last.get(ref, -self.window) < self.window:
                self.suppressed[ref] = self.suppressed.get(ref, 0) + 1
                return None
            self.last[ref] = now
            return self.suppressed.pop(ref, 0)


def _refusals() -> RefusalThrottle:
    """The app's throttle (one per app, so one per worker process)."""
    return current_app.extensions.setdefault("mim.api_refusals", RefusalThrottle())


@blueprint.before_request
def authenticate() -> None:
    """Every /api/v1 request needs a live API key; each use is recorded.

    A key that is unknown or revoked is refused (401) and the attempt audited (see
    `RefusalThrottle`), naming the revoked key's id or, for an unknown one, the first characters
    of its SHA-256 (never the key). For a live key the route's transaction (`_audited`) checks
    it again, moves its `last_used_at` on, and audits what it was used for or the refusal.
    """
    scheme, _, secret = request.headers.get("Authorization", "").partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(KEY_PREFIX):
        raise _unauthorized()
    digest = key_hash(secret)
    with get_engine().connect() as connection:  # a live key costs a read; the call writes
        row = connection.execute(select(api_keys).where(api_keys.c.key_hash == digest)).first()
    if row is None or row.revoked_at is not None:
        ref = "unknown" if row is None else f"key {row.id}"
        suppressed = _refusals().admit(ref)
        log.warning("api: refused %s (%s %s)%s", "an unknown key" if row is None else
                    f"revoked api key {row.id}", request.method, request.path,
                    "" if suppressed is not None else "; not audited (throttled)")
        if suppressed is not None:
            details = ({"key": digest[:12], "reason": "unknown key"} if row is None else
                       {"apiKey": row.id, "reason": "revoked key"})
            with write_transaction(get_engine()) as connection:
                append(connection, [AuditEvent(
                    "anonymous" if row is None else f"{row.person_name} (api key {row.id})",
                    "api-key-refused", None if row is None else "Person",
                    None if row is None else row.person_name,
                    {**details, "method": request.method, "path": request.path,
                     "suppressed": suppressed})])
        raise _unauthorized()
    g.api_key_id, g.api_person = row.id, row.person_name
    g.api_actor = f"{row.person_name} (api key {row.id})"


def _unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "a valid API key is needed "
                    "(Authorization: Bearer mimk_...)",
                    headers={"WWW-Authenticate": 'Bearer realm="mimctl api"'})


@dataclass(frozen=True, slots=True)
class Call:
    """An authenticated call inside its transaction: who makes it, as the audit log names them."""

    connection: Connection
    operator: operators.Operator
    actor: str


@contextmanager
def _audited(operation: str, device_id: int | None = None, *, kind: str | None = None,
             name: str | None = None, **context: Any) -> Iterator[Call]:
    """One transaction for a call: the key and the person checked again inside it, the work,
    and its audit event. A refusal raised in the block (ApiError) undoes the block's writes,
    is audited as `api-reject` with what was refused and why, and is raised once that is
    committed."""
    refusal: ApiError | None = None
    with write_transaction(get_engine()) as connection:
        live = connection.execute(update(api_keys).where(
            api_keys.c.id == g.api_key_id, api_keys.c.revoked_at.is_(None))
            .values(last_used_at=datetime.now(UTC)))
        if live.rowcount != 1:  # revoked since `authenticate` looked
            raise _unauthorized()
        work = connection.begin_nested()
        try:
            try:
                operator = operators.load_operator(connection, g.api_person)
            except operators.NotPermitted as error:
                raise ApiError(403, "not_permitted", str(error)) from None
            yield Call(connection, operator, g.api_actor)
            work.commit()
        except ApiError as error:
            work.rollback()
            refusal = error
            details = {"operation": operation, "status": error.status_code, "code": error.code,
                       "reason": error.message, "method": request.method,
                       "path": request.path, **context}
            device = (connection.execute(select(devices).where(devices.c.id == device_id))
                      .first() if device_id is not None else None)
            append(connection, [lifecycle.device_event(g.api_actor, "api-reject", device,
                                                       **details) if device is not None
                                else AuditEvent(g.api_actor, "api-reject", kind, name,
                                                {**details, "device": device_id})])
    if refusal is not None:
        raise refusal


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


LISTED_IDS = 1000  # a list's audit event names at most this many devices


@blueprint.get("/devices")
def list_devices() -> Any:
    person, status = request.args.get("person"), request.args.get("status")
    with _audited("list", kind="Device") as call:
        rows = lifecycle.listed(call.connection, person=person, status=status)
        seen = operators.visible(call.connection, call.operator, rows)
        append(call.connection, [AuditEvent(call.actor, "api-read", "Device", None, {
            "operation": "list", "person": person, "status": status, "count": len(seen),
            "devices": [row.id for row in seen[:LISTED_IDS]]})])
    return jsonify({"devices": [_device_json(row) for row in seen]})


@blueprint.get("/devices/<id:device_id>")
def show_device(device_id: int) -> Any:
    with _audited("show", device_id) as call:
        device = _device(call.connection, device_id)
        if not operators.sees(call.connection, call.operator, device):
            raise ApiError(403, "not_permitted", f"the scope of {call.operator.name}'s roles "
                           f"does not reach {device.person_name}", operation="show")
        issued = lifecycle.certificates_of(call.connection, device_id)
        append(call.connection, [lifecycle.device_event(
            call.actor, "api-read", device, operation="show",
            certificates=[row.serial_number for row in issued])])
    return jsonify({**_device_json(device),
                    "certificates": [_certificate_json(row) for row in issued]})


def _operate(device_id: int, operation: str,
             act: Callable[[Connection, str, datetime], tuple[AuditEvent, dict[str, Any]]]
             ) -> Any:
    """Check the caller may do `operation`, do it and audit it, in one transaction; a
    refusal (403 not permitted, 404, 409) is audited instead."""
    with _audited(operation, device_id) as call:
        device = _device(call.connection, device_id)
        try:
            role = operators.check(call.connection, call.operator, operation, device)
        except operators.NotPermitted as error:
            raise ApiError(403, "not_permitted", str(error), operation=operation) from None
        try:
            event, answer = act(call.connection, call.actor, datetime.now(UTC))
        except lifecycle.DeviceError as error:
            raise ApiError(409, "device_state", str(error)) from None
        event.details["role"] = role
        append(call.connection, [event])
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
    body = _json()
    person, profile = body.get("person"), body.get("profile")
    for field, value in (("person", person), ("profile", profile)):
        if not isinstance(value, str) or not value or len(value) > 128:
            raise ApiError(400, "malformed", f"{field} must be a name", field=field)
    delivery, reason = _delivery_and_reason(body)
    with _audited("request", kind="Person", name=str(person), profile=profile) as call:
        for kind, name in (("Person", person), ("CredentialProfile", profile)):
            table = KIND_TABLES[kind].table
            if call.connection.execute(select(table.c.id).where(table.c.name == name)
                                       ).first() is None:
                raise ApiError(404, f"unknown_{kind.lower()}", f"no {kind} {name!r}")
        try:
            role = operators.check_request(call.connection, call.operator, str(person),
                                           str(profile))
        except operators.NotPermitted as error:
            raise ApiError(403, "not_permitted", str(error), operation="request") from None
        try:
            name, events = jobs.open_operator_request(
                call.connection, master_key(), person=str(person), profile=str(profile),
                kind="Issue", device_serial=None, delivery=delivery, requested_by=call.actor,
                reason=reason, now=datetime.now(UTC))
        except jobs.JobError as error:
            raise ApiError(409, "request_refused", str(error)) from None
        events[-1].details["role"] = role
        append(call.connection, events)
        status = jobs.latest_job(call.connection, name).status
    return jsonify({"request": name, "person": person, "profile": profile,
                    "status": status}), 201
