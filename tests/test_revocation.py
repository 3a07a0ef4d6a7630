"""Revocation that relying parties see at once: disable, enable and cancel against CRL and OCSP.

A phone collects the quickstart's mobile ID from the real service; operators then disable,
enable and cancel it with `mimctl device`, or the phone cancels itself, and each time the CA's
OCSP responder and CRL, fetched over HTTP, are verified with `cryptography` and with the
system's `openssl`.
"""

from __future__ import annotations

import base64
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.x509 import ocsp
from sqlalchemy import select

from reconciler.db.models import audit_events
from tests.collect_support import code_of, deploy, finish, issuing_ca, service, token_of
from tests.device import SimulatedDevice

OCSP_PATH = "/pki/issuing-ca/ocsp"
CRL_PATH = "/pki/issuing-ca/crl"


@dataclass
class Phone:
    """A collected phone: its device id and token, its certificate, and the CA."""

    client: httpx.Client
    device_id: int
    token: str
    certificate: x509.Certificate
    ca: x509.Certificate

    def status(self, token: str | None = None) -> httpx.Response:
        return self.client.get(f"/provision/v1/devices/{self.device_id}/status",
                               headers={"Authorization": f"Bearer {token or self.token}"})

    def cancel(self, reason: str = "lost my phone") -> httpx.Response:
        return self.client.post(f"/provision/v1/devices/{self.device_id}/cancel",
                                headers={"Authorization": f"Bearer {self.token}"},
                                json={"reason": reason})


def collect(client: httpx.Client, engine: Any) -> Phone:
    device = SimulatedDevice(client)
    package = finish(device, device.collect(token_of(engine), code_of(engine)), engine)
    (entry,) = package["certificates"]
    return Phone(client, package["deviceId"], package["deviceToken"],
                 x509.load_pem_x509_certificate(entry["certificate"].encode()),
                 issuing_ca(engine))


def ask_ocsp(phone: Phone, *, get: bool = False) -> ocsp.OCSPResponse:
    """Ask the responder about the phone's certificate; check signature and nonce."""
    nonce = os.urandom(16)
    asked = (ocsp.OCSPRequestBuilder().add_certificate(phone.certificate, phone.ca, hashes.SHA1())
             .add_extension(x509.OCSPNonce(nonce), critical=False).build())
    der = asked.public_bytes(serialization.Encoding.DER)
    if get:
        reply = phone.client.get(f"{OCSP_PATH}/{quote(base64.b64encode(der).decode(), safe='')}")
    else:
        reply = phone.client.post(OCSP_PATH, content=der,
                                  headers={"Content-Type": "application/ocsp-request"})
    assert reply.headers["content-type"] == "application/ocsp-response"
    answer = ocsp.load_der_ocsp_response(reply.content)
    assert answer.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
    phone.ca.public_key().verify(answer.signature, answer.tbs_response_bytes,
                                 padding.PKCS1v15(), answer.signature_hash_algorithm)
    assert answer.extensions.get_extension_for_class(x509.OCSPNonce).value.nonce == nonce
    assert answer.serial_number == phone.certificate.serial_number
    return answer


def fetch_crl(phone: Phone) -> x509.CertificateRevocationList:
    reply = phone.client.get(CRL_PATH)
    assert reply.headers["content-type"] == "application/pkix-crl"
    crl = x509.load_der_x509_crl(reply.content)
    assert crl.is_signature_valid(phone.ca.public_key())
    assert crl.issuer == phone.ca.subject
    return crl


def crl_reason(crl: x509.CertificateRevocationList, certificate: x509.Certificate) -> Any:
    """None when not listed; else the entry's reason flag (None if it has none)."""
    entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
    if entry is None:
        return None
    try:
        return entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return x509.ReasonFlags.unspecified


def crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def openssl_ocsp(phone: Phone, url: str, folder: Path) -> str:
    """What `openssl ocsp` says of the phone's certificate (it verifies the response too)."""
    ca_pem, cert_pem = folder / "ca.pem", folder / "cert.pem"
    ca_pem.write_bytes(phone.ca.public_bytes(serialization.Encoding.PEM))
    cert_pem.write_bytes(phone.certificate.public_bytes(serialization.Encoding.PEM))
    done = subprocess.run(["openssl", "ocsp", "-issuer", ca_pem, "-cert", cert_pem,
                           "-url", f"{url}{OCSP_PATH}", "-CAfile", ca_pem],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "Response verify OK" in done.stderr + done.stdout, done.stderr
    return done.stdout


def openssl_crl(phone: Phone, folder: Path) -> str:
    (folder / "crl.der").write_bytes(phone.client.get(CRL_PATH).content)
    done = subprocess.run(["openssl", "crl", "-inform", "DER", "-in", folder / "crl.der",
                           "-CAfile", folder / "ca.pem", "-noout", "-text"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0 and "verify OK" in done.stderr + done.stdout, done.stderr
    return done.stdout


def device_cli(mimctl: Any, database_url: str, *args: Any) -> str:
    result = mimctl("--db", database_url, "device", *args, "--actor", "helpdesk")
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def served(mimctl, engine, database_url, tmp_path):
    deploy(mimctl, database_url, tmp_path)
    with service(database_url) as client:
        yield client


def test_disable_enable_and_cancel_show_in_ocsp_and_the_crl_at_once(
        served, engine, mimctl, database_url, tmp_path) -> None:
    phone = collect(served, engine)
    url = str(served.base_url).rstrip("/")
    assert ask_ocsp(phone).certificate_status is ocsp.OCSPCertStatus.GOOD
    first = fetch_crl(phone)
    assert crl_reason(first, phone.certificate) is None
    assert phone.status().json() == {"deviceId": phone.device_id, "status": "active"}
    assert "cert.pem: good" in openssl_ocsp(phone, url, tmp_path)
    assert served.get("/pki/issuing-ca/ca.crt").content == phone.ca.public_bytes(
        serialization.Encoding.DER)

    assert "1 certificate(s) on hold" in device_cli(mimctl, database_url, "disable",
                                                    str(phone.device_id))
    held = ask_ocsp(phone, get=True)
    assert held.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert held.revocation_reason is x509.ReasonFlags.certificate_hold
    on_hold = fetch_crl(phone)
    assert crl_reason(on_hold, phone.certificate) is x509.ReasonFlags.certificate_hold
    assert crl_number(on_hold) > crl_number(first)
    assert phone.status().json()["status"] == "disabled"
    assert "Certificate Hold" in openssl_crl(phone, tmp_path)
    assert "cert.pem: revoked" in openssl_ocsp(phone, url, tmp_path)

    device_cli(mimctl, database_url, "enable", str(phone.device_id))
    assert ask_ocsp(phone).certificate_status is ocsp.OCSPCertStatus.GOOD
    lifted = fetch_crl(phone)
    assert crl_reason(lifted, phone.certificate) is None
    assert crl_number(lifted) > crl_number(on_hold)
    assert fetch_crl(phone).public_bytes(serialization.Encoding.DER) == \
        lifted.public_bytes(serialization.Encoding.DER)  # unchanged entries: the same CRL

    device_cli(mimctl, database_url, "cancel", str(phone.device_id), "--reason",
               "keyCompromise")
    revoked = ask_ocsp(phone)
    assert revoked.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert revoked.revocation_reason is x509.ReasonFlags.key_compromise
    assert crl_reason(fetch_crl(phone), phone.certificate) is x509.ReasonFlags.key_compromise
    assert "Key Compromise" in openssl_crl(phone, tmp_path)
    assert phone.status().json()["status"] == "canceled"  # so the agent wipes the identity
    gone = phone.cancel()
    assert (gone.status_code, gone.json()["code"]) == (410, "device_canceled")
    shown = mimctl("--db", database_url, "device", "show", phone.device_id, "--format",
                   "json").output
    assert '"status": "canceled"' in shown and '"reason": "keyCompromise"' in shown

    with engine.connect() as connection:
        actions = connection.execute(select(audit_events.c.action, audit_events.c.actor).where(
            audit_events.c.action.like("device-%"))).all()
    assert actions == [("device-disable", "helpdesk"), ("device-enable", "helpdesk"),
                       ("device-cancel", "helpdesk")]


def test_a_phone_cancelling_itself_is_removed_and_revoked(served, engine) -> None:
    phone = collect(served, engine)
    assert phone.status("not-the-token").status_code == 401
    cancelled = phone.cancel("changed phones")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {"deviceId": phone.device_id, "status": "removed",
                                "certificatesRevoked": True}
    answer = ask_ocsp(phone)
    assert answer.certificate_status is ocsp.OCSPCertStatus.REVOKED
    assert answer.revocation_reason is x509.ReasonFlags.cessation_of_operation
    assert phone.status().json()["status"] == "removed"
    with engine.connect() as connection:
        event = connection.execute(select(audit_events).where(
            audit_events.c.action == "device-remove")).one()
    assert event.details["said"] == "changed phones"


def test_without_revoke_on_device_cancel_the_certificates_stay_valid(
        mimctl, engine, database_url, tmp_path) -> None:
    deploy(mimctl, database_url, tmp_path, edits={"settings.yaml": [(
        "  contentSigning:\n", "  devices:\n    revokeOnDeviceCancel: false\n"
        "  contentSigning:\n")]})
    with service(database_url) as client:
        phone = collect(client, engine)
        assert phone.cancel().json()["certificatesRevoked"] is False
        assert ask_ocsp(phone).certificate_status is ocsp.OCSPCertStatus.GOOD


def test_ocsp_refuses_what_it_cannot_answer(served, engine) -> None:
    phone = collect(served, engine)
    garbage = served.post(OCSP_PATH, content=b"not der")
    assert ocsp.load_der_ocsp_response(garbage.content).response_status is \
        ocsp.OCSPResponseStatus.MALFORMED_REQUEST
    other_issuer = (ocsp.OCSPRequestBuilder()
                    .add_certificate(phone.certificate, phone.certificate, hashes.SHA1()).build())
    refused = served.post(OCSP_PATH, content=other_issuer.public_bytes(serialization.Encoding.DER))
    assert ocsp.load_der_ocsp_response(refused.content).response_status is \
        ocsp.OCSPResponseStatus.UNAUTHORIZED
    unknown = (ocsp.OCSPRequestBuilder().add_certificate_by_hash(
        *_hashes(phone.ca), 12345, hashes.SHA256()).build())
    answer = ocsp.load_der_ocsp_response(served.post(
        OCSP_PATH, content=unknown.public_bytes(serialization.Encoding.DER)).content)
    assert answer.certificate_status is ocsp.OCSPCertStatus.UNKNOWN
    assert served.get("/pki/no-such-ca/crl").status_code == 404


def _hashes(ca: x509.Certificate) -> tuple[bytes, bytes]:
    name, key = hashes.Hash(hashes.SHA256()), hashes.Hash(hashes.SHA256())
    name.update(ca.subject.public_bytes())
    key.update(ca.public_key().public_bytes(serialization.Encoding.DER,
                                            serialization.PublicFormat.PKCS1))
    return name.finalize(), key.finalize()
