"""The collection flow: a phone turns a collection link and its code into a mobile ID.

    POST /provision/v1/collect                       token, code, device facts -> a session
    POST /provision/v1/sessions/<id>/package         transport key and CSRs -> the package
    POST /provision/v1/sessions/<id>/complete        the device confirms -> it is recorded

`collect` checks, in the manual's order: the request exists and is pending (validated, if the
profile wants that), it has not expired, the code is right (constant time against the keyed
hash; each wrong code counted, the request locked after Settings' maximum), the person holds a
Can Receive and a Can Collect role of the profile, the device restriction, the MDM restriction
(through the connector), and the maximum session count, counted in the database under one lock
so that every worker and host sees the same number. Every refusal is audited and changes
nothing but the attempt counter.

`package` issues the certificates (subjects from the DN policies, never the CSR), builds the
package, signs it with the content-signing certificate and envelopes it to the device's
transport key; `complete` activates the device, fulfils the request and burns its code.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Blueprint, jsonify, request
from sqlalchemy import func, insert, null, or_, select, update
from sqlalchemy.engine import Connection, Engine

from provisioning import ca, package
from provisioning.build import Builder, confirm_renewal
from provisioning.db import get_engine, master_key, write_transaction
from provisioning.dn import DnError, load_person
from provisioning.errors import ApiError
from provisioning.items import Item, plan_items
from provisioning.links import aware, stored_settings
from provisioning.mdm import MdmError, MdmUnavailable, UnknownSystem, decide
from provisioning.mdm.restrictions import REJECTION_CODE
from reconciler.db import codes, jobs
from reconciler.db.audit import AuditEvent, append
from reconciler.db.models import KIND_TABLES, certificates, devices, request_jobs, sessions
from specs.credential_profile import CredentialProfileSpec
from specs.person import Person
from specs.settings import SettingsSpec

blueprint = Blueprint("collect", __name__, url_prefix="/provision/v1")
log = logging.getLogger(__name__)

SESSION_LOCK = 0x4D494D53  # "MIMS": serializes session admission on PostgreSQL
OPEN, PACKAGED, COMPLETED, EXPIRED = "open", "packaged", "completed", "expired"
RENEWALS = ("Renew", "Update")  # they put new certificates on an issued device
LIVE = (OPEN, PACKAGED)
MAX_FIELD = 256
PLATFORMS = ("ios", "android")


# --- Request parsing -------------------------------------------------------------------------

def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError(400, "malformed", "the body must be a JSON object "
                                         "(Content-Type: application/json)")
    return body


def _text(body: dict[str, Any], name: str, *, required: bool = True,
          limit: int = MAX_FIELD) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > limit:
        raise ApiError(400, "malformed", f"{name} must be a non-empty string of at most "
                                         f"{limit} characters", field=name)
    return value


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What the phone says about itself at collect."""

    serial_number: str
    platform: str
    model: str | None
    os_version: str | None
    mdm_device_id: str | None

    @classmethod
    def parse(cls, value: Any) -> DeviceFacts:
        if not isinstance(value, dict):
            raise ApiError(400, "malformed", "device must be an object", field="device")
        serial = _text(value, "serialNumber", limit=128)
        platform = _text(value, "platform")
        if platform not in PLATFORMS:
            raise ApiError(400, "malformed", "device.platform must be ios or android",
                           field="device.platform")
        return cls(str(serial), str(platform), _text(value, "model", required=False, limit=128),
                   _text(value, "osVersion", required=False, limit=64),
                   _text(value, "mdmDeviceId", required=False, limit=128))

    def as_json(self) -> dict[str, Any]:
        return {"serialNumber": self.serial_number, "platform": self.platform,
                "model": self.model, "osVersion": self.os_version,
                "mdmDeviceId": self.mdm_device_id}


# --- What a collect reads --------------------------------------------------------------------

def _spec(connection: Connection, kind: str, name: str) -> dict[str, Any] | None:
    table = KIND_TABLES[kind].table
    document = connection.execute(select(table.c.document).where(table.c.name == name)).scalar()
    return None if document is None else document["spec"]


def load_settings(connection: Connection) -> SettingsSpec:
    """The applied Settings, or all defaults before any Settings document is applied."""
    return stored_settings(connection) or SettingsSpec()


