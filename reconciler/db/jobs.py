"""Request jobs: what applying a MobileRequest sets in motion, until collection or cancelation.

A job is opened in the transaction that applies its request: a collection token, an expiry,
and — unless the profile wants a second person to validate it first — the authentication code,
kept only as a keyed hash, and the notifications, written to the outbox. A code meant to be
shown to the operator (ShowCode, or scheme None) is also kept under the master key until it is
shown once. States:

    awaiting-validation -> pending -> collected        (locked: too many wrong codes)
                 \\------------\\---> canceled

Everything here is bulk: one query per table for any number of requests.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.engine import Connection

from reconciler.db import codes, notices, outbox, vault
from reconciler.db.audit import AuditEvent
from reconciler.db.models import KIND_TABLES, certificates, devices, request_jobs
from reconciler.db.models import outbox as outbox_rows
from reconciler.errors import MimError
from specs.mobile_request import channels

AWAITING, PENDING, LOCKED = "awaiting-validation", "pending", "locked"
COLLECTED, CANCELED = "collected", "canceled"
OPEN_STATES = (AWAITING, PENDING, LOCKED)
DEFAULT_LIFETIME_DAYS = 7
DEFAULT_COMPLEXITY = "06-08N"
CHUNK = 500


class JobError(MimError):
    """A request that cannot be opened, validated or shown as asked."""


@dataclass(frozen=True, slots=True)
class NewRequest:
    """A MobileRequest being applied: its name and canonical spec (camelCase)."""

    name: str
    spec: dict[str, Any]


def _chunks(values: list[Any]) -> Iterator[list[Any]]:
    for start in range(0, len(values), CHUNK):
        yield values[start:start + CHUNK]


def _documents(connection: Connection, kind: str, names: Iterable[str] | None = None
               ) -> dict[str, dict[str, Any]]:
    """{name: spec} of configuration rows (all of the kind, or those named)."""
    table = KIND_TABLES[kind].table
    query = select(table.c.name, table.c.document)
    if names is None:
        return {row.name: row.document["spec"] for row in connection.execute(query)}
    found = {}
    for chunk in _chunks(sorted(set(names))):
        found.update({row.name: row.document["spec"]
                      for row in connection.execute(query.where(table.c.name.in_(chunk)))})
    return found


def _people(connection: Connection, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """{name: person spec}, the promoted columns (the truth) laid over the document."""
    table = KIND_TABLES["Person"].table
    promoted = KIND_TABLES["Person"].promoted
    people = {}
    for chunk in _chunks(sorted(set(names))):
        rows = connection.execute(select(table).where(table.c.name.in_(chunk)))
        for row in rows:
            spec = dict(row.document["spec"])
            spec.update({path[-1]: getattr(row, column) for column, path in promoted.items()})
            people[row.name] = spec
    return people


@dataclass(slots=True)
class _Config:
    """What opening jobs reads: Settings, profiles, people, systems — once per apply."""

    settings: dict[str, Any]
    profiles: dict[str, dict[str, Any]]
    people: dict[str, dict[str, Any]]
    carriers: notices.Carriers
    known_devices: dict[str, str] = field(default_factory=dict)  # Device name -> serial

    @classmethod
    def load(cls, connection: Connection, profiles: Iterable[str], people: Iterable[str]
             ) -> _Config:
        settings = next(iter(_documents(connection, "Settings").values()), {})
        systems = _documents(connection, "ExternalSystem")
        known = {name: spec["serialNumber"]
                 for name, spec in _documents(connection, "Device").items()}
        return cls(settings, _documents(connection, "CredentialProfile", profiles),
                   _people(connection, people), notices.Carriers.from_config(settings, systems),
                   known)

    @property
    def lifetime(self) -> timedelta:
        days = self.settings.get("requests", {}).get("codeLifetimeDays", DEFAULT_LIFETIME_DAYS)
        return timedelta(days=days)

    @property
    def complexity(self) -> str:
        return self.settings.get("certificates", {}).get(
            "certificateRecoveryPasswordComplexity", DEFAULT_COMPLEXITY)

    @property
    def base_url(self) -> str:
        url = self.settings.get("certificates", {}).get("mobileCertificateRecoveryServiceUrl")
        if not url:
            raise JobError("Settings certificates.mobileCertificateRecoveryServiceUrl is not "
                           "set: collection links cannot be made")
        return str(url)


def _code_channels(config: _Config, job: dict[str, Any]) -> tuple[str, frozenset[str]]:
    profile = config.profiles[job["profile_name"]]
    scheme = profile.get("issuance", {}).get("notificationScheme", "Default")
    link, code = channels(scheme, job["delivery"])
    person = config.people[job["person_name"]]
    if scheme == "Default" and job["delivery"] == "Email" and not person.get("cell"):
        code = code - {"sms"}  # Default texts the code only to people with a cell number
    return link, code


# ---------------------------------------------------------------------------------------------
# Opening

def open_jobs(connection: Connection, key: vault.MasterKey, requests: list[NewRequest],
              request_ids: dict[str, int], *, actor: str, now: datetime) -> list[AuditEvent]:
    """Open a job for each request applied (in the apply's transaction); returns audit events."""
    if not requests:
        return []
    config = _Config.load(connection, {r.spec["credentialProfile"] for r in requests},
                          {r.spec["person"] for r in requests})
    targets = _target_devices(connection, config, requests)
    rows = []
    for request in requests:
        spec = request.spec
        profile = config.profiles[spec["credentialProfile"]]
        validating = bool(profile.get("issuance", {}).get("validateIssuance"))
        rows.append({
            "request_id": request_ids[request.name], "request_name": request.name,
            "person_name": spec["person"], "profile_name": spec["credentialProfile"],
            "kind": spec["kind"], "status": AWAITING if validating else PENDING,
            "delivery": spec["delivery"], "device_id": targets.get(request.name),
            "token": secrets.token_urlsafe(32), "code_attempts": 0,
            "expires_at": now + config.lifetime, "requested_by": spec.get("requestedBy") or actor,
            "reason": spec.get("reason"), "created_at": now, "updated_at": now})
    inserted = connection.execute(request_jobs.insert().returning(
        request_jobs.c.id, request_jobs.c.token), rows).all()
    ids = {token: job_id for job_id, token in inserted}
    for row in rows:
        row["id"] = ids[row["token"]]
    events = _replace_devices(connection, [r for r in rows if r["kind"] == "Replace"],
                              actor=actor, now=now)
    _release(connection, key, config, [r for r in rows if r["status"] == PENDING], now)
    return events + [AuditEvent(actor, "request-open", "MobileRequest", r["request_name"], {
        "job": r["id"], "person": r["person_name"], "profile": r["profile_name"],
        "request_kind": r["kind"], "delivery": r["delivery"], "status": r["status"],
        "requested_by": r["requested_by"], "expires_at": r["expires_at"].isoformat()})
        for r in rows]


def _target_devices(connection: Connection, config: _Config, requests: list[NewRequest]
                    ) -> dict[str, int]:
    """The active device each Replace/Update/Renew request is for (by Device name or serial)."""
    wanted = [r for r in requests if r.spec.get("device")]
    if not wanted:
        return {}
    people = sorted({r.spec["person"] for r in wanted})
    active: dict[tuple[str, str], int] = {}
    for chunk in _chunks(people):
        for row in connection.execute(select(devices.c.id, devices.c.person_name,
                                             devices.c.serial_number).where(
                devices.c.person_name.in_(chunk), devices.c.status == "active")):
            active[(row.person_name, row.serial_number)] = row.id
    found = {}
    for request in wanted:
        named = request.spec["device"]
        serial = config.known_devices.get(named, named)
        device_id = active.get((request.spec["person"], serial))
        if device_id is None:
            raise JobError(f"MobileRequest/{request.name}: {request.spec['person']!r} has no "
                           f"active device {named!r} (serial {serial}) to "
                           f"{request.spec['kind'].lower()}; a device exists once its mobile "
                           "ID was collected")
        found[request.name] = device_id
    return found


def _replace_devices(connection: Connection, rows: list[dict[str, Any]], *, actor: str,
                     now: datetime) -> list[AuditEvent]:
    """Replace cancels the old device and revokes its certificates (superseded)."""
    ids = [row["device_id"] for row in rows]
    if not ids:
        return []
    connection.execute(update(devices).where(devices.c.id.in_(ids)).values(
        status="canceled", updated_at=now))
    connection.execute(update(certificates).where(
        certificates.c.device_id.in_(ids), certificates.c.status != "revoked").values(
        status="revoked", revocation_reason="superseded", revoked_at=now))
    return [AuditEvent(actor, "device-cancel", "MobileRequest", row["request_name"], {
        "device": row["device_id"], "reason": "superseded", "job": row["id"]}) for row in rows]


def _release(connection: Connection, key: vault.MasterKey, config: _Config,
             rows: list[dict[str, Any]], now: datetime) -> None:
    """Make the code of pending jobs and write their notifications (link and code apart)."""
    if not rows:
        return
    pepper = codes.pepper(connection, key, now)
    messages: list[outbox.Message] = []
    updates = []
    for row in rows:
        code = codes.generate(config.complexity)
        try:
            messages += [replace(message, job_id=row["id"])
                         for message in _messages(config, row, code)]
        except notices.UndeliverableError as error:
            raise JobError(f"MobileRequest/{row['request_name']}: person "
                           f"{row['person_name']!r} {error}") from None
        shown = "shown" in _code_channels(config, row)[1]
        updates.append({"job_id": row["id"], "hash": codes.hash_code(pepper, code),
                        "sealed": key.encrypt(code.encode(), code_place(row["token"]))
                        if shown else None})
    connection.execute(update(request_jobs).where(request_jobs.c.id == bindparam("job_id"))
                       .values(code_hash=bindparam("hash"), code_sealed=bindparam("sealed"),
                               updated_at=now), updates)
    outbox.enqueue(connection, key, messages, now)


def _messages(config: _Config, row: dict[str, Any], code: str) -> list[outbox.Message]:
    link, code_by = _code_channels(config, row)
    person = config.people[row["person_name"]]
    messages = []
    if link == "email":
        url = notices.collection_url(config.base_url, row["token"])
        messages.append(notices.link_message(config.carriers, person, row["profile_name"], url,
                                             row["expires_at"]))
    return messages + notices.code_messages(config.carriers, person, code, code_by)


def code_place(token: str) -> str:
    """What a job's sealed code is bound to."""
    return f"job/{token}/code"


# ---------------------------------------------------------------------------------------------
# Canceling, validating, showing the code

def cancel_jobs(connection: Connection, names: list[str], *, actor: str, now: datetime,
                reason: str) -> list[AuditEvent]:
    """Cancel the open jobs of these requests; notifications not yet sent are withdrawn."""
    rows = []
    for chunk in _chunks(names):
        rows += connection.execute(select(request_jobs.c.id, request_jobs.c.request_name)
                                   .where(request_jobs.c.request_name.in_(chunk),
                                          request_jobs.c.status.in_(OPEN_STATES))).all()
    ids = [row.id for row in rows]
    for chunk in _chunks(ids):
        connection.execute(update(request_jobs).where(request_jobs.c.id.in_(chunk)).values(
            status=CANCELED, canceled_at=now, updated_at=now, code_sealed=None))
        connection.execute(delete(outbox_rows).where(
            outbox_rows.c.job_id.in_(chunk), outbox_rows.c.status == outbox.PENDING))
    return [AuditEvent(actor, "request-cancel", "MobileRequest", row.request_name,
                       {"job": row.id, "reason": reason}) for row in rows]


def latest_job(connection: Connection, name: str) -> Any:
    """The newest job of a request name, or JobError."""
    row = connection.execute(select(request_jobs).where(request_jobs.c.request_name == name)
                             .order_by(request_jobs.c.id.desc()).limit(1)).first()
    if row is None:
        raise JobError(f"no request {name!r}; `mimctl request list` shows them")
    return row


def validate(connection: Connection, key: vault.MasterKey, name: str, validator: str, *,
             now: datetime) -> AuditEvent:
    """A second person approves a request awaiting validation; its code is then released."""
    job = latest_job(connection, name)
    if job.status != AWAITING:
        raise JobError(f"request {name!r} is {job.status}, not awaiting validation")
    if validator == job.requested_by:
        raise JobError(f"{validator!r} made request {name!r} and may not validate it: another "
                       "person with Can Validate must")
    config = _Config.load(connection, [job.profile_name], [job.person_name, validator])
    person = config.people.get(validator)
    if person is None or not person.get("enabled", True):
        raise JobError(f"no enabled person {validator!r}")
    allowed = set(config.profiles[job.profile_name].get("roles", {}).get("canValidate", []))
    if not allowed & set(person.get("roles", [])):
        raise JobError(f"{validator!r} holds no role in canValidate of profile "
                       f"{job.profile_name!r} ({', '.join(sorted(allowed)) or 'none'})")
    row = dict(job._mapping)
    connection.execute(update(request_jobs).where(request_jobs.c.id == job.id).values(
        status=PENDING, validated_by=validator, updated_at=now))
    _release(connection, key, config, [row], now)
    return AuditEvent(validator, "request-validate", "MobileRequest", name, {"job": job.id})


def reveal_code(connection: Connection, key: vault.MasterKey, name: str) -> str:
    """The code of a request whose code is shown to the operator — once, then never again."""
    job = latest_job(connection, name)
    if job.status != PENDING:
        raise JobError(f"request {name!r} is {job.status}; its code cannot be shown")
    if job.code_sealed is None:
        raise JobError(f"the code of request {name!r} was already shown, or travels by message; "
                       "if it is lost, cancel the request and request again")
    code = key.decrypt(job.code_sealed, code_place(job.token)).decode()
    connection.execute(update(request_jobs).where(request_jobs.c.id == job.id).values(
        code_sealed=None))
    return codes.display(code)


def states(connection: Connection, request_ids: Iterable[int]) -> dict[int, str]:
    """{mobile_requests.id: status of its newest job}."""
    found: dict[int, tuple[int, str]] = {}
    for chunk in _chunks(sorted(set(request_ids))):
        for row in connection.execute(select(request_jobs.c.id, request_jobs.c.request_id,
                                             request_jobs.c.status)
                                      .where(request_jobs.c.request_id.in_(chunk))):
            if row.request_id not in found or found[row.request_id][0] < row.id:
                found[row.request_id] = (row.id, row.status)
    return {request_id: status for request_id, (_, status) in found.items()}


# ---------------------------------------------------------------------------------------------
# Requests made by operators through the API or the CLI, not through the specs

def _operator_request_errors(connection: Connection, spec: dict[str, Any]) -> list[str]:
    """What the plan-time request rules (MIM7xx) say of an operator's request."""
    from pydantic import ValidationError

    from reconciler.canonical import to_model
    from reconciler.rules.requests import operator_request_errors

    related = [to_model(kind, row.name, row.document)  # as applied, so valid
               for kind, wanted in (("Person", spec["person"]),
                                    ("CredentialProfile", spec["credentialProfile"]))
               for row in connection.execute(
                   select(KIND_TABLES[kind].table.c.name, KIND_TABLES[kind].table.c.document)
                   .where(KIND_TABLES[kind].table.c.name == wanted))]
    try:  # the request has no document name; the operator is the caller's to check
        request = to_model("MobileRequest", "operator-request", {"metadata": {}, "spec": {
            **spec, "requestedBy": None}})
    except ValidationError as error:
        return [f"the request is not valid: {error.errors()[0]['msg']}"]
    return operator_request_errors(request, related)


def open_operator_request(connection: Connection, key: vault.MasterKey, *, person: str,
                          profile: str, kind: str, device_serial: str | None,
                          delivery: str, requested_by: str, reason: str | None,
                          now: datetime) -> tuple[str, list[AuditEvent]]:
    """Open one job as applying a MobileRequest would, without a document; returns its name.

    The name says who and what (`alice-renew-20261128T101500`); the plan never shows these
    jobs, and removing nothing cancels them: `mimctl request list` does.
    """
    name = f"{person}-{kind.lower()}-{now:%Y%m%dT%H%M%S%f}"[:128]
    spec = {"person": person, "credentialProfile": profile, "kind": kind,
            "device": device_serial, "delivery": delivery, "requestedBy": requested_by,
            "reason": reason}
    errors = _operator_request_errors(connection, spec)
    if errors:
        raise JobError("; ".join(errors))
    events = open_jobs(connection, key, [NewRequest(name, spec)], {name: None},
                       actor=requested_by, now=now)
    return name, events
