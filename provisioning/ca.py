"""The built-in certificate authorities: their key material, and issuing from a CSR.

A CertificateAuthority document either names its certificate and key (secret references, the
key kept encrypted in the vault) or lets mimctl make both: `ensure_material`, run inside every
apply, generates the missing CA keys and self-signed certificates, and the content-signing
certificate when Settings say a built-in CA issues it, and keeps them encrypted under the master
key (`secret_values` kind `CaMaterial`). Nothing here trusts a CSR beyond its public key: the
signature must verify (proof of possession), the key must be RSA of at least the policy's size
(the manual: no ECC on mobile), and the subject comes from the DN policy, never from the CSR.

Every certificate names where its status is published: the CRL distribution point, OCSP and
the CA certificate, under `{mobileCertificateRecoveryServiceUrl}/pki/<ca>/`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from sqlalchemy import select
from sqlalchemy.engine import Connection

from provisioning.package import Signer
from reconciler.db import vault
from reconciler.db.audit import AuditEvent
from reconciler.db.models import KIND_TABLES, secret_values
from reconciler.errors import MimError
from specs.certificate_authority import CertificateAuthoritySpec
from specs.certificate_policy import CertificatePolicySpec
from specs.dn_template import build_name, parse_dn

MATERIAL = "CaMaterial"  # secret_values kind of generated keys and certificates
CONTENT_SIGNING_VALIDITY = dt.timedelta(days=730)
CONTENT_SIGNING_KEY_SIZE = 3072
MINIMUM_RSA_BITS = 2048

EXTENDED_KEY_USAGES = {
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "smartcardLogon": ExtendedKeyUsageOID.SMARTCARD_LOGON,
}


class CaError(MimError):
    """A CA that cannot issue: disabled, missing material, no service URL."""


class CsrError(ValueError):
    """A CSR the CA refuses; `code` is the API error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def content_signing_material(authority: str) -> str:
    """The CaMaterial name of the content-signing certificate a built-in CA issues."""
    return f"content-signing@{authority}"


def pki_urls(base_url: str, authority: str) -> dict[str, str]:
    """Where a CA publishes its certificate, CRL and OCSP."""
    base = f"{base_url.rstrip('/')}/pki/{authority}"
    return {"certificate": f"{base}/ca.crt", "crl": f"{base}/crl", "ocsp": f"{base}/ocsp"}


def generate_key(bits: int) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _load_key(pem: bytes, what: str) -> rsa.RSAPrivateKey:
    try:
        key = _parse_key(pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CaError(f"{what}: the key is not an unencrypted PEM private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CaError(f"{what}: the key is not RSA")
    return key


@lru_cache(maxsize=64)
def _parse_key(pem: bytes) -> Any:
    """A parsed private key, kept per process: checking an RSA key's consistency on load takes
    about 0.1 s for 3072 bits, far more than the signatures each collection makes with it."""
    return serialization.load_pem_private_key(pem, password=None)


def _load_certificate(pem: bytes | str, what: str) -> x509.Certificate:
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        return x509.load_pem_x509_certificate(data)
    except ValueError:
        raise CaError(f"{what}: the certificate is not PEM") from None


# --- Issuing -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Authority:
    """A CA ready to issue: its certificate and key, and where it publishes status."""

    name: str
    spec: CertificateAuthoritySpec
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    base_url: str | None  # Settings' mobileCertificateRecoveryServiceUrl

    @property
    def chain(self) -> tuple[x509.Certificate, ...]:
        return (self.certificate,)

    def issue(self, public_key: rsa.RSAPublicKey, subject: x509.Name,
              policy: CertificatePolicySpec, now: dt.datetime) -> x509.Certificate:
        """A certificate of `policy` for `public_key`, named `subject`; never past the CA's end."""
        if not self.spec.enabled:
            raise CaError(f"CertificateAuthority/{self.name} is disabled")
        if not self.base_url:
            raise CaError("Settings has no certificates.mobileCertificateRecoveryServiceUrl: "
                          "certificates could not say where their CRL and OCSP are")
        not_after = min(now + dt.timedelta(days=policy.validity_days),
                        self.certificate.not_valid_after_utc)
        urls = pki_urls(self.base_url, self.name)
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate device clock skew
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(key_usage(policy.key_usages), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
            .add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                [x509.UniformResourceIdentifier(urls["crl"])], None, None, None)]),
                critical=False)
            .add_extension(x509.AuthorityInformationAccess([
                x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                       x509.UniformResourceIdentifier(urls["ocsp"])),
                x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                       x509.UniformResourceIdentifier(urls["certificate"]))]),
                critical=False)
        )
        if policy.extended_key_usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(
                [extended_key_usage(usage) for usage in policy.extended_key_usages]),
                critical=False)
        return builder.sign(self.key, hashes.SHA256())


