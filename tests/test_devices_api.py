"""The devices API and unlock: API keys, roles, workflows and scope, each refusal audited.

alice's phone is collected from the real service; operators then act on it through
/api/v1 with API keys made by `mimctl apikey`, and the phone confirms an unlock with the
response an operator obtained, checked with the unlock key of its own package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from reconciler.db.models import audit_events
from tests.collect_support import code_of, deploy, finish, issuing_ca, service, token_of
from tests.device import SimulatedDevice

OPERATORS = """\
apiVersion: mim/v1
kind: Role
metadata:
  name: Engineering Helpdesk
spec:
  workflows: [Cancel Credential, Enable / Disable ID, Unlock Credential,
              Request Replacement ID, Request Device Renewal, Request Update]
  scope: Department
---
apiVersion: mim/v1
kind: Person
metadata:
  name: carol
spec:
  fullName: Carol Engineer
  group: Engineering
  roles: [Engineering Helpdesk]
---
apiVersion: mim/v1
kind: Person
metadata:
  name: dave
spec:
  fullName: Dave Elsewhere
  group: Sales
  roles: [Engineering Helpdesk]
"""


@dataclass
class World:
    """alice's collected phone, the service, and an API key per operator."""

    client: httpx.Client
    device_id: int
    device_token: str
    unlock_key: bytes
    keys: dict[str, str]

    def api(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def confirm(self, challenge: str, response: str) -> httpx.Response:
        return self.client.post(f"/provision/v1/devices/{self.device_id}/unlock/confirm",
                                headers={"Authorization": f"Bearer {self.device_token}"},
                                json={"challenge": challenge, "response": response})


def make_key(mimctl: Any, database_url: str, person: str) -> str:
    made = mimctl("--db", database_url, "apikey", "create", "--person", person, "--actor", "ops")
    assert made.exit_code == 0, made.output
    return made.output.strip().splitlines()[-1]


@pytest.fixture
def world(mimctl, engine, database_url, tmp_path):
    deploy(mimctl, database_url, tmp_path, extra=OPERATORS)
    keys = {person: make_key(mimctl, database_url, person)
            for person in ("alice", "bob", "carol", "dave")}
    with service(database_url) as client:
        device = SimulatedDevice(client)
        package = finish(device, device.collect(token_of(engine), code_of(engine)), engine)
        yield World(client, package["deviceId"], package["deviceToken"],
                    base64.b64decode(package["unlockKey"]), keys)


def refusals(engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        return [row.details for row in connection.execute(select(audit_events).where(
            audit_events.c.action.in_(["api-reject", "device-unlock-reject",
                                       "device-unlock-code-reject"])))]


def phone_response(unlock_key: bytes, challenge: str) -> str:
    """What the phone computes from its own unlock key to check an operator's response."""
    digest = hmac.new(unlock_key, b"mim-unlock-v1:" + challenge.encode(), hashlib.sha256)
    return f"{int.from_bytes(digest.digest()[:8], 'big') % 10**8:08d}"


def events(engine, action: str) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(select(audit_events).where(
            audit_events.c.action == action).order_by(audit_events.c.id)))


def test_keys_are_needed_and_revocable(world, mimctl, database_url, engine) -> None:
    assert world.api(None, "GET", "/devices").status_code == 401
    wrong = world.client.get("/api/v1/devices", headers={"Authorization": "Bearer mimk_nope"})
    assert (wrong.status_code, wrong.json()["code"]) == (401, "unauthorized")
    unknown = events(engine, "api-key-refused")
    assert [(row.actor, row.details["reason"], row.details["key"]) for row in unknown] == [
        ("anonymous", "unknown key", hashlib.sha256(b"mimk_nope").hexdigest()[:12])]
    assert "mimk_nope" not in str(unknown[0].details)
    assert world.api("bob", "GET", "/devices").json()["devices"][0]["id"] == world.device_id
    listed = mimctl("--db", database_url, "apikey", "list", "--format", "json").output
    assert world.keys["bob"] not in listed and '"person": "bob"' in listed
    used = {key["person"]: key["lastUsed"] for key in json.loads(listed)}
    assert used["bob"] is not None and used["carol"] is None
    assert mimctl("--db", database_url, "apikey", "revoke", "2", "--actor",
                  "ops").exit_code == 0  # bob's key (made second)
    assert world.api("bob", "GET", "/devices").status_code == 401
    revoked = events(engine, "api-key-refused")[-1]
    assert (revoked.actor, revoked.name, revoked.details["apiKey"], revoked.details["reason"],
            revoked.details["path"]) == ("bob (api key 2)", "bob", 2, "revoked key",
                                         "/api/v1/devices")


def test_guessing_keys_cannot_flood_the_audit_log(world, engine) -> None:
    for guess in range(5):
        refused = world.client.get("/api/v1/devices",
                                   headers={"Authorization": f"Bearer mimk_guess{guess}"})
        assert refused.status_code == 401
    [event] = events(engine, "api-key-refused")  # one a minute; the rest in the service log
    assert (event.details["key"], event.details["suppressed"]) == (
        hashlib.sha256(b"mimk_guess0").hexdigest()[:12], 0)


def test_refusals_inside_a_call_are_audited_too(world, engine) -> None:
    missing = world.api("bob", "GET", "/devices/424242")
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_device")
    twice = [world.api("bob", "POST", f"/devices/{world.device_id}/cancel",
                       json={"reason": "keyCompromise"}) for _ in range(2)]
    assert [answer.status_code for answer in twice] == [200, 409]
    rejected = events(engine, "api-reject")
    assert [(row.name, row.details["operation"], row.details["code"]) for row in rejected] == [
        (None, "show", "unknown_device"), (str(world.device_id), "cancel", "device_state")]
    assert rejected[0].details["device"] == 424242
    assert rejected[1].details["person"] == "alice"  # the device's details, as for a 403


def test_every_read_through_a_key_is_audited(world, engine) -> None:
    assert world.api("carol", "GET", "/devices").status_code == 200
    assert world.api("dave", "GET", "/devices?status=active").json()["devices"] == []
    shown = world.api("carol", "GET", f"/devices/{world.device_id}").json()
    reads = events(engine, "api-read")
    assert [(row.actor, row.details["operation"], row.details.get("devices"),
             row.details.get("status")) for row in reads] == [
        ("carol (api key 3)", "list", [world.device_id], None),
        ("dave (api key 4)", "list", [], "active"),
        ("carol (api key 3)", "show", None, None)]
    assert reads[-1].name == str(world.device_id)
    assert reads[-1].details["certificates"] == [
        certificate["serialNumber"] for certificate in shown["certificates"]]


def test_a_key_of_a_disabled_person_is_refused_and_audited(world, mimctl, database_url,
                                                            engine, tmp_path) -> None:
    deploy(mimctl, database_url, tmp_path / "again", extra=OPERATORS.replace(
        "  group: Engineering\n  roles", "  group: Engineering\n  enabled: false\n  roles"))
    refused = world.api("carol", "GET", "/devices")
    assert (refused.status_code, refused.json()["code"]) == (403, "not_permitted")
    rejection = events(engine, "api-reject")[-1]
    assert (rejection.actor, rejection.details["operation"], rejection.details["path"]) == (
        "carol (api key 3)", "list", "/api/v1/devices")
    assert "not an enabled person" in rejection.details["reason"]


def test_scope_decides_what_an_operator_sees(world) -> None:
    assert [d["id"] for d in world.api("alice", "GET", "/devices").json()["devices"]] == [
        world.device_id]  # Self: her own
    assert [d["id"] for d in world.api("carol", "GET", "/devices").json()["devices"]] == [
        world.device_id]  # Department: Engineering, like alice
    assert world.api("dave", "GET", "/devices").json()["devices"] == []  # Sales
    shown = world.api("carol", "GET", f"/devices/{world.device_id}").json()
    assert shown["status"] == "active" and len(shown["certificates"]) == 1
    missing = world.api("carol", "GET", "/devices/999")
    assert (missing.status_code, missing.json()["code"]) == (404, "unknown_device")


# Every operation, by an operator whose roles lack its workflow (alice), or whose scope does
# not reach alice (dave, Sales): 403, audited, the device untouched.
OPERATIONS = [("GET", "", None, "show"), ("POST", "/cancel", None, "cancel"),
              ("POST", "/disable", None, "disable"), ("POST", "/enable", None, "enable"),
              ("POST", "/unlock-code", {"challenge": "ABCD2345"}, "unlock-code"),
              ("POST", "/replace", None, "replace"), ("POST", "/renew", None, "renew"),
              ("POST", "/update", None, "update")]


@pytest.mark.parametrize(("method", "suffix", "body", "operation"), OPERATIONS,
                         ids=[o[3] for o in OPERATIONS])
def test_every_operation_is_refused_outside_workflow_or_scope(world, engine, method, suffix,
                                                              body, operation) -> None:
    expected = [("dave", "does not reach alice")]
    if operation != "show":  # alice may look at her own device
        expected.insert(0, ("alice", "holds no role with the"))
    for who, why in expected:
        refused = world.api(who, method, f"/devices/{world.device_id}{suffix}", json=body)
        assert (refused.status_code, refused.json()["code"]) == (403, "not_permitted"), who
        assert why in refused.json()["message"]
    assert [(r["operation"], why in r["reason"]) for r, (_, why) in
            zip(refusals(engine), expected, strict=True)] == [(operation, True)] * len(expected)
    assert world.api("bob", "GET", f"/devices/{world.device_id}").json()["status"] == "active"


def test_requesting_a_mobile_id_needs_request_id_and_can_request(world, engine) -> None:
    body = {"person": "alice", "profile": "mobile-standard", "delivery": "ShowCode"}
    for who in ("alice", "dave"):
        refused = world.api(who, "POST", "/requests", json=body)
        assert (refused.status_code, refused.json()["code"]) == (403, "not_permitted")
    assert [r["operation"] for r in refusals(engine)] == ["request", "request"]
    unknown = world.api("bob", "POST", "/requests", json={**body, "profile": "nope"})
    assert unknown.status_code == 404
    made = world.api("bob", "POST", "/requests", json=body)
    assert made.status_code == 201, made.text
    assert made.json()["status"] == "pending" and made.json()["request"].startswith("alice-issue")
    token, code = reveal(engine, made.json()["request"])
    assert SimulatedDevice(world.client, serial="SIM-NEXT").collect(token, code).status_code \
        == 201


def test_a_request_the_rules_would_refuse_is_refused_when_made(world, engine, mimctl,
                                                                database_url, tmp_path) -> None:
    """Operator requests pass the plan-time request rules (MIM7xx) as documents do."""
    carol = world.api("bob", "POST", "/requests", json={
        "person": "carol", "profile": "mobile-standard", "delivery": "Email"})
    assert (carol.status_code, carol.json()["code"]) == (409, "request_refused")
    assert "[MIM702]" in carol.json()["message"] and "[MIM705]" in carol.json()["message"]

    deploy(mimctl, database_url, tmp_path / "no-cell", extra=OPERATORS,
           edits={"people.yaml": [('  cell: "00447700900123"\n', "")]})
    by_sms = world.api("bob", "POST", f"/devices/{world.device_id}/replace",
                       json={"delivery": "Sms"})
    assert (by_sms.status_code, by_sms.json()["code"]) == (409, "request_refused")
    assert "[MIM703] delivery Sms needs a cell number" in by_sms.json()["message"]
    assert world.api("bob", "GET", f"/devices/{world.device_id}").json()["status"] == "active"
    assert [row.status for row in certificate_rows(engine)] == ["good"]  # nothing canceled
    renewed = mimctl("--db", database_url, "device", "renew", world.device_id, "--delivery",
                     "Sms", "--actor", "bob")
    assert renewed.exit_code == 1 and "[MIM703]" in renewed.output
    assert [(row.details["operation"], row.details["code"])
            for row in events(engine, "api-reject")] == [
        ("request", "request_refused"), ("replace", "request_refused")]


def test_people_with_display_names_can_be_requested_for(world, engine, mimctl, database_url,
                                                        tmp_path) -> None:
    jean = ("---\napiVersion: mim/v1\nkind: Person\nmetadata:\n  name: Jean Dupont\nspec:\n"
            "  fullName: Jean Dupont\n  email: jean@example.com\n  group: Engineering\n"
            "  roles: [PasswordUser]\n")
    deploy(mimctl, database_url, tmp_path / "jean", extra=OPERATORS + jean)
    made = world.api("bob", "POST", "/requests", json={
        "person": "Jean Dupont", "profile": "mobile-standard", "delivery": "ShowCode"})
    assert made.status_code == 201, made.text
    assert made.json()["person"] == "Jean Dupont"


def test_a_missing_workflow_is_refused_and_audited(world, engine) -> None:
    for operation in ("cancel", "disable", "unlock-code"):
        refused = world.api("alice", "POST", f"/devices/{world.device_id}/{operation}",
                            json={"challenge": "ABCD2345"})
        assert (refused.status_code, refused.json()["code"]) == (403, "not_permitted")
        assert "holds no role with the" in refused.json()["message"]
    assert [r["operation"] for r in refusals(engine)] == ["cancel", "disable", "unlock-code"]
    assert world.api("bob", "GET", f"/devices/{world.device_id}").json()["status"] == "active"


def test_disable_enable_cancel_through_the_api(world, engine) -> None:
    path = f"/devices/{world.device_id}"
    assert world.api("carol", "POST", f"{path}/disable").json()["status"] == "disabled"
    shown = world.api("carol", "GET", path).json()
    assert [c["status"] for c in shown["certificates"]] == ["hold"]
    assert world.api("carol", "POST", f"{path}/enable").json()["status"] == "active"
    bad = world.api("carol", "POST", f"{path}/cancel", json={"reason": "whatever"})
    assert bad.status_code == 400
    assert world.api("carol", "POST", f"{path}/cancel",
                     json={"reason": "keyCompromise"}).json()["status"] == "canceled"
    again = world.api("carol", "POST", f"{path}/disable")
    assert (again.status_code, again.json()["code"]) == (409, "device_state")
    with engine.connect() as connection:
        done = connection.execute(select(audit_events.c.action, audit_events.c.actor).where(
            audit_events.c.action.like("device-%"))).all()
    assert [action for action, _ in done] == ["device-disable", "device-enable", "device-cancel"]
    assert {actor for _, actor in done} == {"carol (api key 3)"}


def test_unlock_needs_can_unlock_and_is_confirmed_once(world, engine, mimctl,
                                                       database_url) -> None:
    path = f"/devices/{world.device_id}/unlock-code"
    not_unlocker = world.api("carol", "POST", path, json={"challenge": "K7Q2-M9XA"})
    assert not_unlocker.status_code == 403
    assert "canUnlock of profile mobile-standard" in not_unlocker.json()["message"]
    malformed = world.api("bob", "POST", path, json={"challenge": "!"})
    assert malformed.status_code == 400

    given = world.api("bob", "POST", path, json={"challenge": "K7Q2-M9XA"}).json()
    assert given["response"] == phone_response(world.unlock_key, "K7Q2M9XA")
    wrong = world.confirm("K7Q2M9XA", "00000000" if given["response"] != "00000000" else "1")
    assert (wrong.status_code, wrong.json()["code"]) == (403, "unlock_refused")
    assert world.confirm("K7Q2M9XA", given["response"]).json()["unlocked"] is True
    replay = world.confirm("K7Q2M9XA", given["response"])
    assert (replay.status_code, replay.json()["code"]) == (403, "unlock_refused")
    never_asked = world.confirm("ZZZZ9999", phone_response(world.unlock_key, "ZZZZ9999"))
    assert never_asked.status_code == 403  # no operator obtained it: refused

    by_cli = mimctl("--db", database_url, "device", "unlock-code", world.device_id,
                    "--challenge", "P4SS W0RD", "--operator", "bob")
    assert by_cli.exit_code == 0, by_cli.output
    code = phone_response(world.unlock_key, "P4SSW0RD")
    assert by_cli.output.strip().endswith(f"{code[:4]} {code[4:]}")
    refused = mimctl("--db", database_url, "device", "unlock-code", world.device_id,
                     "--challenge", "P4SSW0RD", "--operator", "alice")
    assert refused.exit_code == 1 and "not permitted" in refused.output
    with engine.connect() as connection:
        actions = connection.execute(select(audit_events.c.action).where(
            audit_events.c.action.like("device-unlock%"))).scalars().all()
    assert actions == ["device-unlock-code", "device-unlock-reject", "device-unlock",
                       "device-unlock-reject", "device-unlock-reject", "device-unlock-code",
                       "device-unlock-code-reject"]
    assert all(given["response"] not in str(r) for r in refusals(engine))


# --- Replace and renew ---------------------------------------------------------------------------

def certificate_rows(engine) -> list[Any]:
    from reconciler.db.models import certificates

    with engine.connect() as connection:
        return connection.execute(select(certificates).order_by(certificates.c.id)).all()


def reveal(engine, name: str) -> tuple[str, str]:
    from reconciler.db import jobs
    from tests.collect_support import KEY

    with engine.begin() as connection:
        token = jobs.latest_job(connection, name).token
        return token, jobs.reveal_code(connection, KEY, name)


def test_replace_cancels_the_device_and_opens_a_request_for_the_next_phone(world,
                                                                          engine) -> None:
    [old_certificate] = certificate_rows(engine)
    replaced = world.api("bob", "POST", f"/devices/{world.device_id}/replace",
                         json={"delivery": "ShowCode", "reason": "phone stolen"})
    assert replaced.status_code == 200, replaced.text
    opened = replaced.json()
    assert opened["status"] == "pending" and opened["request"].startswith("alice-replace-")
    assert world.api("bob", "GET", f"/devices/{world.device_id}").json()["status"] == "canceled"
    [revoked] = certificate_rows(engine)
    assert (revoked.id, revoked.status, revoked.revocation_reason) == (
        old_certificate.id, "revoked", "superseded")

    token, code = reveal(engine, opened["request"])
    phone = SimulatedDevice(world.client, serial="SIM-NEW")
    session = phone.collect(token, code)
    assert session.status_code == 201, session.text
    sid = session.json()["sessionId"]
    assert phone.package(sid, phone.csrs(session.json()["certificates"])).status_code == 200
    assert phone.complete(sid).json()["deviceId"] != world.device_id
    refused = world.api("alice", "POST", f"/devices/{world.device_id}/replace")
    assert refused.status_code == 403  # alice may not replace devices


def test_renew_puts_new_certificates_on_the_same_phone(world, engine, mimctl,
                                                       database_url) -> None:
    [old_certificate] = certificate_rows(engine)
    renewed = mimctl("--db", database_url, "device", "renew", world.device_id, "--delivery",
                     "ShowCode", "--actor", "bob")
    assert renewed.exit_code == 0, renewed.output
    name = renewed.output.split("request ")[1].split(" ")[0]
    token, code = reveal(engine, name)
    other = SimulatedDevice(world.client, serial="SIM-OTHER").collect(token, code)
    assert (other.status_code, other.json()["code"]) == (403, "wrong_device")

    phone = SimulatedDevice(world.client)  # the same phone (SIM-0001), with its device token
    headers = {"Authorization": f"Bearer {world.device_token}"}
    session = world.client.post(f"/provision/v1/devices/{world.device_id}/collect",
                                headers=headers, json={"device": phone.facts})
    assert session.status_code == 201, session.text
    sid = session.json()["sessionId"]
    packaged = phone.package(sid, phone.csrs(session.json()["certificates"]))
    assert packaged.status_code == 200, packaged.text
    # until the phone confirms, its old token and certificate stay as they were
    assert world.client.get(f"/provision/v1/devices/{world.device_id}/status",
                            headers=headers).json()["status"] == "active"
    assert [row.status for row in certificate_rows(engine)] == ["good", "good"]
    assert phone.complete(sid).json()["deviceId"] == world.device_id

    old, new = certificate_rows(engine)
    assert (old.id, old.status, old.revocation_reason) == (old_certificate.id, "revoked",
                                                          "superseded")
    assert (new.device_id, new.status) == (world.device_id, "good")
    stale = world.client.get(f"/provision/v1/devices/{world.device_id}/status",
                             headers=headers)
    assert stale.status_code == 401  # the renewal's package carries a new device token
    renewal, _ = phone.open(packaged.json()["envelope"], [issuing_ca(engine)])
    fresh = {"Authorization": f"Bearer {renewal['deviceToken']}"}
    assert world.client.get(f"/provision/v1/devices/{world.device_id}/status",
                            headers=fresh).json()["status"] == "active"
    world.api("bob", "POST", f"/devices/{world.device_id}/unlock-code",
              json={"challenge": "RENEW2345"})
    new_key = base64.b64decode(renewal["unlockKey"])
    assert new_key != world.unlock_key
    confirmed = world.client.post(
        f"/provision/v1/devices/{world.device_id}/unlock/confirm", headers=fresh,
        json={"challenge": "RENEW2345", "response": phone_response(new_key, "RENEW2345")})
    assert confirmed.status_code == 200, confirmed.text
    none_left = world.client.post(f"/provision/v1/devices/{world.device_id}/collect",
                                  headers=headers, json={"device": phone.facts})
    assert none_left.status_code == 401


def renewal_packaged(world, engine, mimctl, database_url) -> tuple[SimulatedDevice, str]:
    """A renewal of alice's phone, collected with its device token and packaged."""
    renewed = mimctl("--db", database_url, "device", "renew", world.device_id, "--delivery",
                     "ShowCode", "--actor", "bob")
    assert renewed.exit_code == 0, renewed.output
    phone = SimulatedDevice(world.client)
    session = world.client.post(f"/provision/v1/devices/{world.device_id}/collect",
                                headers={"Authorization": f"Bearer {world.device_token}"},
                                json={"device": phone.facts}).json()
    packaged = phone.package(session["sessionId"], phone.csrs(session["certificates"]))
    assert packaged.status_code == 200, packaged.text
    return phone, session["sessionId"]


def test_an_unconfirmed_renewal_leaves_the_phone_as_it_was(world, engine, mimctl,
                                                            database_url) -> None:
    phone, first = renewal_packaged(world, engine, mimctl, database_url)
    headers = {"Authorization": f"Bearer {world.device_token}"}
    again = world.client.post(f"/provision/v1/devices/{world.device_id}/collect",
                              headers=headers, json={"device": phone.facts})
    assert again.status_code == 201, again.text  # the old token still works
    old, unconfirmed = certificate_rows(engine)
    assert (old.status, unconfirmed.status, unconfirmed.revocation_reason) == (
        "good", "revoked", "cessationOfOperation")
    assert phone.complete(first).status_code == 410
    second = again.json()["sessionId"]
    assert phone.package(second, phone.csrs(again.json()["certificates"])).status_code == 200
    assert phone.complete(second).status_code == 200
    assert [(row.status, row.revocation_reason) for row in certificate_rows(engine)] == [
        ("revoked", "superseded"), ("revoked", "cessationOfOperation"), ("good", None)]


def test_a_renewal_left_by_a_device_disabled_meanwhile_is_revoked_not_held(
        world, engine, mimctl, database_url) -> None:
    from provisioning.collect import sweep_sessions
    from reconciler.db.models import sessions

    phone, sid = renewal_packaged(world, engine, mimctl, database_url)
    assert world.api("bob", "POST", f"/devices/{world.device_id}/disable").status_code == 200
    assert [row.status for row in certificate_rows(engine)] == ["hold", "hold"]
    assert phone.complete(sid).json()["code"] == "device_state"
    with engine.begin() as connection:  # the session's time runs out
        connection.execute(sessions.update().values(expires_at=datetime.now(UTC)))
    assert sweep_sessions(engine) == 1
    assert world.api("bob", "POST", f"/devices/{world.device_id}/enable").status_code == 200
    assert [(row.status, row.revocation_reason) for row in certificate_rows(engine)] == [
        ("good", None), ("revoked", "cessationOfOperation")]  # the old one, back from hold


def test_a_renewal_of_a_device_canceled_meanwhile_does_not_complete(world, engine, mimctl,
                                                                      database_url) -> None:
    phone, sid = renewal_packaged(world, engine, mimctl, database_url)
    canceled = world.api("bob", "POST", f"/devices/{world.device_id}/cancel",
                         json={"reason": "keyCompromise"})
    assert canceled.status_code == 200, canceled.text
    refused = phone.complete(sid)
    assert (refused.status_code, refused.json()["code"]) == (409, "device_state")
    assert {row.status for row in certificate_rows(engine)} == {"revoked"}


def test_odd_input_is_refused_not_a_server_error(world) -> None:
    path = f"/devices/{world.device_id}/unlock-code"
    world.api("bob", "POST", path, json={"challenge": "QWER7890"})
    odd = world.confirm("QWER7890", "１２３４５６７８")  # full-width digits: not the response
    assert (odd.status_code, odd.json()["code"]) == (403, "unlock_refused")
    assert world.api("bob", "GET", "/devices/99999999999").status_code == 404  # beyond any id
    nul = world.client.post("/provision/v1/collect", json={
        "token": "a\u0000b", "authCode": "1", "device": {"serialNumber": "x", "platform": "ios"}})
    assert (nul.status_code, nul.json()["code"]) == (400, "malformed")
    long_serial = world.client.post("/provision/v1/collect", json={
        "token": "t", "authCode": "1", "device": {"serialNumber": "x" * 129, "platform": "ios"}})
    assert (long_serial.status_code, long_serial.json()["field"]) == (400, "serialNumber")