@dataclass(slots=True)
class Collection:
    """One collect attempt: the job, and everything its checks read, read once."""

    job: Any
    device: DeviceFacts
    settings: SettingsSpec
    profile: CredentialProfileSpec | None
    person: Person | None
    known_device: dict[str, Any] | None  # the registered Device of this serial number

    @property
    def actor(self) -> str:
        return f"{self.job.person_name} (device {self.device.serial_number})"

    def subject(self) -> dict[str, Any]:
        return {"job": self.job.id, "person": self.job.person_name,
                "profile": self.job.profile_name, "device": self.device.as_json()}

    def event(self, action: str, **details: Any) -> AuditEvent:
        return AuditEvent(self.actor, action, "MobileRequest", self.job.request_name,
                          {**self.subject(), **details})


def _load(connection: Connection, job: Any, device: DeviceFacts) -> Collection:
    profile = _spec(connection, "CredentialProfile", job.profile_name)
    known = KIND_TABLES["Device"].table
    row = connection.execute(select(known.c.document).where(
        known.c.serial_number == device.serial_number)).scalar()
    return Collection(
        job, device, load_settings(connection),
        CredentialProfileSpec.model_validate(profile) if profile is not None else None,
        load_person(connection, job.person_name), row["spec"] if row else None)


def refuse(collection: Collection, status: int, code: str, message: str, *,
           audit: dict[str, Any] | None = None, headers: dict[str, str] | None = None,
           **extra: Any) -> ApiError:
    """Audit a refused collect (in its own transaction) and return the error to raise."""
    with write_transaction(get_engine()) as connection:
        append(connection, [collection.event("collect-reject", **{
            **(audit or {}), "code": code, "status": status, "reason": message})])
    return ApiError(status, code, message, headers=headers, **extra)


# --- POST /collect ---------------------------------------------------------------------------

@blueprint.post("/collect")
def collect() -> Any:
    body = _body()
    token = str(_text(body, "token", limit=128))
    typed = str(_text(body, "authCode", limit=64))
    device = DeviceFacts.parse(body.get("device"))
    engine, key, now = get_engine(), master_key(), datetime.now(UTC)
    with engine.connect() as connection:
        job = connection.execute(select(request_jobs).where(request_jobs.c.token == token)).first()
        if job is None:
            raise ApiError(404, "unknown_request", "no request has this collection token")
        collection = _load(connection, job, device)
        pepper = codes.pepper(connection, key, now) if job.code_hash else b""
    _check_state(collection, now)
    _check_code(collection, pepper, typed, now)
    return _admit(collection, now)


def _admit(collection: Collection, now: datetime) -> Any:
    """The checks after the code, and the session: 201 with what it delivers."""
    _check_roles(collection)
    _check_device(collection)
    _check_renewed_device(collection)
    decision = _check_mdm(collection)
    session_id, expires_at, items = _open_session(collection, now, decision)
    return jsonify({"sessionId": session_id, "expiresAt": expires_at.isoformat(),
                    "certificates": [item.as_json() for item in items]}), 201


@blueprint.post("/devices/<id:device_id>/collect")
def collect_renewal(device_id: int) -> Any:
    """A renewal or update of an issued device, which proves itself with its device token."""
    from provisioning.devices import usable

    issued = usable(device_id)
    body = _body()
    device = DeviceFacts.parse(body.get("device"))
    now = datetime.now(UTC)
    with get_engine().connect() as connection:
        job = connection.execute(select(request_jobs).where(
            request_jobs.c.device_id == device_id, request_jobs.c.kind.in_(RENEWALS),
            request_jobs.c.status.in_((jobs.PENDING, jobs.AWAITING)))
            .order_by(request_jobs.c.id.desc()).limit(1)).first()
        if job is None:
            raise ApiError(404, "no_renewal", f"no renewal or update of device {issued.id} "
                                              "is pending")
        collection = _load(connection, job, device)
    _check_state(collection, now)
    return _admit(collection, now)


