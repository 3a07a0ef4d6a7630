"""Every refusal of the device API, through the real service on 127.0.0.1.

Each test applies the quickstart (changed as little as the case needs), makes one refused call
and checks the answer (HTTP status, JSON `code`), the audit event it wrote, and that it changed
nothing else: every table but audit_events reads the same before and after. A wrong code may
count an attempt (and lock the request); nothing more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select, update

from reconciler.db.models import KIND_TABLES, audit_events, certificates, request_jobs, sessions
from tests.collect_support import REQUEST, code_of, deploy, now, rows, service, token_of
from tests.conftest import EXAMPLE_SECRETS
from tests.device import SimulatedDevice, make_csr, tamper_csr
from tests.servers import entra_graph
from tests.servers.harness import closed_port_url, serve

TENANT = "4f1c1e9a-8d3b-4c4e-9a51-6f0c3c2b7d10"
CLIENT = "9b2d6c11-52a4-4f0e-8c0e-2f3a1d4b5c6e"
MDM_ID = "a1b2c3d4-0000-4000-8000-000000000001"
COLLECT_PATH = "/provision/v1/collect"


# --- Changes to the quickstart ---------------------------------------------------------------

def settings(yaml: str) -> dict[str, list[tuple[str, str]]]:
    """Settings with `yaml` (indented two spaces, under spec) added."""
    return {"settings.yaml": [("  contentSigning:\n", f"{yaml}  contentSigning:\n")]}


def profile(yaml: str) -> dict[str, list[tuple[str, str]]]:
    """The credential profile with `yaml` (indented two spaces, under spec) added."""
    return {"profiles.yaml": [("  cardFormat: Mobile\n", f"  cardFormat: Mobile\n{yaml}")]}


VALIDATING = {
    "profiles.yaml": [("    notificationScheme: None\n",
                       "    notificationScheme: None\n    validateIssuance: true\n"),
                      ("    canUnlock: [Helpdesk]\n",
                       "    canUnlock: [Helpdesk]\n    canValidate: [Helpdesk]\n")],
    "roles.yaml": [("    - Enable / Disable ID\n",
                    "    - Enable / Disable ID\n    - Validate Request\n")],
}


def device(name: str, serial: str, owner: str) -> str:
    return f"""---
apiVersion: mim/v1
kind: Device
metadata:
  name: {name}
spec:
  serialNumber: {serial}
  platform: ios
  owner: {owner}
"""


def other_request(person: str) -> str:
    """A PasswordUser and a ShowCode request for them (named `<person>-phone`), by bob."""
    return f"""---
apiVersion: mim/v1
kind: Person
metadata:
  name: {person}
spec:
  fullName: {person.title()} Example
  email: {person}@example.com
  roles: [PasswordUser]
---
apiVersion: mim/v1
kind: MobileRequest
metadata:
  name: {person}-phone
spec:
  person: {person}
  credentialProfile: mobile-standard
  requestedBy: bob
  delivery: ShowCode
"""


def intune(url: str) -> str:
    return f"""---
apiVersion: mim/v1
kind: ExternalSystem
metadata:
  name: Intune
spec:
  listenerType: Intune
  tenantId: {TENANT}
  clientId: {CLIENT}
  clientSecret: {{env: INTUNE_CLIENT_SECRET}}
  loginBaseUrl: {url}
  graphBaseUrl: {url}
"""


MDM = {
    # Intune derived credentials: no card format, no containers (rule MIM307).
    "profiles.yaml": [("  cardFormat: Mobile\n",
                       "  cardFormat: None\n  mdmRestrictions:\n    status: MustBeRegistered\n"
                       "    externalSystem: Intune\n"
                       "    requiredAttributes: complianceState=compliant\n"),
                      ("      container: System Store\n", "")],
    **settings("  auth:\n    allowUnsafeHttp: true  # the stand-in speaks http\n"),
}


# --- Deploying, collecting, and what a refusal changed ---------------------------------------

@dataclass
class Deployed:
    """The quickstart as applied, its request's link token and code, and the service."""

    root: Path
    token: str
    code: str
    client: httpx.Client

    def phone(self, serial: str = "SIM-0001", **facts: Any) -> SimulatedDevice:
        return SimulatedDevice(self.client, serial=serial, **facts)

    def collect(self, phone: SimulatedDevice | None = None, code: str | None = None) -> Any:
        return (phone or self.phone()).collect(self.token, self.code if code is None else code)


