"""CertificateAuthority: a built-in issuing CA, its key material, CRL and OCSP."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from specs.base import Document, SpecModel
from specs.secrets import CertificateRef, SecretRef


class CertificateAuthoritySpec(SpecModel):
    """An issuing CA. Without certificate and key, mimctl generates both on first apply."""

    description: str | None = Field(None, description="What the CA issues.")
    enabled: bool = Field(True, description="A disabled CA issues nothing.")
    subject: str | None = Field(
        None, description="Subject DN of a generated CA certificate (RFC 4514), e.g. "
        "CN=Mobile Issuing CA,O=Example.")
    certificate: CertificateRef | None = Field(None, description="CA certificate.")
    key: SecretRef | None = Field(None, description="CA private key (PEM).")
    key_algorithm: Literal["RSA"] = Field("RSA", description="Key algorithm of a generated CA.")
    key_size: Literal[2048, 3072, 4096] = Field(3072, description="RSA key size of a generated CA.")
    validity_days: int = Field(3650, ge=1, le=36500, description="Lifetime of a generated CA.")
    crl_lifetime_hours: int = Field(
        24, ge=1, le=8760, description="Hours until a published CRL's nextUpdate.")
    ocsp: bool = Field(True, description="Answer OCSP requests for this CA.")

    @model_validator(mode="after")
    def _material(self) -> CertificateAuthoritySpec:
        if (self.certificate is None) != (self.key is None):
            raise ValueError("certificate and key go together: give both, or neither to have "
                             "mimctl generate the CA on first apply")
        if self.certificate is None and not self.subject:
            raise ValueError("a generated CA needs a subject (e.g. CN=Mobile Issuing CA,O=Example)")
        return self


class CertificateAuthority(Document):
    """A certificate authority."""

    kind: Literal["CertificateAuthority"]
    spec: CertificateAuthoritySpec