def _check_renewed_device(collection: Collection) -> None:
    """A renewal or update reaches the device it is for, not another phone."""
    job = collection.job
    if job.kind not in RENEWALS or job.device_id is None:
        return
    with get_engine().connect() as connection:
        serial = connection.execute(select(devices.c.serial_number).where(
            devices.c.id == job.device_id)).scalar()
    if serial != collection.device.serial_number:
        raise refuse(collection, 403, "wrong_device", f"this {job.kind.lower()} is for device "
                     f"{job.device_id}, not for {collection.device.serial_number}")


def _check_state(collection: Collection, now: datetime) -> None:
    job = collection.job
    if job.status == jobs.AWAITING:
        raise refuse(collection, 403, "awaiting_validation",
                     "this request waits for a second person to validate it")
    if job.status == jobs.CANCELED:
        raise refuse(collection, 410, "canceled", "this request was canceled")
    if job.status == jobs.COLLECTED:
        raise refuse(collection, 409, "already_collected",
                     "this mobile ID was already collected; the code cannot be used again")
    if job.status == jobs.LOCKED:
        raise refuse(collection, 423, "locked", "too many wrong authentication codes: this "
                     "request is locked; ask for a new one")
    if job.expires_at is not None and aware(job.expires_at) <= now:
        raise refuse(collection, 410, "expired", "this request has expired; ask for a new one")
    if job.code_hash is None:  # pending without a code: never released
        raise refuse(collection, 409, "no_code", "this request has no authentication code")


def _check_code(collection: Collection, pepper: bytes, typed: str, now: datetime) -> None:
    job = collection.job
    if codes.matches(pepper, job.code_hash, typed):
        return
    limit = collection.settings.requests.max_code_attempts
    with write_transaction(get_engine()) as connection:
        attempts = connection.execute(
            update(request_jobs)
            .where(request_jobs.c.id == job.id, request_jobs.c.status == jobs.PENDING)
            .values(code_attempts=request_jobs.c.code_attempts + 1, updated_at=now)
            .returning(request_jobs.c.code_attempts)).scalar()
        if attempts is None:  # another attempt settled the request meanwhile
            status = connection.execute(select(request_jobs.c.status).where(
                request_jobs.c.id == job.id)).scalar()
            if status == jobs.LOCKED:
                raise ApiError(423, "locked", "too many wrong authentication codes: this "
                               "request is locked; ask for a new one", attemptsRemaining=0)
            raise ApiError(409, "conflict", f"the request is {status} now")
        locked = attempts >= limit
        if locked:
            connection.execute(update(request_jobs).where(request_jobs.c.id == job.id).values(
                status=jobs.LOCKED))
        append(connection, [collection.event(
            "collect-lockout" if locked else "collect-reject", code="locked" if locked
            else "wrong_code", status=423 if locked else 401, attempts=attempts)])
    if locked:
        raise ApiError(423, "locked", f"wrong authentication code {attempts} times: this "
                       "request is now locked; ask for a new one", attemptsRemaining=0)
    raise ApiError(401, "wrong_code", "the authentication code is not right",
                   attemptsRemaining=limit - attempts)


def _check_roles(collection: Collection) -> None:
    person, profile = collection.person, collection.profile
    if person is None or profile is None:
        raise refuse(collection, 410, "canceled", "the person or the credential profile of "
                     "this request no longer exists")
    if not person.spec.enabled:
        raise refuse(collection, 403, "person_disabled", f"{person.metadata.name} is disabled")
    held = set(person.spec.roles)
    for field, code, what in (("can_receive", "cannot_receive", "receive"),
                              ("can_collect", "cannot_collect", "collect")):
        allowed = getattr(profile.roles, field)
        if not held & set(allowed):
            raise refuse(collection, 403, code,
                         f"{person.metadata.name} holds no role that may {what} mobile IDs of "
                         f"profile {collection.job.profile_name}",
                         audit={"roles": sorted(held), "allowed": allowed})