def key_usage(usages: list[str]) -> x509.KeyUsage:
    chosen = set(usages)
    return x509.KeyUsage(
        digital_signature="digitalSignature" in chosen,
        content_commitment="nonRepudiation" in chosen,
        key_encipherment="keyEncipherment" in chosen,
        data_encipherment="dataEncipherment" in chosen,
        key_agreement="keyAgreement" in chosen,
        key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)


def extended_key_usage(usage: str) -> x509.ObjectIdentifier:
    return EXTENDED_KEY_USAGES.get(usage) or x509.ObjectIdentifier(usage)


def check_csr(pem: str, minimum_bits: int = MINIMUM_RSA_BITS) -> rsa.RSAPublicKey:
    """The public key of a CSR whose signature verifies, RSA of at least `minimum_bits`."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
        public_key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CsrError("CSR_MALFORMED", "the CSR is not a PEM PKCS#10 request") from None
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CsrError("CSR_KEY_NOT_RSA", f"the CSR's key is {_key_kind(public_key)}; mobile "
                                          "certificates need RSA keys")
    if not csr.is_signature_valid:
        raise CsrError("CSR_SIGNATURE_INVALID",
                       "the CSR's signature does not verify with its own public key")
    if public_key.key_size < minimum_bits:
        raise CsrError("CSR_KEY_TOO_SMALL", f"the CSR's RSA key has {public_key.key_size} bits; "
                                            f"this policy needs at least {minimum_bits}")
    return public_key


def _key_kind(public_key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec

    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return f"EC ({public_key.curve.name})"
    return type(public_key).__name__.removeprefix("_").removesuffix("PublicKey") or "not RSA"


# --- Loading -----------------------------------------------------------------------------------

def _documents(connection: Connection, kind: str) -> dict[str, dict[str, Any]]:
    table = KIND_TABLES[kind].table
    return {row.name: row.document["spec"]
            for row in connection.execute(select(table.c.name, table.c.document))}


def settings_spec(connection: Connection) -> dict[str, Any]:
    """The applied Settings' spec as stored ({} before any is applied)."""
    return next(iter(_documents(connection, "Settings").values()), {})


def service_url(settings: dict[str, Any]) -> str | None:
    url = settings.get("certificates", {}).get("mobileCertificateRecoveryServiceUrl")
    return str(url) if url else None


def load_authority(connection: Connection, key: vault.MasterKey, name: str, *,
                   settings: dict[str, Any] | None = None) -> Authority:
    """The CA `name` as applied, with its key (from its secret, or generated); `settings`
    (the Settings spec) saves reading it again when the caller has it."""
    table = KIND_TABLES["CertificateAuthority"].table
    row = connection.execute(select(table.c.document).where(table.c.name == name)).first()
    if row is None:
        raise CaError(f"no CertificateAuthority {name!r} is in the database")
    spec = CertificateAuthoritySpec.model_validate(row.document["spec"])
    what = f"CertificateAuthority/{name}"
    if spec.certificate is not None:
        secrets = vault.read(connection, key, "CertificateAuthority", name)
        if "spec.key" not in secrets:
            raise CaError(f"{what}: its key is not in the database; apply its spec again")
        certificate = _load_certificate(row.document["spec"]["certificate"], what)
        private_key = _load_key(secrets["spec.key"], what)
    else:
        material = vault.read(connection, key, MATERIAL, name)
        if "key" not in material:
            raise CaError(f"{what}: its generated key is missing; apply the specs again")
        certificate = _load_certificate(material["certificate"], what)
        private_key = _load_key(material["key"], what)
    if settings is None:
        settings = settings_spec(connection)
    return Authority(name, spec, certificate, private_key, service_url(settings))