@pytest.fixture
def quickstart(mimctl, engine, database_url, tmp_path) -> Iterator[Callable[..., Deployed]]:
    """Apply the quickstart with `edits` and `extra` (tests/collect_support.py), serve it."""
    with service(database_url) as client:
        def deployed(edits: dict[str, list[tuple[str, str]]] | None = None, extra: str = "",
                     *, reveal: bool = True) -> Deployed:
            root = deploy(mimctl, database_url, tmp_path, edits=edits, extra=extra)
            return Deployed(root, token_of(engine), code_of(engine) if reveal else "1234 5678",
                            client)

        yield deployed


def reapply(mimctl, database_url: str, root: Path, *options: str) -> None:
    applied = mimctl("--db", database_url, "reconcile", "--apply", root, "--yes", *options)
    assert applied.exit_code == 0, applied.output


def last_event(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.max(audit_events.c.id))).scalar() or 0


def events_since(engine, mark: int) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(select(audit_events).where(audit_events.c.id > mark)
                                  .order_by(audit_events.c.id)).all()


@dataclass
class Refusal:
    """A refused call: its JSON body and headers, and the audit events it wrote."""

    body: dict[str, Any]
    headers: httpx.Headers
    events: list[Any]

    @property
    def event(self) -> Any:
        [event] = self.events
        return event


def refused(engine, attempt: Callable[[], Any], status: int, code: str) -> Refusal:
    """Make `attempt`, check it is refused with `status` and `code` and changed no table (but
    the audit log); returns what it answered and audited."""
    before, mark = rows(engine), last_event(engine)
    response = attempt()
    assert (response.status_code, response.json().get("code")) == (status, code), response.text
    assert response.json()["message"], response.text  # people are told why, too
    assert rows(engine) == before
    return Refusal(response.json(), response.headers, events_since(engine, mark))


def assert_rejected(refusal: Refusal, status: int, code: str,
                    action: str = "collect-reject") -> dict[str, Any]:
    """The refusal wrote one audit event of `action` for the request; returns its details."""
    event = refusal.event
    assert (event.action, event.kind, event.name) == (action, "MobileRequest", REQUEST)
    assert event.details["code"] == code
    if action != "package-reject":  # a package refusal is always 400: no status recorded
        assert event.details["status"] == status
    return event.details


def set_column(engine, table, column: str, value: Any) -> None:
    with engine.begin() as connection:
        connection.execute(update(table).values({column: value}))


def other_digits(code: str) -> str:
    """`code` with its last digit changed: a wrong code of the right shape."""
    return code[:-1] + str((int(code[-1]) + 1) % 10)


# --- Malformed calls and unknown requests ----------------------------------------------------

GOOD_DEVICE = {"serialNumber": "SIM-0001", "platform": "ios"}


def test_a_malformed_collect_is_refused_before_anything_is_read(quickstart, engine) -> None:
    deployed = quickstart()
    token, code = deployed.token, deployed.code  # a real request: still nothing may change
    bodies = {
        "not JSON": b"token=abc&authCode=123",
        "JSON but not an object": b"[1, 2]",
        "no token": {"authCode": code, "device": GOOD_DEVICE},
        "empty token": {"token": "", "authCode": code, "device": GOOD_DEVICE},
        "no code": {"token": token, "device": GOOD_DEVICE},
        "no device": {"token": token, "authCode": code},
        "platform windows": {"token": token, "authCode": code,
                             "device": {"serialNumber": "SIM-0001", "platform": "windows"}},
        "serial too long": {"token": token, "authCode": code,
                            "device": {"serialNumber": "x" * 257, "platform": "ios"}},
    }

    def post(body: Any) -> Any:
        if isinstance(body, bytes):
            return deployed.client.post(COLLECT_PATH, content=body,
                                        headers={"Content-Type": "application/json"})
        return deployed.client.post(COLLECT_PATH, json=body)

    for what, body in bodies.items():
        refusal = refused(engine, lambda body=body: post(body), 400, "malformed")
        assert refusal.events == [], what
    assert deployed.collect().status_code == 201  # the code was never counted wrong


