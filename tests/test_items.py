"""Which certificates a collection delivers (provisioning/items.py), through the real service.

The quickstart is applied with an encryption policy that archives its keys; a phone collects
(SimulatedDevice: collect, package, complete) and opens the signed package; later requests
under profiles with the same policy as UseExisting, HistoricOnly or `archived: true` then
get back what the archive holds. Archived certificates are made only by the service itself;
the tests change a stored certificate's status or end date the way a revocation or time would.
"""

from __future__ import annotations

import base64
import json
import shutil
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from sqlalchemy import select, update

from provisioning.ca import load_authority
from provisioning.items import plan_items, supports
from reconciler.db.models import certificates
from specs.credential_profile import CredentialProfileSpec
from tests.collect_support import KEY, code_of, deploy, service, token_of
from tests.conftest import EXAMPLES
from tests.device import SimulatedDevice

ENCRYPTION_POLICY = """\
apiVersion: mim/v1
kind: CertificatePolicy
metadata:
  name: mobile-encryption
spec:
  friendlyName: Mobile Encryption
  authority: issuing-ca
  keySize: 2048
  validityDays: 365
  keyUsages: [keyEncipherment]
  extendedKeyUsages: [emailProtection]
  archiveKeys: true
"""
# The quickstart profile delivers the encryption certificate too (IssueNew, key archived).
SIGNING_ENTRY = "    - policy: mobile-signing\n      container: System Store\n"
WITH_ENCRYPTION = {"profiles.yaml": [(SIGNING_ENTRY, SIGNING_ENTRY + (
    "    - policy: mobile-encryption\n      container: System Store\n"))]}


def profile(name: str, certificates_yaml: str, card_format: str = "Mobile") -> str:
    return f"""\
apiVersion: mim/v1
kind: CredentialProfile
metadata:
  name: {name}
spec:
  cardEncoding: IdentityAgent
  issuance:
    notificationScheme: None
  cardFormat: {card_format}
  certificates:
{certificates_yaml}
  roles:
    canReceive: [PasswordUser]
    canCollect: [PasswordUser]
    canRequest: [Helpdesk]
    canUnlock: [Helpdesk]
"""


def request(name: str, profile_name: str) -> str:
    return f"""\
apiVersion: mim/v1
kind: MobileRequest
metadata:
  name: {name}
spec:
  person: alice
  credentialProfile: {profile_name}
  requestedBy: bob
  delivery: ShowCode
  reason: Another phone
"""


def encryption(mode: str, archived: bool = False) -> str:
    return (f"    - policy: mobile-encryption\n      container: System Store\n"
            f"      mode: {mode}\n" + ("      archived: true\n" if archived else ""))


def documents(*texts: str) -> str:
    return "---\n".join(texts)


# A profile and a request for each way of delivering the archived encryption certificate.
RECOVERY = documents(
    ENCRYPTION_POLICY,
    profile("mobile-recover", encryption("UseExisting")),
    request("alice-recover", "mobile-recover"),
    profile("mobile-historic", encryption("HistoricOnly")),
    request("alice-historic", "mobile-historic"),
    profile("mobile-renew", encryption("IssueNew", archived=True)),
    request("alice-renew", "mobile-renew"))


# --- Driving the service -------------------------------------------------------------------------

def ca_certificate(engine: Any) -> x509.Certificate:
    with engine.connect() as connection:
        return load_authority(connection, KEY, "issuing-ca").certificate


def collect_all(client: Any, engine: Any, request_name: str, *, serial: str,
                platform: str = "ios") -> tuple[dict[str, Any], dict[str, Any]]:
    """Collect, package and complete `request_name` on a new phone: (session, package)."""
    device = SimulatedDevice(client, serial=serial, platform=platform)
    collected = device.collect(token_of(engine, request_name), code_of(engine, request_name))
    assert collected.status_code == 201, collected.text
    session = collected.json()
    packaged = device.package(session["sessionId"], device.csrs(session["certificates"]))
    assert packaged.status_code == 200, packaged.text
    completed = device.complete(session["sessionId"])
    assert completed.status_code == 200, completed.text
    opened, _ = device.open(packaged.json()["envelope"], [ca_certificate(engine)])
    return session, opened


def stored(engine: Any) -> list[Any]:
    with engine.connect() as connection:
        return connection.execute(select(certificates).order_by(certificates.c.id)).all()


def serial_of(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "x")


def recovered(entry: dict[str, Any]) -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    """A delivered certificate and the key in its PKCS#12, checked to belong together."""
    certificate = x509.load_pem_x509_certificate(entry["certificate"].encode())
    bundle = pkcs12.load_pkcs12(base64.b64decode(entry["pkcs12"]),
                                entry["pkcs12Password"].encode())
    assert bundle.cert is not None and bundle.cert.certificate == certificate
    assert isinstance(bundle.key, rsa.RSAPrivateKey)
    assert bundle.key.public_key().public_numbers() == certificate.public_key().public_numbers()
    return certificate, bundle.key