def _check_device(collection: Collection) -> None:
    restriction = collection.profile.mobile_device_restrictions if collection.profile else "Any"
    known, serial = collection.known_device, collection.device.serial_number
    if known is not None and known.get("platform") != collection.device.platform \
            and restriction != "Any":
        raise refuse(collection, 403, "unknown_device",
                     f"{serial} is registered as an {known.get('platform')} device, and this "
                     f"one says it is {collection.device.platform}")
    if restriction == "KnownMobiles" and known is None:
        raise refuse(collection, 403, "unknown_device",
                     f"this profile only issues to registered devices, and {serial} is not one")
    if restriction == "MyMobilesOnly" and (known is None
                                           or known.get("owner") != collection.job.person_name):
        raise refuse(collection, 403, "not_my_device",
                     f"this profile only issues to devices registered to "
                     f"{collection.job.person_name}, and {serial} is not one")


def _check_mdm(collection: Collection) -> dict[str, Any] | None:
    restrictions = collection.profile.mdm_restrictions if collection.profile else None
    if restrictions is None or restrictions.status == "Unrestricted":
        return None
    system = restrictions.external_system or "the only enabled MDM system"
    try:
        decision = decide(get_engine(), master_key(), restrictions,
                          collection.device.mdm_device_id)
    except MdmUnavailable as error:
        retry = str(max(1, int(error.retry_after or 30)))
        raise refuse(collection, 503, "mdm_unavailable", f"the MDM {system} cannot be reached "
                     "now; try again later", headers={"Retry-After": retry},
                     audit={"system": system}) from None
    except (MdmError, UnknownSystem) as error:
        raise refuse(collection, 502, "mdm_error", f"the MDM {system} could not be asked: "
                     f"{error}", audit={"system": system}) from None
    if not decision.allowed:
        raise refuse(collection, 403, REJECTION_CODE,
                     f"the MDM restrictions of this profile refuse this device: "
                     f"{decision.condition}", audit=decision.audit_details())
    return decision.audit_details()


# --- Sessions --------------------------------------------------------------------------------

def expire_sessions(connection: Connection, now: datetime) -> None:
    """Close the sessions past their time (see `abandon`)."""
    abandon(connection, [row.id for row in connection.execute(select(sessions.c.id).where(
        sessions.c.state.in_(LIVE), sessions.c.expires_at <= now))], now, "timed out")


def sweep_sessions(engine: Engine) -> int:
    """Close the sessions past their time, if there are any; the service does this every
    notification interval, so an abandoned session's certificates do not wait for the next
    collect to be revoked. Returns how many sessions it closed."""
    now = datetime.now(UTC)
    stale = (sessions.c.state.in_(LIVE), sessions.c.expires_at <= now)
    with engine.connect() as connection:  # a read first: no write lock while there is nothing
        if connection.execute(select(func.count()).select_from(sessions).where(*stale)
                              ).scalar_one() == 0:
            return 0
    with write_transaction(engine, lock=SESSION_LOCK) as connection:
        ids = [row.id for row in connection.execute(select(sessions.c.id).where(*stale))]
        abandon(connection, ids, now, "timed out")
    return len(ids)


def abandon(connection: Connection, session_ids: list[str], now: datetime, why: str) -> None:
    """End sessions that the device never confirmed: the certificates they issued are revoked
    (they never reached a confirmed device) and audited, a new device they made is marked
    abandoned, and a renewal's pending token and unlock key are dropped, so its device stays
    as it was.

    The sessions are claimed first, by a conditional update: one that a concurrent `complete`
    confirmed (or this one's caller raced with) is left alone, and a concurrent package of one
    of them has committed before its certificates are read.
    """
    if not session_ids:
        return
    ended = [row.id for row in connection.execute(
        update(sessions).where(sessions.c.id.in_(session_ids), sessions.c.state.in_(LIVE))
        .values(state=EXPIRED, renewal=null()).returning(sessions.c.id))]
    if not ended:
        return
    left = [row.id for row in connection.execute(
        update(devices).where(devices.c.session_id.in_(ended),
                              devices.c.status == "provisioning")
        .values(status="abandoned", updated_at=now).returning(devices.c.id))]
    # Certificates made before they recorded their session (migration 0008) go with their
    # abandoned device.
    issued = connection.execute(select(
        certificates.c.id, certificates.c.device_id, certificates.c.authority_name,
        certificates.c.serial_number, certificates.c.session_id).where(
        or_(certificates.c.session_id.in_(ended), certificates.c.device_id.in_(left)),
        certificates.c.status.in_(("good", "hold")))).all()
    if not issued:
        return
    connection.execute(update(certificates).where(
        certificates.c.id.in_([row.id for row in issued])).values(
        status="revoked", revocation_reason="cessationOfOperation", revoked_at=now))
    by_device: dict[int, list[Any]] = {}
    for row in issued:
        by_device.setdefault(row.device_id, []).append(row)
    append(connection, [AuditEvent(
        "provisioning service", "session-abandon", "Device", str(device_id), {
            "device": device_id, "why": why, "reason": "cessationOfOperation",
            "sessions": sorted({_session_ref(row.session_id) for row in rows
                                if row.session_id is not None}),
            "certificates": [{"authority": row.authority_name, "serial": row.serial_number}
                             for row in rows]})
        for device_id, rows in sorted(by_device.items())], now)


