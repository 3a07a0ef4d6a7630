"""Test key material: self-signed client certificates, as PEM and as PKCS#12."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID


@dataclass(frozen=True, slots=True)
class TestCredential:
    """A client certificate with its key, in the forms specs and stand-ins use."""

    __test__ = False  # not a test class, whatever its name

    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def certificate_pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption())

    def pfx(self, password: bytes) -> bytes:
        return pkcs12.serialize_key_and_certificates(
            b"client", self.key, self.certificate, None,
            serialization.BestAvailableEncryption(password))


@cache
def credential(common_name: str) -> TestCredential:
    """A self-signed RSA-2048 client certificate for `common_name` (made once per run)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5))
                   .not_valid_after(now + timedelta(days=1))
                   .sign(key, hashes.SHA256()))
    return TestCredential(key, certificate)