def load_content_signer(connection: Connection, key: vault.MasterKey, *,
                        settings: dict[str, Any] | None = None,
                        authorities: Mapping[str, Authority] | None = None) -> Signer:
    """The content-signing certificate of Settings (given, or issued by a built-in CA); a
    caller holding the Settings spec or the issuing CA already passes them along."""
    if settings is None:
        settings = settings_spec(connection)
    signing = settings.get("contentSigning", {})
    if signing.get("certificate") is not None:
        secrets = vault.read(connection, key, "Settings", "system")
        if "spec.contentSigning.key" not in secrets:
            raise CaError("Settings contentSigning.key is not in the database; apply again")
        certificate = _load_certificate(signing["certificate"], "Settings contentSigning")
        return Signer(certificate,
                             _load_key(secrets["spec.contentSigning.key"],
                                       "Settings contentSigning"), ())
    authority = signing.get("authority")
    if authority is None:
        raise CaError("Settings name no content-signing certificate: set "
                      "contentSigning.authority (a built-in CA issues it) or certificate and key")
    material = vault.read(connection, key, MATERIAL, content_signing_material(authority))
    if "key" not in material:
        raise CaError(f"the content-signing certificate of {authority} is missing; apply again")
    issuer = (authorities or {}).get(authority) or load_authority(connection, key, authority,
                                                                  settings=settings)
    return Signer(_load_certificate(material["certificate"], "content signing"),
                         _load_key(material["key"], "content signing"), issuer.chain)


# --- Generating (inside apply) -----------------------------------------------------------------

def ensure_material(connection: Connection, key: vault.MasterKey, *, actor: str,
                    now: dt.datetime) -> list[AuditEvent]:
    """Bring the CA material in line with the applied documents; returns the audit events.

    - A CA given as certificate and key must be a CA certificate whose public key is the key's:
      CaError (the apply is refused) otherwise.
    - A generated CA gets its key and certificate on first apply. Its subject and key size are
      kept from then on; when the document asks for others (or a CA of the same name is
      re-created differently), the old material is retired (kept, under
      `<name>@retired-<serial>`, for the certificates it issued) and a new CA generated.
    - The content-signing certificate is issued by Settings' `contentSigning.authority`, and
      issued again when that CA's certificate changed or it ends within RENEW_BEFORE.
    """
    events: list[AuditEvent] = []
    materials = _materials(connection, key)
    for name, document in sorted(_documents(connection, "CertificateAuthority").items()):
        spec = CertificateAuthoritySpec.model_validate(document)
        if spec.certificate is not None:
            _check_given(load_authority(connection, key, name))
            continue
        held = materials.get(name)
        if held is not None and _matches(held, spec):
            continue
        if held is not None:
            events.append(_retire(connection, key, name, held, actor, now))
        private_key = generate_key(spec.key_size)
        certificate = self_signed(spec, private_key, now)
        vault.store(connection, key, MATERIAL, {name: _material(private_key, certificate)}, now)
        events.append(AuditEvent(actor, "ca-generate", "CertificateAuthority", name, {
            "subject": certificate.subject.rfc4514_string(),
            "serial": format(certificate.serial_number, "x"),
            "fingerprint_sha256": certificate.fingerprint(hashes.SHA256()).hex()}))
    signing = settings_spec(connection).get("contentSigning", {})
    if signing.get("certificate") is not None:
        given = load_content_signer(connection, key)
        if given.certificate.public_key().public_numbers() != \
                given.key.public_key().public_numbers():
            raise CaError("Settings contentSigning: the key is not the certificate's (their "
                          "public keys differ)")
    authority = signing.get("authority")
    if authority is not None:
        issuer = load_authority(connection, key, authority)
        held = materials.get(content_signing_material(authority))
        reason = _signer_stale(held, issuer, now)
        if reason is not None:
            signer_key = generate_key(CONTENT_SIGNING_KEY_SIZE)
            certificate = content_signing_certificate(issuer, signer_key, now)
            vault.store(connection, key, MATERIAL, {
                content_signing_material(authority): _material(signer_key, certificate)}, now)
            events.append(AuditEvent(actor, "content-signer-issue", "CertificateAuthority",
                                     authority, {"serial": format(certificate.serial_number, "x"),
                                                 "subject": certificate.subject.rfc4514_string(),
                                                 "reason": reason}))
    return events