def _open_session(collection: Collection, now: datetime, decision: dict[str, Any] | None
                  ) -> tuple[str, datetime, list[Item]]:
    cap = collection.settings.identity_agent_policy.maximum_session_count
    if cap == 0:
        raise refuse(collection, 403, "issuance_disabled",
                     "mobile issuance is switched off (maximum session count 0)")
    timeout = timedelta(seconds=collection.settings.sessions.timeout_seconds)
    job = collection.job
    with write_transaction(get_engine(), lock=SESSION_LOCK) as connection:
        expire_sessions(connection, now)
        status = connection.execute(select(request_jobs.c.status).where(
            request_jobs.c.id == job.id)).scalar()
        if status != jobs.PENDING:
            raise ApiError(409, "conflict", f"the request is {status} now")
        others = (sessions.c.state.in_(LIVE), sessions.c.job_id != job.id)
        full = None  # (live sessions, seconds until the first of them ends) at the cap
        if cap > 1:  # a session of this request is replaced, so it does not count
            live = connection.execute(select(func.count()).select_from(sessions)
                                      .where(*others)).scalar_one()
            if live >= cap:
                first = connection.execute(select(func.min(sessions.c.expires_at))
                                           .where(*others)).scalar()
                wait = max(1, int((aware(first) - now).total_seconds())) if first else 30
                full = live, wait
        if full is None:  # a new collect of the same request replaces its live session
            abandon(connection, [row.id for row in connection.execute(select(sessions.c.id)
                    .where(sessions.c.job_id == job.id, sessions.c.state.in_(LIVE)))], now,
                    "the request was collected again")
            items = plan_items(connection, collection.profile, job.person_name,
                               collection.device.platform, now)
            session_id = secrets.token_urlsafe(32)
            expires_at = now + timeout
            connection.execute(insert(sessions).values(
                id=session_id, job_id=job.id, state=OPEN, device=collection.device.as_json(),
                items=[item.as_json() for item in items], expires_at=expires_at,
                device_id=job.device_id if job.kind in RENEWALS else None, created_at=now))
            append(connection, [collection.event(
                "collect-start", session=_session_ref(session_id), mdm=decision,
                certificates=[item.as_json() for item in items])])
    if full is not None:  # refused after the lock is released; the refusal is audited apart
        live, wait = full
        raise refuse(collection, 503, "session_limit", f"the service is at its maximum of {cap} "
                     "collection sessions; try again later", headers={"Retry-After": str(wait)},
                     audit={"live": live})
    return session_id, expires_at, items