def offered(session: dict[str, Any]) -> list[tuple[str, str, str | None]]:
    return [(c["id"], c["source"], c["container"]) for c in session["certificates"]]


def first_phone(client: Any, engine: Any) -> tuple[x509.Certificate, rsa.RSAPrivateKey, Any]:
    """alice-first-phone collected: its encryption certificate, key and stored row."""
    session, opened = collect_all(client, engine, "alice-first-phone", serial="SIM-0001")
    assert {c["policy"]: c["source"] for c in session["certificates"]} == {
        "mobile-signing": "device", "mobile-encryption": "server"}
    entries = {entry["policy"]: entry for entry in opened["certificates"]}
    assert "pkcs12" not in entries["mobile-signing"]  # the phone made that key
    certificate, key = recovered(entries["mobile-encryption"])
    rows = {row.policy_name: row for row in stored(engine)}
    assert set(rows) == {"mobile-signing", "mobile-encryption"}
    assert rows["mobile-signing"].archived_key is None
    row = rows["mobile-encryption"]
    assert row.archived_key is not None and row.source == "server"
    assert row.serial_number == serial_of(certificate)
    plain = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())
    assert plain not in bytes(row.archived_key)  # archived encrypted, not as PKCS#8
    return certificate, key, row


# --- UseExisting, HistoricOnly, archived ---------------------------------------------------------

def test_use_existing_delivers_the_same_archived_certificate_and_key(mimctl, engine,
                                                                     database_url,
                                                                     tmp_path) -> None:
    deploy(mimctl, database_url, tmp_path, edits=WITH_ENCRYPTION, extra=RECOVERY)
    with service(database_url) as client:
        certificate, key, row = first_phone(client, engine)
        before = stored(engine)
        session, opened = collect_all(client, engine, "alice-recover", serial="SIM-0002")

    assert session["certificates"] == [{
        "id": f"archived-{row.id}", "policy": "mobile-encryption", "container": "System Store",
        "keyAlgorithm": "RSA", "keySize": 2048, "source": "archived"}]
    (entry,) = opened["certificates"]
    again, again_key = recovered(entry)
    assert again == certificate and again.serial_number == certificate.serial_number
    assert again_key.private_numbers() == key.private_numbers()
    assert [x509.load_pem_x509_certificate(c.encode()) for c in entry["chain"]] == [
        ca_certificate(engine)]
    assert stored(engine) == before  # nothing new issued