RENEW_BEFORE = dt.timedelta(days=30)


def _materials(connection: Connection, key: vault.MasterKey) -> dict[str, x509.Certificate]:
    """The certificate of every CaMaterial entry, by name."""
    rows = connection.execute(select(secret_values).where(
        secret_values.c.kind == MATERIAL, secret_values.c.path == "certificate"))
    return {row.name: x509.load_pem_x509_certificate(vault.open_row(key, row)) for row in rows}


def _material(private_key: rsa.RSAPrivateKey, certificate: x509.Certificate
              ) -> dict[str, bytes]:
    return {"key": private_pem(private_key),
            "certificate": certificate.public_bytes(serialization.Encoding.PEM)}


def _matches(certificate: x509.Certificate, spec: CertificateAuthoritySpec) -> bool:
    """Whether generated material is still the CA the document describes."""
    public_key = certificate.public_key()
    return (certificate.subject == build_name(parse_dn(spec.subject or ""))
            and isinstance(public_key, rsa.RSAPublicKey)
            and public_key.key_size == spec.key_size)


def _retire(connection: Connection, key: vault.MasterKey, name: str,
            certificate: x509.Certificate, actor: str, now: dt.datetime) -> AuditEvent:
    """Keep a replaced CA's material under another name (re-encrypted: names are bound)."""
    retired = f"{name}@retired-{certificate.serial_number:x}"[:128]
    vault.store(connection, key, MATERIAL, {retired: vault.read(connection, key, MATERIAL, name)},
                now)
    vault.forget(connection, MATERIAL, [name])
    return AuditEvent(actor, "ca-retire", "CertificateAuthority", name, {
        "subject": certificate.subject.rfc4514_string(),
        "serial": format(certificate.serial_number, "x"), "kept_as": retired,
        "reason": "the document asks for another subject or key size"})


def _check_given(authority: Authority) -> None:
    """A CA given as certificate and key must be a CA, and the key must be the certificate's."""
    what = f"CertificateAuthority/{authority.name}"
    if authority.certificate.public_key().public_numbers() != \
            authority.key.public_key().public_numbers():
        raise CaError(f"{what}: the key is not the certificate's (their public keys differ)")
    try:
        constraints = authority.certificate.extensions.get_extension_for_class(
            x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        constraints = None
    if constraints is None or not constraints.ca:
        raise CaError(f"{what}: the certificate is not a CA certificate (BasicConstraints "
                      "CA:TRUE is missing)")


def _signer_stale(held: x509.Certificate | None, issuer: Authority,
                  now: dt.datetime) -> str | None:
    """Why the content-signing certificate must be issued (again), or None."""
    if held is None:
        return "first issue"
    try:
        held.verify_directly_issued_by(issuer.certificate)
    except (ValueError, TypeError, InvalidSignature):
        return f"CertificateAuthority/{issuer.name} has another certificate now"
    if held.not_valid_after_utc - now < RENEW_BEFORE:
        return "renewal before expiry"
    return None


def self_signed(spec: CertificateAuthoritySpec, private_key: rsa.RSAPrivateKey,
                now: dt.datetime) -> x509.Certificate:
    """A self-signed CA certificate for a generated CA."""
    subject = build_name(parse_dn(spec.subject or ""))
    public_key = private_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(subject).issuer_name(subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=spec.validity_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(private_key, hashes.SHA256())
    )


def content_signing_certificate(issuer: Authority, private_key: rsa.RSAPrivateKey,
                                now: dt.datetime) -> x509.Certificate:
    """The certificate that signs mobile-ID packages, issued by a built-in CA."""
    organization = issuer.certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, "mimctl content signing")]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME,
                                             str(organization[0].value)))
    public_key = private_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name(list(reversed(attributes))))
        .issuer_name(issuer.certificate.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + CONTENT_SIGNING_VALIDITY,
                             issuer.certificate.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
        .sign(issuer.key, hashes.SHA256())
    )