def test_an_unknown_token_is_404(quickstart, engine) -> None:
    deployed = quickstart()
    deployed.token = deployed.token[::-1]
    refusal = refused(engine, deployed.collect, 404, "unknown_request")
    assert refusal.events == []  # there is no request to audit it against


# --- The request's state ---------------------------------------------------------------------

def test_a_request_awaiting_validation_cannot_be_collected(quickstart, engine) -> None:
    deployed = quickstart(VALIDATING, reveal=False)  # no code exists before validation
    with engine.connect() as connection:
        assert connection.execute(select(request_jobs.c.status)).scalar_one() \
            == "awaiting-validation"
    refusal = refused(engine, deployed.collect, 403, "awaiting_validation")
    assert_rejected(refusal, 403, "awaiting_validation")


def test_a_canceled_request_is_gone(quickstart, engine, mimctl, database_url) -> None:
    deployed = quickstart()
    (deployed.root / "requests.yaml").unlink()
    reapply(mimctl, database_url, deployed.root)
    refusal = refused(engine, deployed.collect, 410, "canceled")
    assert_rejected(refusal, 410, "canceled")


def test_an_expired_request_is_gone(quickstart, engine) -> None:
    deployed = quickstart()
    set_column(engine, request_jobs, "expires_at", now() - timedelta(minutes=1))
    refusal = refused(engine, deployed.collect, 410, "expired")
    assert_rejected(refusal, 410, "expired")


# --- Wrong codes and the lock ----------------------------------------------------------------

def job_and_rest(engine) -> tuple[dict[str, Any], dict[str, Any]]:
    """The job's row as a dict, and every other table (rows(), without request_jobs)."""
    with engine.connect() as connection:
        job = connection.execute(select(request_jobs)).one()._asdict()
    rest = rows(engine, leave_out=("audit_events", "request_jobs"))
    return job, rest


def wrong_code(engine, deployed: Deployed, code: str, status: int,
               error: str) -> tuple[dict[str, Any], Any, set[str]]:
    """A collect with `code`, refused; returns the answer, the audit event and which columns
    of the job changed (no other table may change)."""
    (job, rest), mark = job_and_rest(engine), last_event(engine)
    response = deployed.collect(code=code)
    assert (response.status_code, response.json()["code"]) == (status, error), response.text
    after, rest_after = job_and_rest(engine)
    assert rest_after == rest
    [event] = events_since(engine, mark)
    return response.json(), event, {name for name, value in after.items() if job[name] != value}


def test_wrong_codes_count_down_then_lock_the_request(quickstart, engine) -> None:
    deployed = quickstart(settings("  requests:\n    maxCodeAttempts: 3\n"))
    wrong = other_digits(deployed.code)
    for attempt, remaining in ((1, 2), (2, 1)):
        body, event, changed = wrong_code(engine, deployed, wrong, 401, "wrong_code")
        assert body["attemptsRemaining"] == remaining
        assert (event.action, event.details["code"], event.details["status"],
                event.details["attempts"]) == ("collect-reject", "wrong_code", 401, attempt)
        assert changed - {"updated_at"} == {"code_attempts"}
        assert job_and_rest(engine)[0]["code_attempts"] == attempt

    body, event, locking = wrong_code(engine, deployed, wrong, 423, "locked")
    assert body["attemptsRemaining"] == 0
    assert (event.action, event.details["code"], event.details["status"],
            event.details["attempts"]) == ("collect-lockout", "locked", 423, 3)
    job = job_and_rest(engine)[0]
    assert (job["status"], job["code_attempts"]) == ("locked", 3)

    right = refused(engine, deployed.collect, 423, "locked")  # even the right code
    assert_rejected(right, 423, "locked")
    # Locking changes the status and the count, and nothing else of the request.
    assert locking - {"updated_at"} == {"code_attempts", "status"}


