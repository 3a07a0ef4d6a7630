"""End to end: apply the Intune example, mail the link and code, collect on a simulated phone.

A real SMTP server receives the notifications, a real Intune stand-in answers the MDM check,
the provisioning service runs on 127.0.0.1, and the device verifies and opens what it gets.
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from sqlalchemy import select

from provisioning.app import create_app
from provisioning.ca import load_authority
from provisioning.db import dispose
from reconciler.db import vault
from reconciler.db.models import audit_events, certificates, devices, request_jobs
from tests.conftest import EXAMPLE_SECRETS, EXAMPLES, TEST_MASTER_KEY
from tests.device import SimulatedDevice
from tests.servers import entra_graph
from tests.servers.harness import serve
from tests.servers.smtp import SmtpSink

KEY = vault.MasterKey.parse(TEST_MASTER_KEY)
TENANT = "4f1c1e9a-8d3b-4c4e-9a51-6f0c3c2b7d10"
CLIENT = "9b2d6c11-52a4-4f0e-8c0e-2f3a1d4b5c6e"
MDM_ID = "a1b2c3d4-0000-4000-8000-000000000001"
CODE = re.compile(r"code(?: for collecting your mobile ID is)?: (?:<strong>)?(\d+ \d+)")
LINK = re.compile(r"https://mim\.corp\.example/collect/([A-Za-z0-9_-]+)")


def intune_devices(compliant: bool = True) -> list[dict[str, object]]:
    return [{"id": MDM_ID, "deviceName": "Jane's iPhone", "serialNumber": "SIM-0001",
             "complianceState": "compliant" if compliant else "noncompliant",
             "isEncrypted": True, "jailBroken": "False", "operatingSystem": "iOS"}]


def example_tree(tmp_path: Path, sink: SmtpSink, intune_url: str) -> Path:
    """The example, its SMTP relay and Intune tenant pointed at the local stand-ins."""
    root = tmp_path / "specs"
    shutil.copytree(EXAMPLES / "intune-derived-credentials", root)
    systems = root / "systems" / "intune.yaml"
    systems.write_text(systems.read_text().replace(
        "  clientSecret: {env: INTUNE_CLIENT_SECRET}\n",
        f"  clientSecret: {{env: INTUNE_CLIENT_SECRET}}\n  loginBaseUrl: {intune_url}\n"
        f"  graphBaseUrl: {intune_url}\n", 1))
    mail = root / "systems" / "notifications.yaml"
    text = re.sub(r"  host: smtp\.corp\.example\n  port: 587\n  security: StartTls\n"
                  r"  username: mim-notify\n  password: \{env: SMTP_PASSWORD\}\n",
                  f"  host: {sink.host}\n  port: {sink.port}\n  security: 'None'\n",
                  mail.read_text())
    assert sink.host in text
    mail.write_text(text)
    settings = root / "settings.yaml"
    settings.write_text(settings.read_text().replace(
        "  auth:\n", "  auth:\n    allowUnsafeHttp: true  # the local stand-ins speak http\n"))
    return root


def test_collect_the_intune_example_end_to_end(mimctl, engine, database_url, tmp_path) -> None:
    intune = entra_graph.make_app(tenant=TENANT, client_id=CLIENT,
                                  client_secret=EXAMPLE_SECRETS["INTUNE_CLIENT_SECRET"],
                                  devices=intune_devices())
    with SmtpSink() as sink, serve(intune) as graph:
        root = example_tree(tmp_path, sink, graph.url)
        applied = mimctl("--db", database_url, "reconcile", "--apply", root, "--yes")
        assert applied.exit_code == 0, applied.output
        flushed = mimctl("--db", database_url, "notify", "flush")
        assert flushed.exit_code == 0, flushed.output
        received = sink.received
        app = create_app({"DATABASE_URL": database_url})
        try:
            with serve(app) as service, httpx.Client(base_url=service.url, timeout=30) as client:
                token, code = _link_and_code(received)
                device = SimulatedDevice(client, mdm_device_id=MDM_ID)
                collected = device.collect(token, code)
                assert collected.status_code == 201, collected.text
                session = collected.json()
                offered = {c["policy"]: c for c in session["certificates"]}
                assert {p: c["source"] for p, c in offered.items()} == {
                    "piv-d-authentication": "device", "piv-d-signing": "device",
                    "piv-d-encryption": "server"}
                packaged = device.package(session["sessionId"],
                                          device.csrs(session["certificates"]))
                assert packaged.status_code == 200, packaged.text
                envelope = packaged.json()["envelope"]
                completed = device.complete(session["sessionId"])
                assert completed.status_code == 200, completed.text
                replay = SimulatedDevice(client, serial="SIM-0002",
                                         mdm_device_id=MDM_ID).collect(token, code)
        finally:
            dispose(app)

    assert envelope["algorithm"] == "AES-256-GCM"
    with engine.connect() as connection:
        authority = load_authority(connection, KEY, "corp-mobile-ca")
    package, signer = device.open(envelope, [authority.certificate])
    assert "mimctl content signing" in signer.subject.rfc4514_string()
    assert package["deviceId"] == completed.json()["deviceId"]
    _check_certificates(package, device, authority.certificate)
    assert package["agentPolicy"]["authenticationTypes"] == ["PIN"]
    assert package["agentPolicy"]["administratorEmailAddress"] == "pki-team@corp.example"
    assert package["agentPolicy"]["externalAuthServerUrl"] == "https://mim.corp.example/oauth2"

    assert (replay.status_code, replay.json()["code"]) == (409, "already_collected")
    with engine.connect() as connection:
        job = connection.execute(select(request_jobs).where(
            request_jobs.c.request_name == "jsmith-intune")).one()
        device_row = connection.execute(select(devices)).one()
        issued = connection.execute(select(certificates)).all()
        actions = connection.execute(select(audit_events.c.action)).scalars().all()
    assert (job.status, job.code_hash, job.collected_at is not None) == ("collected", None, True)
    assert (device_row.status, device_row.serial_number, device_row.mdm_device_id,
            device_row.person_name) == ("active", "SIM-0001", MDM_ID, "jsmith")
    assert len(issued) == 3 and {c.device_id for c in issued} == {device_row.id}
    assert [c.archived_key is not None for c in sorted(issued, key=lambda c: c.policy_name)] \
        == [False, True, False]  # only piv-d-encryption archives its key
    assert actions[-4:] == ["collect-start", "package-issue", "collect-complete",
                            "collect-reject"]  # the replay
    planned = mimctl("--db", database_url, "reconcile", "--plan", root)
    assert "= fulfilled" not in planned.output  # the request stays in the specs: no change


def _link_and_code(received) -> tuple[str, str]:
    link_mail = [m for m in received if m.message["Subject"] ==
                 "Your mobile ID is ready to collect" and m.rcpt_tos == (
                     "jane.smith@corp.example",)]
    code_sms = [m for m in received if m.rcpt_tos == ("+15555550101@sms.corp.example",)]
    assert len(link_mail) == 1 and len(code_sms) == 1, [m.rcpt_tos for m in received]
    token = LINK.search(link_mail[0].message.get_body(("html",)).get_content())[1]
    code = CODE.search(code_sms[0].message.get_body(("plain",)).get_content())[1]
    assert code not in link_mail[0].message.get_body(("html",)).get_content()
    return token, code


def _check_certificates(package, device: SimulatedDevice, ca: x509.Certificate) -> None:
    by_policy = {c["policy"]: c for c in package["certificates"]}
    expected_subjects = {
        # [[People.UserPrincipalName]] and [[People.GroupName]] ("Finance, EMEA"), escaped
        "piv-d-authentication": r"CN=jane.smith@corp.example,OU=Finance\, EMEA,O=Corp Example,C=us",
        "piv-d-signing": "CN=Jane Smith,OU=Mobile,O=Corp Example,C=us",  # the default DN policy
        # [[[People.Xu55]]]: the directory DN substituted raw
        "piv-d-encryption": "CN=Jane Smith,OU=Finance,OU=Staff,DC=corp,DC=example",
    }
    usages = {"piv-d-authentication": ({"digital_signature"}, {
        ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SMARTCARD_LOGON}, 365),
        "piv-d-signing": ({"digital_signature", "content_commitment"},
                          {ExtendedKeyUsageOID.EMAIL_PROTECTION}, 365),
        "piv-d-encryption": ({"key_encipherment"}, {ExtendedKeyUsageOID.EMAIL_PROTECTION}, 730)}
    now = datetime.now(UTC)
    for policy, entry in by_policy.items():
        certificate = x509.load_pem_x509_certificate(entry["certificate"].encode())
        assert certificate.subject.rfc4514_string() == expected_subjects[policy]
        certificate.verify_directly_issued_by(ca)
        assert [x509.load_pem_x509_certificate(c.encode()) for c in entry["chain"]] == [ca]
        key_usage = certificate.extensions.get_extension_for_class(x509.KeyUsage)
        assert key_usage.critical
        set_usages = {name for name in ("digital_signature", "content_commitment",
                                        "key_encipherment", "data_encipherment", "key_agreement")
                      if getattr(key_usage.value, name)}
        wanted_usages, wanted_extended, days = usages[policy]
        assert set_usages == wanted_usages
        assert set(certificate.extensions.get_extension_for_class(
            x509.ExtendedKeyUsage).value) == wanted_extended
        lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
        assert timedelta(days=days) <= lifetime <= timedelta(days=days, minutes=6)
        assert certificate.not_valid_before_utc <= now < certificate.not_valid_after_utc
        assert certificate.serial_number.bit_length() > 120  # random, about 159 bits
        points = certificate.extensions.get_extension_for_oid(
            ExtensionOID.CRL_DISTRIBUTION_POINTS).value
        assert points[0].full_name[0].value == "https://mim.corp.example/pki/corp-mobile-ca/crl"
        access = certificate.extensions.get_extension_for_oid(
            ExtensionOID.AUTHORITY_INFORMATION_ACCESS).value
        assert "https://mim.corp.example/pki/corp-mobile-ca/ocsp" in [
            a.access_location.value for a in access]
        public = certificate.public_key().public_numbers()
        if entry["source"] == "device":
            assert public == device.keys[entry["id"]].public_key().public_numbers()
            assert "pkcs12" not in entry
        else:
            bundle = pkcs12.load_pkcs12(_b64(entry["pkcs12"]),
                                        entry["pkcs12Password"].encode())
            assert bundle.cert.certificate == certificate
            assert bundle.key.public_key().public_numbers() == public
            assert bundle.key.private_bytes(serialization.Encoding.DER,
                                            serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption())


def _b64(text: str) -> bytes:
    import base64

    return base64.b64decode(text)


def test_old_agents_get_a_3des_envelope_when_settings_ask(mimctl, engine, database_url,
                                                         tmp_path) -> None:
    from provisioning.ca import load_content_signer
    from tests.collect_support import code_of, deploy, service, token_of

    deploy(mimctl, database_url, tmp_path, edits={"settings.yaml": [(
        "  contentSigning:\n",
        "  security:\n    envelopeTransportKeyAlgorithm: 3DES\n  contentSigning:\n")]})
    token, code = token_of(engine), code_of(engine)
    with service(database_url) as client:
        device = SimulatedDevice(client)
        session = device.collect(token, code).json()
        packaged = device.package(session["sessionId"], device.csrs(session["certificates"]))
    envelope = packaged.json()["envelope"]
    assert envelope["algorithm"] == "3DES-CBC-HMAC-SHA256" and "mac" in envelope
    with engine.connect() as connection:
        ca = load_authority(connection, KEY, "issuing-ca").certificate
        signer = load_content_signer(connection, KEY).certificate
    package, signed_by = device.open(envelope, [ca])
    assert signed_by == signer and package["person"] == "alice"
    (entry,) = package["certificates"]
    issued = x509.load_pem_x509_certificate(entry["certificate"].encode())
    assert issued.subject.rfc4514_string() == "CN=Alice Example,OU=Engineering,O=Example Ltd,C=gb"
