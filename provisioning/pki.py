"""What relying parties ask a CA: its certificate, its CRL, and OCSP (RFC 6960).

    GET  /pki/<ca>/ca.crt              the CA certificate (DER)
    GET  /pki/<ca>/crl                 the CRL (DER), signed anew when its entries change
    POST /pki/<ca>/ocsp                an OCSP request (DER body)
    GET  /pki/<ca>/ocsp/<base64 DER>   the same, as RFC 6960 appendix A.1 allows

Both read the `certificates` rows that cancel, disable and enable write, so a change is
visible at once. OCSP responses are signed by the CA itself; a disabled device's certificates
answer `revoked` with reason certificateHold until it is enabled again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from flask import Blueprint, Response, request
from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection, Engine

from provisioning.ca import Authority, CaError, load_authority
from provisioning.db import get_engine, master_key, write_transaction
from provisioning.errors import ApiError
from provisioning.links import aware
from reconciler.db import devices as lifecycle
from reconciler.db import vault
from reconciler.db.models import certificates, crls

blueprint = Blueprint("pki", __name__, url_prefix="/pki")

CRL_LOCK = 0x4D494D43  # "MIMC": one worker at a time signs a CA's next CRL
OCSP_VALIDITY = timedelta(hours=1)
MAX_OCSP_REQUEST = 8192
REASON_FLAGS = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    lifecycle.HOLD_REASON: x509.ReasonFlags.certificate_hold,
}
_ON_LIST = (lifecycle.REVOKED, lifecycle.HOLD)


def _authority(connection: Connection, key: vault.MasterKey, name: str) -> Authority:
    try:
        return load_authority(connection, key, name)
    except CaError:
        raise ApiError(404, "unknown_ca", f"no certificate authority {name!r}") from None


def _der(body: bytes, content_type: str, max_age: int) -> Response:
    response = Response(body, content_type=content_type)
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return response


@blueprint.get("/<name>/ca.crt")
def ca_certificate(name: str) -> Response:
    with get_engine().connect() as connection:
        authority = _authority(connection, master_key(), name)
    return _der(authority.certificate.public_bytes(serialization.Encoding.DER),
                "application/pkix-cert", 3600)


# --- CRL -----------------------------------------------------------------------------------------

@blueprint.get("/<name>/crl")
def crl(name: str) -> Response:
    return _der(current_crl(get_engine(), master_key(), name, datetime.now(UTC)),
                "application/pkix-crl", 60)


def _entries(connection: Connection, name: str) -> list[Any]:
    return list(connection.execute(
        select(certificates.c.serial_number, certificates.c.revocation_reason,
               certificates.c.revoked_at)
        .where(certificates.c.authority_name == name, certificates.c.status.in_(_ON_LIST))
        .order_by(certificates.c.serial_number)))


def _digest(entries: list[Any]) -> str:
    text = "\n".join(f"{e.serial_number} {e.revocation_reason} {aware(e.revoked_at).isoformat()}"
                     for e in entries)
    return hashlib.sha256(text.encode()).hexdigest()


def _fresh(cached: Any, digest: str, lifetime: timedelta, now: datetime) -> bool:
    """A stored CRL still serves: the same entries, and not yet in its last half-life."""
    return (cached is not None and cached.entries_digest == digest
            and aware(cached.next_update) - now > lifetime / 2)


def current_crl(engine: Engine, key: vault.MasterKey, name: str, now: datetime) -> bytes:
    """The CA's CRL as it stands: the stored one, or a new one (next number) when stale."""
    with engine.connect() as connection:
        authority = _authority(connection, key, name)
        entries = _entries(connection, name)
        cached = connection.execute(select(crls).where(crls.c.authority_name == name)).first()
    lifetime = timedelta(hours=authority.spec.crl_lifetime_hours)
    digest = _digest(entries)
    if _fresh(cached, digest, lifetime, now):
        return bytes(cached.der)
    with write_transaction(engine, lock=CRL_LOCK) as connection:
        cached = connection.execute(select(crls).where(crls.c.authority_name == name)).first()
        entries = _entries(connection, name)
        digest = _digest(entries)
        if _fresh(cached, digest, lifetime, now):
            return bytes(cached.der)
        number = cached.number + 1 if cached is not None else 1
        der = sign_crl(authority, entries, number, now, now + lifetime)
        connection.execute(delete(crls).where(crls.c.authority_name == name))
        connection.execute(insert(crls).values(
            authority_name=name, number=number, entries_digest=digest, der=der,
            this_update=now, next_update=now + lifetime))
    return der