def test_the_code_may_be_typed_without_its_space(quickstart, engine) -> None:
    deployed = quickstart(settings("  requests:\n    maxCodeAttempts: 3\n"))
    body, _, _ = wrong_code(engine, deployed, other_digits(deployed.code.replace(" ", "")),
                            401, "wrong_code")
    assert body["attemptsRemaining"] == 2
    assert deployed.collect(code=deployed.code.replace(" ", "")).status_code == 201


# --- Who may collect -------------------------------------------------------------------------

def without_request(mimctl, database_url, deployed: Deployed, old: str, new: str) -> None:
    """Change alice while her request stays pending: the request's document is removed and
    applied with --no-prune (rules MIM705 and MIM712 judge requests in the specs only)."""
    (deployed.root / "requests.yaml").unlink()
    people = deployed.root / "people.yaml"
    text = people.read_text(encoding="utf-8")
    assert old in text
    people.write_text(text.replace(old, new, 1), encoding="utf-8")
    reapply(mimctl, database_url, deployed.root, "--no-prune")


def test_a_person_without_a_receiving_role_cannot_collect(quickstart, engine, mimctl,
                                                           database_url) -> None:
    deployed = quickstart()
    without_request(mimctl, database_url, deployed, "  roles: [PasswordUser]\n", "  roles: []\n")
    refusal = refused(engine, deployed.collect, 403, "cannot_receive")
    details = assert_rejected(refusal, 403, "cannot_receive")
    assert (details["roles"], details["allowed"]) == ([], ["PasswordUser"])


def test_a_person_without_a_collecting_role_cannot_collect(quickstart, engine) -> None:
    # Rule MIM402 keeps every receiving role in canCollect, so only a profile changed
    # outside the specs can refuse here.
    deployed = quickstart()
    table = KIND_TABLES["CredentialProfile"].table
    with engine.begin() as connection:
        document = connection.execute(select(table.c.document)).scalar_one()
        document["spec"]["roles"]["canCollect"] = ["Helpdesk"]
        connection.execute(update(table).values(document=document))
    refusal = refused(engine, deployed.collect, 403, "cannot_collect")
    details = assert_rejected(refusal, 403, "cannot_collect")
    assert (details["roles"], details["allowed"]) == (["PasswordUser"], ["Helpdesk"])


def test_a_disabled_person_cannot_collect(quickstart, engine, mimctl, database_url) -> None:
    deployed = quickstart()
    without_request(mimctl, database_url, deployed, "  roles: [PasswordUser]\n",
                    "  roles: [PasswordUser]\n  enabled: false\n")
    refusal = refused(engine, deployed.collect, 403, "person_disabled")
    assert_rejected(refusal, 403, "person_disabled")


# --- Device restrictions ---------------------------------------------------------------------

def test_known_mobiles_refuses_an_unregistered_device(quickstart, engine) -> None:
    deployed = quickstart(profile("  mobileDeviceRestrictions: KnownMobiles\n"),
                          device("alice-phone", "SIM-KNOWN", "alice"))
    refusal = refused(engine, lambda: deployed.collect(deployed.phone("SIM-UNKNOWN")), 403,
                      "unknown_device")
    details = assert_rejected(refusal, 403, "unknown_device")
    assert {key: details[key] for key in ("person", "profile", "device")} == {
        "person": "alice", "profile": "mobile-standard",
        "device": {"serialNumber": "SIM-UNKNOWN", "platform": "ios", "model": "iPhone 15",
                   "osVersion": "18.1", "mdmDeviceId": None}}
    assert "SIM-UNKNOWN is not one" in details["reason"]
    assert refusal.event.actor == "alice (device SIM-UNKNOWN)"

    other_platform = refused(
        engine, lambda: deployed.collect(deployed.phone("SIM-KNOWN", platform="android")),
        403, "unknown_device")
    assert "registered as an ios device" in assert_rejected(
        other_platform, 403, "unknown_device")["reason"]

    known = deployed.collect(deployed.phone("SIM-KNOWN"))
    assert known.status_code == 201, known.text