def make_unusable(engine: Any, row_id: int, how: str) -> None:
    """Revoke, hold or expire a stored certificate, as revocation or time would."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "revoked": {"status": "revoked", "revocation_reason": "keyCompromise", "revoked_at": now},
        "hold": {"status": "hold", "revocation_reason": "certificateHold", "revoked_at": now},
        "expired": {"not_after": now - timedelta(days=1)},
    }[how]
    with engine.begin() as connection:
        connection.execute(update(certificates).where(certificates.c.id == row_id)
                           .values(**values))


@pytest.mark.parametrize("how", ["revoked", "hold", "expired"])
def test_use_existing_issues_anew_when_the_archived_one_is_not_valid(
        how, mimctl, engine, database_url, tmp_path) -> None:
    deploy(mimctl, database_url, tmp_path, edits=WITH_ENCRYPTION, extra=RECOVERY)
    with service(database_url) as client:
        old, old_key, old_row = first_phone(client, engine)
        make_unusable(engine, old_row.id, how)
        session, opened = collect_all(client, engine, "alice-recover", serial="SIM-0002")

    assert offered(session) == [("new-0", "server", "System Store")]
    (entry,) = opened["certificates"]
    new, new_key = recovered(entry)
    assert new.serial_number != old.serial_number
    assert new_key.private_numbers() != old_key.private_numbers()
    rows = stored(engine)
    assert len(rows) == 3
    assert (rows[-1].serial_number, rows[-1].policy_name, rows[-1].archived_key is not None) \
        == (serial_of(new), "mobile-encryption", True)


def test_historic_only_delivers_every_archived_certificate_and_issues_nothing(
        mimctl, engine, database_url, tmp_path) -> None:
    deploy(mimctl, database_url, tmp_path, edits=WITH_ENCRYPTION, extra=RECOVERY)
    with service(database_url) as client:
        old, old_key, old_row = first_phone(client, engine)
        make_unusable(engine, old_row.id, "revoked")
        _, renewed = collect_all(client, engine, "alice-recover", serial="SIM-0002")
        new, new_key = recovered(renewed["certificates"][0])
        before = stored(engine)
        new_row = before[-1]
        session, opened = collect_all(client, engine, "alice-historic", serial="SIM-0003")

    # One historic item per archived certificate (the revoked one too: old mail stays
    # readable); nothing for the device to make a key for, nothing issued.
    assert sorted(offered(session)) == sorted([
        (f"historic-{old_row.id}", "historic", "System Store"),
        (f"historic-{new_row.id}", "historic", "System Store")])
    delivered = {serial_of(certificate): key for certificate, key in
                 map(recovered, opened["certificates"])}
    assert set(delivered) == {serial_of(old), serial_of(new)}
    assert delivered[serial_of(old)].private_numbers() == old_key.private_numbers()
    assert delivered[serial_of(new)].private_numbers() == new_key.private_numbers()
    assert stored(engine) == before


def test_archived_true_adds_the_other_archived_certificates(mimctl, engine, database_url,
                                                           tmp_path) -> None:
    deploy(mimctl, database_url, tmp_path, edits=WITH_ENCRYPTION, extra=RECOVERY)
    with service(database_url) as client:
        old, _, old_row = first_phone(client, engine)
        make_unusable(engine, old_row.id, "revoked")
        _, renewed = collect_all(client, engine, "alice-recover", serial="SIM-0002")
        middle, _ = recovered(renewed["certificates"][0])
        middle_row = stored(engine)[-1]
        now = datetime.now(UTC)

        # What each mode plans now, for alice's two archived certificates (newest first).
        def planned(mode: str, container: str | None = "System Store",
                    platform: str = "ios") -> list[tuple[str, str]]:
            spec = CredentialProfileSpec.model_validate({"certificates": [{
                "policy": "mobile-encryption", "container": container, "mode": mode,
                "archived": True}]})
            with engine.connect() as connection:
                return [(item.id, item.source) for item in
                        plan_items(connection, spec, "alice", platform, now)]

        assert planned("UseExisting") == [(f"archived-{middle_row.id}", "archived"),
                                          (f"historic-{old_row.id}", "historic")]
        assert planned("IssueNew") == [("new-0", "server"),
                                       (f"historic-{middle_row.id}", "historic"),
                                       (f"historic-{old_row.id}", "historic")]
        assert planned("IssueNew", container="Android Keys") == []
        both = CredentialProfileSpec.model_validate({"certificates": [
            {"policy": "mobile-encryption", "mode": "HistoricOnly"},
            {"policy": "mobile-encryption", "mode": "IssueNew", "archived": True}]})
        with engine.connect() as connection:  # each archived certificate delivered once
            assert [item.id for item in plan_items(connection, both, "alice", "ios", now)] == [
                f"historic-{middle_row.id}", f"historic-{old_row.id}", "new-1"]
        with engine.connect() as connection:
            assert plan_items(connection, None, "alice", "ios", now) == []
            assert plan_items(connection, CredentialProfileSpec.model_validate({
                "certificates": [{"policy": "mobile-encryption", "mode": "UseExisting"}]}),
                "bob", "ios", now)[0].source == "server"  # bob has no archive: a new one

        # Through the service: IssueNew with archived: true.
        session, opened = collect_all(client, engine, "alice-renew", serial="SIM-0003")

    assert offered(session) == [("new-0", "server", "System Store"),
                                (f"historic-{middle_row.id}", "historic", "System Store"),
                                (f"historic-{old_row.id}", "historic", "System Store")]
    delivered = [recovered(entry)[0] for entry in opened["certificates"]]
    assert [serial_of(c) for c in delivered[1:]] == [serial_of(middle), serial_of(old)]
    assert serial_of(delivered[0]) not in {serial_of(middle), serial_of(old)}
    rows = stored(engine)
    assert len(rows) == 4 and rows[-1].serial_number == serial_of(delivered[0])


# --- Containers and platforms --------------------------------------------------------------------

SPLIT = documents(
    ENCRYPTION_POLICY,
    """\
apiVersion: mim/v1
kind: CertificatePolicy
metadata:
  name: android-signing
spec:
  friendlyName: Android Signing
  authority: issuing-ca
  keySize: 2048
  keyUsages: [digitalSignature]
""",
    """\
apiVersion: mim/v1
kind: CardFormat
metadata:
  name: Split Mobile
spec:
  description: Platform-specific signing containers and a shared encryption one.
  containers:
    - name: iOS Signing
      id: IOSSIG
      certificate: true
    - name: Android Signing
      id: ANDSIG
      certificate: true
    - name: Encryption
      id: ENC
      certificate: true