def _session_ref(session_id: str) -> str:
    """How the audit log names a session without holding the bearer value itself."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


def _live_session(connection: Connection, session_id: str, now: datetime, *states: str) -> Any:
    row = connection.execute(select(sessions).where(sessions.c.id == session_id)).first()
    if row is None:
        raise ApiError(404, "unknown_session", "no collection session has this id")
    if row.state in LIVE and aware(row.expires_at) <= now or row.state == EXPIRED:
        raise ApiError(410, "session_expired", "the collection session has expired; "
                       "collect again with the same link and code")
    if row.state not in states:
        raise ApiError(409, "session_state", f"the session is {row.state}; this step is done")
    return row


# --- POST /sessions/<id>/package -------------------------------------------------------------

@blueprint.post("/sessions/<session_id>/package")
def build_package(session_id: str) -> Any:
    body = _body()
    transport_pem = str(_text(body, "transportKey", limit=16384))
    csrs = body.get("csrs", [])
    if not isinstance(csrs, list) or not all(isinstance(c, dict) for c in csrs):
        raise ApiError(400, "malformed", "csrs must be a list of {certificateId, csr}",
                       field="csrs")
    engine, key, now = get_engine(), master_key(), datetime.now(UTC)
    with engine.connect() as connection:
        session = _live_session(connection, session_id, now, OPEN)
        job = connection.execute(select(request_jobs).where(
            request_jobs.c.id == session.job_id)).first()
        try:
            builder = Builder.load(connection, key, job, session, now)
        except (ca.CaError, DnError) as error:
            log.error("package for request %s: %s", job.request_name, error)
            raise ApiError(500, "issuance_failed", str(error)) from None
    try:
        transport_key = package.load_transport_key(transport_pem)
        built = builder.build({str(c.get("certificateId")): c.get("csr") for c in csrs})
    except package.PackageError as error:
        raise ApiError(400, error.code.lower(), str(error)) from None
    except ca.CsrError as error:
        with write_transaction(engine) as connection:
            append(connection, [builder.event("package-reject", code=error.code.lower(),
                                              reason=str(error))])
        raise ApiError(400, error.code.lower(), str(error)) from None
    except (ca.CaError, DnError) as error:
        log.error("package for request %s: %s", job.request_name, error)
        raise ApiError(500, "issuance_failed", str(error)) from None
    algorithm = package.ENVELOPE_ALGORITHMS[
        builder.settings.security.envelope_transport_key_algorithm]
    with write_transaction(engine) as connection:
        state = connection.execute(select(sessions.c.state).where(
            sessions.c.id == session_id).with_for_update()).scalar()
        if state != OPEN:
            raise ApiError(409, "session_state", f"the session is {state}; this step is done")
        device_id, renewal, document = builder.record(connection, built)
        connection.execute(update(sessions).where(sessions.c.id == session_id).values(
            state=PACKAGED, device_id=device_id, renewal=renewal if renewal else null()))
        envelope = package.envelope(package.sign(document, builder.signer), transport_key,
                                    algorithm)
    return jsonify({"envelope": envelope})


# --- POST /sessions/<id>/complete ------------------------------------------------------------

@blueprint.post("/sessions/<session_id>/complete")
def complete(session_id: str) -> Any:
    engine, now = get_engine(), datetime.now(UTC)
    with write_transaction(engine) as connection:
        session = _live_session(connection, session_id, now, PACKAGED)
        # Claim it: a sweep or a second complete that got there first leaves nothing to claim.
        claimed = connection.execute(update(sessions).where(
            sessions.c.id == session_id, sessions.c.state == PACKAGED,
            sessions.c.expires_at > now).values(state=COMPLETED, renewal=null()))
        if claimed.rowcount != 1:
            raise ApiError(410, "session_expired", "the collection session has ended; "
                           "collect again with the same link and code")
        job = connection.execute(select(request_jobs).where(
            request_jobs.c.id == session.job_id)).first()
        if session.renewal is not None:
            status = connection.execute(select(devices.c.status).where(
                devices.c.id == session.device_id)).scalar()
            if status != "active":  # canceled or disabled since: its new certificates went too
                raise ApiError(409, "device_state", f"device {session.device_id} is {status} "
                               "now; the renewal cannot complete")
            confirm_renewal(connection, session, now)
        else:
            connection.execute(update(devices).where(devices.c.id == session.device_id)
                               .values(status="active", updated_at=now))
        connection.execute(update(request_jobs).where(request_jobs.c.id == job.id).values(
            status=jobs.COLLECTED, collected_at=now, code_hash=None, code_sealed=None,
            updated_at=now))
        serials = [row.serial_number for row in connection.execute(
            select(certificates.c.serial_number).where(
                certificates.c.session_id == session_id))]
        append(connection, [AuditEvent(
            f"{job.person_name} (device {session.device['serialNumber']})", "collect-complete",
            "MobileRequest", job.request_name,
            {"job": job.id, "person": job.person_name, "profile": job.profile_name,
             "device_id": session.device_id, "device": session.device,
             "certificates": serials})])
    return jsonify({"deviceId": session.device_id})