def test_known_mobiles_accepts_a_device_registered_to_anyone(quickstart) -> None:
    deployed = quickstart(profile("  mobileDeviceRestrictions: KnownMobiles\n"),
                          device("bob-phone", "SIM-BOB", "bob"))
    collected = deployed.collect(deployed.phone("SIM-BOB"))
    assert collected.status_code == 201, collected.text


def test_my_mobiles_only_refuses_a_device_registered_to_someone_else(quickstart,
                                                                     engine) -> None:
    deployed = quickstart(profile("  mobileDeviceRestrictions: MyMobilesOnly\n"),
                          device("bob-phone", "SIM-BOB", "bob")
                          + device("alice-phone", "SIM-ALICE", "alice"))
    for serial in ("SIM-BOB", "SIM-UNKNOWN"):
        refusal = refused(engine, lambda s=serial: deployed.collect(deployed.phone(s)), 403,
                          "not_my_device")
        assert_rejected(refusal, 403, "not_my_device")
    mine = deployed.collect(deployed.phone("SIM-ALICE"))
    assert mine.status_code == 201, mine.text


# --- MDM restrictions ------------------------------------------------------------------------

@pytest.fixture
def graph() -> Iterator[Any]:
    """The Entra ID / Intune stand-in, knowing one noncompliant and one compliant device."""
    known = [{"id": MDM_ID, "serialNumber": "SIM-0001", "complianceState": "noncompliant"},
             {"id": MDM_ID.replace("1", "2"), "serialNumber": "SIM-0002",
              "complianceState": "compliant"}]
    app = entra_graph.make_app(tenant=TENANT, client_id=CLIENT, devices=known,
                               client_secret=EXAMPLE_SECRETS["INTUNE_CLIENT_SECRET"])
    with serve(app) as running:
        yield running


def test_a_noncompliant_device_is_rest007(quickstart, engine, graph) -> None:
    deployed = quickstart(MDM, intune(graph.url))
    refusal = refused(engine, lambda: deployed.collect(deployed.phone(mdm_device_id=MDM_ID)),
                      403, "REST007")
    details = assert_rejected(refusal, 403, "REST007")
    assert {key: details[key] for key in ("identifier", "system", "mdmStatus", "condition")} == {
        "identifier": MDM_ID, "system": "Intune", "mdmStatus": "MustBeRegistered",
        "condition": "required MDM attributes not met: complianceState=compliant "
                     "(the MDM has 'noncompliant')"}
    assert any(MDM_ID in path for path in graph.paths())  # really looked up

    compliant = deployed.phone("SIM-0002", mdm_device_id=MDM_ID.replace("1", "2"))
    collected = deployed.collect(compliant)
    assert collected.status_code == 201, collected.text


def test_the_only_mdm_system_is_asked_when_the_profile_names_none(quickstart, engine,
                                                                    graph) -> None:
    # Rule MIM503 lets a profile leave externalSystem out when exactly one enabled MDM system
    # exists: "the product picks the MDM system itself".
    unnamed = {**MDM, "profiles.yaml": [(old, new.replace("    externalSystem: Intune\n", ""))
                                        for old, new in MDM["profiles.yaml"]]}
    deployed = quickstart(unnamed, intune(graph.url))
    refusal = refused(engine, lambda: deployed.collect(deployed.phone(mdm_device_id=MDM_ID)),
                      403, "REST007")
    details = assert_rejected(refusal, 403, "REST007")
    assert (details["identifier"], details["system"]) == (MDM_ID, "Intune")


def test_a_device_without_mdm_id_is_rest007(quickstart, engine, graph) -> None:
    deployed = quickstart(MDM, intune(graph.url))
    refusal = refused(engine, deployed.collect, 403, "REST007")
    details = assert_rejected(refusal, 403, "REST007")
    assert (details["identifier"], details["condition"]) == (
        None, "the device reported no MDM device id and must be registered")