def sign_crl(authority: Authority, entries: list[Any], number: int, this_update: datetime,
             next_update: datetime) -> bytes:
    builder = (x509.CertificateRevocationListBuilder()
               .issuer_name(authority.certificate.subject)
               .last_update(this_update).next_update(next_update)
               .add_extension(x509.CRLNumber(number), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   authority.key.public_key()), critical=False))
    for entry in entries:
        revoked = (x509.RevokedCertificateBuilder()
                   .serial_number(int(entry.serial_number, 16))
                   .revocation_date(aware(entry.revoked_at)))
        flag = REASON_FLAGS.get(entry.revocation_reason or "unspecified")
        if flag is not None and flag is not x509.ReasonFlags.unspecified:
            revoked = revoked.add_extension(x509.CRLReason(flag), critical=False)
        builder = builder.add_revoked_certificate(revoked.build())
    return builder.sign(authority.key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# --- OCSP ----------------------------------------------------------------------------------------

@blueprint.post("/<name>/ocsp")
def ocsp_post(name: str) -> Response:
    body = request.get_data(cache=False)
    if len(body) > MAX_OCSP_REQUEST:
        return _ocsp(ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST))
    return _ocsp(answer(name, body))


@blueprint.get("/<name>/ocsp/<path:encoded>")
def ocsp_get(name: str, encoded: str) -> Response:
    try:
        body = base64.b64decode(unquote(encoded), validate=True)
    except (binascii.Error, ValueError):
        body = b""
    return _ocsp(answer(name, body))


def _ocsp(response: ocsp.OCSPResponse | bytes) -> Response:
    der = response if isinstance(response, bytes) else response.public_bytes(
        serialization.Encoding.DER)
    return _der(der, "application/ocsp-response", 0)


def answer(name: str, body: bytes) -> ocsp.OCSPResponse:
    """The signed answer to one OCSP request to CA `name`."""
    now = datetime.now(UTC)
    try:
        asked = ocsp.load_der_ocsp_request(body)
    except ValueError:  # not DER, or more than one certificate asked about
        return ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
    with get_engine().connect() as connection:
        authority = _authority(connection, master_key(), name)
        try:
            ours = _asks_us(asked, authority)
        except UnsupportedAlgorithm:  # a hash the responder does not offer
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST)
        if not authority.spec.ocsp or not ours:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED)
        row = connection.execute(select(certificates).where(
            certificates.c.authority_name == name,
            certificates.c.serial_number == format(asked.serial_number, "x"))).first()
    builder = ocsp.OCSPResponseBuilder()
    if row is None:
        builder = builder.add_response_by_hash(
            asked.issuer_name_hash, asked.issuer_key_hash, asked.serial_number,
            asked.hash_algorithm, ocsp.OCSPCertStatus.UNKNOWN, now, now + OCSP_VALIDITY,
            None, None)
    else:
        on_list = row.status in _ON_LIST
        builder = builder.add_response(
            cert=x509.load_der_x509_certificate(row.der), issuer=authority.certificate,
            algorithm=asked.hash_algorithm,
            cert_status=ocsp.OCSPCertStatus.REVOKED if on_list else ocsp.OCSPCertStatus.GOOD,
            this_update=now, next_update=now + OCSP_VALIDITY,
            revocation_time=aware(row.revoked_at) if on_list else None,
            revocation_reason=REASON_FLAGS.get(row.revocation_reason or "unspecified")
            if on_list else None)
    for extension in asked.extensions:
        if isinstance(extension.value, x509.OCSPNonce):
            builder = builder.add_extension(extension.value, critical=False)
    return (builder.responder_id(ocsp.OCSPResponderEncoding.HASH, authority.certificate)
            .sign(authority.key, hashes.SHA256()))


def _asks_us(asked: ocsp.OCSPRequest, authority: Authority) -> bool:
    """Whether the request names this CA as the issuer (name and key hashes)."""
    algorithm = asked.hash_algorithm
    name_hash = hashes.Hash(algorithm)
    name_hash.update(authority.certificate.subject.public_bytes())
    key_hash = hashes.Hash(algorithm)
    key_hash.update(authority.certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.PKCS1))
    return (name_hash.finalize() == asked.issuer_name_hash
            and key_hash.finalize() == asked.issuer_key_hash)