""",
    profile("mobile-split", "    - policy: mobile-signing\n      container: iOS Signing\n"
                            "    - policy: android-signing\n      container: Android Signing\n"
                            "    - policy: mobile-encryption\n      container: Encryption\n",
            card_format="Split Mobile"),
    request("alice-split", "mobile-split"))


def test_containers_named_for_a_platform_reach_only_that_platform(mimctl, engine, database_url,
                                                                 tmp_path) -> None:
    root = deploy(mimctl, database_url, tmp_path, extra=SPLIT)
    validated = mimctl("validate", root)
    assert validated.exit_code == 0, validated.output
    token, code = token_of(engine, "alice-split"), code_of(engine, "alice-split")
    with service(database_url) as client:
        iphone = SimulatedDevice(client, serial="SIM-IOS", platform="ios")
        on_ios = iphone.collect(token, code)
        assert on_ios.status_code == 201, on_ios.text
        android = SimulatedDevice(client, serial="SIM-AND", platform="android",
                                  model="Pixel 8", os_version="15")
        on_android = android.collect(token, code)  # the same request, another phone
        assert on_android.status_code == 201, on_android.text
        session = on_android.json()
        packaged = android.package(session["sessionId"], android.csrs(session["certificates"]))
        assert packaged.status_code == 200, packaged.text
        assert android.complete(session["sessionId"]).status_code == 200
        opened, _ = android.open(packaged.json()["envelope"], [ca_certificate(engine)])

    assert {c["policy"]: c["container"] for c in on_ios.json()["certificates"]} == {
        "mobile-signing": "iOS Signing", "mobile-encryption": "Encryption"}
    assert {c["policy"]: c["container"] for c in session["certificates"]} == {
        "android-signing": "Android Signing", "mobile-encryption": "Encryption"}
    assert sorted(entry["policy"] for entry in opened["certificates"]) == [
        "android-signing", "mobile-encryption"]
    assert sorted(row.policy_name for row in stored(engine)) == [
        "android-signing", "mobile-encryption"]


def test_a_container_missing_from_the_card_format_is_refused(mimctl, tmp_path) -> None:
    """The container names above are checked: one the card format lacks fails validation."""
    root = tmp_path / "specs"
    shutil.copytree(EXAMPLES / "quickstart", root)
    (root / "extra.yaml").write_text(SPLIT.replace("container: iOS Signing",
                                                   "container: iOS Keys"), encoding="utf-8")
    validated = mimctl("validate", root, "--format", "json")
    assert validated.exit_code == 1
    assert [(p["code"], p["path"]) for p in json.loads(validated.output)["problems"]] == [
        ("MIM305", "spec.certificates[0].container")]


@pytest.mark.parametrize(("container", "platform", "reaches"), [
    ("iOS Signing", "ios", True),
    ("iOS Signing", "android", False),
    ("Android Signing", "android", True),
    ("Android Signing", "ios", False),
    ("IOS-Keychain", "android", False),
    ("android-keystore", "ios", False),
    ("Android", "android", True),
    ("System Store", "ios", True),
    ("System Store", "android", True),
    ("Biosphere", "android", True),  # "ios" inside a word names no platform
    (None, "ios", True),
    (None, "android", True),
    ("", "android", True),
    ("iOS_Signing", "android", False),
    ("iOS/Signing", "ios", True),
    ("iOS and Android", "android", True),  # names both: reaches both
    ("iOS and Android", "ios", True),
])
def test_supports(container, platform, reaches) -> None:
    assert supports(container, platform) is reaches


def test_a_recovered_certificate_keeps_the_chain_of_the_ca_that_issued_it(
        mimctl, engine, database_url, tmp_path) -> None:
    second = ("apiVersion: mim/v1\nkind: CertificateAuthority\nmetadata:\n  name: second-ca\n"
              "spec:\n  subject: CN=Second Issuing CA,O=Example Ltd,C=GB\n  keySize: 2048\n")
    root = deploy(mimctl, database_url, tmp_path, edits=WITH_ENCRYPTION,
                  extra=documents(RECOVERY, second))
    with service(database_url) as client:
        certificate, _, _ = first_phone(client, engine)
        original = ca_certificate(engine)
        (root / "extra.yaml").write_text((root / "extra.yaml").read_text().replace(
            "  authority: issuing-ca\n", "  authority: second-ca\n", 1))
        assert mimctl("--db", database_url, "reconcile", "--apply", root,
                      "--yes").exit_code == 0
        _, opened = collect_all(client, engine, "alice-recover", serial="SIM-0002")
    (entry,) = opened["certificates"]
    assert recovered(entry)[0] == certificate
    assert [x509.load_pem_x509_certificate(c.encode()) for c in entry["chain"]] == [original]