def test_an_mdm_that_is_down_is_503_and_no_rejection(quickstart, engine) -> None:
    deployed = quickstart(MDM, intune(closed_port_url()))
    refusal = refused(engine, lambda: deployed.collect(deployed.phone(mdm_device_id=MDM_ID)),
                      503, "mdm_unavailable")
    assert int(refusal.headers["Retry-After"]) >= 1
    assert "REST007" not in repr([event.details for event in refusal.events])
    assert [(e.details["code"], e.details["system"]) for e in refusal.events] == [
        ("mdm_unavailable", "Intune")]


def test_an_mdm_throttling_us_passes_its_retry_after_on(quickstart, engine, graph) -> None:
    deployed = quickstart(MDM, intune(graph.url))
    graph.app.state.throttle(1, retry_after=120)  # longer than the connector waits
    refusal = refused(engine, lambda: deployed.collect(deployed.phone(mdm_device_id=MDM_ID)),
                      503, "mdm_unavailable")
    assert refusal.headers["Retry-After"] == "120"
    assert "REST007" not in repr([event.details for event in refusal.events])


def test_an_mdm_refusing_our_credentials_is_502_and_no_rejection(quickstart, engine,
                                                                   graph) -> None:
    deployed = quickstart(MDM, intune(graph.url))
    graph.app.state.client_secret = "rotated-in-entra-but-not-here"
    refusal = refused(engine, lambda: deployed.collect(deployed.phone(mdm_device_id=MDM_ID)),
                      502, "mdm_error")
    assert "REST007" not in repr([event.details for event in refusal.events])


# --- Sessions --------------------------------------------------------------------------------

def test_a_session_count_of_zero_disables_issuance(quickstart, engine) -> None:
    deployed = quickstart(settings("  identityAgentPolicy:\n    maximumSessionCount: 0\n"))
    refusal = refused(engine, deployed.collect, 403, "issuance_disabled")
    assert_rejected(refusal, 403, "issuance_disabled")


def test_past_the_session_cap_the_device_is_asked_to_come_back(quickstart, engine) -> None:
    deployed = quickstart(settings("  identityAgentPolicy:\n    maximumSessionCount: 2\n"),
                          other_request("carol") + other_request("dave"))
    for person, serial in (("carol", "SIM-C"), ("dave", "SIM-D")):
        opened = deployed.phone(serial).collect(token_of(engine, f"{person}-phone"),
                                                code_of(engine, f"{person}-phone"))
        assert opened.status_code == 201, opened.text
    refusal = refused(engine, deployed.collect, 503, "session_limit")
    assert 1 <= int(refusal.headers["Retry-After"]) <= 600  # until the first session ends
    assert_rejected(refusal, 503, "session_limit")


def test_a_collected_request_cannot_be_collected_again(quickstart, engine) -> None:
    deployed = quickstart()
    phone = deployed.phone()
    session = phone.collect(deployed.token, deployed.code).json()
    assert phone.package(session["sessionId"],
                         phone.csrs(session["certificates"])).status_code == 200
    assert phone.complete(session["sessionId"]).status_code == 200
    replay = refused(engine, lambda: deployed.collect(deployed.phone("SIM-0002")), 409,
                     "already_collected")
    assert_rejected(replay, 409, "already_collected")


# --- Package and complete --------------------------------------------------------------------

@dataclass
class Session:
    deployed: Deployed
    phone: SimulatedDevice
    id: str
    certificates: list[dict[str, Any]]

    def package(self, csrs: list[dict[str, Any]] | None = None) -> Any:
        return self.phone.package(self.id, self.phone.csrs(self.certificates)
                                  if csrs is None else csrs)


@pytest.fixture
def session(quickstart) -> Session:
    """The quickstart collected: one open session, one certificate for a device CSR."""
    deployed = quickstart()
    phone = deployed.phone()
    collected = deployed.collect(phone)
    assert collected.status_code == 201, collected.text
    body = collected.json()
    assert [c["source"] for c in body["certificates"]] == ["device"]
    return Session(deployed, phone, body["sessionId"], body["certificates"])


def issued(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(certificates)).scalar_one()


