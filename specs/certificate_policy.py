"""CertificatePolicy: one kind of certificate a CA issues, as a credential profile selects it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field, model_validator

from specs.base import Document, Reference, SpecModel, UniqueList

KeyUsage = Literal[
    "digitalSignature", "nonRepudiation", "keyEncipherment", "dataEncipherment", "keyAgreement",
]
ExtendedKeyUsage = Annotated[str, Field(
    pattern=r"^(clientAuth|serverAuth|emailProtection|codeSigning|smartcardLogon|"
    r"[0-2](\.[0-9]+)+)$",
    description="clientAuth, serverAuth, emailProtection, codeSigning, smartcardLogon or an OID.")]
Storage = Literal["Software", "Hardware"]

RSA_KEY_SIZES = (2048, 3072, 4096)
ECC_KEY_SIZES = (256, 384, 521)


class CertificatePolicySpec(SpecModel):
    """How certificates of this policy are made and stored."""

    friendly_name: str = Field(
        min_length=1, max_length=128,
        description="The policy's name in the product; DN policies refer to it.")
    authority: str = Field(description="The CertificateAuthority that issues it.")
    description: str | None = Field(None, description="What the certificate is for.")
    enabled: bool = Field(True, description="Allow issuance under this policy.")
    certificate_storage: Storage = Field(
        "Software", description="Where the key lives; mobile devices need Software.")
    recovery_storage: Storage = Field(
        "Software", description="Where a recovered key goes; mobile devices need Software.")
    key_algorithm: Literal["RSA", "ECC"] = Field(
        "RSA", description="Key algorithm; mobile issuance supports RSA only.")
    key_size: int = Field(2048, description="RSA 2048/3072/4096 or ECC 256/384/521.")
    validity_days: int = Field(365, ge=1, le=3650, description="Lifetime of issued certificates.")
    key_usages: Annotated[list[KeyUsage], UniqueList] = Field(
        default_factory=lambda: ["digitalSignature"], min_length=1,
        description="X.509 key usages of issued certificates.")
    extended_key_usages: Annotated[list[ExtendedKeyUsage], UniqueList] = Field(
        default_factory=list, description="Extended key usages of issued certificates.")
    archive_keys: bool = Field(
        False, description="Generate the key on the server and archive it, so it can be "
        "recovered to a new device (needed for historic encryption certificates).")
    automatic_renewal: bool = Field(
        False, description="Renew certificates automatically before expiry.")

    @model_validator(mode="after")
    def _key_size(self) -> CertificatePolicySpec:
        sizes = RSA_KEY_SIZES if self.key_algorithm == "RSA" else ECC_KEY_SIZES
        if self.key_size not in sizes:
            allowed = ", ".join(map(str, sizes))
            raise ValueError(f"keySize {self.key_size} is not a {self.key_algorithm} size "
                             f"(one of {allowed})")
        return self


class CertificatePolicy(Document):
    """A certificate policy."""

    kind: Literal["CertificatePolicy"]
    spec: CertificatePolicySpec

    def references(self) -> Iterator[Reference]:
        yield Reference("CertificateAuthority", self.spec.authority, ("spec", "authority"))