def state_of(engine) -> str:
    with engine.connect() as connection:
        return connection.execute(select(sessions.c.state)).scalar_one()


def tampered(session: Session) -> list[dict[str, Any]]:
    return [{**c, "csr": tamper_csr(c["csr"])} for c in session.phone.csrs(session.certificates)]


def elliptic(session: Session) -> list[dict[str, Any]]:
    return [{"certificateId": c["id"], "csr": make_csr(ec.generate_private_key(ec.SECP256R1()))}
            for c in session.certificates]


def unexpected(session: Session) -> list[dict[str, Any]]:
    good = session.phone.csrs(session.certificates)
    return [*good, {"certificateId": "new-9", "csr": good[0]["csr"]}]


@pytest.mark.parametrize(("make", "code"), [
    pytest.param(tampered, "csr_signature_invalid", id="tampered"),
    pytest.param(elliptic, "csr_key_not_rsa", id="ec-key"),
    pytest.param(unexpected, "csr_unexpected", id="unknown-certificate-id"),
    pytest.param(lambda session: [], "csr_missing", id="missing"),
    pytest.param(lambda session: [{"certificateId": c["id"], "csr": "not a CSR"}
                                  for c in session.certificates], "csr_malformed",
                 id="not-pem"),
])
def test_a_bad_csr_issues_nothing_and_leaves_the_session_open(session, engine, make,
                                                               code) -> None:
    refusal = refused(engine, lambda: session.package(make(session)), 400, code)
    details = assert_rejected(refusal, 400, code, action="package-reject")
    with engine.connect() as connection:
        job = connection.execute(select(request_jobs.c.id)).scalar_one()
    assert (details["job"], details["person"], details["profile"]) == (
        job, "alice", "mobile-standard")
    assert (issued(engine), state_of(engine)) == (0, "open")

    good = session.package()
    assert good.status_code == 200, good.text
    assert (issued(engine), state_of(engine)) == (1, "packaged")


def test_a_garbage_transport_key_is_refused(session, engine) -> None:
    csrs = session.phone.csrs(session.certificates)
    refused(engine, lambda: session.deployed.client.post(
        f"/provision/v1/sessions/{session.id}/package",
        json={"transportKey": "-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n",
              "csrs": csrs}), 400, "transport_key_invalid")
    assert state_of(engine) == "open"
    assert session.package(csrs).status_code == 200


def test_a_session_is_packaged_once(session, engine) -> None:
    assert session.package().status_code == 200
    refused(engine, session.package, 409, "session_state")


def test_complete_before_package_is_refused(session, engine) -> None:
    refused(engine, lambda: session.phone.complete(session.id), 409, "session_state")
    assert session.package().status_code == 200
    assert session.phone.complete(session.id).status_code == 200


def test_an_unknown_session_is_404(session, engine) -> None:
    unknown = session.id[::-1]
    refused(engine, lambda: session.phone.package(unknown, []), 404, "unknown_session")
    refused(engine, lambda: session.phone.complete(unknown), 404, "unknown_session")


def test_an_expired_session_is_gone(session, engine) -> None:
    set_column(engine, sessions, "expires_at", now() - timedelta(seconds=1))
    refused(engine, session.package, 410, "session_expired")
    refused(engine, lambda: session.phone.complete(session.id), 410, "session_expired")


def issued_states(engine) -> list[tuple[str, str | None, str | None]]:
    """Each certificate's status and reason, with its device's status."""
    from reconciler.db.models import devices

    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(
            select(certificates.c.status, certificates.c.revocation_reason, devices.c.status)
            .join(devices, devices.c.id == certificates.c.device_id)
            .order_by(certificates.c.id))]


def test_a_packaged_session_that_times_out_revokes_what_it_issued(session, engine) -> None:
    from provisioning.collect import sweep_sessions

    assert session.package().status_code == 200
    assert issued_states(engine) == [("good", None, "provisioning")]
    assert sweep_sessions(engine) == 0  # still within its time
    set_column(engine, sessions, "expires_at", now() - timedelta(seconds=1))
    assert sweep_sessions(engine) == 1  # what the service's background thread runs
    assert issued_states(engine) == [("revoked", "cessationOfOperation", "abandoned")]
    with engine.connect() as connection:
        [event] = connection.execute(select(audit_events).where(
            audit_events.c.action == "session-abandon")).all()
        serial = connection.execute(select(certificates.c.serial_number)).scalar_one()
    assert (event.actor, event.details["why"], event.details["certificates"]) == (
        "provisioning service", "timed out", [{"authority": "issuing-ca", "serial": serial}])
    again = session.deployed.collect(session.phone)  # the request itself is still pending
    assert again.status_code == 201, again.text


def test_the_running_service_closes_timed_out_sessions_by_itself(
        mimctl, engine, database_url, tmp_path) -> None:
    import time

    deploy(mimctl, database_url, tmp_path)
    with service(database_url, NOTIFY_INTERVAL=0.2) as client:
        phone = SimulatedDevice(client)
        opened = phone.collect(token_of(engine), code_of(engine)).json()
        packaged = phone.package(opened["sessionId"], phone.csrs(opened["certificates"]))
        assert packaged.status_code == 200, packaged.text
        set_column(engine, sessions, "expires_at", now() - timedelta(seconds=1))
        deadline = time.monotonic() + 20
        while issued_states(engine)[0][0] == "good" and time.monotonic() < deadline:
            time.sleep(0.05)
    assert issued_states(engine) == [("revoked", "cessationOfOperation", "abandoned")]


def test_a_sweep_and_a_complete_never_both_win(session, engine) -> None:
    """A sweep that ends a session while its complete is on the way: the complete waits for the
    sweep's transaction and is refused; nothing is left half active, half revoked."""
    import time
    from concurrent.futures import ThreadPoolExecutor

    from provisioning.collect import abandon

    assert session.package().status_code == 200
    with ThreadPoolExecutor(1) as pool:
        with engine.begin() as connection:  # the sweep, its transaction still open
            abandon(connection, [session.id], now(), "timed out")
            racing = pool.submit(session.phone.complete, session.id)
            time.sleep(0.5)
            assert not racing.done()  # waiting for the session the sweep holds
        assert racing.result(timeout=30).status_code == 410
    assert issued_states(engine) == [("revoked", "cessationOfOperation", "abandoned")]


def test_a_sweep_that_comes_late_leaves_a_completed_session_alone(session, engine) -> None:
    """The sweep picked the session while it was live, the device confirmed before the sweep
    got to it: the sweep ends nothing and revokes nothing."""
    from provisioning.collect import abandon

    assert session.package().status_code == 200
    assert session.phone.complete(session.id).status_code == 200
    with engine.begin() as connection:
        abandon(connection, [session.id], now(), "timed out")
    assert issued_states(engine) == [("good", None, "active")]
    assert state_of(engine) == "completed"


def test_a_session_packaged_before_the_upgrade_is_revoked_with_its_device(session,
                                                                           engine) -> None:
    """Certificates issued before they recorded their session (migration 0008) go with the
    abandoned device."""
    assert session.package().status_code == 200
    set_column(engine, certificates, "session_id", None)
    set_column(engine, sessions, "expires_at", now() - timedelta(seconds=1))
    from provisioning.collect import sweep_sessions

    assert sweep_sessions(engine) == 1
    assert issued_states(engine) == [("revoked", "cessationOfOperation", "abandoned")]


def test_collecting_again_abandons_the_unconfirmed_session(session, engine) -> None:
    assert session.package().status_code == 200
    again = session.deployed.collect(session.phone)  # e.g. the phone lost the package
    assert again.status_code == 201, again.text
    assert issued_states(engine) == [("revoked", "cessationOfOperation", "abandoned")]
    retry = Session(session.deployed, session.phone, again.json()["sessionId"],
                    again.json()["certificates"])
    assert retry.package().status_code == 200
    refused(engine, lambda: session.phone.complete(session.id), 410, "session_expired")
    assert session.phone.complete(retry.id).status_code == 200
    assert issued_states(engine) == [("revoked", "cessationOfOperation", "abandoned"),
                                     ("good", None, "active")]
